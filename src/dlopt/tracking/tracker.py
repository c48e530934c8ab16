"""What a training calls while it runs: `started` once the run folder exists (a new MLflow run, or
the same one again on --resume), a callback that logs each epoch's row of metrics.csv, and `ended`
(results, artifacts, model, status). A failure of the server is a warning from then on; the run
never stops for it."""

from __future__ import annotations

from pathlib import Path

from .. import console
from ..runs import RunFolder, read_json, read_json_if_any
from .mlflow_runs import (
    client_for,
    finish,
    log_metric_batches,
    log_new_run,
    log_params,
    logged_epochs,
    metric_rows,
    one_line,
    record_tracking,
    shown_uri,
    tracking_uri,
    unreachable,
    upload,
)

LATER = "the run goes on and keeps everything in its folder; upload it later with: dlopt mlflow-sync RUN"


def recorded_entry(run_dir: Path | None) -> dict:
    """run.json's `tracking.mlflow` of an earlier run ({} for none)."""
    if run_dir is None:
        return {}
    return (read_json_if_any(RunFolder(run_dir).record).get("tracking") or {}).get("mlflow") or {}


def same_server(uri: str | None, recorded: dict) -> bool:
    return bool(uri) and shown_uri(uri) == recorded.get("uri")


class MlflowTracker:
    """One training's MLflow run."""

    def __init__(self, uri: str, settings, experiment: str, parent_run_id: str | None = None):
        self.uri, self.settings, self.experiment, self.parent_run_id = uri, settings, experiment, parent_run_id
        self.client = client_for(uri)
        self.run_id: str | None = None
        self.live = False  # False once a call failed: the rest is uploaded at the end (or by mlflow-sync)
        self.reachable = True

    @classmethod
    def for_config(cls, config, resume: Path | None = None, parent_run_id: str | None = None) -> "MlflowTracker | None":
        """The tracker the config asks for (None: no tracking). A resumed run goes to the server
        and experiment it was logged to. Refuses to start (TrackingError) an unreachable server's
        run when `on_unreachable: error`."""
        settings = config.tracking.mlflow
        recorded = recorded_entry(resume)
        uri = tracking_uri(settings)
        if recorded.get("uri") and not same_server(uri, recorded):
            uri = recorded["uri"] if settings.enabled else None
        if uri is None:
            return None
        try:
            tracker = cls(uri, settings, recorded.get("experiment") or settings.experiment or config.name, parent_run_id)
        except ImportError as exc:
            unreachable(uri, exc, settings.on_unreachable, f"MLflow is not installed (pip install 'dlopt[mlflow]'); {LATER}")
            return None
        tracker.check_reachable()
        return tracker

    def check_reachable(self) -> None:
        try:
            self.client.search_experiments(max_results=1)
        except Exception as exc:
            unreachable(self.uri, exc, self.settings.on_unreachable, LATER)
            self.reachable = False

    def entry(self) -> dict:
        return {"uri": shown_uri(self.uri), "experiment": self.experiment, "run_id": self.run_id}

    def started(self, run) -> None:
        """Called with the opened run (lifecycle.Run): the MLflow run created, or continued on
        --resume, with the epochs the run folder has and MLflow lacks."""
        recorded = (run.record.data.get("tracking") or {}).get("mlflow") or {}
        if self.reachable:
            try:
                if run.resumed and recorded.get("run_id") and same_server(self.uri, recorded):
                    self.run_id = recorded["run_id"]
                    self.client.update_run(self.run_id, status="RUNNING")
                    log_params(self.client, self.run_id, RunFolder(run.run_dir).config.read_text())  # train.epochs of a run trained further
                else:
                    self.run_id = log_new_run(self.client, self.experiment, run.run_dir, self.parent_run_id)
                log_metric_batches(self.client, self.run_id, metric_rows(run.earlier_rows, logged_epochs(self.client, self.run_id)))
                self.live = True
            except Exception as exc:
                console.warn(f"MLflow ({shown_uri(self.uri)}): the run could not be logged ({one_line(exc)}); {LATER}")
        run.record.data.setdefault("tracking", {})["mlflow"] = {**self.entry(), "synced": False}
        run.record.save()
        if self.live:
            console.say(f"MLflow: experiment {self.experiment}, run {self.run_id} ({shown_uri(self.uri)})")

    def callback(self, last_row):
        """A Keras callback logging `last_row()` (this epoch's metrics.csv row) after each epoch."""
        import keras

        tracker = self

        class LogToMlflow(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                tracker.log_epoch(last_row())

        return LogToMlflow()

    def log_epoch(self, row: dict) -> None:
        if not self.live:
            return
        try:
            log_metric_batches(self.client, self.run_id, metric_rows([row]))
        except Exception as exc:
            self.live = False
            console.warn(f"MLflow ({shown_uri(self.uri)}): logging epoch {row.get('epoch')} failed ({one_line(exc)}); training goes on, and the rest is uploaded at the end or by: dlopt mlflow-sync RUN")

    def ended(self, run_dir: Path) -> None:
        """After the run ended, however it ended: upload what MLflow lacks and set its status.
        Never raises: the run folder holds everything whatever happens here."""
        folder = RunFolder(run_dir)
        try:
            if not folder.record.exists():  # a config error found late: the run folder was removed, so is its MLflow run
                if self.run_id:
                    self.client.delete_run(self.run_id)
                return
            if self.run_id is None:
                console.warn(f"not logged to MLflow: upload it with: dlopt mlflow-sync {run_dir}")
                return
            uploaded = upload(self.client, self.run_id, run_dir, self.settings.log_model)
            finish(self.client, self.run_id, read_json(folder.record))
            record_tracking(run_dir, {**self.entry(), "synced": True, **({"model_uri": uploaded["model_uri"]} if "model_uri" in uploaded else {})})
            console.say(f"MLflow: logged as run {self.run_id} in experiment {self.experiment}{' with its model ' + uploaded['model_uri'] if 'model_uri' in uploaded else ''}")
        except (Exception, KeyboardInterrupt) as exc:
            console.warn(f"MLflow ({shown_uri(self.uri)}): uploading the run's end failed ({one_line(exc)}); the run folder has everything: dlopt mlflow-sync {run_dir}")
