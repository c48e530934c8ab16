"""Augmentation of training batches: Keras preprocessing layers where Keras has a fitting one, a
few TF ops where it does not (per-example crop, exact-area cutmix, mixup on any input, noise,
sequence scaling and time masking).

`check` refuses operations that do not fit the data (a config error naming `data.augment[i]`);
`augmenter` returns the function tf.data maps over training batches: (x, y) -> (x, y), with x
float32 and, for classification, y one-hot (so mixup and cutmix can mix labels).
"""

from __future__ import annotations

from ..config.augment import IMAGE_OPS, LABEL_MIXING_OPS, SEQUENCE_OPS
from ..errors import ConfigError


def check(ops, input_shape: tuple, integer_inputs: bool, task: str) -> None:
    for i, op in enumerate(ops):
        where = f"data.augment[{i}].type: {op.type}"
        if op.type in IMAGE_OPS and len(input_shape) != 3:
            raise ConfigError(f"{where} needs image inputs (height, width, channels); the data's inputs have shape {input_shape}")
        if op.type in SEQUENCE_OPS and len(input_shape) != 2:
            raise ConfigError(f"{where} needs sequence inputs (time steps, features); the data's inputs have shape {input_shape}")
        if op.type in LABEL_MIXING_OPS and task != "classification":
            raise ConfigError(f"{where} mixes class labels and needs classification data; this data is {task}")
        if op.type in ("gaussian_noise", "mixup") and integer_inputs and len(input_shape) == 1:
            raise ConfigError(f"{where} needs numeric features; the inputs are integer ids (tokens)")


def mixes_labels(ops) -> bool:
    return any(op.type in LABEL_MIXING_OPS for op in ops)


def augmenter(ops, input_shape: tuple, default_value_range: tuple[float, float], seed: int):
    """The per-batch function for tf.data's map; each op seeded from `seed` and its position."""
    steps = [_build(op, input_shape, tuple(getattr(op, "value_range", None) or default_value_range), seed + 1009 * (i + 1)) for i, op in enumerate(ops)]

    def augment(x, y):
        for step in steps:
            x, y = step(x, y)
        return x, y

    # the Keras layers' random-number states, which a resumed run carries on from
    augment.random_states = lambda: [v for step in steps for v in getattr(getattr(step, "layer", None), "variables", []) if v.path.endswith("seed_generator_state")]
    return augment


def _images(layer):
    def apply(x, y):
        return layer(x, training=True), y

    apply.layer = layer
    return apply


def _build(op, input_shape, value_range, seed):
    import keras
    import tensorflow as tf

    layers = keras.layers
    low, high = value_range
    kind = op.type
    if kind == "random_flip":
        return _images(layers.RandomFlip(op.mode, seed=seed))
    if kind == "random_rotation":
        return _images(layers.RandomRotation(op.factor, fill_mode=op.fill_mode, fill_value=0.0, seed=seed))
    if kind == "random_zoom":
        return _images(layers.RandomZoom(op.factor, fill_mode=op.fill_mode, fill_value=0.0, seed=seed))
    if kind == "random_translation":
        return _images(layers.RandomTranslation(op.height, op.width, fill_mode=op.fill_mode, fill_value=0.0, seed=seed))
    if kind == "random_crop":
        return _random_crop(op.padding, input_shape, seed)
    if kind == "random_contrast":
        return _images(layers.RandomContrast(op.factor, value_range=value_range, seed=seed))
    if kind == "random_brightness":
        return _images(layers.RandomBrightness(op.factor, value_range=value_range, seed=seed))
    if kind == "random_erasing":
        erase = layers.RandomErasing(factor=(op.probability, op.probability), scale=tuple(op.scale), fill_value=op.value, value_range=value_range, seed=seed)
        return _images(erase)
    if kind == "gaussian_noise":
        # keras.layers.GaussianNoise only takes stddev <= 1, too small for 0..255 pixels
        scale = op.stddev * (high - low)
        return lambda x, y: (x + tf.random.normal(tf.shape(x), 0.0, scale, seed=seed), y)
    if kind == "mixup":
        return _mixup(op.alpha, seed)
    if kind == "cutmix":
        return _cutmix(op.alpha, input_shape, seed)
    if kind == "scaling":
        return lambda x, y: (x * tf.random.normal([tf.shape(x)[0], 1, tf.shape(x)[2]], 1.0, op.sigma, seed=seed), y)
    if kind == "time_masking":
        return _time_masking(op, input_shape, seed)
    raise AssertionError(f"no augmentation for {kind}")  # the schema lists every type


