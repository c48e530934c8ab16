"""Experiment tracking besides the run folder: MLflow.

  mlflow_runs.py   one run folder as one MLflow run: params, tags, metrics, artifacts, status
  mlflow_model.py  a run's checkpoint as an MLflow (pyfunc) model that `mlflow models serve` loads
  tracker.py       what a training calls as it runs (created, each epoch, ended)
  study.py         a tune study's parent run, its trials as child runs
  sync.py          `dlopt mlflow-sync`: runs uploaded after the fact
"""
