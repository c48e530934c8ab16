"""The `tracking` section: where runs are logged besides their own folder (an MLflow server)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from .schema_base import Section


class MlflowConfig(Section):
    enabled: bool = Field(True, description="`false`: never log to MLflow, even with `uri` or `MLFLOW_TRACKING_URI` set.")
    uri: Optional[str] = Field(
        None,
        description="MLflow tracking URI, e.g. `http://127.0.0.1:5000` (a tracking server) or `sqlite:///mlflow.db`. Unset: the environment's `MLFLOW_TRACKING_URI`; neither: runs are not logged to MLflow.",
    )
    experiment: Optional[str] = Field(None, description="MLflow experiment the runs go to (created if missing). Unset: the config's `name`.")
    on_unreachable: Literal["warn", "error"] = Field(
        "warn",
        description="When the server cannot be reached: `warn` (the run goes on and keeps everything in its folder; `dlopt mlflow-sync RUN` uploads it later) or `error` (the run does not start, exit code 1).",
    )
    log_model: bool = Field(True, description="Log the best checkpoint as an MLflow model (a pyfunc that `mlflow models serve` loads; it takes what `dlopt serve` takes).")


class TrackingConfig(Section):
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig, description="MLflow tracking (see `tracking.mlflow.*`).")
