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
from ..config.schema import FILE_SOURCES, UNORDERED_SOURCES, Config
from ..errors import ConfigError, RunFailed
from ..objectives import label_format
from . import augment, bundled, idx, images, npz, tabular, text_files, tfds_source, timeseries
from .pipeline import batched, feature_statistics
from .splits import shuffled_order, slice_bounds

ROLES = ("train", "val", "test")


@dataclass
class Split:
    """One role's examples before batching: in-memory arrays, or an unbatched tf.data dataset."""

    count: int
    arrays: tuple[np.ndarray, np.ndarray] | None = None
    dataset: Any = None
    labels: np.ndarray | None = None  # a dataset's labels, when known without reading it (image folders)
    cached: bool = False  # the dataset is cached already (image folders: decoded once, before training)


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
    class_names: list[str] | None = None  # when labels were class names (folders, csv) or the source names them
    class_counts: dict[str, dict[str, int]] | None = None  # role -> class name -> examples (classification)
    vectorizer: Any = None  # text: the TextVectorization layer adapted on the training split
    series: Any = None  # time series: scaling and test windows, for the forecast report
    table: Any = None  # tables: the TableSpec the model's input layers are built from
    epoch: Any = None  # a tf.Variable the fit loop sets to the epoch: the training order is drawn from it
    random_states: Any = None  # () -> the augmentation layers' random-number state variables

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
    data = config.data
    if data.source in FILE_SOURCES and not Path(data.path).exists():
        raise ConfigError(f"data.path: no such file or folder: {data.path}")
    if data.source == "csv":  # the columns the config names must be in the file's header
        _check_csv_columns(data)
    if data.source == "tfds":  # unknown names and offline downloads fail here, before any run exists
        tfds_source.prepare(tfds_source.get_builder(data.name, data.data_dir), data.data_dir, data.manual_dir)


def _check_csv_columns(data) -> None:
    path = Path(data.path)
    if data.timeseries is not None:
        files = [path if path.is_file() else path / "series.csv"]
    else:
        files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files or not files[0].exists():
        raise ConfigError(f"data.path: no .csv files in {path}")
    header = tabular.read_header(files[0])
    if data.table is not None:
        tabular.feature_columns(data.table, header, files[0])
        return
    if data.timeseries is not None:
        settings = data.timeseries
        named = [("time_column", [settings.time_column]), ("value_columns", settings.value_columns or []), ("target_columns", settings.target_columns or [])]
        prefix = "data.timeseries"
    else:
        named = [("column", [data.text.column]), ("label_column", [data.text.label_column])]
        prefix = "data.text"
    for key, columns in named:
        missing = [c for c in columns if c not in header]
        if missing:
            raise ConfigError(f"{prefix}.{key}: {files[0]} has no column '{missing[0]}' (has: {', '.join(header)})")


def _reader(config: Config):
    """The source's reader: `load_split(path, split)` -> (inputs, labels) arrays, `available_splits(path)`."""
    data = config.data
    if data.source == "csv":
        return tabular.CsvTable(data.table) if data.table is not None else text_files.CsvText(config)
    if data.source == "sklearn":
        return bundled.Bundled(data.name)
    return {"idx": idx, "npz": npz, "text_folder": text_files.TextFolder(), "image_folder": images}[data.source]


def _shuffles(data) -> bool:
    return data.source in UNORDERED_SOURCES if data.split_shuffle == "auto" else data.split_shuffle


def _array_splits(config: Config, roles, module) -> tuple[dict[str, Split], dict[str, str]]:
    data = config.data
    path = Path(data.path) if data.path else None
    cache: dict[str, tuple] = {}

    def read(split: str) -> tuple[np.ndarray, np.ndarray]:
        base = split.split("[")[0].strip()
        if base not in cache:
            x, y = module.load_split(path, base)
            if _shuffles(data):  # file order is often class order: slices and carves must not follow it
                stratify = data.task != "regression" and y.dtype.kind in "iubOUS"
                order = shuffled_order(y, config.seed, stratify)
                x, y = x[order], y[order]
            cache[base] = (x, y)
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
        ngrams=text.ngrams if text.ngrams > 1 else None,
        standardize=None if text.standardize == "none" else text.standardize,
        name="vectorize",
    )
    if train.arrays is not None:
        texts = tf.data.Dataset.from_tensor_slices(train.arrays[0].astype(str))
    else:
        texts = train.dataset.map(lambda x, y: x)
    vectorizer.adapt(texts.batch(1024))
    if text.min_count > 1:
        vectorizer.set_vocabulary(_common_tokens(vectorizer, texts.batch(1024), text.min_count))
    return vectorizer


def _common_tokens(vectorizer, batches, min_count: int) -> list[str]:
    """The adapted vocabulary (most frequent first) without the tokens fewer than `min_count` texts hold."""
    import keras
    import tensorflow as tf

    vocabulary = vectorizer.get_vocabulary(include_special_tokens=False)
    config = vectorizer.get_config()
    # the same standardisation, split and n-grams, one 0/1 column per token and text: document counts
    in_text = keras.layers.TextVectorization(
        vocabulary=vocabulary, output_mode="multi_hot", sparse=True, standardize=config["standardize"], split=config["split"], ngrams=config["ngrams"]
    )
    counts = tf.zeros([len(vocabulary) + 1], tf.float32)  # column 0: out-of-vocabulary
    for batch in batches:
        counts += tf.cast(tf.sparse.reduce_sum(in_text(batch), axis=0), tf.float32)
    kept = [token for token, count in zip(vocabulary, counts.numpy()[1:]) if count >= min_count]
    if not kept:
        raise RunFailed(f"data.text.min_count: no word is in {min_count} or more training texts; lower it")
    return kept


