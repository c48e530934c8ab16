"""Keras callbacks dlopt adds to what Keras ships: epoch timing and learning rate, metrics.csv."""

from __future__ import annotations

import csv
import io
import math
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


class EpochStats(keras.callbacks.Callback):
    """Adds learning_rate, epoch_seconds and samples_per_second to each epoch's logs.

    samples_per_second counts training time only (up to the start of validation), so it measures
    the training loop's throughput and compares across runs with different validation sets.
    """

    def __init__(self, train_examples: int):
        super().__init__()
        self.train_examples = train_examples

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

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.rows: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
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
