"""Raw table columns -> one feature vector, inside the model (so saved models take raw rows).

Numbers: missing (NaN) filled with the training mean, then standardised with the training mean and
variance (Keras Normalization), plus a 0/1 missing feature for columns that had gaps in training.
Categories: one-hot over the training vocabulary (Keras StringLookup); "" (missing) is a category
of its own when training had it, and unseen values share one out-of-vocabulary slot.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="dlopt")
class FillMissing(keras.layers.Layer):
    """NaN -> `value` (the training mean of the column)."""

    def __init__(self, value: float, **kwargs):
        super().__init__(**kwargs)
        self.value = float(value)

    def call(self, x):
        return keras.ops.where(keras.ops.isnan(x), keras.ops.full_like(x, self.value), x)

    def get_config(self):
        return {**super().get_config(), "value": self.value}


@keras.saving.register_keras_serializable(package="dlopt")
class IsMissing(keras.layers.Layer):
    """1.0 where the value is NaN, else 0.0."""

    def call(self, x):
        return keras.ops.cast(keras.ops.isnan(x), "float32")


def table_inputs(spec) -> dict:
    """One named keras.Input per column: float32 numbers or strings, shape (1,)."""
    return {c.input: keras.Input(shape=(1,), dtype="float32" if c.kind == "numeric" else "string", name=c.input) for c in spec.columns}


def encode(inputs: dict, spec):
    """The concatenated feature vector of every column."""
    features = []
    for column in spec.columns:
        x = inputs[column.input]
        if column.kind == "numeric":
            filled = FillMissing(column.mean if column.fill is None else column.fill, name=f"{column.input}_fill")(x)
            features.append(keras.layers.Normalization(mean=column.mean, variance=column.variance, name=f"{column.input}_standardize")(filled))
            if column.has_missing:
                features.append(IsMissing(name=f"{column.input}_missing")(x))
        else:
            lookup = keras.layers.StringLookup(vocabulary=column.vocabulary, output_mode="one_hot", num_oov_indices=1, name=f"{column.input}_onehot")
            features.append(keras.layers.Reshape((lookup.vocabulary_size(),), name=f"{column.input}_flat")(lookup(x)))
    return features[0] if len(features) == 1 else keras.layers.Concatenate(name="features")(features)
