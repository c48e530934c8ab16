"""Text from files: `text_folder` (one folder per class, as keras.utils.text_dataset_from_directory
reads them) and `csv` (a text column and a label column). Both return (texts, labels) arrays per
split; labels may be class names, which `data.build` maps to ids from the training split."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import RunFailed
from .source import ArraySource


class TextFolder:
    """`path/<split>/<class name>/*.txt`, e.g. aclImdb's train/pos, train/neg, test/pos, ..."""

    def available_splits(self, path: Path) -> set[str]:
        return {p.name for p in path.iterdir() if p.is_dir()}

    def load_split(self, path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
        import keras

        folder = path / split
        if not folder.is_dir():
            raise RunFailed(f"data.path: no folder '{split}' in {path} (expected {path}/{split}/<class name>/*.txt)")
        dataset = keras.utils.text_dataset_from_directory(folder, labels="inferred", batch_size=None, shuffle=False, verbose=False)
        names = dataset.class_names
        texts, labels = [], []
        for text, label in dataset.as_numpy_iterator():
            texts.append(text.decode("utf-8", errors="replace"))
            labels.append(names[int(label)])
        if not texts:
            raise RunFailed(f"data.path: no .txt files under {folder}/<class name>/")
        return np.array(texts, dtype=object), np.array(labels)


class CsvText:
    """A .csv file (every split name reads it; slice it, e.g. train[:80%] / train[80%:]), or a
    folder of `<split>.csv` files; `data.text.column` and `data.text.label_column` name the columns."""

    def __init__(self, config):
        self.text_column = config.data.text.column
        self.label_column = config.data.text.label_column

    def available_splits(self, path: Path) -> set[str]:
        return {p.stem for p in path.glob("*.csv")} if path.is_dir() else set()

    def load_split(self, path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
        file = path / f"{split}.csv" if path.is_dir() else path
        if not file.exists():
            raise RunFailed(f"data.path: no {file.name} for split '{split}' in {path}")
        with open(file, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            for column, key in ((self.text_column, "column"), (self.label_column, "label_column")):
                if column not in (reader.fieldnames or []):
                    raise RunFailed(f"data.text.{key}: {file} has no column '{column}' (has: {', '.join(reader.fieldnames or [])})")
            rows = [(row[self.text_column], row[self.label_column]) for row in reader]
        texts = np.array([text for text, _ in rows], dtype=object)
        labels = [label for _, label in rows]
        try:  # integer labels stay ids; anything else is a class name
            return texts, np.array([int(label) for label in labels], dtype=np.int64)
        except ValueError:
            return texts, np.array(labels)


class TextFolderSource(ArraySource):
    """`text_folder`: `<split>/<class>/*.txt`."""

    def load_split(self, path, split):
        return TextFolder().load_split(path, split)

    def available_splits(self, path):
        return TextFolder().available_splits(path)
