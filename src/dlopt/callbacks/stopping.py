"""How training stops: on a non-finite loss (StopOnNaN), and on Ctrl-C or SIGTERM only between
steps, never inside a file write (StopAtSafePoint)."""

from __future__ import annotations

import math

import keras


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras' TerminateOnNaN without its message on stdout (which `--json` keeps for the result);
    the run then fails with its own one-line reason."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True


class StopAtSafePoint(keras.callbacks.Callback):
    """Ctrl-C and SIGTERM during fit() stop training between steps, never inside a file write.

    `handle_signal` (installed for SIGINT and SIGTERM) only sets a flag while fit() runs; this
    callback, last in the list, raises KeyboardInterrupt at the next step or epoch boundary, after
    the backup and the writers are done. Outside fit(), or on a second signal, it raises at once.
    """

    def __init__(self):
        super().__init__()
        self.in_fit = False
        self.requested = False

    def handle_signal(self, signum, frame):
        if self.in_fit and not self.requested:
            self.requested = True
            return
        raise KeyboardInterrupt

    def on_train_begin(self, logs=None):
        self.in_fit = True

    def on_train_end(self, logs=None):
        self.in_fit = False
        self._stop_if_requested()

    def _stop_if_requested(self, *args, **kwargs):
        if self.requested:
            self.in_fit = False
            raise KeyboardInterrupt

    on_train_batch_end = on_test_batch_end = on_epoch_end = _stop_if_requested
