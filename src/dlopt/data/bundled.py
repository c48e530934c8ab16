"""`sklearn`: small real data sets that scikit-learn installs with itself, so they need no download.

`digits` are 8x8 grayscale images of handwritten digits (values 0-16, 1,797 of them); `iris`, `wine`
and `breast_cancer` are tables of numeric features with a class; `diabetes` is a regression table.
Each is one split: every split name reads all of it, so configs slice it (`train[:80%]`).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .source import ArraySource

LOADERS = {"digits": "load_digits", "iris": "load_iris", "wine": "load_wine", "breast_cancer": "load_breast_cancer", "diabetes": "load_diabetes"}


class Bundled:
    def __init__(self, name: str):
        self.name = name

    def available_splits(self, path=None) -> set[str]:
        return set()

    def load_split(self, path, split: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            from sklearn import datasets
        except ImportError:
            raise ConfigError("data.source: sklearn needs scikit-learn (pip install scikit-learn)") from None
        loaded = getattr(datasets, LOADERS[self.name])()
        if self.name == "digits":
            x = loaded.images.astype(np.float32)[..., None]  # (n, 8, 8, 1): what conv layers expect
        else:
            x = loaded.data.astype(np.float32)
        y = loaded.target.astype(np.float32 if self.name == "diabetes" else np.int64)
        return x, y

    def class_names(self) -> list[str] | None:
        if self.name == "diabetes":
            return None
        from sklearn import datasets

        return [str(name) for name in getattr(datasets, LOADERS[self.name])().target_names]


class BundledSource(ArraySource):
    """`sklearn`: a data set bundled with scikit-learn, by `data.name`."""

    def __init__(self, config):
        super().__init__(config)
        self.bundled = Bundled(config.data.name)

    def load_split(self, path, split):
        return self.bundled.load_split(path, split)

    def source_class_names(self):
        return self.bundled.class_names()

    def value_max(self):
        return 16.0 if self.bundled.name == "digits" else None  # 8x8 digits: ink counts 0-16, not 8-bit pixels
