"""Process-wide TensorFlow settings from `train.*`, made before TensorFlow starts: oneDNN and threads.

oneDNN is read from the environment once, when TensorFlow is imported, so `before_tensorflow`
must run first; threads are set after the import but before the first op.
"""

from __future__ import annotations

import io
import os
import re
import sys

from . import console

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def before_tensorflow(train_config) -> None:
    """oneDNN on or off as `train.onednn` says, if TensorFlow has not been imported yet."""
    wanted = _onednn_wanted(train_config.onednn)
    if wanted is None:
        return
    if "tensorflow" not in sys.modules:
        os.environ[ONEDNN_VARIABLE] = "1" if wanted else "0"
    elif train_config.onednn != "auto" and onednn_enabled() not in (None, wanted):
        console.warn("train.onednn ignored: TensorFlow was already started in this process")


def _onednn_wanted(setting) -> bool | None:
    """`auto`: on (TensorFlow turns it on only for some CPUs; training steps of the Fashion-MNIST CNN
    measured 1.2-1.5x faster with it on 2 x86 cores, benchmarks/onednn.py), unless the environment already says; None: leave as is."""
    if setting == "auto":
        return None if ONEDNN_VARIABLE in os.environ else True
    return bool(setting)


def onednn_enabled() -> bool | None:
    """Whether this process's TensorFlow runs oneDNN kernels (None: this TensorFlow cannot say)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def set_threads(threads: int | None) -> None:
    """TensorFlow's threads per op; only possible before TensorFlow runs its first op."""
    if threads is None:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already ran ops in this process (e.g. a notebook): say so, go on
        console.warn("train.threads ignored: TensorFlow was already started in this process")


# TensorFlow's C++ start-up lines (written to file descriptor 2, some before absl logging starts, so
# TF_CPP_MIN_LOG_LEVEL no longer hides them) that say nothing a dlopt user can act on
NATIVE_NOISE = re.compile(
    r"absl::InitializeLog|oneDNN custom operations are on|Could not find cuda drivers|failed call to cuInit"
    r"|optimized to use available CPU instructions|To enable the following instructions|rebuild TensorFlow"
    r"|Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning|computation placer already registered"
    r"|no flops stats due to incomplete shapes|cuda_executor|cudart_stub|port\.cc:\d+\]"
    # libjpeg's own line for a damaged JPEG: dlopt's one warning names the skipped files instead
    r"|^Input file read error$|^Premature end of JPEG file$|^Corrupt JPEG data"
)
NATIVE_LOG_LINE = re.compile(r"^[IW]\d{4} ")  # C++ info and warning lines; errors (E, F) pass
_quieted = False


def quiet_native_logs() -> None:
    """Only lines the user asked for: TensorFlow's C++ log lines are filtered out of stderr.

    File descriptor 2 becomes a pipe read by a thread that passes on every line but TensorFlow's
    info/warning chatter; Python's own stderr keeps writing to the terminal. `dlopt --verbose` or
    DLOPT_DEBUG=1 leaves everything as it is."""
    global _quieted
    if _quieted or os.environ.get("DLOPT_DEBUG"):
        return
    _quieted = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import logging
    import threading
    import warnings

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.showwarning = _warning_line
    try:
        python_writes_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a test runner's captured stream
        python_writes_fd2 = False
    real = os.dup(2)
    if python_writes_fd2:
        sys.stderr.flush()
        sys.stderr = io.TextIOWrapper(io.FileIO(os.dup(real), "w"), encoding=sys.stderr.encoding, errors="backslashreplace", line_buffering=True)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)

    def pass_on():
        with io.FileIO(read, "r") as pipe:
            for line in pipe:
                text = line.decode(errors="replace")
                if not NATIVE_NOISE.search(text) and not NATIVE_LOG_LINE.match(text):
                    os.write(real, line)

    threading.Thread(target=pass_on, name="dlopt-stderr-filter", daemon=True).start()


_warned: set[str] = set()

# Keras warnings a dlopt user can act on, said in dlopt's words with what to do
REWORDED = [
    (
        re.compile(r"Layer '(?P<layer>[^']+)' \(of type (?P<type>\w+)\) was passed an input with a mask attached to it"),
        "layer '{layer}' ({type}) drops the padding mask: layers after it treat padding as text "
        "(pool with model.pooling, or use layers that support masking, before it)",
    ),
    (
        re.compile(r"Your input ran out of data"),
        "the data ran out before the epoch's steps ended: the split is smaller than steps x batch_size (check data.batch_size)",
    ),
]


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning as one line, each message once; Keras warnings dlopt can explain, reworded."""
    text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
    for pattern, words in REWORDED:
        found = pattern.search(str(message))
        if found:
            text = words.format(**found.groupdict())
            break
    if text not in _warned:
        _warned.add(text)
        print(f"warning: {text}", file=sys.stderr)
