"""Tables from a CSV (`source: csv` with `data.table`): feature columns of numbers or categories and
a label column.

Reading gives raw cells, (rows, feature columns) strings, so splits are sliced and carved before any
column is typed. `TableSpec.fit` then learns from the training split only: which columns are
numbers, their mean and variance, which have gaps, and each categorical column's vocabulary. The
model turns raw columns into features with Keras layers built from the spec (`models/tabular.py`),
so a saved model takes raw rows: numbers (NaN when missing) and strings ("" when missing).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, RunFailed


def input_name(column: str) -> str:
    """A column's model input name: what Keras accepts as a layer name."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", column.strip()) or "column"
    return name if name[0].isalpha() else f"c_{name}"


def csv_file(path: Path, split: str) -> Path:
    """One .csv (every split name reads it) or `<split>.csv` in a folder."""
    return path / f"{split}.csv" if path.is_dir() else path


def read_header(file: Path) -> list[str]:
    try:
        with open(file, newline="", encoding="utf-8") as handle:
            return [name.strip() for name in next(csv.reader(handle), [])]
    except OSError as exc:
        raise ConfigError(f"data.path: cannot read {file}: {exc.strerror}") from None


def feature_columns(settings, header: list[str], file) -> list[str]:
    """The feature columns the config asks for, checked against the file's header (a config error)."""
    named = [("label_column", [settings.label_column])]
    named += [(key, getattr(settings, key) or []) for key in ("feature_columns", "categorical_columns", "ignore_columns")]
    for key, columns in named:
        missing = [c for c in columns if c not in header]
        if missing:
            raise ConfigError(f"data.table.{key}: {file} has no column '{missing[0]}' (has: {', '.join(header)})")
    features = settings.feature_columns or [c for c in header if c != settings.label_column and c not in settings.ignore_columns]
    if settings.label_column in features:
        raise ConfigError(f"data.table.feature_columns: '{settings.label_column}' is the label column")
    if not features:
        raise ConfigError(f"data.table: {file} has no feature column left besides the label '{settings.label_column}'")
    return features


