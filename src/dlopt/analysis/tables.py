"""The result tables printed on stdout: a run's results, the per-class report, time-series
forecasts against the naive ones, and the cost footer. Rich tables only: no TensorFlow."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from ..console import plural
from ..runs.metrics_csv import TIMING


def results_rows(summary: dict) -> tuple[list[str], list[list]]:
    """(columns, rows) of the results: each metric's final train value, validation at the best
    epoch and at the end, and test (with and without test-time augmentation when it was on)."""
    best = summary.get("best", {})
    single_view = summary.get("test_single_view")  # set when test-time augmentation averaged views
    columns = ["metric", "train", f"val (best, epoch {best.get('epoch')})", "val (final)"] + (["test (tta)", "test (1 view)"] if single_view else ["test"])
    final, at_best, test = summary.get("final", {}), summary.get("best_epoch_metrics", {}), summary.get("test") or {}
    skip = ("learning_rate", *TIMING, "epoch")
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
    for row in classes:
        table.add_row(escape(row["class"]), _num(row["precision"]), _num(row["recall"]), _num(row["f1"]), f"{row['support']:,}")
    for name in ("macro", "weighted"):
        row = report[name]
        table.add_row(f"[italic]{name} average[/italic]", _num(row["precision"]), _num(row["recall"]), _num(row["f1"]), f"{row['support']:,}", end_section=name == "weighted")
    return table


def analysis_tables(analysis: dict, split: str) -> list[Table]:
    """The per-class tables of a split's analysis: one, or one per output that has classes."""
    if analysis.get("per_class"):
        return [per_class_table(analysis, split)]
    return [per_class_table(report, f"{split} {name}") for name, report in (analysis.get("outputs") or {}).items() if report.get("per_class")]


def results_footer(summary: dict) -> str:
    flops = summary.get("flops_per_example")
    size = summary.get("model_bytes")
    cost = (
        f"model: {summary.get('parameters', 0):,} parameters, {'?' if flops is None else f'{flops / 1e6:,.1f} M'} FLOPs per example, "
        f"{'?' if size is None else f'{size / 1e6:.1f} MB'} file; peak memory {summary.get('peak_memory_mb', 0):,.0f} MB"
    )
    cpu = f"; {summary['cpu_seconds']:,.1f} CPU-s in all" if summary.get("cpu_seconds") is not None else ""
    return (
        f"{plural(summary.get('epochs_run') or 0, 'epoch')} in {summary.get('train_seconds', 0):.1f}s "
        f"({summary.get('samples_per_second', 0):.0f} samples/s{cpu}), best by {summary.get('best', {}).get('monitor')}\n"
        f"{cost}\nrun folder: {summary['run_dir']}"
    )


def _num(value) -> str:
    return "" if value is None else f"{value:.4f}"
