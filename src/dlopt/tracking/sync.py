"""`dlopt mlflow-sync RUN...`: runs trained without tracking (or while the server was down) uploaded
to MLflow from their folders; a run logged before is completed in the same MLflow run, never doubled."""

from __future__ import annotations

from pathlib import Path

from ..config import load_config
from ..errors import ConfigError, TrackingError
from ..runs import RunFolder, read_json
from .mlflow_runs import client_for, finish, log_new_run, log_params, one_line, record_tracking, shown_uri, status_of, tracking_uri, upload
from .tracker import recorded_entry, same_server


def sync_run(run_dir: Path, uri: str | None = None, experiment: str | None = None) -> dict:
    """Upload one run folder; what was uploaded, with the server, experiment and MLflow run id."""
    folder = RunFolder(run_dir)
    record = read_json(folder.record)
    if status_of(record) == "running":
        raise ConfigError(f"{run_dir}: the run is still running (pid {record.get('pid')}); it uploads itself if it tracks, or sync it once it ends")
    config = load_config(folder.config)
    settings = config.tracking.mlflow
    recorded = recorded_entry(run_dir)
    uri = uri or tracking_uri(settings) or recorded.get("uri")
    if not uri:
        raise ConfigError(f"{run_dir}: no MLflow tracking URI: give --uri, or set MLFLOW_TRACKING_URI (the run's config sets no tracking.mlflow.uri)")
    client = client_for(uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as exc:
        raise TrackingError(f"MLflow tracking server {shown_uri(uri)} cannot be reached ({one_line(exc)}); nothing was uploaded") from None
    run_id = recorded.get("run_id") if same_server(uri, recorded) and _exists(client, recorded.get("run_id")) else None
    if run_id is not None and experiment and experiment != recorded.get("experiment"):
        raise ConfigError(f"--experiment {experiment}: {run_dir} is logged in experiment {recorded.get('experiment')} on this server already (run {run_id})")
    name = experiment or (recorded.get("experiment") if run_id else None) or settings.experiment or config.name
    if run_id is None:
        run_id = log_new_run(client, name, folder.path)
    else:
        log_params(client, run_id, folder.config.read_text())
    uploaded = upload(client, run_id, folder.path, settings.log_model)
    finish(client, run_id, read_json(folder.record))
    entry = {"uri": shown_uri(uri), "experiment": name, "run_id": run_id, "synced": True, **({"model_uri": uploaded["model_uri"]} if "model_uri" in uploaded else {})}
    record_tracking(folder.path, entry)
    return {"run_dir": str(run_dir), **entry, **uploaded}


def _exists(client, run_id: str | None) -> bool:
    if not run_id:
        return False
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except Exception:
        return False
