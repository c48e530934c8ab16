"""The state `--resume` continues from: Keras' BackupAndRestore saved whole (Backup) at the end of
each epoch once its files are written (BackupAtEpochEnd), the counters of early stopping and the
plateau schedule and the random states Keras does not save (CallbackStates), and the data order of
each epoch drawn from its number (DataEpoch).

One of the two modules (with saving.py) that reach into Keras' private attributes; the readers
below are the only other places that do."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras

from ..runs import RunFolder, write_text_atomic
from .saving import ensure_space, release_failed_files


def learning_rate_schedule(optimizer):
    """The optimizer's LearningRateSchedule, or None for a plain rate (Keras keeps it private)."""
    schedule = getattr(optimizer, "_learning_rate", None)
    return schedule if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule) else None


def initial_epoch(model) -> int:
    """The epoch fit() starts from: what BackupAndRestore restored (Keras keeps it private)."""
    return model._initial_epoch or 0


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
        self._current_epoch = initial_epoch(self.model)

    def on_epoch_end(self, epoch, logs=None):
        # Only count the epoch here: BackupAtEpochEnd saves once the epoch's checkpoints and metrics
        # row are written, so a kill in between resumes the epoch instead of losing its row.
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0

    def save_epoch_end(self) -> None:
        self._save_model()

    def _save_model(self):
        from ..models import non_finite_weights

        if non_finite_weights(self.model):  # a NaN loss: --resume goes on from the last finite state
            return
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

    def __init__(self, run: RunFolder, watched: list, restore: RunFolder | None = None, data_random_states=None, resumed: bool = False, fresh_at_epoch: int | None = None):
        super().__init__()
        self.data_random_states = data_random_states or (lambda: [])
        # only a process resuming a run restores, once, and not at fine-tuning's phase switch, where
        # an uninterrupted run starts its second phase afresh (new optimizer, counters reset by Keras)
        self.restore_pending = resumed
        self.fresh_at_epoch = fresh_at_epoch
        restore = restore or run  # a multi-worker run's other workers restore the chief's state
        self.path = run.callback_states
        self.restore_path = restore.callback_states
        self.watched = [c for c in watched if type(c) in self.FIELDS]
        self.states: dict[str, dict] = {}
        # early stopping's weights of its best epoch, which it puts back when it stops
        self.best_weights = run.early_stopping_best
        self.restore_best_weights = restore.early_stopping_best
        self.saved_best_epoch = None

    def _seed_states(self) -> list:
        """Dropout's (and other layers') random-number states, and the augmentation layers': Keras
        does not save them with the weights, and a resumed run must draw what the uninterrupted one
        would have drawn."""
        return [v for v in self.model.non_trainable_variables if v.path.endswith("seed_generator_state")] + list(self.data_random_states())

    def _state(self) -> dict:
        state = {"callbacks": [{name: _plain(getattr(c, name)) for name in self.FIELDS[type(c)]} for c in self.watched]}
        state["seeds"] = [keras.ops.convert_to_numpy(v).tolist() for v in self._seed_states()]
        if learning_rate_schedule(self.model.optimizer) is None:
            state["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        return state

    def on_train_begin(self, logs=None):
        epochs_done = initial_epoch(self.model)  # what the resume state restored
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
