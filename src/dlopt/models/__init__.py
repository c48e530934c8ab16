"""Models from a registry: `register('name')` a builder(model_config, input_spec, output_spec).

A builder returns a keras.Model mapping inputs of `input_spec.shape` (already rescaled and
standardised) to outputs that `output_spec` describes; `output_head` builds the usual final layer.
Built-in families live one per module (cnn.py, mlp.py); users register theirs from `model.module`.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..registry import Registry

MODELS: Registry = Registry("model")
register = MODELS.register
_imported: dict[str, object] = {}


@dataclass(frozen=True)
class InputSpec:
    shape: tuple
    vocabulary_size: int | None = None  # set when the inputs are token ids (text after vectorisation)


@dataclass(frozen=True)
class OutputSpec:
    task: str  # classification | regression
    units: int
    activation: str  # softmax | sigmoid | linear
    shape: tuple  # per-example output shape


def output_spec_for(data) -> OutputSpec:
    if data.task == "regression":
        shape = data.target_shape
        units = 1
        for dim in shape:
            units *= dim
        return OutputSpec("regression", units, "linear", shape)
    if data.label_format == "binary":
        return OutputSpec("classification", 1, "sigmoid", (1,))
    return OutputSpec("classification", data.num_classes, "softmax", (data.num_classes,))


def output_head(x, spec: OutputSpec, kernel_regularizer=None, added_logits=None):
    """The final layer for the task: softmax classes, a sigmoid unit, or linear values; with
    `added_logits` (a wide part's), those are added to the dense layer's before the activation."""
    import keras

    layers = keras.layers
    # float32 even under mixed precision: softmax and the loss need the range (Keras' advice)
    if added_logits is None:
        outputs = layers.Dense(spec.units, activation=spec.activation, kernel_regularizer=kernel_regularizer, dtype="float32", name="head")(x)
    else:
        logits = layers.Dense(spec.units, kernel_regularizer=kernel_regularizer, dtype="float32", name="head_logits")(x)
        logits = layers.Add(dtype="float32", name="head_sum")([logits, added_logits])
        outputs = layers.Activation(spec.activation, dtype="float32", name="head")(logits)
    if spec.task == "regression" and len(spec.shape) > 1:
        outputs = keras.layers.Reshape(spec.shape, dtype="float32")(outputs)
    return outputs


def dense_stack(x, units_list, model_config, regularizer, prefix: str):
    """Dense -> [batch norm] -> activation -> [dropout], per hidden layer."""
    import keras

    layers = keras.layers
    for i, units in enumerate(units_list):
        x = layers.Dense(units, use_bias=not model_config.batch_norm, kernel_regularizer=regularizer, name=f"{prefix}{i}")(x)
        if model_config.batch_norm:
            x = layers.BatchNormalization(momentum=model_config.batch_norm_momentum, name=f"{prefix}{i}_bn")(x)
        x = layers.Activation(model_config.activation, name=f"{prefix}{i}_act")(x)
        if model_config.dropout:
            x = layers.Dropout(model_config.dropout, name=f"{prefix}{i}_dropout")(x)
    return x


def sequence_inputs(input_spec: InputSpec, embedding_dim: int, family: str, mask: bool = True):
    """(inputs, x) for sequence models: token ids embedded (padding id 0 masked, unless `mask` is
    off for layers that cannot take a mask), (time,) values given one feature, (time, features)
    taken as they are."""
    import keras

    shape = tuple(input_spec.shape)
    if input_spec.vocabulary_size:
        inputs = keras.Input(shape=shape, dtype="int64")
        return inputs, keras.layers.Embedding(input_spec.vocabulary_size, embedding_dim, mask_zero=mask, name="embedding")(inputs)
    inputs = keras.Input(shape=shape)
    if len(shape) == 1:
        return inputs, keras.layers.Reshape(shape + (1,), name="one_feature")(inputs)
    if len(shape) == 2:
        return inputs, inputs
    raise ConfigError(f"model.type: {family} expects sequences (time steps[, features]) or text, the data has shape {shape}")


def text_inputs(model_config, input_spec: InputSpec, family: str, mask: bool = True):
    """(inputs, x) for text-only families: token ids embedded, then whole tokens dropped with
    `model_config.token_dropout` in training (one draw per token, shared by its whole embedding)."""
    if not input_spec.vocabulary_size:
        raise ConfigError(f"model.type: {family} expects text (token ids from data.text), the data has shape {tuple(input_spec.shape)}")
    inputs, x = sequence_inputs(input_spec, model_config.embedding_dim, family, mask=mask)
    return inputs, drop_tokens(x, model_config.token_dropout, input_spec, "token_dropout")


def drop_tokens(x, rate: float, input_spec: InputSpec, name: str):
    """`x` (per-token vectors) with whole tokens dropped at `rate` in training: one draw per token,
    shared by its whole vector; `x` unchanged for rate 0."""
    import keras

    if not rate:
        return x
    return keras.layers.Dropout(rate, noise_shape=(None, input_spec.shape[0], 1), name=name)(x)


def kernel_regularizer(model_config):
    import keras

    if model_config.l1 or model_config.l2:
        return keras.regularizers.L1L2(l1=model_config.l1, l2=model_config.l2)
    return None


def import_user_module(module: str | None) -> None:
    """Import the user's module so its `@register` calls run; each module once per process."""
    if not module or module in _imported:
        return
    try:
        if module.endswith(".py"):
            path = Path(module)
            if not path.exists():
                raise ConfigError(f"model.module: no such file: {module}")
            spec = importlib.util.spec_from_file_location(f"dlopt_user_{path.stem}", path)
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = loaded
            spec.loader.exec_module(loaded)
        else:
            loaded = importlib.import_module(module)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"model.module: cannot import {module!r}: {type(exc).__name__}: {exc}") from None
    _imported[module] = loaded


