"""One dlopt run as one MLflow run: created with the run folder (the resolved config as params, the
manifest as tags), fed every epoch's metrics as training goes, completed at the end with the test
results, the plots and report, and the model. Everything uploaded is read from the run folder, so
a run logged while the server was down is uploaded later by the same code (`dlopt mlflow-sync`).

The run folder stays the record: MLflow failing never fails or loses a run, it is a warning (or,
with `on_unreachable: error`, a run that does not start).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import time
import warnings
from datetime import datetime
from pathlib import Path

from .. import console
from ..errors import TrackingError
from ..runs import RunFolder, pid_alive, read_json, read_json_if_any, read_metrics, write_json

# a server that went down mid-run costs an epoch a few seconds, not MLflow's minutes of retries
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
# run.json status -> MLflow's
STATUS = {"completed": "FINISHED", "pruned": "KILLED", "interrupted": "KILLED", "failed": "FAILED", "running": "RUNNING"}
# files uploaded as artifacts (folders whole); checkpoints go up as the model, the resume state never
ARTIFACTS = ("config.yaml", "run.json", "summary.json", "metrics.csv", "inputs.json", "report.html", "eval", "plots")


def tracking_uri(settings) -> str | None:
    """The URI runs are logged to: the config's, else MLFLOW_TRACKING_URI; None: no tracking."""
    if not settings.enabled:
        return None
    return settings.uri or os.environ.get("MLFLOW_TRACKING_URI") or None


def client_for(uri: str):
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def shown_uri(uri: str) -> str:
    """The URI without a password (user:password@host)."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.password:
        return uri.replace(f":{parts.password}@", ":***@")
    return uri


# what a failed request comes to, found in MLflow's long wrapped message
REASONS = (
    ("Connection refused", "connection refused"),
    ("Failed to resolve", "unknown host"),
    ("Name or service not known", "unknown host"),
    ("timed out", "timed out"),
    ("Max retries exceeded", "no answer"),
)


def one_line(exc: BaseException) -> str:
    """A failed MLflow call in a few words: the cause where it is a known one, else its first line."""
    text = str(exc)
    for pattern, reason in REASONS:
        if pattern in text:
            return reason
    lines = text.strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def experiment_id(client, name: str) -> str:
    """The experiment's id, created if missing (or restored, if deleted)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        from mlflow.exceptions import MlflowException

        try:
            return client.create_experiment(name)
        except MlflowException:  # another process created it meanwhile
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def flat_params(config_text: str) -> dict[str, str]:
    """The resolved config as MLflow params: dotted keys, values as YAML writes them (lists and
    mappings as JSON); `tracking.*` left out (a URI may hold a password)."""
    import yaml

    def flat(value, prefix=""):
        if isinstance(value, dict) and value:
            return {k: v for key, sub in value.items() for k, v in flat(sub, f"{prefix}{key}.").items()}
        return {prefix[:-1]: value}

    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    params = flat(yaml.safe_load(config_text) or {})
    shown = {key: value if isinstance(value, str) else json.dumps(value) for key, value in params.items() if not key.startswith("tracking.")}
    return {key: value[:MAX_PARAM_VAL_LENGTH] for key, value in shown.items()}


def manifest_tags(record: dict, run_dir: Path) -> dict[str, str]:
    """run.json's manifest as tags: what reproduces the run (config hash, git commit, data fingerprint)."""
    manifest = record.get("manifest") or {}
    tags = {
        "mlflow.runName": run_dir.name,
        "mlflow.source.name": "dlopt train",
        "mlflow.source.type": "LOCAL",
        "dlopt.run_dir": str(run_dir.resolve()),
        "dlopt.host": record.get("host", ""),
        "dlopt.command": record.get("command", "")[:5000],
        "dlopt.seed": str(record.get("seed", "")),
    }
    if manifest.get("config_sha256"):
        tags["dlopt.config_sha256"] = manifest["config_sha256"]
    git = manifest.get("git") or {}
    if git.get("commit"):
        tags.update({"mlflow.source.git.commit": git["commit"], "dlopt.git.commit": git["commit"], "dlopt.git.dirty": str(git.get("dirty", False)).lower()})
    for key, value in (manifest.get("data") or {}).items():
        tags[f"dlopt.data.{key}"] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    for key, value in (record.get("versions") or {}).items():
        tags[f"dlopt.version.{key}"] = str(value)
    if manifest.get("overrides"):
        tags["dlopt.overrides"] = " ".join(manifest["overrides"])
    search = record.get("search")
    if search:
        tags.update({"dlopt.study": str(search.get("study")), "dlopt.trial": str(search.get("trial"))})
    return tags


