"""`cnn`: conv blocks (conv -> [batch norm] -> activation, then pooling and dropout), a dense head.

With `pool_first` each block pools right after its last conv, so batch norm and the activation
run on the pooled map (a quarter of the pixels for 2x2 pooling).
"""

from __future__ import annotations

from ..errors import ConfigError
from .parts import dense_stack, kernel_regularizer, output_head


def build_cnn(model_config, input_spec, output_spec):
    import keras

    layers = keras.layers
    shape = tuple(input_spec.shape)
    if len(shape) not in (2, 3):
        raise ConfigError(f"model.type: cnn expects images (height, width[, channels]), the data has shape {shape}")
    regularizer = kernel_regularizer(model_config)
    inputs = keras.Input(shape=shape)
    x = layers.Reshape(shape + (1,))(inputs) if len(shape) == 2 else inputs
    for b, block in enumerate(model_config.blocks):
        for c in range(block.convs):
            x = layers.Conv2D(
                block.filters,
                block.kernel_size,
                strides=block.strides,
                padding=block.padding,
                use_bias=not model_config.batch_norm,  # batch norm's shift replaces the bias
                kernel_regularizer=regularizer,
                name=f"block{b}_conv{c}",
            )(x)
            height, width = x.shape[1], x.shape[2]
            if not height or not width or height < 1 or width < 1:
                raise ConfigError(f"model.blocks[{b}]: the feature map has shrunk to nothing; use padding: same, smaller strides or fewer blocks")
            if model_config.pool_first and c == block.convs - 1:
                x = _pool(x, b, block)
            if model_config.batch_norm:
                x = layers.BatchNormalization(momentum=model_config.batch_norm_momentum, name=f"block{b}_conv{c}_bn")(x)
            x = layers.Activation(model_config.activation, name=f"block{b}_conv{c}_act")(x)
        if not model_config.pool_first:
            x = _pool(x, b, block)
        if block.dropout:
            x = layers.Dropout(block.dropout, name=f"block{b}_dropout")(x)
    x = {"flatten": layers.Flatten, "avg": layers.GlobalAveragePooling2D, "max": layers.GlobalMaxPooling2D}[model_config.global_pool](name="features")(x)
    x = dense_stack(x, model_config.dense, model_config, regularizer, prefix="dense")
    return keras.Model(inputs, output_head(x, output_spec, regularizer), name="cnn")


def _pool(x, b, block):
    """The block's pooling layer (or `x` unchanged for `pool: none`), after checking the map is big enough."""
    import keras

    if block.pool == "none":
        return x
    height, width = x.shape[1], x.shape[2]
    if height < block.pool_size or width < block.pool_size:
        raise ConfigError(
            f"model.blocks[{b}].pool_size: the feature map is {height}x{width} here, too small to pool by {block.pool_size}; "
            "use pool: none or fewer blocks"
        )
    pool = keras.layers.MaxPooling2D if block.pool == "max" else keras.layers.AveragePooling2D
    return pool(block.pool_size, name=f"block{b}_pool")(x)
