"""Tables from a CSV (`source: csv` with `data.table`): feature columns of numbers, categories,
free text, sets of values (tags), dates or image file paths, and a label column.

Reading gives raw cells, (rows, feature columns) strings, so splits are sliced and carved before any
column is typed. `TableSpec.fit` then learns from the training split only: which columns are
numbers, their mean and variance, which have gaps, each categorical or set column's vocabulary,
each text column's word vocabulary, the dates' range. The model turns raw columns into features with
Keras layers built from the spec (`models/tabular.py`), so a saved model takes raw rows: numbers
(NaN when missing) and strings ("" when missing).
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


TABLE_SUFFIXES = (".csv", ".parquet")


def csv_file(path: Path, split: str) -> Path:
    """One .csv or .parquet file (every split name reads it) or `<split>.csv` (or `.parquet`) in a folder."""
    if not path.is_dir():
        return path
    return next((path / f"{split}{suffix}" for suffix in TABLE_SUFFIXES if (path / f"{split}{suffix}").exists()), path / f"{split}.csv")


def table_files(path: Path) -> list[Path]:
    """A folder's tables (.csv and .parquet files), or the one file."""
    return sorted(p for p in path.glob("*") if p.suffix.lower() in TABLE_SUFFIXES) if path.is_dir() else [path]


def _parquet(file: Path, header_only: bool = False):
    """A Parquet file as a pandas frame, or with `header_only` its column names (read from its schema)."""
    try:
        import pandas
    except ImportError:
        raise ConfigError(f"{file}: reading Parquet needs pandas and pyarrow: pip install pandas pyarrow") from None
    try:
        if header_only:
            import pyarrow.parquet

            return pyarrow.parquet.read_schema(file).names
        return pandas.read_parquet(file)
    except ImportError as exc:
        raise ConfigError(f"{file}: reading Parquet needs pyarrow: pip install pyarrow ({exc})") from None
    except Exception as exc:  # pyarrow's own errors: not a Parquet file, a damaged one
        raise ConfigError(f"{file}: not a readable Parquet file: {str(exc).splitlines()[0]}") from None


def _cell(value) -> str:
    """A Parquet cell as the text a CSV would hold: missing as "", dates in ISO form, a list (a set
    column's values) joined by spaces."""
    import pandas

    if isinstance(value, (list, tuple, np.ndarray)):
        return " ".join(str(v).strip() for v in value)
    if value is None or pandas.isna(value):
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value).strip()


def read_header(file: Path) -> list[str]:
    if file.suffix.lower() == ".parquet":
        return [str(name).strip() for name in _parquet(file, header_only=True)]
    try:
        with open(file, newline="", encoding="utf-8") as handle:
            return [name.strip() for name in next(csv.reader(handle), [])]
    except OSError as exc:
        raise ConfigError(f"data.path: cannot read {file}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: byte {exc.start}: not UTF-8 text; save the table as UTF-8") from None
    except csv.Error as exc:
        raise ConfigError(f"{file}: not a readable CSV file: {exc}") from None


def feature_columns(settings, header: list[str], file) -> list[str]:
    """The feature columns the config asks for, checked against the file's header (a config error)."""
    labels = settings.label_columns
    named = [("label_column" if settings.outputs is None else "outputs", labels)]
    named += [(key, getattr(settings, key) or []) for key in ("feature_columns", "categorical_columns", "ignore_columns")]
    for key, columns in named:
        missing = [c for c in columns if c not in header]
        if missing:
            raise ConfigError(f"data.table.{key}: {file} has no column '{missing[0]}' (has: {', '.join(header)})")
    features = settings.feature_columns or [c for c in header if c not in labels and c not in settings.ignore_columns]
    predicted = [c for c in features if c in labels]
    if predicted:
        raise ConfigError(f"data.table.feature_columns: '{predicted[0]}' is {'the label column' if settings.outputs is None else 'an output'} of {file}, not a feature")
    if not features:
        raise ConfigError(f"data.table: {file} has no feature column left besides the {'label' if settings.outputs is None else 'outputs'} {', '.join(repr(c) for c in labels)}")
    return features