class CsvTable:
    """The `load_split` of a table: (cells (rows, features) as strings, labels) per split."""

    def __init__(self, settings):
        self.settings = settings
        self.missing = {value.strip() for value in settings.missing_values}
        self.dropped = 0  # rows without a label, over every split read

    def available_splits(self, path: Path) -> set[str]:
        return {p.stem for p in path.glob("*.csv")} if path.is_dir() else set()

    def load_split(self, path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
        file = csv_file(path, split)
        if not file.exists():
            raise RunFailed(f"data.path: no {file.name} for split '{split}' in {path}")
        with open(file, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            features = feature_columns(self.settings, header, file)
            where = [header.index(c) for c in features]
            label_at = header.index(self.settings.label_column)
            cells, labels = [], []
            for row in reader:
                if not row:
                    continue
                row = [value.strip() for value in row] + [""] * (len(header) - len(row))
                if row[label_at] in self.missing:
                    self.dropped += 1
                    continue
                cells.append([row[i] for i in where])
                labels.append(row[label_at])
        self.features = features
        x = np.array(cells, dtype=object).reshape(len(cells), len(features))
        return x, _typed_labels(labels)


def _typed_labels(labels: list[str]) -> np.ndarray:
    """Integer ids stay ids, other numbers are regression targets, anything else is a class name."""
    try:
        return np.array([int(label) for label in labels], dtype=np.int64)
    except ValueError:
        pass
    try:
        return np.array([float(label) for label in labels], dtype=np.float32)
    except ValueError:
        return np.array(labels)


def _as_number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


@dataclass
class Column:
    name: str  # as in the CSV header
    kind: str  # numeric | categorical
    mean: float = 0.0
    variance: float = 1.0
    has_missing: bool = False  # numeric: gaps in training, so the model gets a 0/1 missing feature
    vocabulary: list[str] = field(default_factory=list)  # categorical, most frequent first

    @property
    def input(self) -> str:
        return input_name(self.name)


@dataclass
class TableSpec:
    columns: list[Column]

    @classmethod
    def fit(cls, cells: np.ndarray, features: list[str], settings) -> "TableSpec":
        """Column kinds, statistics and vocabularies from the training split's cells only."""
        missing = {value.strip() for value in settings.missing_values}
        forced = set(settings.categorical_columns or [])
        columns = []
        for j, name in enumerate(features):
            values = [v for v in cells[:, j] if v not in missing]
            numbers = [_as_number(v) for v in values]
            if name not in forced and all(n is not None for n in numbers):
                present = np.array(numbers, dtype=np.float64)
                mean, variance = (float(present.mean()), float(present.var())) if len(present) else (0.0, 1.0)
                columns.append(Column(name, "numeric", mean, variance, has_missing=len(values) < len(cells)))
            else:
                counts = Counter(v if v not in missing else "" for v in cells[:, j])
                vocabulary = [value for value, _ in counts.most_common(settings.max_categories)]
                columns.append(Column(name, "categorical", vocabulary=vocabulary))
        return cls(columns)

    def arrays(self, cells: np.ndarray, settings) -> dict[str, np.ndarray]:
        """Raw cells -> the model's inputs: {input name: (rows, 1) float32 with NaN for missing, or str with "" for missing}."""
        missing = {value.strip() for value in settings.missing_values}
        out = {}
        for j, column in enumerate(self.columns):
            values = cells[:, j] if len(cells) else np.zeros(0, dtype=object)
            if column.kind == "numeric":
                # a value that is not a number (in a later split) counts as missing
                numbers = [np.nan if v in missing else (_as_number(v) if _as_number(v) is not None else np.nan) for v in values]
                out[column.input] = np.array(numbers, dtype=np.float32).reshape(-1, 1)
            else:
                out[column.input] = np.array(["" if v in missing else v for v in values], dtype=str).reshape(-1, 1)
        return out

    def describe(self) -> list[dict]:
        return [
            {"column": c.name, "kind": c.kind, **({"missing_feature": c.has_missing} if c.kind == "numeric" else {"categories": len(c.vocabulary)})}
            for c in self.columns
        ]


def rows_from(inputs: list[str], input_names: dict[str, str]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Raw rows for `dlopt predict`: CSV files with a header, or JSON objects (an argument, or a .json
    / .jsonl file holding an object or a list of them). `input_names`: model input -> "float32" | "string".
    Returns (a label per row, the model's inputs); a missing key or cell is a missing value."""
    labels, rows = [], []
    for item in inputs:
        path = Path(item)
        text = item.strip()
        if text.startswith("{") or text.startswith("["):
            loaded = _json(text, "argument")
            new = loaded if isinstance(loaded, list) else [loaded]
            labels += [f"row {len(rows) + i + 1}" for i in range(len(new))]
        elif path.is_file() and path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8") as handle:
                new = [{k.strip(): v for k, v in row.items() if k is not None} for row in csv.DictReader(handle)]
            labels += [f"{item}:{n + 2}" for n in range(len(new))]  # line numbers, after the header
        elif path.is_file() and path.suffix.lower() in (".json", ".jsonl"):
            raw = path.read_text()
            if path.suffix.lower() == ".jsonl":
                new = [_json(line, f"{item}:{n}") for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
            else:
                loaded = _json(raw, item)
                new = loaded if isinstance(loaded, list) else [loaded]
            labels += [f"{item}[{n}]" for n in range(len(new))]
        else:
            raise ConfigError(f"{item}: expected a .csv file with a header row, a .json/.jsonl file, or a JSON object such as '{{\"column\": value}}'")
        for row in new:
            if not isinstance(row, dict):
                raise ConfigError(f"{item}: expected JSON objects (column: value), got {type(row).__name__}")
        rows += new
    if not rows:
        raise ConfigError("no rows to predict")
    known = set(input_names)
    unknown = sorted({input_name(k) for row in rows for k in row} - known)
    if unknown and not (known & {input_name(k) for row in rows for k in row}):
        raise ConfigError(f"the rows' columns ({', '.join(unknown[:5])}) are none of the model's: {', '.join(sorted(known))}")
    out = {}
    for name, dtype in input_names.items():
        values = [next((v for k, v in row.items() if input_name(k) == name), None) for row in rows]
        if dtype == "string":
            out[name] = np.array(["" if v is None else str(v).strip() for v in values], dtype=str).reshape(-1, 1)
        else:
            out[name] = np.array([_number_or_nan(v) for v in values], dtype=np.float32).reshape(-1, 1)
    return labels, out


def _number_or_nan(value) -> float:
    if value is None or isinstance(value, bool):
        return np.nan
    if isinstance(value, (int, float)):
        return float(value)
    number = _as_number(str(value).strip())
    return np.nan if number is None else number


def _json(text: str, where: str):
    import json

    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: not valid JSON: {exc}") from None
