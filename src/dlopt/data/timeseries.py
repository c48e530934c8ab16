"""Time series from a CSV: split by time, scale on the training part only, cut into windows.

The series is cut into consecutive train / val / test parts first and windows are made inside each
part, so no window crosses a split and nothing after the training part informs training: scaling
statistics come from the training part, and smoothing is a trailing average (past values only).
Each example is `input_width` steps of the value columns; its target the next `horizon` steps of
the target columns, shape (horizon, targets), in scaled units.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RunFailed


@dataclass
class Scaling:
    """Per-column `scaled = (value - offset) / scale`, fitted on the training part."""

    offset: np.ndarray
    scale: np.ndarray

    def apply(self, values: np.ndarray) -> np.ndarray:
        return (values - self.offset) / self.scale

    def invert(self, scaled: np.ndarray) -> np.ndarray:
        return scaled * self.scale + self.offset


@dataclass
class Series:
    """What the forecast report needs besides the windows: how to undo the target scaling."""

    target_scaling: Scaling
    target_index: list[int]  # target columns' positions among the value columns
    lengths: dict[str, int]  # time steps per part
    test_windows: tuple[np.ndarray, np.ndarray]  # (inputs, targets), scaled
    season: int = 1  # the seasonal-naive forecasts' period


def read_csv(path: Path, settings) -> tuple[list[str], np.ndarray]:
    """(value column names, float array of shape (time, columns)) in time order."""
    file = path if path.is_file() else path / "series.csv"
    with open(file, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        if settings.time_column not in fields:
            raise RunFailed(f"data.timeseries.time_column: {file} has no column '{settings.time_column}' (has: {', '.join(fields)})")
        columns = settings.value_columns or [f for f in fields if f != settings.time_column]
        for key, names in (("value_columns", columns), ("target_columns", settings.target_columns or [])):
            missing = [name for name in names if name not in fields]
            if missing:
                raise RunFailed(f"data.timeseries.{key}: {file} has no column '{missing[0]}' (has: {', '.join(fields)})")
        rows = list(reader)
    times = [row[settings.time_column] for row in rows]
    try:
        order = np.argsort(np.array(times, dtype=float), kind="stable")
    except ValueError:  # not numbers: ISO dates and times sort as text
        order = np.argsort(np.array(times), kind="stable")
    try:
        values = np.array([[float(rows[i][c]) for c in columns] for i in order], dtype=np.float64)
    except ValueError as exc:
        raise RunFailed(f"data.timeseries.value_columns: {file} has a value that is not a number: {exc}") from None
    return columns, values


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Moving average of each column over the current and previous window-1 steps (fewer at the start)."""
    sums = np.cumsum(values, axis=0)
    out = sums.copy()
    out[window:] = sums[window:] - sums[:-window]
    counts = np.minimum(np.arange(1, len(values) + 1), window)[:, None]
    return out / counts


def fit_scaling(train_part: np.ndarray, kind: str, changes: bool = False) -> Scaling:
    """`changes`: standard scaling by the spread of the step-to-step changes instead of the values,
    for networks that see windows relative to their last value and predict changes: a trending
    series' changes are small next to its range, and would otherwise all look alike."""
    if kind == "standard" and changes and len(train_part) > 2:
        offset, scale = train_part.mean(axis=0), np.diff(train_part, axis=0).std(axis=0)
    elif kind == "standard":
        offset, scale = train_part.mean(axis=0), train_part.std(axis=0)
    elif kind == "minmax":
        offset, scale = train_part.min(axis=0), train_part.max(axis=0) - train_part.min(axis=0)
    else:
        offset, scale = np.zeros(train_part.shape[1]), np.ones(train_part.shape[1])
    return Scaling(offset, np.where(scale > 0, scale, 1.0))  # a constant column stays constant


