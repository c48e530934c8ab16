"""Models: a builder(model_config, input_spec, output_spec) per family.

A builder returns a keras.Model mapping inputs of `input_spec.shape` (already rescaled and
standardised) to outputs that `output_spec` describes; `output_head` builds the usual final layer.
Built-in families live one per module (cnn.py, mlp.py), each named by its config class's `builds`
(config/model.py's `MODELS`); users `register('name')` theirs from `model.module`.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path

from ..errors import ConfigError
from ..registry import Registry, did_you_mean
from .parts import InputSpec, OutputSpec, dense_stack, drop_tokens, kernel_regularizer, output_head, output_spec_for, sequence_inputs, text_inputs  # noqa: F401  (for your own builders: `from dlopt.models import output_head`)

# models your own `model.module` registers; the built-in families are config/model.py's MODELS
USER_MODELS: Registry = Registry("model")


def register(name: str):
    """Decorator: register a model builder under `name` (a `model.type` of your own)."""
    from ..config.model import MODELS

    if name in MODELS:
        raise ValueError(f"model '{name}' is built in; register yours under another name")
    return USER_MODELS.register(name)
_imported: dict[str, object] = {}


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
    """Import the built-in families: their modules register the layers they save with Keras."""
    from . import backbone, cnn, fasttext, forecasting, lstm, mixed, mlp, pooling, tabular, textcnn, tfidf, transformer  # noqa: F401  (importing registers them)


def builder_of(model_config):
    """The builder for `model.type`: a built-in family's (its config class names it), or one the
    user's module registered. A config error (exit 2) names the known ones otherwise."""
    if model_config.builds is not None:
        return model_config.builder()
    import_user_module(model_config.module)
    if model_config.type not in USER_MODELS:
        from ..config.model import MODELS

        known = [*MODELS, *USER_MODELS]
        raise ConfigError(f"model.type: unknown model '{model_config.type}'{did_you_mean(model_config.type, known)}; known: {', '.join(known)}")
    return USER_MODELS.get(model_config.type)


def check_model_type(model_config) -> None:
    """Config error (exit 2) unless the model type is built in or registered by the user module."""
    register_builtins()
    builder_of(model_config)


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

    register_builtins()
    builder = builder_of(config.model)
    config = config.model_copy(update={"model": with_batch_norm_momentum(config.model, getattr(data, "steps_per_epoch", None))})
    name = model_name(config.name)
    if data.vectorizer is not None:  # text: raw strings in, token ids to the network
        inputs = keras.Input(shape=(), dtype="string", name="inputs")
        document_counts, documents = data.document_counts or (None, None)  # TF-IDF models only
        spec = InputSpec(tuple(data.input_shape), data.vectorizer.vocabulary_size(), document_counts, documents)
        body = builder(config.model, spec, output_spec_for(data))
        return keras.Model(inputs, body(data.vectorizer(inputs)), name=name)
    if getattr(data, "table", None) is not None and getattr(config.model, "takes_table_columns", False):  # raw columns in, encoded by the family
        body = builder(config.model, InputSpec(tuple(data.input_shape), table=data.table), output_spec_for(data))
        model = keras.Model(body.input, body.output, name=name)
        for input_name, (paths, pixels) in (getattr(data, "images", None) or {}).items():  # decoded once: training reads no file
            model.get_layer(f"{input_name}_pixels").remember(paths, pixels)
        return model
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


def non_finite_weights(model) -> list[str]:
    """The paths of the model's variables that hold a NaN or an infinity: such a model cannot give
    a right answer, and is never saved or used."""
    import keras
    import numpy as np

    return [v.path for v in model.weights if not np.all(np.isfinite(keras.ops.convert_to_numpy(v)))]
