"""`transformer`: a small encoder for text classification and sequence regression.

Token ids (or projected features) plus a learned position embedding, then `depth` blocks of
multi-head self-attention and a feed-forward layer, each with a residual and layer norm, then
pooling over positions and a dense head. Built from stock Keras layers except the position
embedding and first-position pooling, small layers registered with Keras as `dlopt>PositionEmbedding`
and `dlopt>FirstPosition`, so a saved model reloads in safe mode after `import dlopt`.
"""

from __future__ import annotations

import keras

from . import pooling  # the module, not its names: importing keras may register the families first
from .parts import attention_blocks, dense_stack, kernel_regularizer, output_head, sequence_inputs


@keras.saving.register_keras_serializable(package="dlopt")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per position to a (batch, time, width) input; keeps the padding mask."""

    def __init__(self, length: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.length, self.width = length, width
        self.supports_masking = True
        self.positions = keras.layers.Embedding(length, width, name="table")

    def build(self, input_shape):
        self.positions.build((self.length,))
        super().build(input_shape)

    def call(self, x):
        return x + self.positions(keras.ops.arange(self.length))[None, :, :]

    def get_config(self):
        return {**super().get_config(), "length": self.length, "width": self.width}


@keras.saving.register_keras_serializable(package="dlopt")
class FirstPosition(keras.layers.Layer):
    """(batch, time, width) -> (batch, width) at position 0; consumes the padding mask (position 0 is
    never padding), where a stock cropping layer would warn that it destroys it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, mask=None):
        return x[:, 0, :]

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


def build_transformer(model_config, input_spec, output_spec):
    layers = keras.layers
    c = model_config
    regularizer = kernel_regularizer(c)
    inputs, x = sequence_inputs(input_spec, c.width, "transformer")
    if x.shape[-1] != c.width:  # numeric features: project each time step to the model width
        x = layers.Dense(c.width, name="project")(x)
    x = PositionEmbedding(x.shape[1], c.width, name="positions")(x)
    x = attention_blocks(x, c.depth, c.heads, c.ff_width, c.dropout, c.activation, regularizer)
    if c.pooling == "avg":
        x = pooling.TokenAverage(name="pool")(x)
    elif c.pooling == "max":
        x = layers.GlobalMaxPooling1D(name="pool")(x)
    else:
        x = FirstPosition(name="pool")(x)
    x = dense_stack(x, c.dense, c, regularizer, prefix="dense")
    return keras.Model(inputs, output_head(x, output_spec, regularizer), name="transformer")

