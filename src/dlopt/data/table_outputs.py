"""Several outputs of a table (`data.table.outputs`): each output column's type and values, learnt
from the training split, and its targets in the form its loss takes.

Types: `category` (class ids over the training values), `binary` (0/1: the second of two sorted
values is 1), `number` (the value), `multi_label` (several values in one cell, split as set columns
are: 0/1 per training value). `auto` reads the training cells: numbers that are not all integers are a
number; two values binary; more a category.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..console import warn
from ..errors import ConfigError, RunFailed
from ..objectives import Objective, Objectives
from .tabular import as_number, input_name, split_set


@dataclass
class OutputColumn:
    name: str  # the Keras output's name: metrics are logged as `<name>_<metric>`
    column: str
    kind: str  # category | binary | number | multi_label
    values: list[str] | None  # category, binary: class names in class-id order; multi_label: the labels
    weight: float
    objective: Objective
    separator: str | None = None  # multi_label: what separates a cell's values (None: whitespace)

    def describe(self) -> dict:
        """summary.json's entry: what `predict`, `serve` and the report need to read the output."""
        return {
            "name": self.name,
            "column": self.column,
            "type": self.kind,
            **({"values": self.values} if self.values is not None else {}),
            "weight": self.weight,
            "loss": self.objective.loss_name,
            "metrics": list(self.objective.metric_names),
        }

    def targets(self, cells: np.ndarray, role: str) -> np.ndarray:
        """This output's cells of one split as the loss takes them; a value the training split
        never had is an error (category, binary) or left out with a warning (multi_label)."""
        if self.kind == "number":
            numbers = np.array([as_number(cell) for cell in cells], dtype=object)
            bad = next((cell for cell, n in zip(cells, numbers) if n is None or not np.isfinite(n)), None)
            if bad is not None:
                raise RunFailed(f"data.table.outputs: the {role} split's '{self.column}' holds {bad!r}, not a finite number (the column's type is number)")
            return numbers.astype(np.float32).reshape(-1, 1)
        if self.kind == "multi_label":
            index = {value: i for i, value in enumerate(self.values)}
            hot = np.zeros((len(cells), len(self.values)), dtype=np.float32)
            unseen = 0
            for row, cell in enumerate(cells):
                for value in split_set(cell, self.separator):
                    if value in index:
                        hot[row, index[value]] = 1.0
                    else:
                        unseen += 1
            if unseen:
                warn(f"data.table.outputs: the {role} split's '{self.column}' holds {unseen:,} labels the training split has not (or not among its most frequent): they cannot be predicted and are left out")
            return hot
        index = {value: i for i, value in enumerate(self.values)}
        unknown = sorted({str(cell) for cell in cells} - set(index))
        if unknown:
            raise RunFailed(f"data: the {role} split's '{self.column}' has value '{unknown[0]}', which the training split never has (its values: {', '.join(self.values[:20])}{', ...' if len(self.values) > 20 else ''})")
        return np.array([index[str(cell)] for cell in cells], dtype=np.int64)

    def line(self) -> str:
        values = f" ({len(self.values)} values)" if self.values is not None and self.kind != "binary" else ""
        return f"  {self.column}: {self.kind}{values}, {self.objective.loss_name}, weight {self.weight:g}"


def fit(train_cells: np.ndarray, settings, train_config) -> list[OutputColumn]:
    """Each output's type, values and objective, from the training split's cells (rows, outputs)."""
    outputs, names = [], set()
    for i, declared in enumerate(settings.outputs):
        name = input_name(declared.column)  # as Keras names layers: the logged metrics' prefix
        if name in names:
            raise ConfigError(f"data.table.outputs[{i}].column: '{declared.column}' is named '{name}' as an output, as another output is; rename one column")
        names.add(name)
        cells = train_cells[:, i]
        kind = declared.type if declared.type != "auto" else _inferred(cells)
        values = _values(cells, kind, settings)
        if kind == "binary" and len(values) != 2:
            raise ConfigError(f"data.table.outputs[{i}].type: binary needs two values; the training split's '{declared.column}' has {len(values)}")
        if kind == "category" and len(values) < 2:
            raise ConfigError(f"data.table.outputs[{i}].type: the training split's '{declared.column}' has one value only; nothing to predict")
        task = "regression" if kind == "number" else "classification"
        chosen = train_config.model_copy(update={"loss": declared.loss if declared.loss != "auto" or kind != "binary" else "binary_crossentropy", "metrics": declared.metrics})
        try:
            objective = Objective.resolve(chosen, task, len(values) if values else None, multi_label=kind == "multi_label")
        except ConfigError as exc:  # the keys are this output's, not train's
            raise ConfigError(str(exc).replace("train.", f"data.table.outputs[{i}].", 1)) from None
        outputs.append(OutputColumn(name, declared.column, kind, values, declared.weight, objective, settings.set_separator if kind == "multi_label" else None))
    return outputs


def objectives(outputs: list[OutputColumn]) -> Objectives:
    return Objectives({o.name: o.objective for o in outputs}, {o.name: o.weight for o in outputs})


def _inferred(cells: np.ndarray) -> str:
    numbers = [as_number(str(cell)) for cell in cells]
    distinct = len(set(cells.tolist()))
    if all(n is not None for n in numbers) and not all(float(n).is_integer() for n in numbers):
        return "number"
    return "binary" if distinct == 2 else "category"


def _values(cells: np.ndarray, kind: str, settings) -> list[str] | None:
    """The training values in class-id order: integers by value, other names sorted; multi_label's
    `max_set_values` most frequent labels."""
    if kind == "number":
        return None
    if kind == "multi_label":
        counts = Counter(value for cell in cells for value in split_set(str(cell), settings.set_separator))
        return sorted(value for value, _ in counts.most_common(settings.max_set_values))
    distinct = {str(cell) for cell in cells}
    numbers = {value: as_number(value) for value in distinct}
    if all(n is not None and float(n).is_integer() for n in numbers.values()):
        return sorted(distinct, key=lambda value: numbers[value])
    return sorted(distinct)
