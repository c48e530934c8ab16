"""`dlopt compare`: one table of many runs, read from their folders. No TensorFlow here.

Each row: the run, its status, the hyper-parameters that differ between the runs shown, best and
final metrics, test metrics, epochs and training time.
"""

from __future__ import annotations

import csv
import io
import json
import socket
from pathlib import Path

import yaml

from .errors import ConfigError
from .objectives import monitor_mode
from .registry import did_you_mean
from .runs import RunFolder, pid_alive, read_json_if_any, read_metrics, short_names
from .runs.metrics_csv import TIMING

COST = ("train_seconds", "cpu_seconds")  # a run's wall-clock training time, and its CPU-seconds

try:  # the C loader reads a hundred configs in a blink; the pure-Python one is the fallback
    _SafeLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _SafeLoader = yaml.SafeLoader


def find_runs(paths: list[Path]) -> list[Path]:
    """Run folders named directly, or found one level down in folders of runs."""
    found: list[Path] = []
    for path in paths:
        if RunFolder(path).record.exists():
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.iterdir() if RunFolder(p).record.exists())
        else:
            raise ConfigError(f"{path}: no such run or folder of runs")
    return list(dict.fromkeys(found))


def _flatten(value, prefix="") -> dict:
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            out.update(_flatten(sub, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(value) if isinstance(value, (list, dict)) else value}


def status_of(record: dict) -> str:
    """run.json's status; a `running` run whose process is gone on this host is shown as `died`."""
    status = record.get("status", "unknown")
    if status == "running" and record.get("host") == socket.gethostname() and not pid_alive(record.get("pid")):
        return "died"
    return status


def _last_rows(path: Path) -> list[dict]:
    """metrics.csv of a run without a summary (interrupted, failed, still running)."""
    try:
        return read_metrics(RunFolder(path).metrics)
    except (OSError, ValueError, KeyError):  # missing, or half-written by a run still going
        return []


def load_run(path: Path) -> dict:
    run = RunFolder(path)
    record = read_json_if_any(run.record)
    summary = read_json_if_any(run.summary)
    try:
        config = yaml.load(run.config.read_text(), Loader=_SafeLoader) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    row = {"run": path.name, "status": status_of(record), "path": str(path)}
    config_sha = (record.get("manifest") or {}).get("config_sha256")
    if not summary:  # a run that never finished shows what it logged last
        rows = _last_rows(path)
        monitor = (config.get("checkpoint") or {}).get("monitor")
        if rows:
            summary = {"final": {k: v for k, v in rows[-1].items() if k != "epoch"}, "epochs_run": len(rows)}
            logged = [r for r in rows if monitor in r]
            if logged:
                mode = (config.get("checkpoint") or {}).get("mode", "auto")
                pick = max if monitor_mode(monitor, mode) == "max" else min
                best_row = pick(logged, key=lambda r: r[monitor])
                summary["best"] = {"monitor": monitor, "epoch": int(best_row["epoch"]), "value": best_row[monitor]}
    best = summary.get("best") or {}
    if best.get("monitor"):
        row["best_epoch"] = best.get("epoch")
        row[f"best_{best['monitor']}"] = best.get("value")
    for key, value in (summary.get("final") or {}).items():
        if key not in (*TIMING, "learning_rate"):
            row[key] = value
    for key, value in (summary.get("test") or {}).items():
        row[f"test_{key}"] = value
    for key, value in (summary.get("test_single_view") or {}).items():  # with test-time augmentation: also without
        row[f"test_single_view_{key}"] = value
    row["epochs"] = summary.get("epochs_run") or _count_epochs(run.metrics)
    row["train_seconds"] = summary.get("train_seconds")
    row["cpu_seconds"] = summary.get("cpu_seconds")  # user + system: the cost that holds on a shared host
    row["config_hash"] = config_sha[:12] if config_sha else None
    row["_params"] = {k: v for k, v in _flatten(config).items() if k != "name"}
    search = record.get("search") or {}
    if search:  # a search's trial: its number, and the keys it sampled shown first
        row["trial"] = search.get("trial")
        row["sampled"] = list(search.get("params") or {})
    return row


def _count_epochs(path: Path):
    try:
        with open(path) as handle:
            return max(sum(1 for _ in handle) - 1, 0)
    except OSError:
        return None


def table(paths: list[Path], sort: str | None = None, status: tuple[str, ...] = (), descending: bool | None = None, config_hash: str | None = None) -> tuple[list[str], list[dict], list[str]]:
    """Column names, rows (dicts) and the config keys that differ, for the runs under `paths`
    (only those with `status`, and whose resolved config's hash starts with `config_hash`)."""
    rows = [load_run(p) for p in find_runs(paths)]
    if status:
        rows = [r for r in rows if r["status"] in status]
    if config_hash:
        rows = [r for r in rows if (r["config_hash"] or "").startswith(config_hash[:12])]
    keys = sorted({k for r in rows for k in r["_params"]})
    differing = [k for k in keys if len({json.dumps(r["_params"].get(k), sort_keys=True) for r in rows}) > 1]
    searched = list(dict.fromkeys(k for r in rows for k in r.get("sampled", [])))
    # a study's sampled keys lead, even where every trial drew the same value
    differing = [k for k in searched if k in keys] + [k for k in differing if k not in searched]
    for row in rows:
        params = row.pop("_params")
        row.update({k: params.get(k) for k in differing})
    metric_columns = list(dict.fromkeys(k for r in rows for k in r if k not in ("run", "trial", "sampled", "status", "path", "epochs", *COST, "config_hash", *differing)))
    columns = ["run", *(["trial"] if searched else []), "status", *differing, *metric_columns, "epochs", *COST, "config_hash"]
    names = short_names([row["run"] for row in rows], drop_shared=True)
    for row, name in zip(rows, names):
        row["name"] = name
    if sort:
        if rows and sort not in columns:
            raise ConfigError(f"--sort: no column '{sort}'{did_you_mean(sort, columns)}; columns: {', '.join(columns)}")
        if descending is None:  # accuracy-like metrics sort best first, losses lowest first
            metric = next((sort[len(p):] for p in ("best_", "test_single_view_", "test_") if sort.startswith(p)), sort)
            descending = sort not in (*COST, "epochs") and monitor_mode(metric) == "max"
        present = [r for r in rows if r.get(sort) is not None]
        missing = [r for r in rows if r.get(sort) is None]
        rows = sorted(present, key=lambda r: (isinstance(r[sort], str), r[sort]), reverse=descending) + missing
    return columns, rows, differing


def to_csv(columns: list[str], rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns + ["path"], extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def format_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


KEY_WIDTH = 16  # a setting's cells are cut to this many characters in the default view
SECTION_ORDER = ("optimizer", "schedule", "model", "train", "seed", "data", "checkpoint", "distribute")


def _key_rank(key: str, rows: list[dict]) -> tuple:
    """Hyper-parameters people sweep first (optimizer, schedule, model, ...), short values before lists."""
    section = key.split(".", 1)[0]
    long_values = any(isinstance(r.get(key), str) and r.get(key, "").startswith(("[", "{")) for r in rows)
    return (long_values, SECTION_ORDER.index(section) if section in SECTION_ORDER else len(SECTION_ORDER), key)


def explained(key: str, rows: list[dict], metric: str | None) -> float:
    """How much of the spread of `metric` across the runs the setting `key` explains, from 0 to 1.

    Runs grouped by the key's value: omega squared (the share of variance between the groups,
    corrected for their number), over the values at least two runs share. A numeric key with
    a value of its own in every run (a sweep, one run each): its rank correlation with the metric,
    squared. Without a metric, or where neither applies: below 0, by the share of runs that hold a
    value other than the most common one."""
    values = [r.get(key) for r in rows]
    scored = [(v, float(r[metric])) for v, r in zip(values, rows) if metric and isinstance(r.get(metric), (int, float))]
    groups: dict[str, list[float]] = {}
    for value, score in scored:
        groups.setdefault(json.dumps(value, sort_keys=True), []).append(score)
    if len(groups) < len(scored):  # a value only one run has cannot be told from that run's noise
        groups = {value: g for value, g in groups.items() if len(g) > 1}
        scored = [pair for pair in scored if json.dumps(pair[0], sort_keys=True) in groups]
    n, k = len(scored), len(groups)
    if 2 <= k < n:
        mean = sum(score for _, score in scored) / n
        total = sum((score - mean) ** 2 for _, score in scored)
        between = sum(len(g) * (sum(g) / len(g) - mean) ** 2 for g in groups.values())
        within = (total - between) / (n - k)
        return max(0.0, (between - (k - 1) * within) / (total + within)) if total > 0 else 0.0
    if k == n >= 3 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v, _ in scored):
        return _rank_correlation([v for v, _ in scored], [score for _, score in scored]) ** 2
    return _spread(key, rows) - 2.0


def _spread(key: str, rows: list[dict]) -> float:
    """The share of runs whose value of `key` is not the most common one (a clipnorm one run of
    twelve sets: 1/12)."""
    texts = [json.dumps(r.get(key), sort_keys=True) for r in rows]
    most = max((texts.count(t) for t in set(texts)), default=0)
    return (len(texts) - most) / max(len(texts), 1)


def _rank_correlation(a: list[float], b: list[float]) -> float:
    """Spearman's rho (ties take their mean rank)."""

    def ranks(values):
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for m in range(i, j + 1):
                out[order[m]] = (i + j) / 2
            i = j + 1
        return out

    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    spread = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / spread if spread else 0.0


def _width(column: str, rows: list[dict], shown: list[str], limit: int | None = None) -> int:
    cells = [len(format_cell(column, r.get(column))) for r in rows] + [len(line) for line in header(column, shown).splitlines()]
    return min(max(cells), limit or 10_000) + 3  # padding and the border


def default_columns(columns: list[str], differing: list[str], rows: list[dict], width: int) -> list[str]:
    """What a reader needs, within `width` characters: the run's short name, status, the best
    monitored value, the main test metric, epochs and time, and as many of the differing settings
    as fit (the hyper-parameters people sweep first). Epochs and the rest: --all."""
    best = [c for c in columns if c.startswith("best_") and c != "best_epoch"][:1]
    tests = [c for c in columns if c.startswith("test_") and not c.startswith("test_single_view_")]
    test = [c for c in tests if not c.endswith("_loss")][:1] or tests[:1]
    fixed = ["name", "status", *best, *test, "train_seconds"]
    used = 1 + sum(_width(c, rows, fixed) for c in fixed)
    keys = []
    searched = [k for k in differing if any(k in r.get("sampled", ()) for r in rows)]
    metric = (best or test or [None])[0]
    ranked = sorted((k for k in differing if k not in searched), key=lambda k: (-explained(k, rows, metric), -_spread(k, rows), _key_rank(k, rows)))
    for key in searched + ranked:  # a study's sampled keys first, then the settings that explain the most
        need = _width(key, rows, fixed + keys + [key], KEY_WIDTH)
        if used + need > width:
            break
        keys.append(key)
        used += need
    return ["name", "status", *keys, *best, *test, "train_seconds"]


def header(column: str, columns: list[str]) -> str:
    """A short heading: the last part of a dotted config key when that alone is unambiguous; best and
    test metrics on two lines (`best` over the metric's name)."""
    if column in COST:
        return {"train_seconds": "time", "cpu_seconds": "CPU"}[column]
    for prefix in ("best_", "test_"):
        if column.startswith(prefix) and column != "best_epoch":
            return f"{prefix[:-1]}\n{_short_metric(column[len(prefix):])}"
    last = column.rsplit(".", 1)[-1]
    if "." in column and sum(c.rsplit(".", 1)[-1] == last for c in columns) == 1:
        return last
    return column


def _short_metric(name: str) -> str:
    """val_accuracy -> val_acc: the epoch lines' abbreviations."""
    from .console import SHORT_METRIC as SHORT

    base = name[4:] if name.startswith("val_") else name
    return ("val_" if name.startswith("val_") else "") + SHORT.get(base, base)


def format_cell(column: str, value) -> str:
    if column in COST and isinstance(value, (int, float)):
        minutes, seconds = divmod(int(round(value)), 60)
        return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else (f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s")
    return format_value(value)
