"""Strong simple baselines for the shipped configs, on exactly the rows dlopt trains and tests on.

Each task's splits come from dlopt's own data pipeline for the config (same seed, same shuffle,
same slices), so the baselines and `dlopt train` are measured the same way: fitted on the training
split, scored on the test split. scikit-learn fits them.

    python benchmarks/baselines.py configs/mlp_penguins.yaml configs/cnn_digits.yaml
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def arrays(dataset) -> tuple[object, np.ndarray]:
    """A batched (x, y) pipeline as whole arrays (x a dict of columns for tables)."""
    xs, ys = [], []
    for x, y in dataset.as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    y = np.concatenate(ys)
    if isinstance(xs[0], dict):
        return {k: np.concatenate([x[k] for x in xs]) for k in xs[0]}, y
    return np.concatenate(xs), y


def features(x, table, fit_on=None):
    """Tables: the model's own treatment by hand (mean-imputed, standardised numbers with a missing
    indicator, one-hot categories over the training vocabulary); anything else: flattened values."""
    if table is None:
        return x.reshape(len(x), -1)
    out = []
    for column in table.columns:
        values = x[column.input][:, 0]
        if column.kind == "numeric":
            missing = np.isnan(values)
            out.append(((np.where(missing, column.mean, values) - column.mean) / np.sqrt(column.variance + 1e-7))[:, None])
            if column.has_missing:
                out.append(missing[:, None].astype(float))
        else:
            values = np.array([v.decode() if isinstance(v, bytes) else v for v in values])
            out.append(np.stack([values == category for category in column.vocabulary], axis=1).astype(float))
    return np.concatenate(out, axis=1)


def task_baselines(config_path: str) -> dict:
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.metrics import accuracy_score, mean_squared_error
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from dlopt import data as data_module
    from dlopt.config import load_config

    config = load_config(config_path)
    config.data.augment = []
    data = data_module.build(config, roles=("train", "test"), for_training=False)
    x_train, y_train = arrays(data.pipelines["train"])
    x_test, y_test = arrays(data.pipelines["test"])
    x_train, x_test = features(x_train, data.table), features(x_test, data.table)
    if data.label_format in ("onehot",):
        y_train, y_test = y_train.argmax(axis=1), y_test.argmax(axis=1)
    result = {"config": config_path, "train": len(y_train), "test": len(y_test)}
    if data.task == "classification":
        y_train, y_test = y_train.reshape(-1), y_test.reshape(-1)
        for name, model in (("majority class", DummyClassifier()), ("logistic regression", make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)))):
            result[name] = accuracy_score(y_test, model.fit(x_train, y_train).predict(x_test))
        result["metric"] = "test accuracy"
    else:
        for name, model in (("mean", DummyRegressor()), ("linear regression", make_pipeline(StandardScaler(), LinearRegression()))):
            result[name] = float(np.sqrt(mean_squared_error(y_test, model.fit(x_train, y_train).predict(x_test))))
        result["metric"] = "test RMSE"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+")
    args = parser.parse_args()
    for config in args.configs:
        result = task_baselines(config)
        scores = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if isinstance(v, float))
        print(f"{Path(config).name}: {result['metric']} on {result['test']} test rows ({result['train']} training): {scores}")


if __name__ == "__main__":
    main()