def _random_crop(padding: int, input_shape, seed):
    """Zero-pad, then crop each example at its own random offset (Keras' RandomCrop uses one offset per batch)."""
    import tensorflow as tf

    height, width = input_shape[0], input_shape[1]

    def apply(x, y):
        batch = tf.shape(x)[0]
        padded = tf.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
        offsets = tf.random.uniform([batch, 2], 0, 2 * padding + 1, dtype=tf.int32, seed=seed)
        rows = offsets[:, :1] + tf.range(height)[None, :]  # (batch, height)
        cols = offsets[:, 1:] + tf.range(width)[None, :]  # (batch, width)
        x = tf.gather(padded, rows, batch_dims=1)  # (batch, height, padded width, channels)
        x = tf.gather(x, cols, axis=2, batch_dims=1)
        return x, y

    return apply


def _mixup(alpha: float, seed: int):
    """Mix each example with another of the batch, x and y alike, by lambda ~ Beta(alpha, alpha)."""
    import tensorflow as tf

    def apply(x, y):
        batch = tf.shape(x)[0]
        a = tf.random.gamma([batch], alpha, seed=seed)
        b = tf.random.gamma([batch], alpha, seed=seed + 1)
        lam = a / (a + b)
        partner = tf.random.shuffle(tf.range(batch), seed=seed + 2)
        lam_x = tf.reshape(lam, [-1] + [1] * (len(x.shape) - 1))
        lam_y = tf.reshape(lam, [-1] + [1] * (len(y.shape) - 1))
        return lam_x * x + (1 - lam_x) * tf.gather(x, partner), lam_y * y + (1 - lam_y) * tf.gather(y, partner)

    return apply


def _cutmix(alpha: float, input_shape, seed: int):
    """Paste a random box of another example into each image; labels mix by the box's exact area.

    (keras.layers.CutMix weights labels by the drawn ratio, not by the box left after clipping
    at the image border, so its labels can disagree with its pixels by 20%.)"""
    import tensorflow as tf

    height, width = input_shape[0], input_shape[1]

    def apply(x, y):
        batch = tf.shape(x)[0]
        a = tf.random.gamma([batch], alpha, seed=seed)
        b = tf.random.gamma([batch], alpha, seed=seed + 1)
        ratio = tf.sqrt(1.0 - a / (a + b))  # box side as a fraction of the image side
        half_h = tf.cast(ratio * height / 2, tf.int32)[:, None]
        half_w = tf.cast(ratio * width / 2, tf.int32)[:, None]
        centre = tf.random.uniform([batch, 2], 0, 1, seed=seed + 2)
        cy = tf.cast(centre[:, :1] * height, tf.int32)
        cx = tf.cast(centre[:, 1:] * width, tf.int32)
        rows, cols = tf.range(height)[None, :], tf.range(width)[None, :]
        in_rows = (rows >= cy - half_h) & (rows < cy + half_h)  # (batch, height)
        in_cols = (cols >= cx - half_w) & (cols < cx + half_w)  # (batch, width)
        box = in_rows[:, :, None] & in_cols[:, None, :]  # (batch, height, width)
        partner = tf.random.shuffle(tf.range(batch), seed=seed + 3)
        x = tf.where(box[..., None], tf.gather(x, partner), x)
        area = tf.reduce_mean(tf.cast(box, y.dtype), axis=[1, 2])[:, None]
        return x, (1 - area) * y + area * tf.gather(y, partner)

    return apply


def _time_masking(op, input_shape, seed):
    """Set `count` random spans of up to `max_fraction` of the time steps to `value`, per example."""
    import tensorflow as tf

    steps = input_shape[0]
    longest = max(1, int(op.max_fraction * steps))

    def apply(x, y):
        batch = tf.shape(x)[0]
        time = tf.range(steps)[None, :]
        keep = tf.ones([batch, steps], tf.bool)
        for i in range(op.count):
            width = tf.random.uniform([batch, 1], 0, longest + 1, dtype=tf.int32, seed=seed + 2 * i)
            start = tf.random.uniform([batch, 1], 0, steps, dtype=tf.int32, seed=seed + 2 * i + 1)
            keep &= ~((time >= start) & (time < start + width))
        return tf.where(keep[:, :, None], x, tf.cast(op.value, x.dtype)), y

    return apply
