"""Per-epoch numbers: the learning rate, epoch time, throughput and CPU-seconds added to the logs
(EpochStats), and metrics.csv written after every epoch (MetricsCSV)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import keras

from ..runs import write_text_atomic
from ..runs.metrics_csv import render
from .resume import learning_rate_schedule


def last_step_learning_rate(optimizer) -> float:
    """The rate the epoch's last step used (a schedule is evaluated one step back)."""
    schedule = learning_rate_schedule(optimizer)
    if schedule is not None:
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


class CpuClock:
    """The CPU-seconds (user + system, every thread) a run has used so far: what accuracy per
    CPU-second is measured in, read from the run's own files instead of a `/usr/bin/time` wrapper.

    The first run in a process counts from the process's start, start-up included, as
    `/usr/bin/time` counts a command; a later run in the same process (a study's next trial) counts
    from where the one before it last read the clock. A resumed run adds what its earlier processes
    had used by their last finished epoch."""

    read_until = 0.0  # this process's CPU-seconds already counted by an earlier run in it

    def __init__(self, earlier_seconds: float = 0.0):
        self.start = CpuClock.read_until
        self.earlier_seconds = earlier_seconds

    def __call__(self) -> float:
        now = time.process_time()
        CpuClock.read_until = now
        return self.earlier_seconds + now - self.start


class EpochStats(keras.callbacks.Callback):
    """Adds learning_rate, epoch_seconds, samples_per_second and cpu_seconds (the run's CPU-seconds
    so far) to each epoch's logs, and measures the time from the process's start to the end of the
    first training step (`startup_seconds`).

    samples_per_second counts training time only (up to the start of validation), so it measures
    the training loop's throughput and compares across runs with different validation sets.
    """

    def __init__(self, train_examples: int, cpu_clock: CpuClock):
        super().__init__()
        self.train_examples = train_examples
        self.cpu_clock = cpu_clock
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
            logs["cpu_seconds"] = self.cpu_clock()


class MetricsCSV(keras.callbacks.Callback):
    """metrics.csv, one row per epoch, rewritten atomically each epoch so readers never see half a row."""

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
        write_text_atomic(self.path, render(self.rows))
