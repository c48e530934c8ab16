"""NumPy arrays: one `.npz` with `x_<split>`/`y_<split>`, or a folder of `<split>.npz` with `x`/`y`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import RunFailed
from .source import ArraySource


def available_splits(path: Path) -> set[str]:
    if path.is_dir():
        return {p.stem for p in path.glob("*.npz")}
    with np.load(path, allow_pickle=False) as arrays:
        return {key[2:] for key in arrays.files if key.startswith("x_")}


def load_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    if path.is_dir():
        file, keys = path / f"{split}.npz", ("x", "y")
    else:
        file, keys = path, (f"x_{split}", f"y_{split}")
    if not file.exists():
        raise RunFailed(f"data.path: no {file.name} for split '{split}' in {path}")
    try:
        # allow_pickle=False: an .npz must never be able to run code
        with np.load(file, allow_pickle=False) as arrays:
            missing = [k for k in keys if k not in arrays.files]
            if missing:
                raise RunFailed(f"data.path: {file} has no array {missing[0]!r} (has: {', '.join(arrays.files)})")
            x, y = arrays[keys[0]], arrays[keys[1]]
    except (ValueError, OSError) as exc:
        raise RunFailed(f"data.path: cannot read {file}: {exc}") from None
    if len(x) != len(y):
        raise RunFailed(f"data.path: split '{split}' has {len(x)} inputs but {len(y)} targets")
    return x, y


class NpzSource(ArraySource):
    """`npz`: one .npz file with x_<split>/y_<split>, or a folder of <split>.npz files with x/y."""

    def load_split(self, path, split):
        return load_split(path, split)

    def available_splits(self, path):
        return available_splits(path)
