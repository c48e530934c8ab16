"""Losses and metrics as Keras computes them, on hand-checkable predictions."""

from __future__ import annotations

import numpy as np
import pytest

from dlopt.config.schema import TrainConfig
from dlopt.objectives import build_loss, build_metrics, label_format


def metric_values(train: TrainConfig, fmt: str, y_true, y_pred, task="classification") -> dict:
    out = {}
    for metric in build_metrics(train, task, fmt):
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
    smoothing = build_loss(TrainConfig(label_smoothing=0.2), "classification", "onehot")
    assert type(smoothing).__name__ == "CategoricalCrossentropy"
    # smoothed target for 2 classes: [0.9, 0.1]; prediction [0.9, 0.1] -> the entropy of [0.9, 0.1]
    value = float(smoothing(np.array([[1.0, 0.0]]), np.array([[0.9, 0.1]], "float32")))
    assert value == pytest.approx(-(0.9 * np.log(0.9) + 0.1 * np.log(0.1)), rel=1e-4)
    huber = build_loss(TrainConfig(loss="huber", huber_delta=0.5), "regression", "value")
    assert float(huber(np.array([[2.0]]), np.array([[0.0]], "float32"))) == pytest.approx(0.5 * (2.0 - 0.25))


def test_label_format_choices():
    assert label_format(TrainConfig(), "classification", 10) == "sparse"
    assert label_format(TrainConfig(loss="categorical_crossentropy"), "classification", 10) == "onehot"
    assert label_format(TrainConfig(loss="binary_crossentropy", metrics=["auc"]), "classification", 2) == "binary"
    assert label_format(TrainConfig(), "regression", None) == "value"
