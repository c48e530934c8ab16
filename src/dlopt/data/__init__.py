"""Data: read the configured source, carve splits, and return batched tf.data pipelines.

`build(config)` returns a `Data`: one pipeline per role (train, val, test) plus what the model needs
to know about the data (input shape, task, classes, training statistics for standardisation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import tta
from ..config.schema import Config
from ..errors import ConfigError, RunFailed
from ..objectives import Objective
from . import augment, table_outputs
from .pipeline import batched, feature_statistics
from .source import Split, source_for
from .statistics import input_statistics, table_statistics
from .vocabulary import adapted_vectorizer

ROLES = ("train", "val", "test")


@dataclass
class Data:
    pipelines: dict[str, Any]  # role -> batched tf.data.Dataset of (x, y)
    counts: dict[str, int]  # role -> examples
    input_shape: tuple
    task: str  # classification | regression | several (outputs: table.outputs)
    num_classes: int | None
    target_shape: tuple  # per-example regression target shape, () for a scalar
    objective: Objective  # loss, metrics and the label format, resolved once for this data (several outputs: Objectives)
    batch_size: int
    steps_per_epoch: int
    mean: np.ndarray | None = None  # training-split statistics after rescale, for standardize
    variance: np.ndarray | None = None
    split_names: dict[str, str] = field(default_factory=dict)  # role -> the split string read
    class_names: list[str] | None = None  # when labels were class names (folders, csv) or the source names them
    class_counts: dict[str, dict[str, int]] | None = None  # role -> class name -> examples (classification)
    vectorizer: Any = None  # text: the TextVectorization layer adapted on the training split
    document_counts: Any = None  # TF-IDF models: (training texts holding each token id, training texts)
    series: Any = None  # time series: scaling and test windows, for the forecast report
    table: Any = None  # tables: the TableSpec the model's input layers are built from
    epoch: Any = None  # a tf.Variable the fit loop sets to the epoch: the training order is drawn from it
    random_states: Any = None  # () -> the augmentation layers' random-number state variables
    input_statistics: dict | None = None  # the training inputs' range, means, ... (data/statistics.py)
    images: dict | None = None  # a table's image columns, decoded once (`cache: true`): input name -> (paths, uint8 pixels)

    @property
    def label_format(self) -> str:  # sparse | onehot | binary | value | several
        return self.objective.label_format

    @property
    def outputs(self) -> list | None:
        """Several outputs (`data.table.outputs`): data/table_outputs.OutputColumn each; else None."""
        return self.table.outputs if self.table is not None else None

    def overview(self) -> list[str]:
        """Examples per split, then for a few classes the examples per class (the run's first lines)."""
        text = ", ".join(f"{self.counts[role]:,} {role}" for role in ROLES if role in self.counts) + " examples"
        if not self.class_counts:
            return [text]
        names = list(next(iter(self.class_counts.values())))
        if len(names) > 10:
            train = list(self.class_counts.get("train", {}).values()) or [0]
            return [f"{text}; {len(names)} classes, {min(train):,} to {max(train):,} training examples each"]
        roles = [role for role in ROLES if role in self.class_counts]
        per_class = ", ".join(f"{name} {'/'.join(str(self.class_counts[r].get(name, 0)) for r in roles)}" for name in names)
        return [text, f"per class ({'/'.join(roles)}): {per_class}"]

    def missing_classes(self) -> list[str]:
        """Warnings for classes absent from a split: the split then cannot judge them."""
        return [
            f"warning: class '{name}' has no examples in the {role} split"
            for role, counts in (self.class_counts or {}).items()
            for name, n in counts.items()
            if n == 0
        ]


def preflight(config: Config) -> None:
    """Checks that would otherwise fail after the run folder exists (a missing path, an unknown or
    undownloadable TFDS dataset), so a run that cannot start leaves nothing behind."""
    source_for(config).preflight()


def _labels_of(split: Split) -> np.ndarray:
    if split.arrays is not None:
        return split.arrays[1]
    if split.labels is not None:
        return split.labels
    return np.concatenate([y for _, y in split.dataset.batch(4096).as_numpy_iterator()])


def _task_and_classes(config: Config, train: Split, metadata_classes: int | None):
    data = config.data
    if train.arrays is None and train.labels is None and metadata_classes and data.task != "regression":
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
        return isinstance(split.arrays[0], np.ndarray) and split.arrays[0].dtype.kind in "OUS"
    import tensorflow as tf

    return split.dataset.element_spec[0].dtype == tf.string


def _training_texts(train: Split):
    import tensorflow as tf

    if train.arrays is not None:
        return tf.data.Dataset.from_tensor_slices(train.arrays[0].astype(str))
    return train.dataset.map(lambda x, y: x)


def _named_classes(data, found: list[str] | None, task: str, num_classes: int | None) -> list[str] | None:
    """`data.class_names` if set (checked against the classes), else the names the source gave."""
    if data.class_names is None or task != "classification":
        return found if task == "classification" else None
    if len(data.class_names) != num_classes:
        raise ConfigError(f"data.class_names: {len(data.class_names)} names for {num_classes} classes; give one name per class, in class-id order")
    return list(data.class_names)


def _class_counts(splits: dict[str, Split], roles, num_classes: int, class_names: list[str] | None) -> dict | None:
    """role -> class name -> examples, where the labels are known without reading the inputs."""
    names = class_names or [str(i) for i in range(num_classes)]
    counts = {}
    for role in roles:
        if role not in splits:
            continue
        split = splits[role]
        labels = split.arrays[1] if split.arrays is not None else split.labels
        if labels is None:  # TFDS: counting would read the whole split
            return None
        per_class = np.bincount(np.asarray(labels).astype(np.int64).reshape(-1), minlength=num_classes)
        counts[role] = {names[i]: int(per_class[i]) for i in range(num_classes)}
    return counts


@dataclass
class Inputs:
    """What the model's input side needs: the shape, and for text the adapted vectorizer, for
    images and sequences the augmentation of training batches."""

    shape: tuple
    is_text: bool = False
    vectorizer: Any = None
    augment_batch: Any = None
    document_counts: Any = None  # TF-IDF models: (texts holding each token id, training texts)


def _inputs(config: Config, read, train: Split, roles, task: str, with_statistics: bool, for_training: bool) -> Inputs:
    """The input shape, checked against preprocessing, augmentation and TTA; text's vocabulary."""
    data = config.data
    if read.table is not None:
        return Inputs((len(read.table.columns),))
    probe = next(read.splits[role] for role in roles if role in read.splits) if data.source == "image_folder" else train
    if _is_text(probe):
        if _preprocessing_set(data):
            raise ConfigError("data.preprocess: rescale and standardize apply to numbers; these inputs are text (see data.text)")
        if data.augment:
            raise ConfigError(f"data.augment[0].type: {data.augment[0].type} needs numeric inputs; these inputs are text")
        shape = (data.text.sequence_length,)
        tta.check(data.tta, shape, task)
        if not with_statistics:
            return Inputs(shape, is_text=True)
        vectorizer, counts = adapted_vectorizer(data.text, _training_texts(train), train.count, count_documents=config.model.uses_tfidf())
        return Inputs(shape, is_text=True, vectorizer=vectorizer, document_counts=counts)
    if probe.arrays is not None:
        shape, raw_dtype = tuple(probe.arrays[0].shape[1:]), probe.arrays[0].dtype
    else:
        spec = probe.dataset.element_spec[0]
        shape, raw_dtype = tuple(spec.shape), np.dtype(spec.dtype.as_numpy_dtype)
        if None in shape:
            raise RunFailed(f"data: inputs of varying shape {shape} are not supported for this model; resize them first")
    augment.check(data.augment, shape, np.issubdtype(raw_dtype, np.integer), task)
    tta.check(data.tta, shape, task)
    augment_batch = None
    if data.augment and "train" in roles and for_training:
        value_range = (0.0, 255.0) if raw_dtype == np.uint8 else (0.0, 1.0)
        augment_batch = augment.augmenter(data.augment, shape, value_range, config.seed)
    return Inputs(shape, augment_batch=augment_batch)


def _pipelines(config: Config, splits: dict[str, Split], roles, batch_size: int, label_format, num_classes, augment_batch, for_training: bool):
    """Each role's batched tf.data pipeline, and the epoch variable the training order is drawn from.
    Several outputs: `label_format` and `num_classes` are dicts by output name."""
    import tensorflow as tf

    data = config.data
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    pipelines = {}
    for role in roles:
        if role in splits:
            pipelines[role] = batched(
                splits[role],
                batch_size=batch_size if role == "train" else min(batch_size, 1024),
                training=role == "train" and for_training,
                label_format=label_format,
                num_classes=num_classes,
                shuffle_buffer=data.shuffle_buffer,
                cache=data.cache,
                seed=config.seed,
                augment=augment_batch,
                parallel_calls=data.parallel_calls,
                prefetch=data.prefetch,
                deterministic=config.train.deterministic != "off",
                cache_name=role,
                epoch=epoch,
            )
    return pipelines, epoch


def build(config: Config, roles=ROLES, with_statistics: bool = True, for_training: bool = True) -> Data:
    """Read the data for `roles` and return batched pipelines; statistics come from train only.

    `for_training=False` (evaluation): no role is shuffled or augmented, the train split included."""
    data = config.data
    wanted = tuple(dict.fromkeys(("train",) + tuple(roles)))  # train decides task and statistics
    read = source_for(config).read(wanted, tuple(roles))
    splits, train = read.splits, read.splits["train"]
    outputs = read.table.outputs if read.table is not None else None
    if outputs is not None:  # several outputs: each has its own type and objective (data/table_outputs.py)
        task, num_classes, target_shape = "several", None, ()
        objective = table_outputs.objectives(outputs)
    else:
        task, num_classes, target_shape = _task_and_classes(config, train, read.metadata_classes)
        series_scale = read.series.target_scaling.scale.tolist() if read.series is not None else None
        objective = Objective.resolve(config.train, task, num_classes, mixed_labels=augment.mixes_labels(data.augment), series_scale=series_scale)
    class_names = _named_classes(data, read.class_names, task, num_classes)
    inputs = _inputs(config, read, train, roles, task, with_statistics, for_training)
    mean = variance = None
    if with_statistics and data.preprocess.standardize != "none" and not inputs.is_text:
        mean, variance = feature_statistics(train, data.preprocess.rescale or 1.0, per_channel=data.preprocess.standardize == "per_channel")
    statistics = None
    if with_statistics and read.table is not None:
        statistics = table_statistics(read.table, train.arrays[0])
    elif with_statistics:
        raw = train.arrays[0].dtype if train.arrays is not None else np.dtype(train.dataset.element_spec[0].dtype.as_numpy_dtype)
        value_max = read.value_max or (255.0 if raw == np.uint8 else None)
        statistics = input_statistics(train, inputs.shape, value_max, inputs.vectorizer)
    batch_size = train.count if data.batch_size == "full" else data.batch_size
    images = _decoded_images(read.table, splits, data) if read.table is not None and data.cache is True and for_training else None
    label_format = objective.label_format if outputs is None else {o.name: o.objective.label_format for o in outputs}
    classes = num_classes if outputs is None else {o.name: len(o.values or ()) for o in outputs}
    pipelines, epoch = _pipelines(config, splits, roles, batch_size, label_format, classes, inputs.augment_batch, for_training)
    return Data(
        pipelines=pipelines,
        counts={role: splits[role].count for role in roles if role in splits},
        input_shape=inputs.shape,
        task=task,
        num_classes=num_classes,
        target_shape=target_shape,
        objective=objective,
        batch_size=batch_size,
        steps_per_epoch=math.ceil(train.count / batch_size),
        mean=mean,
        variance=variance,
        split_names={role: read.names[role] for role in roles if read.names.get(role)},
        class_names=class_names,
        class_counts=_class_counts(splits, roles, num_classes, class_names) if task == "classification" else None,
        vectorizer=inputs.vectorizer,
        document_counts=inputs.document_counts,
        series=read.series,
        epoch=epoch,
        random_states=getattr(inputs.augment_batch, "random_states", None),
        table=read.table,
        input_statistics=statistics,
        images=images,
    )


def _decoded_images(table, splits: dict[str, Split], data) -> dict | None:
    """Every image path of every split read, decoded once before training, per image column: the
    model's ReadImage layers serve them from memory, as an image folder's cache does."""
    from types import SimpleNamespace

    from .images import decoded_paths

    found = {}
    for column in (c for c in table.columns if c.kind == "image"):
        paths = sorted({str(p) for split in splits.values() for p in split.arrays[0][column.input].reshape(-1)})
        found[column.input] = (np.array(paths), decoded_paths(paths, SimpleNamespace(**column.image), data.parallel_calls))
    return found or None