def read_rows(file: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, stripped cells)]) of a CSV file; a row whose number of fields is
    not the header's is a config error naming its line (it would otherwise shift or drop values).
    A Parquet file's rows are numbered from 1 (its "lines"), its cells written as a CSV holds them."""
    if file.suffix.lower() == ".parquet":
        frame = _parquet(file)
        return [str(name).strip() for name in frame.columns], [(n, [_cell(v) for v in row]) for n, row in enumerate(frame.itertuples(index=False, name=None), 1)]
    try:
        with open(file, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            rows = []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    raise ConfigError(f"{file}:{reader.line_num}: {len(row)} fields where the header has {len(header)}; every row needs one value per column (quote values that hold commas)")
                rows.append((reader.line_num, [value.strip() for value in row]))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: byte {exc.start}: not UTF-8 text; save the table as UTF-8") from None
    except csv.Error as exc:
        raise ConfigError(f"{file}: not a readable CSV file: {exc}") from None
    return header, rows


@dataclass
class ColumnReading:
    """How a column is read, and why: `number`, `category`, `text`, `set`, `date`, `image`, `ignored`,
    `label` or `output`; for numbers, dates and image paths, the values that do not fit the column."""

    name: str
    kind: str
    why: str
    bad: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line, value)
    unused: bool = False  # text or images the model does not read

    @property
    def used(self) -> bool:
        return self.kind in FEATURE_KINDS and not self.unused

    def line(self) -> str:
        return f"  {self.name}: {self.kind}{'' if self.used or self.kind in ('label', 'output') else ', not used'} ({self.why})"


FEATURE_KINDS = ("number", "category", "text", "set", "date", "image")
# ISO dates, with a time to the minute, second or fraction and a zone, as Python and JavaScript write them
DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?")
MOSTLY_NUMBERS = 0.9  # a column this share of whose values are numbers is a number column with bad values
TEXT_WORDS = 3.0  # values of this many words on average are free text, not categories


def column_readings(files: list[Path], settings, reads_text: bool = False) -> list[ColumnReading]:
    """Every column of the table's files, read as a number, category, text, set, date, image or
    ignored, and why; `reads_text`: the model reads text and image columns (else they are not used)."""
    missing = {value.strip() for value in settings.missing_values}
    header, cells = None, []
    for file in files:
        head, rows = read_rows(file)
        header = header or head
        cells += [(file, line, row) for line, row in rows]
    features = feature_columns(settings, header, files[0])
    forced = declared_kinds(settings)
    readings = []
    for j, name in enumerate(header):
        values = [(file, line, row[j]) for file, line, row in cells if row[j] not in missing]
        if name in settings.label_columns:
            readings.append(ColumnReading(name, "label", "data.table.label_column") if settings.outputs is None else ColumnReading(name, "output", "data.table.outputs"))
        elif name not in features:
            readings.append(ColumnReading(name, "ignored", "data.table.ignore_columns" if name in settings.ignore_columns else "not in data.table.feature_columns"))
        elif name in forced:
            readings.append(_declared(name, forced[name], values, reads_text))
        elif not values:
            readings.append(ColumnReading(name, "ignored", "every value is missing"))
        else:
            readings.append(_reading(name, values, settings, reads_text))
    return readings


