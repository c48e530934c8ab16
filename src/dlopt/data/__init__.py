"""Data: read the configured source, carve splits, and return batched tf.data pipelines.

`build(config)` returns a `Data`: one pipeline per role (train, val, test) plus what the model needs
to know about the data (input shape, task, classes, training statistics for standardisation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import tta
from ..config.schema import FILE_SOURCES, Config
from ..errors import ConfigError, RunFailed
from ..objectives import label_format
from . import augment, idx, npz, text_files, tfds_source, timeseries
from .pipeline import batched, feature_statistics
from .splits import slice_bounds

ROLES = ("train", "val", "test")


@dataclass
class Split:
    """One role's examples before batching: in-memory arrays, or an unbatched tf.data dataset."""

    count: int
    arrays: tuple[np.ndarray, np.ndarray] | None = None
    dataset: Any = None


@dataclass
class Data:
    pipelines: dict[str, Any]  # role -> batched tf.data.Dataset of (x, y)
    counts: dict[str, int]  # role -> examples
    input_shape: tuple
    task: str  # classification | regression
    num_classes: int | None
    target_shape: tuple  # per-example regression target shape, () for a scalar
    label_format: str  # sparse | onehot | binary | value
    batch_size: int
    steps_per_epoch: int
    mean: np.ndarray | None = None  # training-split statistics after rescale, for standardize
    variance: np.ndarray | None = None
    split_names: dict[str, str] = field(default_factory=dict)  # role -> the split string read
    class_names: list[str] | None = None  # when labels were class names (text_folder, csv)
    vectorizer: Any = None  # text: the TextVectorization layer adapted on the training split
    series: Any = None  # time series: scaling and test windows, for the forecast report


def preflight(config: Config) -> None:
    """Checks that would otherwise fail after the run folder exists (a missing path, an unknown or
    undownloadable TFDS dataset), so a run that cannot start leaves nothing behind."""
    data = config.data
    if data.source in FILE_SOURCES and not Path(data.path).exists():
        raise ConfigError(f"data.path: no such file or folder: {data.path}")
    if data.source == "tfds":  # unknown names and offline downloads fail here, before any run exists
        tfds_source.prepare(tfds_source.get_builder(data.name, data.data_dir), data.data_dir, data.manual_dir)


def _array_splits(config: Config, roles) -> tuple[dict[str, Split], dict[str, str]]:
    data = config.data
    path = Path(data.path)
    module = {"idx": idx, "npz": npz, "text_folder": text_files.TextFolder(), "csv": text_files.CsvText(config)}[data.source]
    cache: dict[str, tuple] = {}

    def read(split: str) -> tuple[np.ndarray, np.ndarray]:
        base = split.split("[")[0].strip()
        if base not in cache:
            cache[base] = module.load_split(path, base)
        x, y = cache[base]
        _, start, stop = slice_bounds(split, len(x))
        return x[start:stop], y[start:stop]

    names = {"train": data.splits.train, "val": data.splits.val, "test": data.splits.test}
    arrays = {}
    if names["val"] is None:
        present = module.available_splits(path)
        names["val"] = next((s for s in ("validation", "val") if s in present), None)
        if names["val"] is None:  # carve the end of the training split off for validation
            x, y = read(names["train"])
            carve = max(1, round(len(x) * data.val_fraction))
            arrays["train"], arrays["val"] = (x[:-carve], y[:-carve]), (x[-carve:], y[-carve:])
            names["val"] = f"last {carve} of {names['train']}"
    splits = {}
    for role in roles:
        if names[role] is None:
            continue
        x, y = arrays[role] if role in arrays else read(names[role])
        if len(x) == 0:
            raise ConfigError(f"data.splits.{role}: split '{names[role]}' is empty")
        splits[role] = Split(count=len(x), arrays=(x, y))
    return splits, names


