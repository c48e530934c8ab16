"""What the user sees: progress on stderr, the results table on stdout, and plots/curves.png."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

stderr = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)

SHORT = {"accuracy": "acc", "top_k_accuracy": "top_k", "macro_f1": "f1", "precision": "prec", "recall": "rec"}
LINE_WIDTH = 80


def wrapped(text: str, indent: str = "") -> str:
    """`text` folded after its commas into lines of at most 80 columns, each starting with `indent`
    (a `name 12/3/4` item is never split)."""
    import textwrap

    glued = ", ".join(part.replace(" ", "\xa0") for part in text.split(", "))
    lines = textwrap.wrap(glued, LINE_WIDTH, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False, break_long_words=False)
    return "\n".join(line.replace("\xa0", " ") for line in lines)


def _main_metric(logs: dict) -> str | None:
    """The first metric after the loss (the config's first metric)."""
    return next((k for k in logs if k not in ("loss", "learning_rate", "epoch_seconds", "samples_per_second") and not k.startswith("val_")), None)


def epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    """One line per epoch that fits 80 columns: loss and the main metric, train and validation, then
    as room allows the epoch's time, throughput and learning rate (metrics.csv has every value)."""
    metric = _main_metric(logs)
    parts = [f"epoch {epoch}/{epochs}"]
    for name in ("loss", metric):
        for key in (name, f"val_{name}"):
            if name and key in logs:
                parts.append(f"{key.replace(name, SHORT.get(name, name))} {logs[key]:.4g}")
    optional = []
    if "epoch_seconds" in logs:
        seconds = logs["epoch_seconds"]
        optional.append(f"{seconds:.1f}s" if seconds < 100 else f"{seconds:,.0f}s")
        if "samples_per_second" in logs:  # "12.3s 4,567/s": the epoch's time and throughput
            optional.append(f" {logs['samples_per_second']:,.0f}/s")
    if "learning_rate" in logs:
        optional.append(f"  lr {logs['learning_rate']:.2g}")
    line = "  ".join(parts)
    for extra in optional:  # in this order, each only while the line still fits
        extra = extra if extra.startswith(" ") else f"  {extra}"
        if len(line) + len(extra) > LINE_WIDTH:
            break
        line += extra
    return line


def progress_callback(mode: str, epochs: int, steps_per_epoch: int, batch_size: int = 0):
    """A Keras callback: a rich progress bar on a terminal (running loss, main metric, samples/s),
    or one plain line per epoch."""
    import time

    import keras

    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "lines"

    class EpochLines(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if mode != "none":
                stderr.print(epoch_line(epoch + 1, epochs, logs or {}), soft_wrap=True)

    class ProgressBar(EpochLines):
        REFRESH = 0.5  # seconds between readings of the running loss (each waits on the device)

        def __init__(self):
            super().__init__()
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            columns = (TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
            self.bar = Progress(*columns, console=stderr, transient=True)

        def on_epoch_begin(self, epoch, logs=None):
            self.bar.start()
            self.task = self.bar.add_task(f"epoch {epoch + 1}/{epochs}", total=steps_per_epoch, status="")
            self.started = self.shown = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            status = None
            if logs and now - self.shown >= self.REFRESH:
                self.shown = now
                metric = _main_metric(logs)
                values = [f"loss {float(logs['loss']):.4g}"] if "loss" in logs else []
                if metric:
                    values.append(f"{SHORT.get(metric, metric)} {float(logs[metric]):.4g}")
                if batch_size:
                    values.append(f"{(batch + 1) * batch_size / (now - self.started):,.0f}/s")
                status = "  ".join(values)
            self.bar.update(self.task, completed=batch + 1, **({"status": status} if status is not None else {}))

        def on_epoch_end(self, epoch, logs=None):
            self.bar.stop()
            self.bar.remove_task(self.task)
            super().on_epoch_end(epoch, logs)

    # no per-step hook at all unless a bar is drawn
    return ProgressBar() if mode == "bar" else EpochLines()


def results_rows(summary: dict) -> tuple[list[str], list[list]]:
    """(columns, rows) of the results: each metric's final train value, validation at the best
    epoch and at the end, and test (with and without test-time augmentation when it was on)."""
    best = summary.get("best", {})
    single_view = summary.get("test_single_view")  # set when test-time augmentation averaged views
    columns = ["metric", "train", f"val (best, epoch {best.get('epoch')})", "val (final)"] + (["test (tta)", "test (1 view)"] if single_view else ["test"])
    final, at_best, test = summary.get("final", {}), summary.get("best_epoch_metrics", {}), summary.get("test") or {}
    skip = ("learning_rate", "epoch_seconds", "samples_per_second", "epoch")
    rows = [
        [name, final.get(name), at_best.get(f"val_{name}"), final.get(f"val_{name}"), test.get(name), *([single_view.get(name)] if single_view else [])]
        for name in final
        if name not in skip and not name.startswith("val_")
    ]
    return columns, rows


def results_table(summary: dict) -> Table:
    table = Table(title=f"{summary['name']}: {summary['status']}", title_justify="left")
    columns, rows = results_rows(summary)
    for column in columns:
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, *values in rows:
        table.add_row(name, *(_num(v) for v in values))
    return table


def forecast_table(forecast: dict) -> Table:
    """Time series: the model against the naive forecasts on the same test windows, overall and for
    each step ahead (a few steps when the horizon is long), in the series' own units."""
    horizon = forecast.get("horizon", 1)
    steps = list(range(horizon)) if horizon <= 6 else sorted({0, 1, horizon // 4, horizon // 2, 3 * horizon // 4, horizon - 1})
    table = Table(title=f"test forecasts: RMSE in the series' units ({forecast['windows']} windows)", title_justify="left")
    for column in ("forecast", "rmse", "mae", *([f"step {s + 1}" for s in steps] if horizon > 1 else [])):
        table.add_column(column, justify="left" if column == "forecast" else "right")
    labels = {"seasonal_naive": f"seasonal naive ({forecast['season']})", "seasonal_naive_trend": "seasonal naive + trend"}
    for name in ("model", "persistence", "seasonal_naive", "seasonal_naive_trend"):
        if name not in forecast:
            continue
        row = forecast[name]
        per_step = [_num(row["rmse_per_step"][s]) for s in steps] if horizon > 1 and "rmse_per_step" in row else []
        table.add_row(labels.get(name, name), _num(row["rmse"]), _num(row["mae"]), *per_step)
    return table


PER_CLASS_ROWS = 20  # more classes: the worst by F1, the rest in eval/<split>.json


def per_class_table(analysis: dict, split: str) -> Table:
    """Precision, recall, F1 and support per class, then macro and weighted averages."""
    report = analysis["per_class"]
    classes = report["classes"]
    title = f"{split}: per class"
    if len(classes) > PER_CLASS_ROWS:
        classes = sorted(classes, key=lambda c: c["f1"])[:PER_CLASS_ROWS]
        title += f" (the {PER_CLASS_ROWS} lowest F1 of {len(report['classes'])}; all in eval/{split}.json)"
    table = Table(title=title, title_justify="left")
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    from rich.markup import escape

    for row in classes:
        table.add_row(escape(row["class"]), _num(row["precision"]), _num(row["recall"]), _num(row["f1"]), f"{row['support']:,}")
    for name in ("macro", "weighted"):
        row = report[name]
        table.add_row(f"[italic]{name} average[/italic]", _num(row["precision"]), _num(row["recall"]), _num(row["f1"]), f"{row['support']:,}", end_section=name == "weighted")
    return table


def results_footer(summary: dict) -> str:
    flops = summary.get("flops_per_example")
    size = summary.get("model_bytes")
    cost = (
        f"model: {summary.get('parameters', 0):,} parameters, {'?' if flops is None else f'{flops / 1e6:,.1f} M'} FLOPs per example, "
        f"{'?' if size is None else f'{size / 1e6:.1f} MB'} file; peak memory {summary.get('peak_memory_mb', 0):,.0f} MB"
    )
    return (
        f"{plural(summary.get('epochs_run') or 0, 'epoch')} in {summary.get('train_seconds', 0):.1f}s "
        f"({summary.get('samples_per_second', 0):.0f} samples/s), best by {summary.get('best', {}).get('monitor')}\n"
        f"{cost}\nrun folder: {summary['run_dir']}"
    )


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


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


PANEL_SKIP = ("epoch", "learning_rate", "epoch_seconds", "samples_per_second")


def panels(runs: dict[str, list[dict]]) -> list[str]:
    """The same order everywhere: loss, the metrics alphabetically, then the learning rate."""
    names = {k for rows in runs.values() for row in rows[:1] for k in row if k not in PANEL_SKIP and not k.startswith("val_")}
    ordered = (["loss"] if "loss" in names else []) + sorted(names - {"loss"})
    if any("learning_rate" in row for rows in runs.values() for row in rows[:1]):
        ordered.append("learning_rate")
    return ordered


def plot_curves(runs: dict[str, list[dict]], path: Path, title: str, best_epochs: dict[str, int | None] | None = None) -> None:
    """The curves of `runs` (label -> metrics.csv rows) as a PNG at `path`."""
    fig = curves_figure(runs, title, best_epochs)
    if fig is not None:
        save_figure(fig, path, tight=False)


def curves_figure(runs: dict[str, list[dict]], title: str, best_epochs: dict[str, int | None] | None = None):
    """One panel per quantity, per epoch: train dashed, validation solid. One run: train and
    validation in two colours; several: a colour per run, named in a legend beside the panels.
    The best epoch (by checkpoint.monitor) is marked with a dotted line. None if nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    names = panels(runs)
    if not names:
        return None
    single = len(runs) == 1
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names) + (0 if single else 2.2), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        for index, (label, rows) in enumerate(runs.items()):
            epochs = [row["epoch"] for row in rows]
            train_colour, val_colour = ("C0", "C1") if single else (f"C{index % 10}",) * 2
            if all(name in row for row in rows):
                ax.plot(epochs, [row[name] for row in rows], "--" if name != "learning_rate" else "-", color=train_colour, marker=".", label="train" if name != "learning_rate" else None)
            if all(f"val_{name}" in row for row in rows):
                ax.plot(epochs, [row[f"val_{name}"] for row in rows], "-", color=val_colour, marker=".", label="validation")
            best = (best_epochs or {}).get(label)
            if best:
                ax.axvline(best, color=val_colour, linestyle=":", linewidth=1)
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if name == "learning_rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        elif single:
            ax.legend(fontsize="small")
    if not single:  # the runs and the line styles, once, outside the panels
        handles = [Line2D([], [], color=f"C{i % 10}", label=label) for i, label in enumerate(runs)]
        handles += [Line2D([], [], color="gray", linestyle="--", label="train"), Line2D([], [], color="gray", label="validation"), Line2D([], [], color="gray", linestyle=":", label="best epoch")]
        fig.legend(handles=handles, loc="center right", fontsize="small", frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1 if single else 1 - 2.0 / fig.get_figwidth(), 1))
    return fig


def plot_runs(folders: list[Path], path: Path) -> None:
    """`dlopt plot`: the curves of run folders, read from their metrics.csv and summary.json."""
    import json

    from .errors import ConfigError
    from .runs import short_names

    labels = short_names([folder.name for folder in folders])
    curves, best = {}, {}
    for label, folder in zip(labels, folders):
        if not (folder / "metrics.csv").exists():
            raise ConfigError(f"{folder}: no metrics.csv (not a run folder, or no epoch finished yet)")
        curves[label] = read_metrics(folder / "metrics.csv")
        summary = folder / "summary.json"
        best[label] = json.loads(summary.read_text()).get("best", {}).get("epoch") if summary.exists() else None
    title = folders[0].name if len(folders) == 1 else f"{len(folders)} runs"
    plot_curves(curves, path, title, best)


def save_figure(fig, path: Path, tight: bool = True) -> None:
    """A matplotlib figure as a PNG, written under a temporary name and renamed into place."""
    import matplotlib.pyplot as plt

    if tight:
        fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
