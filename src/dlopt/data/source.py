"""The `Source` protocol every data source follows, and the reading of splits that sources of
in-memory arrays share.

A source (registered in config/data.py's `SOURCES`, one module each) checks what it can before a
run folder exists (`preflight`) and reads the examples of the roles asked for (`read`): train,
validation (the dataset's own, or carved off train) and test, each sliced as the config says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config.data import SOURCES
from ..errors import ConfigError, RunFailed
from .splits import shuffled_order, slice_bounds


@dataclass
class Split:
    """One role's examples before batching: in-memory arrays, or an unbatched tf.data dataset."""

    count: int
    arrays: tuple[np.ndarray, np.ndarray] | None = None
    dataset: Any = None
    labels: np.ndarray | None = None  # a dataset's labels, when known without reading it (image folders)
    cached: bool = False  # the dataset is cached already (image folders: decoded once, before training)


@dataclass
class SplitsRead:
    """What a source read: each role's split and the split string it came from, and what the
    source knows about the data (class names, the class count of its metadata, a series, a table)."""

    splits: dict[str, Split]
    names: dict[str, str]
    class_names: list[str] | None = None
    metadata_classes: int | None = None
    series: Any = None  # time series: scaling and test windows, for the forecast report
    table: Any = None  # tables: the TableSpec the model's input layers are built from
    value_max: float | None = None  # the largest value the source gives (16 for scikit-learn's digits)


class Source(Protocol):
    def preflight(self) -> None:
        """Checks that would otherwise fail after the run folder exists (a missing path, an
        unknown dataset): a run that cannot start leaves nothing behind."""

    def read(self, wanted: tuple[str, ...], roles: tuple[str, ...]) -> SplitsRead:
        """The splits of `wanted` (train first: it decides the task and the statistics); `roles`
        are those the caller will batch (the others are read only for what they tell)."""


def source_for(config) -> Source:
    """The configured source, ready to read."""
    return SOURCES.get(config.data.source).build(config)


class ArraySource:
    """A source that reads each split into (inputs, labels) arrays: `load_split(path, split)` and
    `available_splits(path)` are the source's own; slicing, shuffling before slicing, carving
    validation off train and class names to ids are shared."""

    def __init__(self, config):
        self.config = config
        self.data = config.data
        self.path = Path(self.data.path) if self.data.path else None

    def load_split(self, path: Path | None, split: str) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def available_splits(self, path: Path | None) -> set[str]:
        return set()

    def source_class_names(self) -> list[str] | None:
        return None

    def value_max(self) -> float | None:
        """The largest value an input can take, when the source knows it (8-bit images: 255)."""
        return None

    def preflight(self) -> None:
        if SOURCES.get(self.data.source).files and not self.path.exists():
            raise ConfigError(f"data.path: no such file or folder: {self.data.path}")

    def _shuffles(self) -> bool:
        unordered = SOURCES.get(self.data.source).unordered
        return unordered if self.data.split_shuffle == "auto" else self.data.split_shuffle

    def read(self, wanted, roles) -> SplitsRead:
        splits, names = self._array_splits(wanted)
        class_names = class_names_to_ids(splits) or self.source_class_names()
        return SplitsRead(splits, names, class_names, value_max=self.value_max())

    def _array_splits(self, roles) -> tuple[dict[str, Split], dict[str, str]]:
        data = self.data
        cache: dict[str, tuple] = {}

        def read(split: str) -> tuple[np.ndarray, np.ndarray]:
            base = split.split("[")[0].strip()
            if base not in cache:
                x, y = self.load_split(self.path, base)
                if self._shuffles():  # file order is often class order: slices and carves must not follow it
                    by = y if y.ndim == 1 else y[:, 0]  # several outputs: the first one's values
                    stratify = data.task != "regression" and by.dtype.kind in "iubOUS" and (by is y or len(set(by)) <= 1000)
                    order = shuffled_order(by, self.config.seed, stratify)
                    x, y = x[order], y[order]
                cache[base] = (x, y)
            x, y = cache[base]
            _, start, stop = slice_bounds(split, len(x))
            return x[start:stop], y[start:stop]

        names = {"train": data.splits.train, "val": data.splits.val, "test": data.splits.test}
        arrays = {}
        if names["val"] is None:
            present = self.available_splits(self.path)
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


def class_names_to_ids(splits: dict[str, Split]) -> list[str] | None:
    """Labels given as class names (text_folder, csv) become ids, numbered from the training split."""
    train = splits["train"]
    if train.arrays is None or train.arrays[1].dtype.kind not in "OUS" or train.arrays[1].ndim > 1:  # several outputs: data/table_outputs.py
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
