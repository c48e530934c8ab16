"""Raw table columns -> features, inside the model (so saved models take raw rows).

Numbers: missing (NaN) filled with the training mean, then standardised with the training mean and
variance (Keras Normalization), plus a 0/1 missing feature for columns that had gaps in training.
Categories: one-hot over the training vocabulary (Keras StringLookup); "" (missing) is a category
of its own when training had it, and unseen values share one out-of-vocabulary slot.
Sets (several values in a cell): 0/1 per value of the training vocabulary, one slot for the others.
Dates: the parts a model can use (`DateParts`). Text and image columns (`ReadImage`: paths to
pixels) need an encoder: `model.type: mixed` (models/mixed.py) builds one per column.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from ..errors import ConfigError


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


@keras.saving.register_keras_serializable(package="dlopt")
class SetValues(keras.layers.Layer):
    """A cell of several values (split on `separator`, whitespace when None, each stripped) -> 0/1
    per value of `vocabulary`, plus a first slot for values outside it."""

    def __init__(self, vocabulary: list[str], separator: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary, self.separator = list(vocabulary), separator
        self.lookup = keras.layers.StringLookup(vocabulary=self.vocabulary or [""], output_mode="multi_hot", num_oov_indices=1, name="lookup")

    def build(self, input_shape):
        super().build(input_shape)

    def call(self, x):
        values = tf.strings.split(tf.reshape(x, [-1]), sep=self.separator)
        values = tf.ragged.map_flat_values(tf.strings.strip, values)
        values = tf.ragged.boolean_mask(values, tf.strings.length(values) > 0)
        return self.lookup(values)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], max(len(self.vocabulary), 1) + 1)

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "separator": self.separator}


@keras.saving.register_keras_serializable(package="dlopt")
class DateParts(keras.layers.Layer):
    """ISO date strings -> 9 features: the day number (days since 1970-01-01, standardised with the
    training `mean` and `variance`), month, weekday and hour of day as points on circles (December
    beside January), the day of the month in [0, 1], and 1.0 where the date is missing or not a
    date (its other features 0)."""

    PARTS = 9

    def __init__(self, mean: float, variance: float, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.variance = float(mean), float(variance)

    def call(self, x):
        text = tf.reshape(x, [-1])
        valid = tf.strings.regex_full_match(text, r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}.*)?")
        text = tf.where(valid, text, "1970-01-01") + "T00:00"  # the time of a bare date: midnight
        number = lambda start, length: tf.strings.to_number(tf.strings.substr(text, start, length), tf.int64)  # noqa: E731
        year, month, day, hour = number(0, 4), number(5, 2), number(8, 2), number(11, 2)
        valid = valid & (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31) & (hour <= 23)
        days = days_since_epoch(year, tf.clip_by_value(month, 1, 12), day)
        weekday = tf.cast((days + 3) % 7, tf.float32)  # 1970-01-01 was a Thursday (Monday: 0)
        turn = lambda value, period: [tf.sin(2 * math.pi * value / period), tf.cos(2 * math.pi * value / period)]  # noqa: E731
        parts = tf.stack(
            [(tf.cast(days, tf.float32) - self.mean) / math.sqrt(self.variance)]
            + turn(tf.cast(month - 1, tf.float32), 12.0) + turn(weekday, 7.0) + [tf.cast(day - 1, tf.float32) / 30.0]
            + turn(tf.cast(hour, tf.float32), 24.0),
            axis=1,
        )
        present = tf.cast(valid, tf.float32)[:, None]
        return tf.concat([parts * present, 1.0 - present], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.PARTS)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "variance": self.variance}


@keras.saving.register_keras_serializable(package="dlopt")
class ReadImage(keras.layers.Layer):
    """Image file paths -> (batch, height, width, channels) pixels, 0-255 as float32: each file read,
    decoded and resized as image folders are (`data.image`: size, color_mode, interpolation,
    crop_to_aspect_ratio); a missing path ("") gives a black image."""

    def __init__(self, image: dict, **kwargs):
        super().__init__(**kwargs)
        self.image = dict(image)
        self._decoded = DecodedImages()  # training's cache: never saved with the model

    def remember(self, paths: np.ndarray, pixels: np.ndarray) -> None:
        """Serve these paths from memory, already decoded (`pixels`: uint8, one image per path), as
        an image folder's cache serves its images: each file decoded once, not in every epoch."""
        self._decoded.keep(paths, pixels)

    def call(self, x):
        from types import SimpleNamespace

        from ..data.images import CHANNELS, read_file

        settings = SimpleNamespace(**self.image)
        shape = (*settings.size, CHANNELS[settings.color_mode])
        paths = tf.reshape(x, [-1])
        read = lambda: tf.map_fn(lambda path: read_file(path, settings), paths, fn_output_signature=tf.TensorSpec(shape, tf.uint8))  # noqa: E731
        decoded = self._decoded
        if decoded.index is None:
            return tf.cast(read(), "float32")
        at = decoded.index.lookup(paths)  # a batch of remembered paths (every batch in training) is one gather
        pixels = tf.cond(tf.reduce_all(at >= 0), lambda: tf.gather(decoded.pixels, tf.maximum(at, 0)), read)
        return tf.cast(pixels, "float32")

    def compute_output_shape(self, input_shape):
        height, width = self.image["size"]
        from ..data.images import CHANNELS

        return (input_shape[0], height, width, CHANNELS[self.image["color_mode"]])

    def get_config(self):
        return {**super().get_config(), "image": self.image}