def _tfds_splits(config: Config, roles) -> tuple[dict[str, Split], dict[str, str], Any]:
    data = config.data
    builder = tfds_source.get_builder(data.name, data.data_dir)
    tfds_source.prepare(builder, data.data_dir, data.manual_dir)
    present = tfds_source.split_names(builder)
    names = {"train": data.splits.train, "val": data.splits.val, "test": data.splits.test}
    if names["val"] is None:
        names["val"] = next((s for s in ("validation", "val") if s in present), None)
    splits = {}
    if names["val"] is None:  # carve the end of the training split off for validation
        dataset, count = tfds_source.load(builder, names["train"])
        carve = max(1, round(count * data.val_fraction))
        splits["train"] = Split(count=count - carve, dataset=dataset.take(count - carve))
        splits["val"] = Split(count=carve, dataset=dataset.skip(count - carve))
        names["val"] = f"last {carve} of {names['train']}"
    for role in roles:
        if names[role] is not None and role not in splits:
            dataset, count = tfds_source.load(builder, names[role])
            splits[role] = Split(count=count, dataset=dataset)
    return splits, names, builder


def _labels_of(split: Split) -> np.ndarray:
    if split.arrays is not None:
        return split.arrays[1]
    return np.concatenate([y for _, y in split.dataset.batch(4096).as_numpy_iterator()])


def _task_and_classes(config: Config, train: Split, metadata_classes: int | None):
    data = config.data
    if train.arrays is None and metadata_classes and data.task != "regression":
        return "classification", data.num_classes or metadata_classes, ()  # TFDS ClassLabel: no scan
    labels = _labels_of(train)
    task = data.task
    if task == "auto":
        task = "classification" if np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool else "regression"
    if task == "regression":
        return task, None, tuple(labels.shape[1:])
    if labels.ndim > 1 and labels.shape[1:] != (1,):
        raise RunFailed(f"data: classification labels must be class ids, one per example; got shape {labels.shape[1:]} per example")
    classes = data.num_classes or metadata_classes or int(labels.max()) + 1
    if labels.min() < 0 or labels.max() >= classes:
        raise RunFailed(f"data: labels run from {labels.min()} to {labels.max()}, outside 0..{classes - 1} (data.num_classes)")
    return task, classes, ()


def _preprocessing_set(data) -> bool:
    return data.preprocess.rescale is not None or data.preprocess.standardize != "none"


def _is_text(split: Split) -> bool:
    if split.arrays is not None:
        return split.arrays[0].dtype.kind in "OUS"
    import tensorflow as tf

    return split.dataset.element_spec[0].dtype == tf.string


def _class_names_to_ids(splits: dict[str, Split]) -> list[str] | None:
    """Labels given as class names (text_folder, csv) become ids, numbered from the training split."""
    train = splits["train"]
    if train.arrays is None or train.arrays[1].dtype.kind not in "OUS":
        return None
    names = sorted({str(label) for label in train.arrays[1]})
    ids = {name: i for i, name in enumerate(names)}
    for role, split in splits.items():
        labels = [str(label) for label in split.arrays[1]]
        unknown = sorted(set(labels) - set(ids))
        if unknown:
            raise RunFailed(f"data: the {role} split has label '{unknown[0]}', which the training split never uses (its classes: {', '.join(names)})")
        split.arrays = (split.arrays[0], np.array([ids[label] for label in labels], dtype=np.int64))
    return names


def _adapted_vectorizer(text, train: Split):
    """A TextVectorization layer whose vocabulary comes from the training texts only."""
    import keras
    import tensorflow as tf

    vectorizer = keras.layers.TextVectorization(
        max_tokens=text.max_tokens,
        output_sequence_length=text.sequence_length,
        standardize=None if text.standardize == "none" else text.standardize,
        name="vectorize",
    )
    if train.arrays is not None:
        texts = tf.data.Dataset.from_tensor_slices(train.arrays[0].astype(str))
    else:
        texts = train.dataset.map(lambda x, y: x)
    vectorizer.adapt(texts.batch(1024))
    return vectorizer


