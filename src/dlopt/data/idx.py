"""The IDX format of MNIST, Fashion-MNIST, KMNIST and EMNIST: `<split>-images-idx3-ubyte[.gz]`."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import RunFailed
from .source import ArraySource

# IDX type codes -> big-endian numpy dtypes
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# what a split is called in the file names of the datasets that ship this way
_ALIASES = {"test": ("test", "t10k"), "train": ("train",)}


def read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise RunFailed(f"data.path: {path} is not an IDX file (bad magic number)")
    dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise RunFailed(f"data.path: {path} is truncated: header says {shape}, file has {len(raw) - offset} data bytes")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def find_file(folder: Path, split: str, kind: str) -> Path:
    """The one file in `folder` holding `kind` ('images' or 'labels') of `split`."""
    found = []
    for alias in _ALIASES.get(split, (split,)):
        for pattern in (f"*{alias}-{kind}*idx*", f"*{alias}_{kind}*idx*", f"*{alias}-{kind}.idx*"):
            found += [p for p in folder.glob(pattern) if p not in found]
    if len(found) != 1:
        listed = ", ".join(sorted(p.name for p in found)) if found else "none"
        raise RunFailed(
            f"data.path: expected one IDX {kind} file for split '{split}' in {folder} "
            f"(named like {split}-{kind}-idx3-ubyte[.gz]), found {listed}"
        )
    return found[0]


def available_splits(folder: Path) -> set[str]:
    names = set()
    for path in folder.glob("*-images*idx*"):
        stem = path.name.split("-images")[0].rsplit("-", 1)[-1]
        names.add("test" if stem == "t10k" else stem)
    return names


def load_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(find_file(folder, split, "images"))
    labels = read_idx(find_file(folder, split, "labels"))
    if len(images) != len(labels):
        raise RunFailed(f"data.path: {folder}: split '{split}' has {len(images)} images but {len(labels)} labels")
    if images.ndim == 3:  # grayscale HxW -> HxWx1, what conv layers expect
        images = images[..., None]
    return images, labels


class IdxSource(ArraySource):
    """`idx`: MNIST-format IDX files in `data.path`."""

    def load_split(self, path, split):
        return load_split(path, split)

    def available_splits(self, path):
        return available_splits(path)