def windows(part: np.ndarray, target_index: list[int], width: int, horizon: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, width, columns) and targets (n, horizon, targets) from one part of the series."""
    starts = range(0, len(part) - width - horizon + 1, stride)
    x = np.stack([part[s : s + width] for s in starts]) if starts else np.zeros((0, width, part.shape[1]))
    y = np.stack([part[s + width : s + width + horizon, target_index] for s in starts]) if starts else np.zeros((0, horizon, len(target_index)))
    return x.astype(np.float32), y.astype(np.float32)


def load(path: Path, settings) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], Series]:
    """Windows per role (train, val, test) and the scaling to report forecasts in original units."""
    columns, values = read_csv(path, settings)
    targets = settings.target_columns or columns
    target_index = [columns.index(t) if t in columns else None for t in targets]
    if None in target_index:
        raise RunFailed(f"data.timeseries.target_columns: '{targets[target_index.index(None)]}' is not among the value columns {columns}")
    if settings.smoothing:
        values = trailing_mean(values, settings.smoothing)
    n_train = int(len(values) * settings.train_fraction)
    n_val = int(len(values) * settings.val_fraction)
    parts = {"train": values[:n_train], "val": values[n_train : n_train + n_val], "test": values[n_train + n_val :]}
    relative = settings.window_inputs == "relative" and settings.target == "difference"
    scaling = fit_scaling(parts["train"], settings.scale, changes=relative)
    arrays = {}
    for role, part in parts.items():
        x, y = windows(scaling.apply(part), target_index, settings.input_width, settings.horizon, settings.stride)
        if len(x) == 0:
            need = settings.input_width + settings.horizon
            raise RunFailed(f"data.timeseries: the {role} part has {len(part)} time steps, fewer than input_width + horizon = {need}; use a longer series or other fractions")
        arrays[role] = (x, y)
    target_scaling = Scaling(scaling.offset[target_index], scaling.scale[target_index])
    return arrays, Series(target_scaling, target_index, {role: len(part) for role, part in parts.items()}, arrays["test"], settings.season)


NAIVE = ("persistence", "seasonal_naive", "seasonal_naive_trend")


def naive_forecasts(x_scaled: np.ndarray, series: Series, horizon: int, season: int) -> dict[str, np.ndarray]:
    """Three forecasts from each window alone, shape (n, horizon, targets), in scaled units:
    persistence (the last value, repeated), seasonal naive (the value one season earlier) and
    seasonal naive plus trend (that value plus the mean change per step over the last season,
    for every step between the two)."""
    observed = x_scaled[:, :, series.target_index]
    width = observed.shape[1]
    persistence = np.repeat(observed[:, -1:, :], horizon, axis=1)
    steps = np.arange(horizon)
    seasons_back = steps // season + 1
    seasonal = observed[:, width + steps - season * seasons_back, :]
    span = min(season, width - 1)  # the last season, or the whole window when it is one season long
    change_per_step = (observed[:, -1, :] - observed[:, -1 - span, :]) / max(span, 1)
    trend = seasonal + (season * seasons_back)[None, :, None] * change_per_step[:, None, :]
    return {"persistence": persistence, "seasonal_naive": seasonal, "seasonal_naive_trend": trend}


def forecast_report(model, series: Series, settings) -> dict:
    """The model's test RMSE/MAE next to the naive forecasts on the same windows, overall and per
    step ahead, in the series' own units."""
    x, y = series.test_windows
    predicted = np.asarray(model.predict(x, batch_size=1024, verbose=0)).reshape(y.shape)
    report = {"units": "the series' own (scaling undone)", "windows": int(len(x)), "horizon": int(y.shape[1]), "season": settings.season, "model": errors(predicted, y, series)}
    for name, forecast in naive_forecasts(x, series, settings.horizon, settings.season).items():
        report[name] = errors(forecast, y, series)
    report["model_beats"] = [name for name in NAIVE if report["model"]["rmse"] < report[name]["rmse"]]
    report["model_beats_per_step"] = [
        [name for name in NAIVE if report["model"]["rmse_per_step"][step] < report[name]["rmse_per_step"][step]] for step in range(report["horizon"])
    ]
    return report


def errors(predicted_scaled: np.ndarray, truth_scaled: np.ndarray, series: Series) -> dict:
    """RMSE and MAE in the series' original units, over every window, step and target, and for each
    step ahead (over windows and targets)."""
    difference = series.target_scaling.invert(predicted_scaled) - series.target_scaling.invert(truth_scaled)
    return {
        "rmse": float(np.sqrt(np.mean(difference**2))),
        "mae": float(np.mean(np.abs(difference))),
        "rmse_per_step": np.sqrt(np.mean(difference**2, axis=(0, 2))).tolist(),
        "mae_per_step": np.mean(np.abs(difference), axis=(0, 2)).tolist(),
    }