DECLARED = {"categorical_columns": "category", "text_columns": "text", "set_columns": "set", "date_columns": "date", "image_columns": "image"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def declared_kinds(settings) -> dict[str, str]:
    """column -> kind, for the columns the config declares (`categorical_columns`, `text_columns`, ...)."""
    return {column: kind for key, kind in DECLARED.items() for column in getattr(settings, key) or []}


def _declared(name: str, kind: str, values: list[tuple[Path, int, str]], reads_text: bool) -> ColumnReading:
    key = next(k for k, v in DECLARED.items() if v == kind)
    if kind in ("text", "image") and not reads_text:
        raise ConfigError(f"data.table.{key}: '{name}' is {'text' if kind == 'text' else 'image paths'}, which only model.type: mixed reads (an encoder per column); use it, or list the column in categorical_columns")
    return ColumnReading(name, kind, f"data.table.{key}", _misfits(kind, values))


def _misfits(kind: str, values: list[tuple[Path, int, str]]) -> list[tuple[str, int, str]]:
    """(file, line, value) of the values that do not fit a date or image column."""
    if kind == "date":
        return [(str(file), line, value) for file, line, value in values if day_number(value) is None]
    if kind == "image":
        return [(str(file), line, value) for file, line, value in values if not image_path(value, file).is_file()]
    return []


def image_path(value: str, table: Path) -> Path:
    """An image column's value as a path: relative ones from the table file's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(table).parent / path


def is_date(value: str) -> bool:
    return DATE.fullmatch(value) is not None


def day_number(value: str) -> float | None:
    """Days since 1970-01-01 of an ISO date (its time of day left out), None if it is not one."""
    import datetime

    if not is_date(value):
        return None
    try:
        return float(datetime.date.fromisoformat(value[:10]).toordinal() - EPOCH_ORDINAL)
    except ValueError:  # 2024-02-31: the right shape, not a day
        return None


def iso_day(day: float) -> str:
    """The ISO date of a day number (day_number's inverse)."""
    import datetime

    return datetime.date.fromordinal(int(day) + EPOCH_ORDINAL).isoformat()


EPOCH_ORDINAL = 719163  # datetime.date(1970, 1, 1).toordinal()


def _reading(name: str, values: list[tuple[Path, int, str]], settings, reads_text: bool) -> ColumnReading:
    numbers = [as_number(value) for _, _, value in values]
    finite = sum(n is not None and np.isfinite(n) for n in numbers)
    if finite == len(values):
        return ColumnReading(name, "number", "every value is a number")
    if finite >= MOSTLY_NUMBERS * len(values):
        bad = [(str(file), line, value) for (file, line, value), n in zip(values, numbers) if n is None or not np.isfinite(n)]
        return ColumnReading(name, "number", f"{finite:,} of {len(values):,} values are numbers", bad)
    if all(is_date(value) for _, _, value in values):
        return ColumnReading(name, "date", "every value is an ISO date", _misfits("date", values))
    if all(value.lower().endswith(IMAGE_SUFFIXES) for _, _, value in values):
        if not reads_text:
            return ColumnReading(name, "image", "every value is an image file name; only model.type: mixed reads images: use it, or add the column to data.table.ignore_columns", unused=True)
        return ColumnReading(name, "image", "every value is an image file name", _misfits("image", values))
    distinct = {value for _, _, value in values}
    words = sum(len(value.split()) for _, _, value in values) / len(values)
    if len(distinct) > settings.max_categories and (len(distinct) >= len(values) / 2 or words >= TEXT_WORDS):
        why = f"{len(distinct):,} different values, {words:.1f} words each on average: free text or names"
        if reads_text:
            return ColumnReading(name, "text", why)
        return ColumnReading(
            name, "text", why + "; only model.type: mixed reads text: use it, or add the column to data.table.categorical_columns to use its most frequent values, or to ignore_columns",
            unused=True,
        )
    return ColumnReading(name, "category", f"{len(distinct):,} different value{'s' if len(distinct) != 1 else ''}{'' if len(distinct) <= settings.max_categories else f', the {settings.max_categories} most frequent kept'}")


def bad_value_errors(readings: list[ColumnReading], limit: int = 10) -> list[str]:
    """One line per value that does not fit its column (`bad_values: error`)."""
    found = [(file, line, reading.name, value) for reading in readings for file, line, value in reading.bad]
    kinds = {reading.name: reading.kind for reading in readings}
    lines = [f"{file}:{line}: column '{name}': {value!r} {_misfit(kinds[name])}" for file, line, name, value in sorted(found, key=lambda f: (f[0], f[1]))[:limit]]
    if len(found) > limit:
        lines.append(f"... and {len(found) - limit} more values that do not fit their column")
    if lines:
        lines[-1] += "; set data.table.bad_values: missing (read as missing) or drop_row (leave the row out) to go on"
    return lines


def _misfit(kind: str) -> str:
    if kind == "date":
        return "is not an ISO date such as 2024-03-01 (the column's kind)"
    if kind == "image":
        return "is no image file (paths are read from the table's folder)"
    return "is not a finite number (its other values are numbers)"


_READINGS: dict = {}


def readings_of(files: list[Path], settings, reads_text: bool) -> list[ColumnReading]:
    """column_readings, once per process for the same files and settings (preflight, then build)."""
    key = (tuple((str(f), f.stat().st_mtime_ns) for f in files), settings.model_dump_json(), reads_text)
    if key not in _READINGS:
        _READINGS[key] = column_readings(files, settings, reads_text)
    return _READINGS[key]


class CsvTable:
    """The `load_split` of a table: (cells (rows, used columns) as strings, labels) per split."""

    def __init__(self, settings, files: list[Path], reads_text: bool = False):
        self.settings = settings
        self.missing = {value.strip() for value in settings.missing_values}
        self.readings = readings_of(files, settings, reads_text)
        self.features = [r.name for r in self.readings if r.used]
        self.kinds = {r.name: r.kind for r in self.readings if r.used}
        self.dropped = 0  # rows without a label, over every split read
        self.handled: Counter = Counter()  # rows dropped or values read as missing, and why

    def available_splits(self, path: Path) -> set[str]:
        return {p.stem for p in table_files(path)} if path.is_dir() else set()

    def load_split(self, path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
        file = csv_file(path, split)
        if not file.exists():
            raise RunFailed(f"data.path: no {file.name} for split '{split}' in {path}")
        header, rows = read_rows(file)
        where = [header.index(c) for c in self.features]
        label_at = [header.index(c) for c in self.settings.label_columns]
        checked = [k for k, name in enumerate(self.features) if self.kinds[name] in ("number", "date", "image")]
        cells, labels = [], []
        for line, row in rows:
            if any(row[i] in self.missing for i in label_at):
                self.dropped += 1
                continue
            values = [row[i] for i in where]
            if not self._keep(values, checked, file, line):
                continue
            cells.append(values)
            labels.append([row[i] for i in label_at])
        x = np.array(cells, dtype=object).reshape(len(cells), len(self.features))
        if self.settings.outputs is not None:  # several outputs: the raw cells, (rows, outputs); data/table_outputs.py reads them
            return x, np.array(labels, dtype=object).reshape(len(labels), len(label_at))
        return x, _typed_labels([label for label, in labels])

    def _keep(self, values: list[str], checked: list[int], file: Path, line: int) -> bool:
        """Apply `bad_values` and `missing_numbers` to one row's numbers, dates and image paths
        (in place; an image path made absolute); False: drop the row."""
        settings = self.settings
        for k in checked:
            value = values[k]
            kind = self.kinds[self.features[k]]
            if value in self.missing:
                if settings.missing_numbers == "drop_row" and kind == "number":
                    self.handled["rows dropped: a missing number"] += 1
                    return False
                continue
            image = image_path(value, file) if kind == "image" else None
            if image is not None and image.is_file():
                values[k] = str(image.resolve())  # the model reads it from wherever dlopt runs
                continue
            if kind == "date" and day_number(value) is not None:
                continue
            number = as_number(value) if kind == "number" else None
            if number is not None and np.isfinite(number):
                continue
            if settings.bad_values == "error":
                raise ConfigError(f"{file}:{line}: column '{self.features[k]}': {value!r} {_misfit(kind).split(' (')[0]}; set data.table.bad_values: missing or drop_row to go on")
            if settings.bad_values == "drop_row":
                self.handled["rows dropped: a value that does not fit its column"] += 1
                return False
            self.handled["values read as missing: they do not fit their column"] += 1
            values[k] = ""
        return True


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


def as_number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


KINDS = {"number": "numeric", "category": "categorical", "text": "text", "set": "set", "date": "date", "image": "image"}  # a reading's kind -> its column's


@dataclass
class Column:
    name: str  # as in the CSV header
    kind: str  # numeric | categorical | text | set | date | image
    mean: float = 0.0  # numeric: the values'; date: the day numbers'
    variance: float = 1.0
    has_missing: bool = False  # numeric: gaps in training, so the model gets a 0/1 missing feature
    fill: float | None = None  # numeric: what a missing value becomes (unset: the mean)
    vocabulary: list[str] = field(default_factory=list)  # categorical and set: values, text: words, most frequent first
    separator: str | None = None  # set: what separates a cell's values (None: whitespace)
    text: dict = field(default_factory=dict)  # text: data.text's sequence_length, ngrams, standardize
    document_counts: object = None  # text for TF-IDF: (training texts holding each token id, training texts)
    image: dict = field(default_factory=dict)  # image: data.image's size, color_mode, interpolation, crop_to_aspect_ratio

    @property
    def input(self) -> str:
        return input_name(self.name)


@dataclass
class TableSpec:
    columns: list[Column]
    rows_handled: dict = field(default_factory=dict)  # rows dropped or values read as missing, and why
    outputs: list | None = None  # several outputs (`data.table.outputs`): data/table_outputs.OutputColumn each

    @classmethod
    def fit(cls, cells: np.ndarray, features: list[str], settings, kinds: dict[str, str] | None = None, text=None, count_documents: bool = False, image=None) -> "TableSpec":
        """Statistics and vocabularies from the training split's cells only; `kinds`: each
        column's reading (number, category, text, set, date, image), else numbers or categories from the
        cells; `text`: data.text, the settings of text columns' vocabularies; `count_documents`:
        also how many training texts hold each word (a TF-IDF text encoder); `image`: data.image,
        how image columns' files are decoded."""
        missing = {value.strip() for value in settings.missing_values}
        forced = set(settings.categorical_columns or [])
        columns = []
        for j, name in enumerate(features):
            values = [v for v in cells[:, j] if v not in missing]
            if kinds:
                kind = KINDS[kinds[name]]
            else:
                kind = "numeric" if name not in forced and all(as_number(v) is not None for v in values) else "categorical"
            if kind == "numeric":
                present = np.array([n for n in map(as_number, values) if n is not None], dtype=np.float64)
                mean, variance = (float(present.mean()), float(present.var())) if len(present) else (0.0, 1.0)
                fill = settings.fill_value if settings.missing_numbers == "constant" else mean
                indicator = settings.missing_numbers == "indicator" and len(values) < len(cells)
                columns.append(Column(name, "numeric", mean, variance, has_missing=indicator, fill=fill))
            elif kind == "categorical":
                counts = Counter(v if v not in missing else "" for v in cells[:, j])
                columns.append(Column(name, "categorical", vocabulary=[value for value, _ in counts.most_common(settings.max_categories)]))
            elif kind == "set":
                counts = Counter(token for v in values for token in split_set(v, settings.set_separator))
                columns.append(Column(name, "set", vocabulary=[value for value, _ in counts.most_common(settings.max_set_values)], separator=settings.set_separator))
            elif kind == "image":
                if image is None or image.size is None:
                    raise ConfigError(f"data.image.size: column '{name}' holds images: give the [height, width] they are resized to")
                columns.append(Column(name, "image", image=image.model_dump()))
            elif kind == "date":
                days = np.array([d for d in map(day_number, values) if d is not None], dtype=np.float64)
                mean, variance = (float(days.mean()), float(days.var())) if len(days) else (0.0, 1.0)
                columns.append(Column(name, "date", mean, max(variance, 1.0)))
            else:
                columns.append(_text_column(name, values, text, count_documents))
        return cls(columns)

    def arrays(self, cells: np.ndarray, settings) -> dict[str, np.ndarray]:
        """Raw cells -> the model's inputs: {input name: (rows, 1) float32 with NaN for missing, or str with "" for missing}."""
        missing = {value.strip() for value in settings.missing_values}
        out = {}
        for j, column in enumerate(self.columns):
            values = cells[:, j] if len(cells) else np.zeros(0, dtype=object)
            if column.kind == "numeric":
                # a value that is not a number (in a later split) counts as missing
                numbers = [np.nan if v in missing else (as_number(v) if as_number(v) is not None else np.nan) for v in values]
                out[column.input] = np.array(numbers, dtype=np.float32).reshape(-1, 1)
            else:
                out[column.input] = np.array(["" if v in missing else v for v in values], dtype=str).reshape(-1, 1)
        return out

    @property
    def reads_text(self) -> bool:
        return any(c.kind == "text" for c in self.columns)

    def describe(self) -> list[dict]:
        sizes = {"numeric": lambda c: {"missing_feature": c.has_missing}, "categorical": lambda c: {"categories": len(c.vocabulary)}, "set": lambda c: {"values": len(c.vocabulary)}, "text": lambda c: {"words": len(c.vocabulary)}, "date": lambda c: {}, "image": lambda c: {"size": c.image["size"]}}
        return [{"column": c.name, "kind": c.kind, **sizes[c.kind](c)} for c in self.columns]


def split_set(value: str, separator: str | None) -> list[str]:
    """A set cell's values, as the model's SetValues layer splits them (each stripped, none empty)."""
    return [token.strip() for token in value.split(separator) if token.strip()]


def _text_column(name: str, values: list[str], text, count_documents: bool) -> Column:
    """A text column: its word vocabulary from the training texts, with data.text's settings."""
    import tensorflow as tf

    from .vocabulary import adapted_vectorizer

    texts = tf.data.Dataset.from_tensor_slices(np.array(values or [""], dtype=str))
    vectorizer, counts = adapted_vectorizer(text, texts, max(len(values), 1), count_documents=count_documents)
    settings = {"sequence_length": text.sequence_length, "ngrams": text.ngrams, "standardize": text.standardize}
    return Column(name, "text", vocabulary=vectorizer.get_vocabulary(include_special_tokens=False), text=settings, document_counts=counts)
