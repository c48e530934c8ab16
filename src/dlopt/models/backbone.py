"""`backbone`: a keras.applications image model as the feature extractor, with a new head.

raw pixels -> [gray to RGB] -> [resize] -> the backbone's own preprocess_input -> backbone
-> pooling -> dense head. Weights: ImageNet, none, or a local file.
"""

from __future__ import annotations

import keras

from ..errors import ConfigError
from ..registry import did_you_mean
from .parts import dense_stack, kernel_regularizer, output_head


def application(name: str):
    """The keras.applications constructor called `name`, or a config error naming close ones."""
    names = sorted(n for n in dir(keras.applications) if n[:1].isupper())
    if name not in names:
        raise ConfigError(f"model.name: no keras.applications model '{name}'{did_you_mean(name, names)}; e.g. MobileNetV2, EfficientNetB0, ResNet50")
    return getattr(keras.applications, name)


@keras.saving.register_keras_serializable(package="dlopt")
class ApplicationPreprocess(keras.layers.Layer):
    """A keras.applications family's `preprocess_input` as a layer, so the saved model takes raw pixels
    (a Lambda would not load in Keras safe mode)."""

    def __init__(self, family: str, **kwargs):
        super().__init__(**kwargs)
        self.family = family
        self._preprocess = getattr(keras.applications, family).preprocess_input

    def call(self, x):
        return self._preprocess(x)

    def get_config(self):
        return {**super().get_config(), "family": self.family}


def _load_backbone(constructor, model_config, shape):
    weights = model_config.weights
    reserved = {"include_top", "input_shape", "pooling", "weights", "name", "input_tensor"} & set(model_config.options)
    if reserved:
        raise ConfigError(f"model.options: {', '.join(sorted(reserved))} is set by dlopt (see model.weights, model.input_size, model.pooling)")
    kwargs = dict(include_top=False, input_shape=shape, pooling=model_config.pooling, **model_config.options)
    interactive = keras.utils.is_interactive_logging_enabled()
    keras.utils.disable_interactive_logging()  # Keras' "Downloading data from ..." line: offline, the error alone
    try:
        try:
            return constructor(weights=weights, name="backbone", **kwargs)  # `freeze: all` finds it by this name
        except TypeError:  # an application without a `name` argument
            return constructor(weights=weights, **kwargs)
    except TypeError as exc:  # an option the constructor does not take
        raise ConfigError(f"model.options: {model_config.name}: {str(exc).strip().splitlines()[0]}") from None
    except ValueError as exc:  # Keras' own checks: input size too small for ImageNet weights, ...
        raise ConfigError(f"model.name: {model_config.name}: {str(exc).strip().splitlines()[0]}") from None
    except Exception as exc:
        if weights == "imagenet":
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"model.weights: could not fetch the ImageNet weights of {model_config.name} ({reason}). "
                "Download the `_notop` weights file on a machine with network and set model.weights to its path, or use weights: null"
            ) from None
        raise ConfigError(f"model.weights: cannot load {weights} into {model_config.name}: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}") from None
    finally:
        if interactive:
            keras.utils.enable_interactive_logging()


def build_backbone(model_config, input_spec, output_spec):
    constructor = application(model_config.name)
    shape = tuple(input_spec.shape)
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[-1] not in (1, 3)):
        raise ConfigError(f"model.type: backbone expects images (height, width[, 1 or 3 channels]), the data has shape {shape}")
    size = (model_config.input_size,) * 2 if model_config.input_size else shape[:2]
    backbone = _load_backbone(constructor, model_config, size + (3,))
    inputs = keras.Input(shape=shape)
    x = keras.layers.Reshape(shape + (1,), name="add_channel")(inputs) if len(shape) == 2 else inputs
    if x.shape[-1] == 1:  # grayscale: the same values in all three channels the backbone expects
        x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
    if tuple(x.shape[1:3]) != size:
        x = keras.layers.Resizing(*size, name="resize")(x)
    family = constructor.__module__.rsplit(".", 1)[-1]  # e.g. mobilenet_v2, efficientnet, resnet
    x = ApplicationPreprocess(family, name="backbone_preprocess")(x)
    # (Keras 3 passes the outer `training` flag through nested models, so `backbone(x, training=False)`
    # would not keep batch norm in inference mode; freezing does, and unfreezing keeps it frozen)
    x = backbone(x)
    x = dense_stack(x, model_config.dense, model_config, kernel_regularizer(model_config), prefix="dense")
    if model_config.dropout and not model_config.dense:
        x = keras.layers.Dropout(model_config.dropout, name="head_dropout")(x)
    return keras.Model(inputs, output_head(x, output_spec), name="backbone_model")
