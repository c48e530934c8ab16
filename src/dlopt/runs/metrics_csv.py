"""metrics.csv, one row per epoch: written by the MetricsCSV callback, read by plots, `compare`,
resume and search; both sides here so the format lives in one place.

Column order: epoch, learning_rate, loss, metrics, val_*, epoch_seconds, samples_per_second,
cpu_seconds (the run's CPU-seconds by the end of the epoch, start-up included).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

TIMING = ("epoch_seconds", "samples_per_second", "cpu_seconds")  # cost, not quality: never a metric


def columns(rows: list[dict]) -> list[str]:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    train = [k for k in keys if k not in ("epoch", "learning_rate", "loss") and not k.startswith("val_") and k not in TIMING]
    val = [k for k in keys if k.startswith("val_")]
    return ["epoch", "learning_rate", "loss"] + train + val + [k for k in TIMING if k in keys]


def render(rows: list[dict]) -> str:
    """The file's text for these rows (float values written exactly, `nan`/`inf` as such)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns(rows), restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (_number(v) if k != "epoch" else v) for k, v in row.items()})
    return out.getvalue()


def _number(value: float) -> str:
    return repr(value) if math.isfinite(value) else str(value)


def read_metrics(path: Path) -> list[dict]:
    """metrics.csv as a list of rows of floats (the epoch an int)."""
    with open(path) as handle:
        rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
    for row in rows:
        row["epoch"] = int(row["epoch"])
    return rows
