"""What the terminal shows while a model trains or is tested: a rich progress bar on a terminal
(running loss, main metric, samples/s), or one plain line per epoch."""

from __future__ import annotations

import sys
import time

import keras

from .. import console
from ..console import SHORT_METRIC
from ..runs.metrics_csv import TIMING

NOT_METRICS = ("loss", "learning_rate", *TIMING)


def main_metric(logs: dict) -> str | None:
    """The first metric after the loss (the config's first metric)."""
    return next((k for k in logs if k not in NOT_METRICS and not k.startswith("val_")), None)


def epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    """One line per epoch within 80 columns: loss and the main metric, train and validation, then
    the epoch's time and throughput on every line, then the learning rate while it fits
    (metrics.csv has every value at full precision)."""
    metric = main_metric(logs)
    timing = []
    if "epoch_seconds" in logs:
        seconds = logs["epoch_seconds"]
        timing.append(f"{seconds:.1f}s" if seconds < 100 else f"{seconds:,.0f}s")
    if "samples_per_second" in logs:
        timing.append(throughput(logs["samples_per_second"]))
    for digits, gap in ((4, "  "), (3, "  "), (3, " ")):  # fewer digits, then narrower gaps, before anything is left out
        parts = [f"epoch {epoch}/{epochs}"]
        for name in ("loss", metric):
            for key in (name, f"val_{name}"):
                if name and key in logs:
                    parts.append(f"{key.replace(name, SHORT_METRIC.get(name, name))} {logs[key]:.{digits}g}")
        line = gap.join(parts + ([" ".join(timing)] if timing else []))
        if len(line) <= console.LINE_WIDTH:
            break
    rate = f"  lr {logs['learning_rate']:.2g}" if "learning_rate" in logs else ""
    return line + rate if len(line) + len(rate) <= console.LINE_WIDTH else line


def throughput(per_second: float) -> str:
    """Examples per second, at most 6 characters: 704/s, 5,243/s, 12.3k/s, 123k/s."""
    if per_second < 10_000:
        return f"{per_second:,.0f}/s"
    return f"{per_second / 1000:.1f}k/s" if per_second < 100_000 else f"{per_second / 1000:,.0f}k/s"


def _status(logs: dict, examples: int, seconds: float) -> str:
    metric = main_metric(logs)
    values = [f"loss {float(logs['loss']):.4g}"] if "loss" in logs else []
    if metric:
        values.append(f"{SHORT_METRIC.get(metric, metric)} {float(logs[metric]):.4g}")
    if examples:
        values.append(throughput(examples / max(seconds, 1e-9)))
    return "  ".join(values)


def _bar(description: str, total: int | None):
    """A transient rich bar on stderr with a labelled time column; ended by console.end_live."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn()]
    columns += [TextColumn("eta"), TimeRemainingColumn()] if total else [TextColumn("elapsed"), TimeElapsedColumn()]
    bar = Progress(*columns, TextColumn("{task.fields[status]}"), console=console.stderr, transient=True)
    console.start_live(bar)
    return bar, bar.add_task(description, total=total, status="")


class EpochLines(keras.callbacks.Callback):
    def __init__(self, epochs: int, shown: bool = True):
        super().__init__()
        self.epochs = epochs
        self.shown = shown

    def on_epoch_end(self, epoch, logs=None):
        if self.shown:
            console.say(epoch_line(epoch + 1, self.epochs, logs or {}))


class ProgressBar(EpochLines):
    REFRESH = 0.5  # seconds between readings of the running loss (each waits on the device)

    def __init__(self, epochs: int, steps_per_epoch: int, batch_size: int = 0):
        super().__init__(epochs)
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size

    def on_epoch_begin(self, epoch, logs=None):
        self.bar, self.task = _bar(f"epoch {epoch + 1}/{self.epochs}", self.steps_per_epoch)
        self.started = self.shown_at = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        update = {"completed": batch + 1}
        if logs and now - self.shown_at >= self.REFRESH:
            self.shown_at = now
            update["status"] = _status(logs, (batch + 1) * self.batch_size, now - self.started)
        self.bar.update(self.task, **update)

    def on_epoch_end(self, epoch, logs=None):
        console.end_live(self.bar)
        super().on_epoch_end(epoch, logs)


def progress_callback(mode: str, epochs: int, steps_per_epoch: int, batch_size: int = 0) -> keras.callbacks.Callback:
    """`bar` on a terminal (`auto`), else `lines`; `none` shows nothing. No per-step hook at all
    unless a bar is drawn."""
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "lines"
    return ProgressBar(epochs, steps_per_epoch, batch_size) if mode == "bar" else EpochLines(epochs, shown=mode != "none")


class TestProgress(keras.callbacks.Callback):
    """Progress of a long evaluation (the test split after training, `dlopt eval`): a transient bar
    on a terminal; elsewhere, once it has taken 10 seconds, a line every 30 seconds saying how far
    it is. A minute of test evaluation is never silent, a quick one prints nothing."""

    FIRST, EVERY = 10.0, 30.0  # seconds before the first line, and between lines, when not on a terminal

    def __init__(self, what: str, steps: int | None, mode: str = "auto"):
        super().__init__()
        self.what, self.steps = what, steps
        self.mode = ("bar" if sys.stderr.isatty() else "lines") if mode == "auto" else mode
        self.bar = None

    def on_test_begin(self, logs=None):
        self.started = time.perf_counter()
        self.next_line = self.started + self.FIRST
        if self.mode == "bar":
            self.bar, self.task = _bar(self.what, self.steps)

    def on_test_batch_end(self, batch, logs=None):
        if self.bar is not None:
            self.bar.update(self.task, completed=batch + 1)
            return
        now = time.perf_counter()
        if self.mode == "lines" and now >= self.next_line:
            self.next_line = now + self.EVERY
            console.say(f"{self.what}: {batch + 1:,}{f'/{self.steps:,}' if self.steps else ''} batches in {now - self.started:.0f}s")

    def on_test_end(self, logs=None):
        if self.bar is not None:
            console.end_live(self.bar)
            self.bar = None

    # predictions (the per-class report, the mistakes) take as long again: shown the same way
    on_predict_begin, on_predict_batch_end, on_predict_end = on_test_begin, on_test_batch_end, on_test_end
