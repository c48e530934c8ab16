"""Split strings with slicing, `train[:90%]` or `train[1000:2000]`, applied to in-memory arrays.

The same syntax TFDS accepts, so a config reads the same whatever its source.
"""

from __future__ import annotations

import re

from ..errors import ConfigError

_SPLIT = re.compile(r"^\s*(?P<name>[A-Za-z0-9_-]+)\s*(?:\[\s*(?P<start>-?\d+%?)?\s*:\s*(?P<stop>-?\d+%?)?\s*\])?\s*$")


def parse_split(text: str) -> tuple[str, str | None, str | None]:
    """'train[:90%]' -> ('train', None, '90%'). Raises ConfigError on anything else."""
    match = _SPLIT.match(text)
    if not match:
        raise ConfigError(f"data.splits: cannot read split {text!r}; expected NAME or NAME[start:stop], e.g. train[:90%]")
    return match["name"], match["start"], match["stop"]


def _index(bound: str | None, size: int, default: int) -> int:
    if bound is None:
        return default
    if bound.endswith("%"):
        return round(int(bound[:-1]) * size / 100)
    return int(bound)


def slice_bounds(text: str, size: int) -> tuple[str, int, int]:
    """The split's base name and [start, stop) indices into that split's `size` examples."""
    name, start, stop = parse_split(text)
    begin, end, _ = slice(_index(start, size, 0), _index(stop, size, size)).indices(size)
    return name, begin, max(begin, end)


def shuffled_order(labels, seed: int, stratify: bool):
    """A seeded permutation of the examples. Stratified (classification): each class is shuffled,
    then the classes are interleaved evenly, so any slice or carved-off end holds every class in
    proportion (to within one example), whatever order the files were listed in. Every class has a
    member in the first half, so a validation carve of less than half never takes a class whole."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    if not stratify:
        return rng.permutation(len(labels))
    position = np.empty(len(labels))
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        # the k-th of n members sits at (k + u) / n of the way along, u uniform in [0, 1);
        # a class of one at u / 2, in the first half (anywhere, it could land in a carve alone)
        position[members] = (np.arange(len(members)) + rng.random(len(members))) / max(len(members), 2)
    return np.argsort(position, kind="stable")
