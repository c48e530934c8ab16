"""`dlopt report RUN`: one self-contained HTML page per run (config, results, every plot embedded),
to share by mail or open from a file browser. Read from the run folder alone."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .tables import results_rows
from ..runs import RunFolder, read_json_if_any

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.meta { color: #666; } table { border-collapse: collapse; margin: 0.6em 0; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; text-align: right; } th:first-child, td:first-child { text-align: left; }
th { background: #f5f5f5; } img { max-width: 100%; border: 1px solid #eee; margin: 0.4em 0; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def _number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_number(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _results(summary: dict) -> str:
    return _table(*results_rows(summary))


def _per_class(analysis: dict, title: str = "Per class (test)") -> str:
    report = analysis.get("per_class")
    if not report:
        return ""
    rows = [[c["class"], c["precision"], c["recall"], c["f1"], c["support"]] for c in report["classes"]]
    rows += [[f"{name} average", report[name]["precision"], report[name]["recall"], report[name]["f1"], report[name]["support"]] for name in ("macro", "weighted")]
    return f"<h2>{html.escape(title)}</h2>" + _table(["class", "precision", "recall", "F1", "support"], rows)


def _outputs(analysis: dict) -> str:
    """Several outputs: each one's per-class (or per-label) table, or its residuals."""
    parts = []
    for name, report in (analysis.get("outputs") or {}).items():
        what = f"Output {name} ({report.get('type')}, test)"
        if report.get("per_class"):
            parts.append(_per_class(report, f"{what}: per {'label' if report.get('type') == 'multi_label' else 'class'}"))
        elif report.get("residuals"):
            residuals = report["residuals"]
            parts.append(f"<h2>{html.escape(what)}: residuals</h2>" + _table(["mean", "std", "max |residual|"], [[residuals["mean"], residuals["std"], residuals["max_abs"]]]))
    return "".join(parts)


def _forecast(summary: dict) -> str:
    forecast = summary.get("forecast")
    if not forecast:
        return ""
    names = [n for n in ("model", "persistence", "seasonal_naive", "seasonal_naive_trend") if n in forecast]
    rows = [[n.replace("_", " "), forecast[n]["rmse"], forecast[n]["mae"]] for n in names]
    return "<h2>Forecasts (test, the series' units)</h2>" + _table(["forecast", "RMSE", "MAE"], rows)


PLOT_ORDER = ("curves", "confusion_matrix", "mistakes", "roc_pr", "regression", "forecast", "feature_maps")


def _plots(folder: Path) -> str:
    pngs = sorted(folder.glob("*.png"), key=lambda p: (next((i for i, k in enumerate(PLOT_ORDER) if p.stem.startswith(k)), len(PLOT_ORDER)), p.name))
    parts = []
    for png in pngs:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        caption = html.escape(png.stem.replace("_", " "))
        parts.append(f'<figure><img alt="{caption}" src="data:image/png;base64,{data}"><figcaption>{caption}</figcaption></figure>')
    return ("<h2>Plots</h2>" + "".join(parts)) if parts else ""


def write_report(run_dir: Path, output: Path) -> Path:
    """The run's page at `output`, written under a temporary name and renamed into place."""
    run = RunFolder(run_dir)
    summary, record = read_json_if_any(run.summary), read_json_if_any(run.record)
    analysis = read_json_if_any(run.eval_file("test"))
    config = run.config.read_text() if run.config.exists() else ""
    status = record.get("status", summary.get("status", "unknown"))
    meta = [f"status: {status}"]
    if summary:
        meta.append(f"{summary.get('epochs_run', 0)} epochs in {summary.get('train_seconds', 0):.1f} s")
        meta.append(f"{summary.get('parameters', 0):,} parameters")
    if record.get("error"):
        meta.append(f"error: {record['error']}")
    body = [
        f"<h1>{html.escape(run_dir.name)}</h1>",
        f'<p class="meta">{html.escape(" · ".join(meta))}</p>',
        ("<h2>Results</h2>" + _results(summary)) if summary else "<p>No summary.json: the run did not finish.</p>",
        _per_class(analysis),
        _outputs(analysis),
        _forecast(summary),
        _plots(run.plots),
        f"<h2>Config</h2><pre>{html.escape(config)}</pre>",
    ]
    page = f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(run_dir.name)}</title><style>{STYLE}</style></head>\n<body>\n{"".join(body)}\n</body></html>\n'
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.tmp")
    temporary.write_text(page, encoding="utf-8")
    temporary.replace(output)
    return output