def _decode_images(config: Config, splits: dict[str, Split], roles) -> None:
    """Image folders: the listed files of each role decoded, resized and cached (see images.decoded_split)."""
    from ..report import stderr

    data = config.data
    bad = images.BadFiles([])
    for role in roles:
        if role in splits:
            paths, labels = splits[role].arrays
            pixels, kept, dataset = images.decoded_split(
                paths, labels, data.image, cache=data.cache, cache_name=role, skip_bad_files=data.skip_bad_files, bad=bad, parallel_calls=data.parallel_calls
            )
            if pixels is not None:  # decoded into memory (`cache: true`)
                splits[role] = Split(count=len(kept), arrays=(pixels, kept))
            else:
                splits[role] = Split(count=len(kept), dataset=dataset, labels=kept, cached=isinstance(data.cache, str))
    if bad.warning():
        stderr.print(bad.warning(), soft_wrap=True)


def _tabulate(config: Config, splits: dict[str, Split], reader) -> tabular.TableSpec:
    """Tables: column kinds and statistics from the training cells; every split's cells -> model inputs."""
    data = config.data
    if _preprocessing_set(data):
        raise ConfigError("data.preprocess: not for tables; the model standardises numeric columns itself (training statistics)")
    if data.augment:
        raise ConfigError(f"data.augment[0].type: {data.augment[0].type} does not apply to table rows")
    if reader.dropped:
        from ..report import stderr

        stderr.print(f"warning: data.table.label_column: skipped {reader.dropped} rows whose label is missing", soft_wrap=True)
    spec = tabular.TableSpec.fit(splits["train"].arrays[0], reader.features, data.table)
    for split in splits.values():
        split.arrays = (spec.arrays(split.arrays[0], data.table), split.arrays[1])
    return spec


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


def build(config: Config, roles=ROLES, with_statistics: bool = True, for_training: bool = True) -> Data:
    """Read the data for `roles` and return batched pipelines; statistics come from train only.

    `for_training=False` (evaluation): no role is shuffled or augmented, the train split included."""
    data = config.data
    metadata_classes = None
    wanted = tuple(dict.fromkeys(("train",) + tuple(roles)))  # train decides task and statistics
    series = table = reader = None
    source_class_names = None
    if data.source == "tfds":
        splits, names, builder = _tfds_splits(config, wanted)
        metadata_classes = tfds_source.num_classes(builder)
        source_class_names = tfds_source.class_names(builder)
    elif data.timeseries is not None:
        if _preprocessing_set(data):
            raise ConfigError("data.preprocess: not for time series; data.timeseries.scale scales them (on the training part only)")
        arrays, series = timeseries.load(Path(data.path), data.timeseries)
        splits = {role: Split(count=len(arrays[role][0]), arrays=arrays[role]) for role in wanted}
        names = {role: f"{role} part: {series.lengths[role]} time steps, {len(arrays[role][0])} windows" for role in wanted}
    else:
        reader = _reader(config)
        splits, names = _array_splits(config, wanted, reader)
    class_names = _class_names_to_ids(splits)
    if isinstance(reader, bundled.Bundled):
        source_class_names = reader.class_names()
    if data.source == "image_folder":
        _decode_images(config, splits, roles)
    if data.table is not None:
        table = _tabulate(config, splits, reader)
    train = splits["train"]
    task, num_classes, target_shape = _task_and_classes(config, train, metadata_classes)
    fmt = label_format(config.train, task, num_classes, mixed_labels=augment.mixes_labels(data.augment))
    class_names = _named_classes(data, class_names or source_class_names, task, num_classes)
    class_counts = _class_counts(splits, roles, num_classes, class_names) if task == "classification" else None
    probe = next(splits[role] for role in roles if role in splits) if data.source == "image_folder" else train

    text = _is_text(probe)
    vectorizer = augment_batch = None
    if table is not None:
        input_shape = (len(table.columns),)
    elif text:
        if _preprocessing_set(data):
            raise ConfigError("data.preprocess: rescale and standardize apply to numbers; these inputs are text (see data.text)")
        if data.augment:
            raise ConfigError(f"data.augment[0].type: {data.augment[0].type} needs numeric inputs; these inputs are text")
        input_shape = (data.text.sequence_length,)
        tta.check(data.tta, input_shape, task)
        if with_statistics:
            vectorizer = _adapted_vectorizer(data.text, train)
    else:
        if probe.arrays is not None:
            input_shape, raw_dtype = tuple(probe.arrays[0].shape[1:]), probe.arrays[0].dtype
        else:
            spec = probe.dataset.element_spec[0]
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
    import tensorflow as tf

    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
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
                deterministic=config.train.deterministic != "off",
                cache_name=role,
                epoch=epoch,
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
        class_counts=class_counts,
        vectorizer=vectorizer,
        series=series,
        epoch=epoch,
        random_states=getattr(augment_batch, "random_states", None),
        table=table,
    )
