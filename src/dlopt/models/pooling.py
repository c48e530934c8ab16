"""Pooling over a text's tokens that an empty text does not break."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="dlopt")
class TokenAverage(keras.layers.GlobalAveragePooling1D):
    """The mean over the steps the mask keeps (a text's tokens, padding left out); zeros for a text
    with none (an empty or missing text). Keras' own layer divides by zero there, and the NaN of
    one such row makes the whole batch's loss NaN."""

    def call(self, inputs, mask=None):
        if mask is None:
            return super().call(inputs)
        kept = keras.ops.expand_dims(keras.ops.cast(mask, inputs.dtype), -1)
        return keras.ops.sum(inputs * kept, axis=1) / keras.ops.maximum(keras.ops.sum(kept, axis=1), 1.0)
