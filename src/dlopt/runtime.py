"""Process-wide TensorFlow settings from `train.*`, made before TensorFlow starts: oneDNN and threads.

oneDNN is read from the environment once, when TensorFlow is imported, so `before_tensorflow`
must run first; threads are set after the import but before the first op.
"""

from __future__ import annotations

import os
import sys

from . import report

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def before_tensorflow(train_config) -> None:
    """oneDNN on or off as `train.onednn` says, if TensorFlow has not been imported yet."""
    wanted = _onednn_wanted(train_config.onednn)
    if wanted is None:
        return
    if "tensorflow" not in sys.modules:
        os.environ[ONEDNN_VARIABLE] = "1" if wanted else "0"
    elif train_config.onednn != "auto" and onednn_enabled() not in (None, wanted):
        report.stderr.print("warning: train.onednn ignored: TensorFlow was already started in this process")


def _onednn_wanted(setting) -> bool | None:
    """`auto`: on (TensorFlow turns it on only for some CPUs; training steps of the Fashion-MNIST CNN
    measured 1.3x faster with it on a 2-core AMD EPYC), unless the environment already says; None: leave as is."""
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
        report.stderr.print("warning: train.threads ignored: TensorFlow was already started in this process")
