"""tf.data pipelines the way the TensorFlow guide recommends: cache, shuffle, batch, map, prefetch."""

from __future__ import annotations

import numpy as np


def _label(y, label_format: str, num_classes: int | None):
    """Labels in the form the loss expects."""
    import tensorflow as tf

    if label_format == "onehot":
        return tf.one_hot(tf.cast(tf.reshape(y, [-1]), tf.int32), num_classes)
    if label_format == "binary":
        return tf.cast(tf.reshape(y, [-1, 1]), tf.float32)
    if label_format == "sparse":
        return tf.cast(y, tf.int32)
    return tf.cast(y, tf.float32)  # values, multi-hot


def _encode(label_format, num_classes):
    """Per-batch transform: float32 inputs, and labels in the form the loss expects (several
    outputs: `label_format` and `num_classes` are dicts by output name, as the labels are)."""
    import tensorflow as tf

    def encode(x, y):
        if isinstance(x, dict):  # table columns: numbers are float32 already, strings stay strings
            pass
        elif x.dtype != tf.string:  # text stays text: the model vectorises it
            x = tf.cast(x, tf.float32)
        if isinstance(label_format, dict):
            return x, {name: _label(y[name], label_format[name], num_classes[name]) for name in label_format}
        return x, _label(y, label_format, num_classes)

    return encode


def batched(
    split, *, batch_size: int, training: bool, label_format: str, num_classes, shuffle_buffer, cache, seed: int,
    augment=None, parallel_calls="auto", prefetch="auto", deterministic: bool = False, cache_name: str = "split", epoch=None,
):
    """cache -> shuffle -> batch -> encode -> augment (training only) -> prefetch.

    Arrays in memory need no cache: their indices are shuffled and batched, and each batch is one
    gather, so an epoch does no per-example work."""
    import tensorflow as tf

    auto = tf.data.AUTOTUNE
    calls = auto if parallel_calls == "auto" else parallel_calls
    encode = _encode(label_format, num_classes)
    if split.arrays is not None:
        x, y = split.arrays
        x = x.astype(str) if getattr(x, "dtype", None) == object else x  # text: Python strings -> tf.string
        inputs, labels = tf.nest.map_structure(tf.constant, x), tf.nest.map_structure(tf.constant, y)
        dataset = tf.data.Dataset.range(split.count)
        if training:
            dataset = _shuffled(dataset, shuffle_buffer or split.count, seed, epoch)
        take = lambda i: lambda t: tf.gather(t, i)  # noqa: E731  (one batch of every array)
        dataset = dataset.batch(batch_size).map(lambda i: encode(tf.nest.map_structure(take(i), inputs), tf.nest.map_structure(take(i), labels)), num_parallel_calls=calls)
        return _augmented(dataset, training, augment, deterministic, calls).prefetch(auto if prefetch == "auto" else prefetch)
    if split.cached:  # decoded and cached before training (image folders)
        dataset = split.dataset
    elif isinstance(cache, str):  # a folder: decoded examples go to a file, for data too big for memory
        dataset = split.dataset.cache(cache_file(cache, cache_name))
    else:
        dataset = split.dataset.cache() if cache else split.dataset
    if training:
        dataset = _shuffled(dataset, shuffle_buffer or split.count, seed, epoch)
    # mapping whole batches is vectorised: one op call per batch instead of per example
    dataset = dataset.batch(batch_size).map(encode, num_parallel_calls=calls)
    return _augmented(dataset, training, augment, deterministic, calls).prefetch(auto if prefetch == "auto" else prefetch)


def _shuffled(dataset, buffer: int, seed: int, epoch):
    """A new order each epoch, drawn from (seed, epoch) alone: `epoch` is a variable the fit loop sets
    as each epoch begins, so a resumed run reads its next epoch in the order an uninterrupted run
    would, however often the data was read before."""
    import tensorflow as tf

    if epoch is None:
        return dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    count = dataset.cardinality()
    orders = tf.data.Dataset.from_tensors(0).flat_map(lambda _: dataset.shuffle(buffer, seed=seed * 1_000_003 + epoch.read_value(), reshuffle_each_iteration=False))
    return orders.apply(tf.data.experimental.assert_cardinality(count)) if count >= 0 else orders


def _augmented(dataset, training: bool, augment, deterministic: bool, calls):
    if training and augment is not None:
        # random ops drawn in parallel calls run in no fixed order: deterministic runs draw one batch at a time
        dataset = dataset.map(augment, num_parallel_calls=1 if deterministic else calls, deterministic=deterministic or None)
    return dataset


def cache_file(folder: str, name: str) -> str:
    """A cache file of this process in `folder`, removed when the process ends (tf.data locks it while writing)."""
    import atexit
    import glob
    import os

    os.makedirs(folder, exist_ok=True)
    prefix = os.path.join(folder, f"dlopt-{name}-{os.getpid()}")
    atexit.register(lambda: [os.remove(f) for f in glob.glob(prefix + "*") if os.path.exists(f)])
    return prefix


def feature_statistics(split, rescale: float, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the (rescaled) training inputs: over everything, or per last-axis channel."""
    total = total_sq = None
    count = 0
    if split.arrays is not None:
        chunks = (split.arrays[0][i : i + 8192] for i in range(0, len(split.arrays[0]), 8192))
    else:
        chunks = (x for x, _ in split.dataset.batch(8192).as_numpy_iterator())
    for chunk in chunks:
        chunk = chunk.astype(np.float64) * rescale
        axes = tuple(range(chunk.ndim - 1)) if per_channel else None
        s, sq = chunk.sum(axis=axes), np.square(chunk).sum(axis=axes)
        total, total_sq = (s, sq) if total is None else (total + s, total_sq + sq)
        count += chunk.size // (chunk.shape[-1] if per_channel else 1)
    mean = total / count
    variance = np.maximum(total_sq / count - np.square(mean), 0.0)
    return np.asarray(mean, dtype=np.float32).reshape(-1), np.asarray(variance, dtype=np.float32).reshape(-1)
