"""`mlp`: flatten the input, then dense -> [batch norm] -> activation -> [dropout] layers."""

from __future__ import annotations

from .parts import dense_stack, kernel_regularizer, output_head


def build_mlp(model_config, input_spec, output_spec):
    import keras

    regularizer = kernel_regularizer(model_config)
    inputs = keras.Input(shape=tuple(input_spec.shape))
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = dense_stack(x, model_config.layers, model_config, regularizer, prefix="dense")
    return keras.Model(inputs, output_head(x, output_spec, regularizer), name="mlp")