def register_builtins() -> None:
    """Import the built-in families: registers their builders and any layers they save."""
    from . import backbone, cnn, fasttext, forecasting, lstm, mlp, tabular, textcnn, transformer  # noqa: F401  (importing registers them)


def check_model_type(model_config) -> None:
    """Config error (exit 2) unless the model type is registered, importing the user module first."""
    register_builtins()
    import_user_module(model_config.module)
    try:
        MODELS.get(model_config.type)
    except KeyError as exc:
        raise ConfigError(f"model.type: {exc.args[0]}") from None


def batch_norm_momentum(setting, steps_per_epoch: int | None) -> float:
    """`auto`: moving averages that span a tenth of an epoch, within [0.9, 0.99]."""
    if setting != "auto":
        return float(setting)
    if not steps_per_epoch:
        return 0.99
    return min(0.99, max(0.9, 1 - 10 / steps_per_epoch))


def with_batch_norm_momentum(model_config, steps_per_epoch: int | None):
    """The model section with `batch_norm_momentum` resolved to a number, for the builders."""
    if not hasattr(model_config, "batch_norm_momentum"):  # a custom model's own section
        return model_config
    return model_config.model_copy(update={"batch_norm_momentum": batch_norm_momentum(model_config.batch_norm_momentum, steps_per_epoch)})


def model_name(run_name: str) -> str:
    """The Keras model's name: the run's, where TensorFlow's name scopes allow ('=' and '+' not)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_name)


def build(config, data):
    """The full model: raw inputs -> rescale/standardise -> the registered family's network."""
    import keras

    check_model_type(config.model)
    builder = MODELS.get(config.model.type)
    config = config.model_copy(update={"model": with_batch_norm_momentum(config.model, getattr(data, "steps_per_epoch", None))})
    name = model_name(config.name)
    if data.vectorizer is not None:  # text: raw strings in, token ids to the network
        inputs = keras.Input(shape=(), dtype="string", name="inputs")
        body = builder(config.model, InputSpec(tuple(data.input_shape), data.vectorizer.vocabulary_size()), output_spec_for(data))
        return keras.Model(inputs, body(data.vectorizer(inputs)), name=name)
    if getattr(data, "table", None) is not None:  # tables: raw columns in, one feature vector to the network
        from . import tabular

        inputs = tabular.table_inputs(data.table)
        features = tabular.encode(inputs, data.table)
        body = builder(config.model, InputSpec(tuple(features.shape[1:])), output_spec_for(data))
        return keras.Model(inputs, body(features), name=name)
    if getattr(data, "series", None) is not None:  # time series: relative windows in, changes out
        from . import forecasting

        settings = config.data.timeseries
        body_shape = tuple(data.input_shape)
        body = builder(config.model, InputSpec(body_shape), output_spec_for(data))
        return forecasting.wrap(body, body_shape, settings, data.series.target_index, name)
    inputs = keras.Input(shape=data.input_shape, name="inputs")
    x = inputs
    pre = config.data.preprocess
    if pre.rescale is not None:
        x = keras.layers.Rescaling(pre.rescale, name="rescale")(x)
    if pre.standardize != "none":
        axis = -1 if pre.standardize == "per_channel" else None
        mean, variance = (data.mean, data.variance) if axis == -1 else (data.mean[0], data.variance[0])
        x = keras.layers.Normalization(axis=axis, mean=mean, variance=variance, name="standardize")(x)
    body = builder(config.model, InputSpec(tuple(data.input_shape)), output_spec_for(data))
    if not isinstance(body, keras.Model):
        raise ConfigError(f"model.type: builder '{config.model.type}' returned {type(body).__name__}, expected a keras.Model")
    return keras.Model(inputs, body(x), name=name)
