"""TensorFlow Datasets: any registered name, TFDS split strings, local data_dir/manual_dir."""

from __future__ import annotations

import socket

from ..errors import ConfigError, RunFailed
from ..registry import did_you_mean
from .source import Split, SplitsRead

# Where most TFDS datasets download from; if its name does not even resolve, we are offline.
_PROBE_HOST = "storage.googleapis.com"


def _offline() -> bool:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(3)
    try:
        socket.getaddrinfo(_PROBE_HOST, 443)
        return False
    except OSError:
        return True
    finally:
        socket.setdefaulttimeout(previous)


def _how_to_supply(name: str, data_dir: str | None) -> str:
    return (
        "offline, `dlopt train configs/cnn_digits.yaml` trains on digits installed with scikit-learn (data.source: sklearn), "
        f"and data.source idx, npz, image_folder or csv read files you have; or run `tfds build {name} --data_dir DIR` on a "
        f"connected machine and copy DIR here as data.data_dir (now {data_dir or '~/tensorflow_datasets'}), or put its source files in data.manual_dir"
    )


def get_builder(name: str, data_dir: str | None):
    """The TFDS builder, or a config error naming close dataset names."""
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ConfigError(
            f"data.name: unknown TFDS dataset '{name}'{did_you_mean(name, tfds.list_builders())}"
        ) from None


def prepare(builder, data_dir: str | None, manual_dir: str | None) -> None:
    """Download and prepare the dataset unless it already is; one clear line when that cannot be."""
    import tensorflow_datasets as tfds

    if builder.is_prepared():
        return
    name = builder.info.name
    if manual_dir is None and _offline():
        raise RunFailed(f"data.name: TFDS cannot download '{name}' (no network); {_how_to_supply(name, data_dir)}")
    try:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    except Exception as exc:  # TFDS raises many kinds: network, checksum, missing manual files
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise RunFailed(f"data.name: TFDS could not prepare '{name}': {reason}; {_how_to_supply(name, data_dir)}") from None


def split_names(builder) -> set[str]:
    """The dataset's split names; empty when TFDS does not know them yet (then any name is tried)."""
    return set(builder.info.splits.keys())


def load(builder, split: str):
    """(unbatched (x, y) dataset, number of examples) for one TFDS split string."""
    base = split.split("[")[0].strip()
    known = sorted(split_names(builder))
    if known and base not in known:
        raise ConfigError(f"data.splits: TFDS dataset '{builder.info.name}' has no split '{base}'{did_you_mean(base, known)}; it has: {', '.join(known)}")
    if builder.info.supervised_keys is None:
        raise RunFailed(f"data.name: TFDS dataset '{builder.info.name}' has no (input, label) pairs (supervised_keys)")
    dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    count = int(dataset.cardinality())
    if count < 0:  # unknown to tf.data: count once
        count = int(dataset.reduce(0, lambda n, _: n + 1))
    return dataset, count


def num_classes(builder) -> int | None:
    import tensorflow_datasets as tfds

    _, label_key = builder.info.supervised_keys[:2]
    feature = builder.info.features[label_key] if isinstance(label_key, str) else None
    return feature.num_classes if isinstance(feature, tfds.features.ClassLabel) else None


def class_names(builder) -> list[str] | None:
    """The label feature's class names, when TFDS knows them."""
    import tensorflow_datasets as tfds

    _, label_key = builder.info.supervised_keys[:2]
    feature = builder.info.features[label_key] if isinstance(label_key, str) else None
    return list(feature.names) if isinstance(feature, tfds.features.ClassLabel) else None


class TfdsSource:
    """`tfds`: a TensorFlow Datasets name; its splits read as tf.data datasets, its class names
    and count from its metadata."""

    def __init__(self, config):
        self.config = config
        self.data = config.data

    def preflight(self) -> None:  # unknown names and offline downloads fail here, before any run exists
        prepare(get_builder(self.data.name, self.data.data_dir), self.data.data_dir, self.data.manual_dir)

    def read(self, wanted, roles) -> SplitsRead:
        data = self.data
        builder = get_builder(data.name, data.data_dir)
        prepare(builder, data.data_dir, data.manual_dir)
        present = split_names(builder)
        names = {"train": data.splits.train, "val": data.splits.val, "test": data.splits.test}
        if names["val"] is None:
            names["val"] = next((s for s in ("validation", "val") if s in present), None)
        splits = {}
        if names["val"] is None:  # carve the end of the training split off for validation
            dataset, count = load(builder, names["train"])
            carve = max(1, round(count * data.val_fraction))
            splits["train"] = Split(count=count - carve, dataset=dataset.take(count - carve))
            splits["val"] = Split(count=carve, dataset=dataset.skip(count - carve))
            names["val"] = f"last {carve} of {names['train']}"
        for role in wanted:
            if names[role] is not None and role not in splits:
                dataset, count = load(builder, names[role])
                splits[role] = Split(count=count, dataset=dataset)
        return SplitsRead(splits, names, class_names(builder), metadata_classes=num_classes(builder))
