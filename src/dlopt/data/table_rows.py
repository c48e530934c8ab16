"""Table rows given to a trained model (`dlopt predict`, `dlopt serve`): CSV, Parquet or JSON rows
as the model's raw column inputs, a missing key or cell a missing value, image paths checked."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .tabular import IMAGE_SUFFIXES, as_number, image_path, input_name, read_rows


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
                new = [{k.strip(): _beside(v, path) for k, v in row.items() if k is not None} for row in csv.DictReader(handle)]
            labels += [f"{item}:{n + 2}" for n in range(len(new))]  # line numbers, after the header
        elif path.is_file() and path.suffix.lower() == ".parquet":
            header, cells = read_rows(path)
            new = [{k: _beside(v, path) for k, v in zip(header, row)} for _, row in cells]
            labels += [f"{item}:{n}" for n, _ in cells]  # row numbers, from 1
        elif path.is_file() and path.suffix.lower() in (".json", ".jsonl"):
            raw = path.read_text()
            if path.suffix.lower() == ".jsonl":
                new = [_json(line, f"{item}:{n}") for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
            else:
                loaded = _json(raw, item)
                new = loaded if isinstance(loaded, list) else [loaded]
            new = [{k: _beside(v, path) for k, v in row.items()} if isinstance(row, dict) else row for row in new]
            labels += [f"{item}[{n}]" for n in range(len(new))]
        else:
            raise ConfigError(f"{item}: expected a .csv file with a header row, a .parquet file, a .json/.jsonl file, or a JSON object such as '{{\"column\": value}}'")
        for row in new:
            if not isinstance(row, dict):
                raise ConfigError(f"{item}: expected JSON objects (column: value), got {type(row).__name__}")
        rows += new
    if not rows:
        raise ConfigError("no rows to predict")
    return labels, rows_from_objects(rows, input_names)


def image_inputs(model) -> list[str]:
    """The model inputs that are image paths (read by a ReadImage layer inside it)."""
    return [layer.input.name for layer in model.layers if type(layer).__name__ == "ReadImage"]


def missing_images(labels: list[str], columns: dict[str, np.ndarray], inputs: list[str]) -> None:
    """A config error naming the first row whose image path is no file (before the model reads it)."""
    for name in inputs:
        for label, value in zip(labels, columns[name].reshape(-1)):
            if value and not Path(str(value)).is_file():
                raise ConfigError(f"{label}: column '{name}': {str(value)!r} is no image file (relative paths: from the rows file's folder, or the working directory)")


def _beside(value, table: Path):
    """An image file name in a rows file, as a path from that file's folder (as training read them)."""
    if isinstance(value, str) and value.strip().lower().endswith(IMAGE_SUFFIXES) and image_path(value.strip(), table).is_file():
        return str(image_path(value.strip(), table).resolve())
    return value


def rows_from_objects(rows: list[dict], input_names: dict[str, str]) -> dict[str, np.ndarray]:
    """Rows (column: value objects) as the model's inputs; a missing key is a missing value."""
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
    return out


def _number_or_nan(value) -> float:
    if value is None or isinstance(value, bool):
        return np.nan
    if isinstance(value, (int, float)):
        return float(value)
    number = as_number(str(value).strip())
    return np.nan if number is None else number


def _json(text: str, where: str):
    import json

    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: not valid JSON: {exc}") from None
