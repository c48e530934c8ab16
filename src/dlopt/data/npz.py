"""NumPy arrays: one `.npz` with `x_<split>`/`y_<split>`, or a folder of `<split>.npz` with `x`/`y`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, RunFailed
from .source import ArraySource


def available_splits(path: Path) -> set[str]:
    if path.is_dir():
        return {p.stem for p in path.glob("*.npz")}
    with _opened(path) as arrays:
        return {key[2:] for key in arrays.files if key.startswith("x_")}


def _opened(file: Path):
    """np.load of an .npz, never unpickling; a file that is none is a config error naming it."""
    try:
        opened = np.load(file, allow_pickle=False)  # an .npz must never be able to run code
    except (ValueError, OSError, EOFError) as exc:
        raise ConfigError(f"data.path: {file} is not a NumPy .npz file ({str(exc).split('.')[0]})") from None
    if not isinstance(opened, np.lib.npyio.NpzFile):
        raise ConfigError(f"data.path: {file} holds one array, not the x_<split>/y_<split> arrays of an .npz file")
    return opened


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
        raise RunFailed(f"data.path: {file}: split '{split}' has {len(x)} inputs but {len(y)} targets")
    return x, y


class NpzSource(ArraySource):
    """`npz`: one .npz file with x_<split>/y_<split>, or a folder of <split>.npz files with x/y."""

    def preflight(self) -> None:
        super().preflight()
        for file in sorted(self.path.glob("*.npz")) if self.path.is_dir() else [self.path]:
            _opened(file).close()

    def load_split(self, path, split):
        return load_split(path, split)

    def available_splits(self, path):
        return available_splits(path)