def status_of(record: dict) -> str:
    """run.json's status, `died` for a run marked running whose process is gone."""
    status = record.get("status", "failed")
    if status == "running" and not pid_alive(record.get("pid")):
        return "died"
    return status


def _millis(iso: str | None) -> int | None:
    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1000) if iso else None
    except ValueError:
        return None


def log_new_run(client, experiment: str, run_dir: Path, parent_run_id: str | None = None) -> str:
    """A new MLflow run for the run folder: params from config.yaml, tags from run.json. Its id."""
    folder = RunFolder(run_dir)
    record = read_json(folder.record)
    tags = manifest_tags(record, run_dir)
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id(client, experiment), start_time=_millis(record.get("started")), tags=tags, run_name=run_dir.name)
    log_params(client, run.info.run_id, folder.config.read_text())
    return run.info.run_id


def log_params(client, run_id: str, config_text: str) -> None:
    """The config's params not yet on the run; a value changed since (a completed run trained
    further: `train.epochs`) goes into a tag, as MLflow never changes a param."""
    from mlflow.entities import Param, RunTag

    logged = client.get_run(run_id).data.params
    params = flat_params(config_text)
    new = [Param(key, value) for key, value in params.items() if key not in logged]
    changed = [RunTag(f"dlopt.param_now.{key}", value) for key, value in params.items() if key in logged and logged[key] != value]
    for start in range(0, max(len(new), len(changed)), 100):
        client.log_batch(run_id, params=new[start : start + 100], tags=changed[start : start + 100])


def metric_rows(rows: list[dict], logged: set[int] = frozenset()) -> list:
    """metrics.csv rows as MLflow metrics, step = epoch (the epochs not `logged` already)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [
        Metric(key, float(value), now, int(row["epoch"]))
        for row in rows
        if int(row["epoch"]) not in logged
        for key, value in row.items()
        if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)
    ]


def log_metric_batches(client, run_id: str, metrics: list) -> None:
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])


def logged_epochs(client, run_id: str, key: str = "loss") -> set[int]:
    """The epochs the MLflow run has metrics of."""
    return {int(m.step) for m in client.get_metric_history(run_id, key)}


def result_metrics(summary: dict) -> dict[str, float]:
    """summary.json's results as metrics: test_*, best_<monitor>, cost."""
    found = {f"test_{k}": v for k, v in (summary.get("test") or {}).items()}
    best = summary.get("best") or {}
    if best.get("value") is not None:
        found[f"best_{best['monitor']}"] = best["value"]
        found["best_epoch"] = best["epoch"]
    for key in ("epochs_run", "train_seconds", "cpu_seconds", "parameters", "trainable_parameters", "flops_per_example", "samples_per_second", "peak_memory_mb", "model_bytes"):
        if isinstance(summary.get(key), (int, float)):
            found[key] = summary[key]
    return {k: float(v) for k, v in found.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def upload(client, run_id: str, run_dir: Path, log_model: bool = True) -> dict:
    """Everything of the run folder the MLflow run lacks: epochs not yet logged, the results, the
    artifacts (the report written first), the model of a completed run. What was uploaded."""
    from mlflow.entities import Metric, RunTag

    folder = RunFolder(run_dir)
    record = read_json(folder.record)
    uploaded: dict = {"run_id": run_id}
    rows = read_metrics(folder.metrics) if folder.metrics.exists() else []
    missing = metric_rows(rows, logged_epochs(client, run_id))
    log_metric_batches(client, run_id, missing)
    uploaded["epochs"] = len({m.step for m in missing})
    summary = read_json_if_any(folder.summary)
    status = status_of(record)
    tags = [RunTag("dlopt.status", status)]
    if summary:
        step = int(summary.get("epochs_run") or len(rows))
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in result_metrics(summary).items()])
        if summary.get("class_names"):
            tags.append(RunTag("dlopt.class_names", json.dumps(summary["class_names"])[:5000]))
    if record.get("error"):
        tags.append(RunTag("dlopt.error", str(record["error"])[:5000]))
    client.log_batch(run_id, tags=tags)
    if summary and not folder.report.exists():
        from ..analysis.html import write_report

        write_report(run_dir, folder.report)
    uploaded["artifacts"] = _log_artifacts(client, run_id, folder)
    if log_model and status == "completed" and folder.checkpoint("best").exists():
        uploaded["model_uri"] = _log_model(client, run_id, run_dir)
    return uploaded