def build(config: Config, roles=ROLES, with_statistics: bool = True, for_training: bool = True) -> Data:
    """Read the data for `roles` and return batched pipelines; statistics come from train only.

    `for_training=False` (evaluation): no role is shuffled or augmented, the train split included."""
    data = config.data
    metadata_classes = None
    wanted = tuple(dict.fromkeys(("train",) + tuple(roles)))  # train decides task and statistics
    series = None
    if data.source == "tfds":
        splits, names, builder = _tfds_splits(config, wanted)
        metadata_classes = tfds_source.num_classes(builder)
    elif data.timeseries is not None:
        if _preprocessing_set(data):
            raise ConfigError("data.preprocess: not for time series; data.timeseries.scale scales them (on the training part only)")
        arrays, series = timeseries.load(Path(data.path), data.timeseries)
        splits = {role: Split(count=len(arrays[role][0]), arrays=arrays[role]) for role in wanted}
        names = {role: f"{role} part: {series.lengths[role]} time steps, {len(arrays[role][0])} windows" for role in wanted}
    else:
        splits, names = _array_splits(config, wanted)
    class_names = _class_names_to_ids(splits)
    train = splits["train"]
    task, num_classes, target_shape = _task_and_classes(config, train, metadata_classes)
    fmt = label_format(config.train, task, num_classes, mixed_labels=augment.mixes_labels(data.augment))

    text = _is_text(train)
    vectorizer = augment_batch = None
    if text:
        if _preprocessing_set(data):
            raise ConfigError("data.preprocess: rescale and standardize apply to numbers; these inputs are text (see data.text)")
        if data.augment:
            raise ConfigError(f"data.augment[0].type: {data.augment[0].type} needs numeric inputs; these inputs are text")
        input_shape = (data.text.sequence_length,)
        tta.check(data.tta, input_shape, task)
        if with_statistics:
            vectorizer = _adapted_vectorizer(data.text, train)
    else:
        if train.arrays is not None:
            input_shape, raw_dtype = tuple(train.arrays[0].shape[1:]), train.arrays[0].dtype
        else:
            spec = train.dataset.element_spec[0]
            input_shape, raw_dtype = tuple(spec.shape), np.dtype(spec.dtype.as_numpy_dtype)
            if None in input_shape:
                raise RunFailed(f"data: inputs of varying shape {input_shape} are not supported for this model; resize them first")
        augment.check(data.augment, input_shape, np.issubdtype(raw_dtype, np.integer), task)
        tta.check(data.tta, input_shape, task)
        if data.augment and "train" in roles and for_training:
            value_range = (0.0, 255.0) if raw_dtype == np.uint8 else (0.0, 1.0)
            augment_batch = augment.augmenter(data.augment, input_shape, value_range, config.seed)

    mean = variance = None
    if with_statistics and data.preprocess.standardize != "none" and not text:
        mean, variance = feature_statistics(train, data.preprocess.rescale or 1.0, per_channel=data.preprocess.standardize == "per_channel")

    batch_size = train.count if data.batch_size == "full" else data.batch_size
    pipelines = {}
    for role in roles:
        if role in splits:
            pipelines[role] = batched(
                splits[role],
                batch_size=batch_size if role == "train" else min(batch_size, 1024),
                training=role == "train" and for_training,
                label_format=fmt,
                num_classes=num_classes,
                shuffle_buffer=data.shuffle_buffer,
                cache=data.cache,
                seed=config.seed,
                augment=augment_batch,
                parallel_calls=data.parallel_calls,
                prefetch=data.prefetch,
                deterministic=config.train.deterministic,
                cache_name=role,
            )
    return Data(
        pipelines=pipelines,
        counts={role: splits[role].count for role in roles if role in splits},
        input_shape=input_shape,
        task=task,
        num_classes=num_classes,
        target_shape=target_shape,
        label_format=fmt,
        batch_size=batch_size,
        steps_per_epoch=math.ceil(train.count / batch_size),
        mean=mean,
        variance=variance,
        split_names={role: names[role] for role in roles if names.get(role)},
        class_names=class_names,
        vectorizer=vectorizer,
        series=series,
    )
