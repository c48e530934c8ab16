"""A tune study in MLflow: one parent run named after the study (its search space as params, the
best trial as metrics, best.yaml and the plots as artifacts), every trial a child run of it. The
parent's id lives in the study's storage, so every worker of a study logs under the same parent."""

from __future__ import annotations

import json
from pathlib import Path

from .. import console
from .mlflow_runs import client_for, experiment_id, one_line, shown_uri, terminate, tracking_uri, unreachable

PARENT_ATTR = "mlflow_parent_run_id"


class StudyRun:
    """The study's parent run, and the trial trackers under it."""

    def __init__(self, client, uri: str, run_id: str | None):
        self.client, self.uri, self.run_id = client, uri, run_id

    @classmethod
    def open(cls, search, study) -> "StudyRun | None":
        """The parent run (created by the study's first worker); None without tracking."""
        settings = search.base.tracking.mlflow
        uri = tracking_uri(settings)
        if uri is None:
            return None
        client = client_for(uri)
        try:
            run_id = study.user_attrs.get(PARENT_ATTR)
            if run_id:
                client.update_run(run_id, status="RUNNING")
            else:
                tags = {"mlflow.runName": study.study_name, "mlflow.source.name": "dlopt tune", "dlopt.study": study.study_name}
                run_id = client.create_run(experiment_id(client, settings.experiment or search.base.name), tags=tags, run_name=study.study_name).info.run_id
                study.set_user_attr(PARENT_ATTR, run_id)
                space = {f"search.{key}": json.dumps(param.model_dump(mode="json")) for key, param in search.spec.params.items()}
                client.log_batch(run_id, params=_params({**space, "search.metric": search.metric(), "search.direction": search.direction()}))
        except Exception as exc:
            unreachable(uri, exc, settings.on_unreachable, "the study goes on without MLflow; upload its trials later with: dlopt mlflow-sync STUDY_FOLDER")
            return None
        console.say(f"MLflow: study {study.study_name} as run {run_id} ({shown_uri(uri)})")
        return cls(client, uri, run_id)

    def ended(self, summary: dict, study_dir: Path) -> None:
        """This worker's end: the best trial so far, best.yaml and the plots; the parent finished."""
        from mlflow.entities import Metric

        try:
            best = summary.get("best")
            metrics = {f"trials_{state}": count for state, count in summary.get("trials", {}).items()}
            if best:
                metrics.update({f"best_{summary['metric']}": best["value"], "best_trial": best["trial"]})
                self.client.set_tag(self.run_id, "dlopt.best_run_dir", str(best.get("run_dir")))
            self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()])
            for path in [study_dir / "best.yaml", *(Path(p) for p in summary.get("plots", []))]:
                if path.exists():
                    self.client.log_artifact(self.run_id, str(path), "plots" if path.suffix == ".png" else None)
            terminate(self.client, self.run_id, "FINISHED")
        except Exception as exc:
            console.warn(f"MLflow ({shown_uri(self.uri)}): the study's run could not be completed ({one_line(exc)})")


def _params(values: dict) -> list:
    from mlflow.entities import Param

    return [Param(key, value[:6000]) for key, value in values.items()]