def _log_artifacts(client, run_id: str, folder: RunFolder) -> int:
    count = 0
    for name in ARTIFACTS:
        path = folder.path / name
        if path.is_dir():
            client.log_artifacts(run_id, str(path), name)
            count += sum(1 for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            client.log_artifact(run_id, str(path))
            count += 1
    return count


def _log_model(client, run_id: str, run_dir: Path) -> str:
    """The best checkpoint as an MLflow model, once per run (its URI kept in a tag)."""
    logged = client.get_run(run_id).data.tags.get("dlopt.model_uri")
    if logged:
        return logged
    with quiet_mlflow():
        from .mlflow_model import log_run_model

        model_uri = log_run_model(client, run_id, run_dir)
    client.set_tag(run_id, "dlopt.model_uri", model_uri)
    return model_uri


@contextlib.contextmanager
def quiet_mlflow():
    """MLflow's advice on signatures, its progress bars and links are not the user's concern."""
    mlflow_log = logging.getLogger("mlflow")
    level = mlflow_log.level
    mlflow_log.setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # its "View run at" lines
            warnings.simplefilter("ignore")
            yield
    finally:
        mlflow_log.setLevel(level)


def finish(client, run_id: str, record: dict) -> None:
    """The MLflow run's status and end time as run.json has them."""
    status = status_of(record)
    mlflow_status = STATUS.get(status, "FAILED")
    if mlflow_status == "RUNNING":
        return
    terminate(client, run_id, mlflow_status, _millis(record.get("finished")))


def terminate(client, run_id: str, status: str, end_time: int | None = None) -> None:
    """set_terminated without MLflow's "View run at" lines on stdout (where --json prints)."""
    with contextlib.redirect_stdout(io.StringIO()):
        client.set_terminated(run_id, status=status, end_time=end_time)


def record_tracking(run_dir: Path, entry: dict) -> None:
    """run.json's `tracking.mlflow`: where the run is logged (read by resume and mlflow-sync)."""
    path = RunFolder(run_dir).record
    record = read_json(path)
    record.setdefault("tracking", {})["mlflow"] = {**(record.get("tracking", {}).get("mlflow") or {}), **entry}
    write_json(path, record)


def unreachable(uri: str, exc: BaseException, on_unreachable: str, what: str) -> None:
    """Refuse (`error`) or warn, naming the server and what happens to the run."""
    message = f"MLflow tracking server {shown_uri(uri)} cannot be reached ({one_line(exc)})"
    if on_unreachable == "error":
        raise TrackingError(f"{message}; tracking.mlflow.on_unreachable is 'error', so nothing was trained: start the server, or set tracking.mlflow.on_unreachable=warn")
    console.warn(f"{message}; {what}")
