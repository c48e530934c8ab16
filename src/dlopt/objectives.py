"""Loss, metrics and the label encoding they need, chosen from the config and the data's task."""

from __future__ import annotations

from .config.schema import TrainConfig
from .errors import ConfigError

CLASSIFICATION_LOSSES = {"sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy"}
REGRESSION_LOSSES = {"mse", "mae", "huber"}
CLASSIFICATION_METRICS = {"accuracy", "top_k_accuracy", "precision", "recall", "macro_f1", "auc"}
REGRESSION_METRICS = {"mae", "mse", "rmse"}
# Keras computes these on one-hot (or binary) labels, never on sparse class ids
ONE_HOT_METRICS = {"precision", "recall", "macro_f1", "auc"}


def resolve_loss(train: TrainConfig, task: str) -> str:
    if train.loss == "auto":
        return "sparse_categorical_crossentropy" if task == "classification" else "mse"
    return train.loss


def resolve_metrics(train: TrainConfig, task: str) -> list[str]:
    if train.metrics is None:
        return ["accuracy"] if task == "classification" else ["mae", "rmse"]
    return list(train.metrics)


def label_format(train: TrainConfig, task: str, num_classes: int | None, mixed_labels: bool = False) -> str:
    """How labels are fed: 'sparse' class ids, 'onehot' vectors, 'binary' 0/1, or 'value' targets.

    `mixed_labels`: mixup or cutmix blend labels, which only one-hot (or binary) labels can carry."""
    loss, metrics = resolve_loss(train, task), resolve_metrics(train, task)
    wrong_metrics = set(metrics) - (CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS)
    if wrong_metrics:
        raise ConfigError(f"train.metrics: {sorted(wrong_metrics)[0]!r} does not apply to {task} data (set data.task if the task was guessed wrong)")
    if task == "regression":
        if loss not in REGRESSION_LOSSES:
            raise ConfigError(f"train.loss: '{loss}' is a classification loss but the data is regression; expected one of {', '.join(sorted(REGRESSION_LOSSES))}")
        return "value"
    if loss not in CLASSIFICATION_LOSSES:
        raise ConfigError(f"train.loss: '{loss}' is a regression loss but the data is classification; expected a cross-entropy")
    if loss == "binary_crossentropy":
        if num_classes != 2:
            raise ConfigError(f"train.loss: binary_crossentropy needs 2 classes, the data has {num_classes}")
        if "top_k_accuracy" in metrics:
            raise ConfigError("train.metrics: top_k_accuracy needs more than one output; not with binary_crossentropy")
        return "binary"
    # label smoothing needs one-hot targets: Keras' sparse cross-entropy has no label_smoothing
    if loss == "categorical_crossentropy" or train.label_smoothing > 0 or mixed_labels or ONE_HOT_METRICS & set(metrics):
        return "onehot"
    return "sparse"


def build_loss(train: TrainConfig, task: str, fmt: str):
    import keras

    loss = resolve_loss(train, task)
    if fmt == "onehot":
        return keras.losses.CategoricalCrossentropy(label_smoothing=train.label_smoothing)
    if fmt == "sparse":
        return keras.losses.SparseCategoricalCrossentropy()
    if fmt == "binary":
        return keras.losses.BinaryCrossentropy(label_smoothing=train.label_smoothing)
    return {
        "mse": keras.losses.MeanSquaredError,
        "mae": keras.losses.MeanAbsoluteError,
        "huber": lambda: keras.losses.Huber(delta=train.huber_delta),
    }[loss]()


def build_metrics(train: TrainConfig, task: str, fmt: str, series=None) -> list:
    """Keras metrics for the config; for a time series (`series`), errors in the series' own units."""
    import keras

    m = keras.metrics
    if series is not None:
        from .models.forecasting import IN_UNITS

        scale = series.target_scaling.scale.tolist()
        return [IN_UNITS[name](scale=scale, name=name) for name in resolve_metrics(train, task)]
    accuracy = {"sparse": m.SparseCategoricalAccuracy, "onehot": m.CategoricalAccuracy, "binary": m.BinaryAccuracy}
    top_k = {"sparse": m.SparseTopKCategoricalAccuracy, "onehot": m.TopKCategoricalAccuracy}
    makers = {
        "accuracy": lambda: accuracy[fmt](name="accuracy"),
        "top_k_accuracy": lambda: top_k[fmt](k=train.top_k, name="top_k_accuracy"),
        "precision": lambda: m.Precision(name="precision"),
        "recall": lambda: m.Recall(name="recall"),
        # threshold None: the arg-max class counts as predicted, the usual multi-class F1
        "macro_f1": lambda: m.F1Score(average="macro", threshold=0.5 if fmt == "binary" else None, name="macro_f1"),
        "auc": lambda: m.AUC(name="auc"),
        "mae": lambda: m.MeanAbsoluteError(name="mae"),
        "mse": lambda: m.MeanSquaredError(name="mse"),
        "rmse": lambda: m.RootMeanSquaredError(name="rmse"),
    }
    return [makers[name]() for name in resolve_metrics(train, task)]


HIGHER_IS_BETTER = {"accuracy", "top_k_accuracy", "precision", "recall", "macro_f1", "auc"}


def monitor_mode(monitor: str, mode: str = "auto") -> str:
    """'max' or 'min' for a logged metric name; `auto` knows dlopt's metrics (Keras' guess misses f1/auc)."""
    if mode != "auto":
        return mode
    name = monitor[4:] if monitor.startswith("val_") else monitor
    return "max" if name in HIGHER_IS_BETTER else "min"
