"""The objective of a run: its task, the label format the data is fed in, the loss and the metrics,
and which way each logged number should go. Resolved once from the config and the data
(`Objective.resolve`), then passed along: data pipelines, model head, compile, callbacks,
evaluation and search all read the same one.

The losses and metrics are those registered in config/train.py (`LOSSES`, `METRICS`); their
builders are below. No TensorFlow until a loss or metric is built.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config.train import LOSSES, METRICS, TrainConfig
from .errors import ConfigError


def monitor_mode(monitor: str, mode: str = "auto") -> str:
    """'max' or 'min' for a logged metric name; `auto` knows dlopt's metrics (Keras' guess misses f1/auc)."""
    if mode != "auto":
        return mode
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name not in METRICS:  # an output's metric (several outputs): `<output>_<metric>`
        name = max((m for m in METRICS if name.endswith(f"_{m}")), key=len, default=name)
    return "max" if name in METRICS and METRICS.get(name).higher_is_better else "min"


@dataclass(frozen=True)
class Objective:
    task: str  # classification | regression
    label_format: str  # sparse class ids | onehot vectors | binary 0/1 | value targets
    loss_name: str
    metric_names: tuple[str, ...]
    label_smoothing: float = 0.0
    huber_delta: float = 1.0
    top_k: int = 5
    series_scale: tuple | None = None  # a time series: errors are reported in its own units

    @classmethod
    def resolve(cls, train: TrainConfig, task: str, num_classes: int | None, mixed_labels: bool = False, series_scale=None, multi_label: bool = False) -> "Objective":
        """The loss, metrics and label format for `task`; config errors name the key that does not fit.

        `mixed_labels`: mixup or cutmix blend labels, which only one-hot (or binary) labels can carry.
        `multi_label`: several classes per example, each a sigmoid unit (0/1 targets per class)."""
        loss = train.loss if train.loss != "auto" else ("sparse_categorical_crossentropy" if task == "classification" else "mse")
        if multi_label:
            if train.loss not in ("auto", "binary_crossentropy"):
                raise ConfigError(f"train.loss: '{train.loss}' does not fit several labels per example; expected binary_crossentropy (or auto)")
            loss = "binary_crossentropy"
        metrics = tuple(train.metrics) if train.metrics is not None else (("accuracy",) if task == "classification" else ("mae", "rmse"))
        wrong = [m for m in metrics if METRICS.get(m).task != task]
        if wrong:
            raise ConfigError(f"train.metrics: {sorted(wrong)[0]!r} does not apply to {task} data (set data.task if the task was guessed wrong)")
        if LOSSES.get(loss).task != task:
            expected = "a cross-entropy" if task == "classification" else f"one of {', '.join(sorted(LOSSES.where(task=task)))}"
            raise ConfigError(f"train.loss: '{loss}' is a {LOSSES.get(loss).task} loss but the data is {task}; expected {expected}")
        if multi_label and "top_k_accuracy" in metrics:
            raise ConfigError("train.metrics: top_k_accuracy ranks one class per example; not for several labels per example")
        fmt = "multi_hot" if multi_label else cls._label_format(train, task, loss, metrics, num_classes, mixed_labels)
        scale = tuple(series_scale) if series_scale is not None else None
        return cls(task, fmt, loss, metrics, train.label_smoothing, train.huber_delta, train.top_k, scale)

    @staticmethod
    def _label_format(train, task, loss, metrics, num_classes, mixed_labels) -> str:
        if task == "regression":
            return "value"
        if loss == "binary_crossentropy":
            if num_classes != 2:
                raise ConfigError(f"train.loss: binary_crossentropy needs 2 classes, the data has {num_classes}")
            if "top_k_accuracy" in metrics:
                raise ConfigError("train.metrics: top_k_accuracy needs more than one output; not with binary_crossentropy")
            return "binary"
        # label smoothing needs one-hot targets: Keras' sparse cross-entropy has no label_smoothing
        if loss == "categorical_crossentropy" or train.label_smoothing > 0 or mixed_labels or any(METRICS.get(m).one_hot for m in metrics):
            return "onehot"
        return "sparse"

    def loss(self):
        """A new Keras loss object."""
        return LOSSES.get(self.loss_name).build(self)

    def metrics(self) -> list:
        """New Keras metric objects (each compiled model needs its own)."""
        return [METRICS.get(name).build(self, name) for name in self.metric_names]

    def loss_weights(self) -> None:
        return None  # one output: its loss is the loss

    def logged(self) -> set[str]:
        """The names fit() logs: the loss and metrics, their `val_` twins, and the learning rate."""
        names = ["loss", *self.metric_names]
        return set(names) | {f"val_{n}" for n in names} | {"learning_rate"}

    @staticmethod
    def mode(monitor: str, mode: str = "auto") -> str:
        return monitor_mode(monitor, mode)


@dataclass(frozen=True)
class Objectives:
    """Several outputs (`data.table.outputs`): an Objective per output, and its loss weight.
    Compiled as Keras takes them: dicts keyed by the output's name."""

    named: dict  # output name -> Objective
    weights: dict  # output name -> loss weight
    task = "several"
    label_format = "several"

    def loss(self) -> dict:
        return {name: objective.loss() for name, objective in self.named.items()}

    def metrics(self) -> dict:
        return {name: objective.metrics() for name, objective in self.named.items()}

    def loss_weights(self) -> dict:
        return dict(self.weights)

    def logged(self) -> set[str]:
        """Keras' names: `loss` (the weighted sum), `<output>_loss` and `<output>_<metric>`; with
        one output `loss` and `<metric>` alone, as for a model of one output."""
        if len(self.named) == 1:
            names = ["loss", *next(iter(self.named.values())).metric_names]
        else:
            names = ["loss", *(f"{name}_{metric}" for name, objective in self.named.items() for metric in ("loss", *objective.metric_names))]
        return set(names) | {f"val_{n}" for n in names} | {"learning_rate"}


