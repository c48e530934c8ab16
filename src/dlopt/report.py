"""What the user sees: progress on stderr, the results table on stdout, and plots/curves.png."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

stderr = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)

_SKIP_IN_LINE = {"epoch_seconds", "samples_per_second", "learning_rate"}


def epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    parts = [f"epoch {epoch}/{epochs}"]
    parts += [f"{k} {v:.4g}" for k, v in logs.items() if k not in _SKIP_IN_LINE]
    if "learning_rate" in logs:
        parts.append(f"lr {logs['learning_rate']:.3g}")
    if "epoch_seconds" in logs:
        parts.append(f"{logs['epoch_seconds']:.1f}s ({logs['samples_per_second']:.0f} samples/s)")
    return "  ".join(parts)


def progress_callback(mode: str, epochs: int, steps_per_epoch: int):
    """A Keras callback: a rich progress bar on a terminal, or one plain line per epoch."""
    import keras

    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "lines"

    class EpochLines(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if mode != "none":
                stderr.print(epoch_line(epoch + 1, epochs, logs or {}), soft_wrap=True)

    class ProgressBar(EpochLines):
        def __init__(self):
            super().__init__()
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            self.bar = Progress(*columns, console=stderr, transient=True)

        def on_epoch_begin(self, epoch, logs=None):
            self.bar.start()
            self.task = self.bar.add_task(f"epoch {epoch + 1}/{epochs}", total=steps_per_epoch)

        def on_train_batch_end(self, batch, logs=None):
            # only the step count: reading the loss here would wait on the device every step
            self.bar.update(self.task, completed=batch + 1)

        def on_epoch_end(self, epoch, logs=None):
            self.bar.stop()
            self.bar.remove_task(self.task)
            super().on_epoch_end(epoch, logs)

    # no per-step hook at all unless a bar is drawn
    return ProgressBar() if mode == "bar" else EpochLines()


def results_table(summary: dict) -> Table:
    """Each metric: final train value, validation at the best epoch and at the end, and test."""
    best = summary.get("best", {})
    table = Table(title=f"{summary['name']}: {summary['status']}", title_justify="left")
    single_view = summary.get("test_single_view")  # set when test-time augmentation averaged views
    columns = ["metric", "train", f"val (best, epoch {best.get('epoch')})", "val (final)"] + (["test (tta)", "test (1 view)"] if single_view else ["test"])
    for column in columns:
        table.add_column(column, justify="left" if column == "metric" else "right")
    final, at_best, test = summary.get("final", {}), summary.get("best_epoch_metrics", {}), summary.get("test") or {}
    skip = ("learning_rate", "epoch_seconds", "samples_per_second", "epoch")
    for name in [k for k in final if k not in skip and not k.startswith("val_")]:
        cells = [_num(final.get(name)), _num(at_best.get(f"val_{name}")), _num(final.get(f"val_{name}")), _num(test.get(name))]
        table.add_row(name, *cells, *([_num(single_view.get(name))] if single_view else []))
    return table


def forecast_table(forecast: dict) -> Table:
    """Time series: the model against the naive forecasts on the same test windows."""
    table = Table(title=f"test forecasts ({forecast['windows']} windows, original units)", title_justify="left")
    for column in ("forecast", "rmse", "mae"):
        table.add_column(column, justify="left" if column == "forecast" else "right")
    for name in ("model", "persistence", "seasonal_naive"):
        label = f"seasonal naive (period {forecast['season']})" if name == "seasonal_naive" else name
        table.add_row(label, _num(forecast[name]["rmse"]), _num(forecast[name]["mae"]))
    return table


def results_footer(summary: dict) -> str:
    flops = summary.get("flops_per_example")
    size = summary.get("model_bytes")
    cost = (
        f"model: {summary.get('parameters', 0):,} parameters, {'?' if flops is None else f'{flops / 1e6:,.1f} M'} FLOPs per example, "
        f"{'?' if size is None else f'{size / 1e6:.1f} MB'} file; peak memory {summary.get('peak_memory_mb', 0):,.0f} MB"
    )
    return (
        f"{summary.get('epochs_run')} epochs in {summary.get('train_seconds', 0):.1f}s "
        f"({summary.get('samples_per_second', 0):.0f} samples/s), best by {summary.get('best', {}).get('monitor')}\n"
        f"{cost}\nrun folder: {summary['run_dir']}"
    )


def _num(value) -> str:
    return "" if value is None else f"{value:.4f}"


def read_metrics(path: Path) -> list[dict]:
    """metrics.csv as a list of rows of floats."""
    import csv

    with open(path) as handle:
        rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
    for row in rows:
        row["epoch"] = int(row["epoch"])
    return rows


def plot_curves(runs: dict[str, list[dict]], path: Path) -> None:
    """Loss and each metric per epoch, one panel each: train dashed, validation solid, a colour per run."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers
    import matplotlib.pyplot as plt

    skip = ("epoch", "learning_rate", "epoch_seconds", "samples_per_second")
    names = list(dict.fromkeys(k for rows in runs.values() for row in rows[:1] for k in row if k not in skip and not k.startswith("val_")))
    if not names:
        return
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        for index, (label, rows) in enumerate(runs.items()):
            color = f"C{index % 10}"
            epochs = [row["epoch"] for row in rows]
            prefix = f"{label} " if len(runs) > 1 else ""
            if all(name in row for row in rows):
                ax.plot(epochs, [row[name] for row in rows], "--", color=color, marker=".", label=f"{prefix}train")
            if all(f"val_{name}" in row for row in rows):
                ax.plot(epochs, [row[f"val_{name}"] for row in rows], "-", color=color, marker=".", label=f"{prefix}val")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    save_figure(fig, path)


def save_figure(fig, path: Path) -> None:
    """A matplotlib figure as a PNG, written under a temporary name and renamed into place."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
