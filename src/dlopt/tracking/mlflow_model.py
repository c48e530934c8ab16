"""A run's checkpoint as an MLflow model: a pyfunc that `mlflow models serve` and
`mlflow.pyfunc.load_model` load, answering what `dlopt serve` answers (class, name, probability,
or values) for what `dlopt serve` takes (arrays, image bytes, text, table rows).

The model carries dlopt's code (`code_paths`) and the run files it needs (config.yaml,
summary.json, inputs.json, the checkpoint), so it loads where dlopt is not installed.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

RUN_FILES = ("config.yaml", "summary.json", "inputs.json")


class RunModel(mlflow.pyfunc.PythonModel):
    """Loaded by MLflow: the run's model with its signature, class names and test-time views."""

    def load_context(self, context):
        from dlopt.serve.app import load

        self.name, self.model, self.signature, self.answers = load(Path(context.artifacts["run"]))

    # the hint only tells MLflow not to infer a schema (it warns without one): every kind in
    # instances_in() is taken, and checked against the model's own signature
    def predict(self, context, model_input: pd.DataFrame, params=None):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import BAD_REQUEST

        from dlopt.serve.inputs import BadRequest

        try:
            examples = [self.signature.example(instance) for instance in instances_in(model_input, self.signature)]
            if not examples:
                raise BadRequest("no instances to predict")
            batch = self.signature.batch(examples)
        except BadRequest as exc:  # answered 400 by MLflow's scoring server, with this line
            raise MlflowException(str(exc), error_code=BAD_REQUEST) from None
        return self.answers(self.model(batch, training=False))


def instances_in(model_input, signature) -> list:
    """What MLflow hands a pyfunc (a DataFrame from `dataframe_records`/`dataframe_split`, an array
    or a dict of arrays from `instances`/`inputs`, or a list) as one instance per example."""

    if isinstance(model_input, pd.DataFrame):
        if signature.table:
            return [{k: _plain(v) for k, v in row.items()} for row in model_input.to_dict("records")]
        if model_input.shape[1] == 1:
            return [_plain(v) for v in model_input.iloc[:, 0]]
        return list(model_input.to_numpy())
    if isinstance(model_input, dict):  # columns, all of one length
        names = list(model_input)
        if names == ["b64"]:  # instances [{"b64": ...}, ...], gathered into one column by MLflow
            return [{"b64": _plain(value)} for value in np.asarray(model_input["b64"]).reshape(-1)]
        columns = [np.asarray(model_input[name]).reshape(-1).tolist() if signature.table else list(model_input[name]) for name in names]
        if signature.table:
            return [dict(zip(names, values)) for values in zip(*columns)]
        return columns[0] if len(names) == 1 else [dict(zip(names, values)) for values in zip(*columns)]
    if isinstance(model_input, np.ndarray):
        return [_plain(v) for v in model_input] if model_input.dtype == object or model_input.dtype.kind in "US" else list(model_input)
    return list(model_input)


def _plain(value):
    """NumPy scalars as Python values (a NaN cell: None, a missing value)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def requirements() -> list[str]:
    """dlopt's own dependencies, with TensorFlow and Keras pinned to the versions that saved the model."""
    pinned = {name: metadata.version(name) for name in ("tensorflow", "keras")}
    try:
        wanted = [r for r in metadata.requires("dlopt") or [] if "extra ==" not in r]
    except metadata.PackageNotFoundError:
        wanted = ["pyyaml", "pydantic", "rich", "click", "pillow"]
    names = [r.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip() for r in wanted]
    return [f"{name}=={pinned[name]}" if name in pinned else r for name, r in zip(names, wanted) if name not in pinned] + [f"{n}=={v}" for n, v in pinned.items()]


def save_run_model(run_dir: Path, path: Path, checkpoint: str = "best") -> Path:
    """The run's checkpoint saved as an MLflow pyfunc model folder at `path` (new): the run files it
    needs and dlopt's code beside it, so it loads where dlopt is not installed."""
    import dlopt
    from dlopt.runs import RunFolder

    folder = RunFolder(run_dir)
    staging = Path(tempfile.mkdtemp(prefix="dlopt-mlflow-run-"))
    try:
        files = staging / "run"
        (files / "checkpoints").mkdir(parents=True)
        for name in RUN_FILES:
            if (folder.path / name).exists():
                shutil.copy2(folder.path / name, files / name)
        shutil.copy2(folder.checkpoint(checkpoint), files / "checkpoints" / "best.keras")
        # no signature: the model takes every shape `dlopt serve` takes, and checks them itself
        mlflow.pyfunc.save_model(
            path=path,
            python_model=str(Path(__file__).with_name("pyfunc_entry.py")),  # models from code: nothing pickled
            artifacts={"run": str(files)},
            code_paths=[str(Path(dlopt.__file__).parent)],
            pip_requirements=requirements(),
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def log_run_model(client, run_id: str, run_dir: Path, checkpoint: str = "best") -> str:
    """Log the run's checkpoint as a pyfunc model of the MLflow run `run_id` (an MLflow 3 logged
    model whose source is that run); its model URI. Through the client: MLflow's fluent API would
    change the process's tracking URI (and MLFLOW_TRACKING_URI) under everything else."""
    staging = Path(tempfile.mkdtemp(prefix="dlopt-mlflow-model-"))
    try:
        save_run_model(run_dir, staging / "model", checkpoint)
        experiment = client.get_run(run_id).info.experiment_id
        model = client.create_logged_model(experiment, name="model", source_run_id=run_id, model_type="dlopt")
        try:
            client.log_model_artifacts(model.model_id, str(staging / "model"))
        except Exception:
            client.finalize_logged_model(model.model_id, "FAILED")
            raise
        client.finalize_logged_model(model.model_id, "READY")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return f"models:/{model.model_id}"