# ----------------------------------------------------------------- what LOSSES and METRICS build


def cross_entropy(objective: Objective):
    import keras

    if objective.label_format == "onehot":
        return keras.losses.CategoricalCrossentropy(label_smoothing=objective.label_smoothing)
    if objective.label_format in ("binary", "multi_hot"):
        return keras.losses.BinaryCrossentropy(label_smoothing=objective.label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy()


def mean_squared_error(objective: Objective):
    import keras

    return keras.losses.MeanSquaredError()


def mean_absolute_error(objective: Objective):
    import keras

    return keras.losses.MeanAbsoluteError()


def huber(objective: Objective):
    import keras

    return keras.losses.Huber(delta=objective.huber_delta)


def accuracy(objective: Objective, name: str):
    import keras

    m = keras.metrics
    # several labels per example: the share of (example, label) pairs right at 0.5
    return {"sparse": m.SparseCategoricalAccuracy, "onehot": m.CategoricalAccuracy, "binary": m.BinaryAccuracy, "multi_hot": m.BinaryAccuracy}[objective.label_format](name=name)


def top_k_accuracy(objective: Objective, name: str):
    import keras

    m = keras.metrics
    return {"sparse": m.SparseTopKCategoricalAccuracy, "onehot": m.TopKCategoricalAccuracy}[objective.label_format](k=objective.top_k, name=name)


def precision(objective: Objective, name: str):
    import keras

    return keras.metrics.Precision(name=name)


def recall(objective: Objective, name: str):
    import keras

    return keras.metrics.Recall(name=name)


def macro_f1(objective: Objective, name: str):
    import keras

    # threshold None: the arg-max class counts as predicted, the usual multi-class F1
    return keras.metrics.F1Score(average="macro", threshold=0.5 if objective.label_format in ("binary", "multi_hot") else None, name=name)


def auc(objective: Objective, name: str):
    import keras

    return keras.metrics.AUC(multi_label=objective.label_format == "multi_hot", name=name)


def _error_metric(keras_name: str):
    def build(objective: Objective, name: str):
        if objective.series_scale is not None:  # a forecast's errors in the series' own units
            from .models.forecasting import IN_UNITS

            return IN_UNITS[name](scale=list(objective.series_scale), name=name)
        import keras

        return getattr(keras.metrics, keras_name)(name=name)

    return build


mae = _error_metric("MeanAbsoluteError")
mse = _error_metric("MeanSquaredError")
rmse = _error_metric("RootMeanSquaredError")
