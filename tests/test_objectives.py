"""The objective: losses and metrics as Keras computes them, on hand-checkable predictions, and
the label format and monitor directions resolved once from the config and the data."""

from __future__ import annotations

import numpy as np
import pytest

from dlopt.config.schema import TrainConfig
from dlopt.errors import ConfigError
from dlopt.objectives import Objective


def objective(train: TrainConfig, task: str, fmt: str) -> Objective:
    """The objective of `train` fed in label format `fmt`."""
    resolved = Objective.resolve(train, task, 3 if task == "classification" else None)
    return Objective(task, fmt, resolved.loss_name, resolved.metric_names, train.label_smoothing, train.huber_delta, train.top_k)


def metric_values(train: TrainConfig, fmt: str, y_true, y_pred, task="classification") -> dict:
    out = {}
    for metric in objective(train, task, fmt).metrics():
        metric.update_state(np.asarray(y_true), np.asarray(y_pred, "float32"))
        out[metric.name] = float(metric.result())
    return out


def test_classification_metrics_on_known_predictions():
    # 4 examples, 3 classes; predicted classes 0, 1, 1, 2 for true classes 0, 1, 2, 2
    y_true = np.eye(3)[[0, 1, 2, 2]]
    y_pred = [[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.1, 0.6, 0.3], [0.2, 0.1, 0.7]]
    train = TrainConfig(metrics=["accuracy", "top_k_accuracy", "macro_f1", "precision", "recall", "auc"], top_k=2)
    values = metric_values(train, "onehot", y_true, y_pred)
    assert values["accuracy"] == pytest.approx(0.75)
    assert values["top_k_accuracy"] == pytest.approx(1.0)
    # per-class F1: class 0: 1, class 1: 2/3 (P 1/2, R 1), class 2: 2/3 (P 1, R 1/2)
    assert values["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3, rel=1e-5)
    # micro, at threshold 0.5: 4 predicted positives (one per row), 3 of them right, 4 true positives
    assert values["precision"] == pytest.approx(0.75)
    assert values["recall"] == pytest.approx(0.75)
    assert 0.5 < values["auc"] <= 1.0


def test_sparse_labels_and_regression_metrics():
    values = metric_values(TrainConfig(metrics=["accuracy", "top_k_accuracy"], top_k=1), "sparse", [0, 1], [[0.9, 0.1], [0.8, 0.2]])
    assert values == {"accuracy": pytest.approx(0.5), "top_k_accuracy": pytest.approx(0.5)}
    values = metric_values(TrainConfig(metrics=["mae", "mse", "rmse"]), "value", [1.0, 3.0], [[2.0], [3.0]], task="regression")
    assert values == {"mae": pytest.approx(0.5), "mse": pytest.approx(0.5), "rmse": pytest.approx(0.5**0.5)}


def test_losses_per_encoding():
    smoothing = Objective.resolve(TrainConfig(label_smoothing=0.2), "classification", 2).loss()
    assert type(smoothing).__name__ == "CategoricalCrossentropy"
    # smoothed target for 2 classes: [0.9, 0.1]; prediction [0.9, 0.1] -> the entropy of [0.9, 0.1]
    value = float(smoothing(np.array([[1.0, 0.0]]), np.array([[0.9, 0.1]], "float32")))
    assert value == pytest.approx(-(0.9 * np.log(0.9) + 0.1 * np.log(0.1)), rel=1e-4)
    huber = Objective.resolve(TrainConfig(loss="huber", huber_delta=0.5), "regression", None).loss()
    assert float(huber(np.array([[2.0]]), np.array([[0.0]], "float32"))) == pytest.approx(0.5 * (2.0 - 0.25))


def test_label_format_choices():
    def fmt(train, task="classification", classes=10, **kwargs):
        return Objective.resolve(train, task, classes, **kwargs).label_format

    assert fmt(TrainConfig()) == "sparse"
    assert fmt(TrainConfig(loss="categorical_crossentropy")) == "onehot"
    assert fmt(TrainConfig(metrics=["accuracy", "macro_f1"])) == "onehot"  # Keras' F1 takes one-hot labels only
    assert fmt(TrainConfig(), mixed_labels=True) == "onehot"  # mixup blends labels
    assert fmt(TrainConfig(loss="binary_crossentropy", metrics=["auc"]), classes=2) == "binary"
    assert fmt(TrainConfig(), "regression", None) == "value"


def test_objective_is_resolved_once_with_what_it_logs_and_which_way_is_better():
    resolved = Objective.resolve(TrainConfig(metrics=["accuracy", "macro_f1"]), "classification", 4)
    assert resolved.loss_name == "sparse_categorical_crossentropy" and resolved.metric_names == ("accuracy", "macro_f1")
    assert resolved.logged() == {"loss", "accuracy", "macro_f1", "val_loss", "val_accuracy", "val_macro_f1", "learning_rate"}
    assert [resolved.mode(m) for m in ("val_macro_f1", "val_loss", "accuracy")] == ["max", "min", "max"]
    assert Objective.resolve(TrainConfig(), "regression", None).metric_names == ("mae", "rmse")
    with pytest.raises(ConfigError, match=r"^train.metrics: 'accuracy' does not apply to regression data"):
        Objective.resolve(TrainConfig(metrics=["accuracy"]), "regression", None)
    with pytest.raises(ConfigError, match=r"^train.loss: 'mse' is a regression loss but the data is classification; expected a cross-entropy$"):
        Objective.resolve(TrainConfig(loss="mse"), "classification", 3)
    with pytest.raises(ConfigError, match=r"^train.loss: binary_crossentropy needs 2 classes, the data has 3$"):
        Objective.resolve(TrainConfig(loss="binary_crossentropy"), "classification", 3)
