"""The file MLflow runs to load a dlopt model ("models from code": no pickled Python object)."""

from mlflow.models import set_model

from dlopt.tracking.mlflow_model import RunModel

set_model(RunModel())
