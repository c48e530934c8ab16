"""`csv`: one CSV file (slice it into splits) or a folder of `<split>.csv` files, read as a table
(`data.table`: feature columns and a label column), a time series (`data.timeseries`), or else a
text column and a label column (`data.text`)."""

from __future__ import annotations

from pathlib import Path

from ..console import say, warn
from ..errors import ConfigError
from . import table_outputs, tabular, text_files, timeseries
from .source import ArraySource, Split, SplitsRead, class_names_to_ids


class CsvSource(ArraySource):
    def __init__(self, config):
        super().__init__(config)
        self.reader = None  # a table's reader reads every file once: made when first needed

    @property
    def table_reader(self) -> tabular.CsvTable:
        if self.reader is None:
            self.reader = tabular.CsvTable(self.data.table, self._files(), reads_text=getattr(self.config.model, "takes_table_columns", False))
        return self.reader

    def _files(self) -> list[Path]:
        path = Path(self.data.path)
        if self.data.timeseries is not None:
            return [path if path.is_file() else path / "series.csv"]
        if self.data.table is not None:
            return tabular.table_files(path)
        return sorted(path.glob("*.csv")) if path.is_dir() else [path]

    def _split_reader(self):
        return self.table_reader if self.data.table is not None else text_files.CsvText(self.config)

    def load_split(self, path, split):
        return self._split_reader().load_split(path, split)

    def available_splits(self, path):
        return self._split_reader().available_splits(path)

    def preflight(self) -> None:
        super().preflight()
        self._check_columns()  # the columns the config names must be in the file's header
        if self.data.table is not None:
            self._say_how_columns_are_read()

    def _say_how_columns_are_read(self) -> None:
        """Before any run folder exists: each column's kind and why, and the values that do not
        fit their column (an error unless `data.table.bad_values` says what to do with them)."""
        readings = self.table_reader.readings
        files = self._files()
        used = sum(r.used for r in readings)
        say(f"{files[0] if len(files) == 1 else Path(self.data.path)}: {len(readings)} columns, {used} read as features:")
        for reading in readings:
            say(reading.line())
        if self.data.table.bad_values == "error":
            errors = tabular.bad_value_errors(readings)
            if errors:
                raise ConfigError("\n".join(errors))
        if not used:
            raise ConfigError(f"data.table: {Path(self.data.path)} has no column dlopt can read as a feature (numbers, categories, text, sets, dates)")

    def read(self, wanted, roles) -> SplitsRead:
        data = self.data
        if data.timeseries is not None:
            if data.preprocess.rescale is not None or data.preprocess.standardize != "none":
                raise ConfigError("data.preprocess: not for time series; data.timeseries.scale scales them (on the training part only)")
            arrays, series = timeseries.load(self.path, data.timeseries)
            splits = {role: Split(count=len(arrays[role][0]), arrays=arrays[role]) for role in wanted}
            names = {role: f"{role} part: {series.lengths[role]} time steps, {len(arrays[role][0])} windows" for role in wanted}
            return SplitsRead(splits, names, series=series)
        splits, names = self._array_splits(wanted)
        read = SplitsRead(splits, names, class_names_to_ids(splits))
        if data.table is not None:
            read.table = self._tabulate(splits)
        return read

    def _tabulate(self, splits: dict[str, Split]) -> tabular.TableSpec:
        """Column kinds and statistics from the training cells; every split's cells -> model inputs."""
        data = self.data
        if data.preprocess.rescale is not None or data.preprocess.standardize != "none":
            raise ConfigError("data.preprocess: not for tables; the model standardises numeric columns itself (training statistics)")
        if data.augment:
            raise ConfigError(f"data.augment[0].type: {data.augment[0].type} does not apply to table rows")
        reader = self.table_reader
        if reader.dropped:
            warn(f"data.table.{'label_column' if data.table.outputs is None else 'outputs'}: skipped {reader.dropped} rows whose label {'is' if data.table.outputs is None else 'or an output is'} missing")
        for what, count in reader.handled.items():
            say(f"data.table: {count:,} {what}")
        spec = tabular.TableSpec.fit(splits["train"].arrays[0], reader.features, data.table, reader.kinds, data.text, self.config.model.uses_tfidf(), data.image)
        spec.rows_handled = {**({"rows dropped: no label": reader.dropped} if reader.dropped else {}), **reader.handled}
        if data.table.outputs is not None:
            spec.outputs = table_outputs.fit(splits["train"].arrays[1], data.table, self.config.train)
            say("outputs:")
            for output in spec.outputs:
                say(output.line())
        for role, split in splits.items():
            labels = split.arrays[1] if spec.outputs is None else {o.name: o.targets(split.arrays[1][:, i], role) for i, o in enumerate(spec.outputs)}
            split.arrays = (spec.arrays(split.arrays[0], data.table), labels)
        return spec

    def _check_columns(self) -> None:
        data, path = self.data, Path(self.data.path)
        files = self._files()
        if not files or not files[0].exists():
            raise ConfigError(f"data.path: no {'.csv or .parquet' if data.table is not None else '.csv'} files in {path}")
        header = tabular.read_header(files[0])
        if data.table is not None:
            tabular.feature_columns(data.table, header, files[0])
            return
        if data.timeseries is not None:
            settings = data.timeseries
            named = [("time_column", [settings.time_column]), ("value_columns", settings.value_columns or []), ("target_columns", settings.target_columns or [])]
            prefix = "data.timeseries"
        else:
            named = [("column", [data.text.column]), ("label_column", [data.text.label_column])]
            prefix = "data.text"
        for key, columns in named:
            missing = [c for c in columns if c not in header]
            if missing:
                raise ConfigError(f"{prefix}.{key}: {files[0]} has no column '{missing[0]}' (has: {', '.join(header)})")