class DecodedImages:
    """Image paths and their decoded pixels, held in memory for ReadImage. A plain object, so
    neither Keras nor TensorFlow tracks it: a saved or exported model never carries the pixels."""

    def __init__(self):
        self.index = None  # path -> row of `pixels`, -1 for a path not held
        self.pixels = None

    def keep(self, paths: np.ndarray, pixels: np.ndarray) -> None:
        keys = tf.constant(np.asarray(paths, dtype=str))
        self.index = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(paths), dtype=tf.int64)), default_value=-1)
        self.pixels = tf.constant(pixels)


def days_since_epoch(year, month, day):
    """Days from 1970-01-01 of proleptic Gregorian dates (int64 tensors; H. Hinnant's days_from_civil)."""
    year = year - tf.cast(month <= 2, tf.int64)
    era = tf.math.floordiv(year, 400)
    year_of_era = year - era * 400
    day_of_year = (153 * (month + tf.where(month > 2, tf.constant(-3, tf.int64), 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def table_inputs(spec) -> dict:
    """One named keras.Input per column: float32 numbers or strings, shape (1,)."""
    return {c.input: keras.Input(shape=(1,), dtype="float32" if c.kind == "numeric" else "string", name=c.input) for c in spec.columns}


def number_features(x, column):
    """A numeric column standardised, its gaps filled (and flagged, where training had gaps)."""
    filled = FillMissing(column.mean if column.fill is None else column.fill, name=f"{column.input}_fill")(x)
    standardized = keras.layers.Normalization(mean=column.mean, variance=column.variance, name=f"{column.input}_standardize")(filled)
    if not column.has_missing:
        return standardized
    return keras.layers.Concatenate(name=f"{column.input}_with_missing")([standardized, IsMissing(name=f"{column.input}_missing")(x)])


def one_hot(x, column):
    lookup = keras.layers.StringLookup(vocabulary=column.vocabulary, output_mode="one_hot", num_oov_indices=1, name=f"{column.input}_onehot")
    return keras.layers.Reshape((lookup.vocabulary_size(),), name=f"{column.input}_flat")(lookup(x))


def column_features(x, column):
    """The features of a numeric, categorical (one-hot), set or date column."""
    if column.kind == "numeric":
        return number_features(x, column)
    if column.kind == "categorical":
        return one_hot(x, column)
    if column.kind == "set":
        return SetValues(column.vocabulary, column.separator, name=f"{column.input}_values")(x)
    if column.kind == "date":
        return DateParts(column.mean, column.variance, name=f"{column.input}_date")(x)
    raise ConfigError(f"data.table: column '{column.name}' is {column.kind}, which only model.type: mixed reads (an encoder per column)")


def encode(inputs: dict, spec):
    """The concatenated feature vector of every column."""
    features = [column_features(inputs[column.input], column) for column in spec.columns]
    return features[0] if len(features) == 1 else keras.layers.Concatenate(name="features")(features)
