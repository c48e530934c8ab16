"""Checkpoints written whole: to a temporary file renamed into place (AtomicCheckpoint), with the
room checked first (ensure_space), and a failed save's open files let go (release_failed_files).

One of the two modules (with resume.py) that reach into Keras' private attributes."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import keras


class AtomicCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint writing to a temporary file renamed into place: a save that fails (a full
    disk) or is killed leaves the previous best.keras / last.keras whole and loadable. Weights that
    are not finite (a NaN loss) are never saved: the file keeps the last finite epoch's."""

    def __init__(self, *args, judged=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.judged = judged  # which epochs (from 1) may become the best; None: every one
        self.saved_epoch = None  # the epoch (1-based) the file holds, when this process saved it

    def on_epoch_end(self, epoch, logs=None):
        if self.judged is None or self.judged(epoch + 1):
            super().on_epoch_end(epoch, logs)

    def _save_model(self, epoch, batch, logs):
        from ..models import non_finite_weights

        if non_finite_weights(self.model):
            return
        final = self.filepath
        Path(final).parent.mkdir(parents=True, exist_ok=True)
        if not self.save_best_only:  # saved every time: check the room first (best.keras saves only sometimes)
            ensure_space(Path(final).parent, self.model)
        tmp = Path(final).with_name(f".{Path(final).stem}.{os.getpid()}.tmp.keras")
        self.filepath = str(tmp)
        try:
            super()._save_model(epoch, batch, logs)
        except BaseException:
            release_failed_files()
            tmp.unlink(missing_ok=True)
            raise
        finally:
            self.filepath = final
        if tmp.exists():  # saved (save_best_only saves only on an improvement)
            os.replace(tmp, final)
            self.saved_epoch = epoch + 1


def ensure_space(folder: Path, model) -> None:
    """OSError(ENOSPC) before a save that cannot fit: h5py, failing mid-write on a full disk, keeps
    the half-written file open (its space held) and can crash the interpreter at exit."""
    import errno
    import shutil

    variables = list(model.variables) + list(getattr(getattr(model, "optimizer", None), "variables", []) or [])
    needed = int(1.1 * sum(math.prod(v.shape) * _itemsize(v) for v in variables)) + (1 << 20)  # plus the files' own overhead
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"No space left on device: {free / 1e6:.1f} MB free, a save needs about {needed / 1e6:.1f} MB", str(folder))


def _itemsize(variable) -> int:
    import numpy as np

    return np.dtype(keras.backend.standardize_dtype(variable.dtype)).itemsize


def release_failed_files() -> None:
    """Let go of the file handles a failed Keras/h5py save leaves open, now rather than at exit,
    where closing them on a full disk crashes the interpreter; their complaints are not the user's."""
    import gc

    hook = sys.unraisablehook
    sys.unraisablehook = lambda *args: None
    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook
