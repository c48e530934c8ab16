"""Keras callbacks dlopt adds to what Keras ships: epoch timing and learning rate, metrics.csv."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from pathlib import Path

import keras

from .runs import write_text_atomic


def last_step_learning_rate(optimizer) -> float:
    """The rate the epoch's last step used (a schedule is evaluated one step back)."""
    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        step = max(int(keras.ops.convert_to_numpy(optimizer.iterations)) - 1, 0)
        return float(keras.ops.convert_to_numpy(schedule(step)))
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


_IMPORTED_AT = time.time()


def process_start_time() -> float:
    """When this process started (wall clock), from Linux's /proc; elsewhere, when dlopt was imported."""
    try:
        with open("/proc/self/stat") as handle:
            started_ticks = int(handle.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        return time.time() - (uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT


class EpochStats(keras.callbacks.Callback):
    """Adds learning_rate, epoch_seconds and samples_per_second to each epoch's logs, and measures
    the time from the process's start to the end of the first training step (`startup_seconds`).

    samples_per_second counts training time only (up to the start of validation), so it measures
    the training loop's throughput and compares across runs with different validation sets.
    """

    def __init__(self, train_examples: int):
        super().__init__()
        self.train_examples = train_examples
        self.startup_seconds = None

    def on_train_batch_end(self, batch, logs=None):
        if self.startup_seconds is None:
            self.startup_seconds = time.time() - process_start_time()

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
        self.train_end = None

    def on_test_begin(self, logs=None):
        if self.train_end is None and hasattr(self, "start"):
            self.train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        end = time.perf_counter()
        train_seconds = (self.train_end or end) - self.start
        if logs is not None:
            logs.setdefault("learning_rate", last_step_learning_rate(self.model.optimizer))
            logs["epoch_seconds"] = end - self.start
            logs["samples_per_second"] = self.train_examples / max(train_seconds, 1e-9)


class MetricsCSV(keras.callbacks.Callback):
    """metrics.csv, one row per epoch, rewritten atomically each epoch so readers never see half a row.

    Column order: epoch, learning_rate, loss, metrics, val_*, epoch_seconds, samples_per_second.
    """

    TIMING = ("epoch_seconds", "samples_per_second")

    def __init__(self, path: Path, earlier_rows: list[dict] = ()):
        super().__init__()
        self.path = path
        self.rows: list[dict] = list(earlier_rows)  # a resumed run keeps the epochs it had finished

    def on_epoch_end(self, epoch, logs=None):
        # an epoch run again after a resume replaces its old row: every epoch appears exactly once
        self.rows = [row for row in self.rows if row["epoch"] < epoch + 1]
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        self.rows.append(row)
        write_text_atomic(self.path, self.render())

    def columns(self) -> list[str]:
        keys = list(dict.fromkeys(k for row in self.rows for k in row))
        train = [k for k in keys if k not in ("epoch", "learning_rate", "loss") and not k.startswith("val_") and k not in self.TIMING]
        val = [k for k in keys if k.startswith("val_")]
        return ["epoch", "learning_rate", "loss"] + train + val + [k for k in self.TIMING if k in keys]

    def render(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns(), restval="", lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: (_fmt(v) if k != "epoch" else v) for k, v in row.items()})
        return out.getvalue()


def _fmt(value: float) -> str:
    return repr(value) if math.isfinite(value) else str(value)


class Backup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore (the state `--resume` continues from): saved at every epoch's end,
    optionally every N steps as well, and on demand when the run is interrupted.

    Each save goes to temporary files renamed into place, so a kill mid-save leaves the previous
    state intact. The state is kept after fit(): the runner removes it once the run has completed,
    so an interruption during the final test evaluation still resumes without retraining.
    """

    def __init__(self, backup_dir: Path, every_steps: int | None = None, save_dir: Path | None = None):
        super().__init__(str(backup_dir), save_freq=every_steps or "epoch", delete_checkpoint=False)
        # a multi-worker run's non-chief workers restore the chief's state but save into scratch
        self.save_dir = Path(save_dir or backup_dir)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        # Keras counts epochs from 0 again after a restore; saves must record the restored epoch
        self._current_epoch = self.model._initial_epoch or 0

    def on_epoch_end(self, epoch, logs=None):
        # Only count the epoch here: BackupAtEpochEnd saves once the epoch's checkpoints and metrics
        # row are written, so a kill in between resumes the epoch instead of losing its row.
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0

    def save_epoch_end(self) -> None:
        self._save_model()

    def _save_model(self):
        folder = self.save_dir
        folder.mkdir(parents=True, exist_ok=True)
        ensure_space(folder, self.model)
        weights_tmp = folder / f".{os.getpid()}.tmp.weights.h5"  # Keras wants the .weights.h5 ending
        try:
            self.model.save_weights(weights_tmp, overwrite=True)
        except BaseException:  # e.g. a full disk: the previous state stays whole, no half file is left
            release_failed_files()
            weights_tmp.unlink(missing_ok=True)
            raise
        metadata = json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen})
        os.replace(weights_tmp, folder / Path(self._weights_path).name)
        write_text_atomic(folder / Path(self._training_metadata_path).name, metadata)

    def save_now(self) -> None:
        """Save the current state (an interrupted epoch is then run again from its start)."""
        if self.model is not None and self.model.built:
            self._save_model()


class BackupAtEpochEnd(keras.callbacks.Callback):
    """The resume state's save at an epoch's end (Keras saves it per epoch or per N steps; we want
    both), placed after the callbacks that write the epoch's checkpoints, states and metrics row."""

    def __init__(self, backup: Backup):
        super().__init__()
        self.backup = backup

    def on_epoch_end(self, epoch, logs=None):
        self.backup.save_epoch_end()


class AveragedWeightsIn(keras.callbacks.SwapEMAWeights):
    """With `optimizer.ema_momentum`: the optimizer's moving average of the weights is what gets
    validated (Keras' SwapEMAWeights) and what the epoch-end callbacks between this one and
    AveragedWeightsOut see: the checkpoints and early stopping's best weights. Training and the
    resume state keep Keras' own arrangement, raw weights in the model and the average in the
    optimizer, so a resumed run goes on exactly. After fit() Keras puts the average into the model."""

    def on_epoch_end(self, epoch, logs=None):
        self.on_test_begin()  # Keras' swap-in, as for validation

    def swap_back(self) -> None:
        self.on_test_end()  # Keras' swap-out


class AveragedWeightsOut(keras.callbacks.Callback):
    """Puts the raw weights back after the epoch-end callbacks that save the averaged ones."""

    def __init__(self, swap: AveragedWeightsIn):
        super().__init__()
        self.swap = swap

    def on_epoch_end(self, epoch, logs=None):
        self.swap.swap_back()


class AtomicCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint writing to a temporary file renamed into place: a save that fails (a full
    disk) or is killed leaves the previous best.keras / last.keras whole and loadable."""

    def _save_model(self, epoch, batch, logs):
        final = self.filepath
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


class CallbackStates(keras.callbacks.Callback):
    """Early stopping's and reduce-on-plateau's counters (epochs waited, best value, cooldown) and the
    learning rate, saved beside the resume state after every epoch and put back on `--resume`, so a
    resumed run lowers its rate and stops on the same epochs as one that never stopped.

    Placed after the callbacks it watches: at an epoch's end it records what they decided, and at
    the start of training it restores them after their own on_train_begin has reset them. States
    are kept per completed-epoch count (the last two), so the one matching the weights restored
    (Keras' BackupAndRestore records that count) is used even if a kill fell between the two saves.
    """

    FIELDS = {
        keras.callbacks.EarlyStopping: ("wait", "best", "stopped_epoch", "best_epoch"),
        keras.callbacks.ReduceLROnPlateau: ("wait", "cooldown_counter", "best"),
    }

    def __init__(self, folder: Path, watched: list, restore_folder: Path | None = None, data_random_states=None, resumed: bool = False, fresh_at_epoch: int | None = None):
        super().__init__()
        self.data_random_states = data_random_states or (lambda: [])
        # only a process resuming a run restores, once, and not at fine-tuning's phase switch, where
        # an uninterrupted run starts its second phase afresh (new optimizer, counters reset by Keras)
        self.restore_pending = resumed
        self.fresh_at_epoch = fresh_at_epoch
        self.path = Path(folder) / "callback_states.json"
        self.restore_path = Path(restore_folder or folder) / "callback_states.json"
        self.watched = [c for c in watched if type(c) in self.FIELDS]
        self.states: dict[str, dict] = {}
        # early stopping's weights of its best epoch, which it puts back when it stops
        self.best_weights = Path(folder) / "early_stopping_best.npz"
        self.restore_best_weights = Path(restore_folder or folder) / "early_stopping_best.npz"
        self.saved_best_epoch = None

    def _seed_states(self) -> list:
        """Dropout's (and other layers') random-number states, and the augmentation layers': Keras
        does not save them with the weights, and a resumed run must draw what the uninterrupted one
        would have drawn."""
        return [v for v in self.model.non_trainable_variables if v.path.endswith("seed_generator_state")] + list(self.data_random_states())

    def _state(self) -> dict:
        state = {"callbacks": [{name: _plain(getattr(c, name)) for name in self.FIELDS[type(c)]} for c in self.watched]}
        state["seeds"] = [keras.ops.convert_to_numpy(v).tolist() for v in self._seed_states()]
        if not isinstance(getattr(self.model.optimizer, "_learning_rate", None), keras.optimizers.schedules.LearningRateSchedule):
            state["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        return state

    def on_train_begin(self, logs=None):
        epochs_done = self.model._initial_epoch or 0  # what the resume state restored
        restore, self.restore_pending = self.restore_pending, False
        if not restore or epochs_done == self.fresh_at_epoch:
            return
        try:
            self.states = json.loads(self.restore_path.read_text())
        except (OSError, ValueError):
            self.states = {}
        state = self.states.get(str(epochs_done))
        if not epochs_done or state is None:
            return
        for callback, saved in zip(self.watched, state["callbacks"]):
            for name, value in saved.items():
                setattr(callback, name, value)
            if getattr(callback, "restore_best_weights", False) and self.restore_best_weights.exists():
                import numpy as np

                with np.load(self.restore_best_weights) as arrays:
                    if int(arrays["best_epoch"]) == callback.best_epoch:
                        callback.best_weights = [arrays[f"w{i}"] for i in range(len(arrays.files) - 1)]
                self.saved_best_epoch = callback.best_epoch
        if "learning_rate" in state:
            self.model.optimizer.learning_rate = state["learning_rate"]
        seeds = self._seed_states()
        if len(seeds) == len(state.get("seeds", [])):
            for variable, value in zip(seeds, state["seeds"]):
                variable.assign(value)

    def on_epoch_end(self, epoch, logs=None):
        for callback in self.watched:
            if getattr(callback, "best_weights", None) is not None and callback.best_epoch != self.saved_best_epoch:
                self._save_best_weights(callback)
        self.states[str(epoch + 1)] = self._state()
        self.states = {k: self.states[k] for k in sorted(self.states, key=int)[-2:]}
        write_text_atomic(self.path, json.dumps(self.states))


    def _save_best_weights(self, callback) -> None:
        import numpy as np

        tmp = self.best_weights.with_name(f".{os.getpid()}.tmp.npz")
        self.best_weights.parent.mkdir(parents=True, exist_ok=True)
        try:
            np.savez(tmp, best_epoch=callback.best_epoch, **{f"w{i}": w for i, w in enumerate(callback.best_weights)})
            os.replace(tmp, self.best_weights)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.saved_best_epoch = callback.best_epoch


def _plain(value):
    """A counter or best value as JSON takes it (NumPy scalars to Python; inf stays inf)."""
    return value.item() if hasattr(value, "item") else value


class DataEpoch(keras.callbacks.Callback):
    """Sets the data's epoch variable as each epoch begins, before Keras opens that epoch's reader:
    the training order is drawn from (seed, epoch), the same whether or not the run was resumed."""

    def __init__(self, epoch_variable):
        super().__init__()
        self.epoch_variable = epoch_variable

    def on_epoch_begin(self, epoch, logs=None):
        if self.epoch_variable is not None:
            self.epoch_variable.assign(epoch)


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
