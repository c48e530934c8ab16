"""The shipped time-series config on real series that statsmodels ships, against three naive forecasts.

    pip install statsmodels
    python benchmarks/forecasts.py [--seeds 1 2 3] [--horizon 4]

Each series is written to a CSV (time, value) and trained with `configs/lstm_timeseries.yaml` as
shipped; only what belongs to the data is set: its path, its season and a window of three seasons
(four years for quarterly series). Prints the test RMSE in the series' own units of the model (per
seed) and of persistence, seasonal naive and seasonal naive plus trend, which are the same for
every seed. statsmodels' Mauna Loa CO2 series is held out: it checks the config on data it was not
tuned on, so it is not listed here.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


def series() -> dict[str, tuple[list[tuple[str, float]], int, str]]:
    """name -> ((time, value) rows, season, kind)."""
    import statsmodels.api as sm

    macro = sm.datasets.macrodata.load_pandas().data
    quarterly = lambda column: [(f"{int(r.year)}-Q{int(r.quarter)}", float(r[column])) for _, r in macro.iterrows()]
    elnino = sm.datasets.elnino.load_pandas().data
    monthly = [(f"{int(r.YEAR)}-{m + 1:02d}", float(r[name])) for _, r in elnino.iterrows() for m, name in enumerate(MONTHS)]
    sunspots = sm.datasets.sunspots.load_pandas().data
    yearly = [(f"{int(r.YEAR)}", float(r.SUNACTIVITY)) for _, r in sunspots.iterrows()]
    return {
        "US CPI (macrodata.cpi, quarterly)": (quarterly("cpi"), 4, "trend"),
        "US real consumption (macrodata.realcons)": (quarterly("realcons"), 4, "trend"),
        "US real GDP (macrodata.realgdp)": (quarterly("realgdp"), 4, "trend, 2008 recession in the test part"),
        "El Nino sea temperature (elnino, monthly)": (monthly, 12, "seasonal"),
        "sunspots (yearly, cycle of about 11)": (yearly, 11, "cycle"),
    }


def write_series(rows: list[tuple[str, float]], path: Path) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time", "value"])
        writer.writerows(rows)
    return path


def overrides(path: Path, season: int, horizon: int) -> list[str]:
    """What belongs to the data: its path, its season, a window of three seasons (16 steps at least)."""
    return [f"data.path={path}", f"data.timeseries.season={season}", f"data.timeseries.input_width={max(3 * season, 16)}", f"data.timeseries.horizon={horizon}"]


def train(path: Path, season: int, horizon: int, seed: int, runs: Path) -> dict:
    sets = overrides(path, season, horizon) + [f"seed={seed}"]
    command = [sys.executable, "-m", "dlopt.cli", "train", str(ROOT / "configs" / "lstm_timeseries.yaml"), "--json", "--runs-dir", str(runs), "--progress", "none"]
    for option in sets:
        command += ["--set", option]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{path.name}: {result.stderr.strip().splitlines()[-1]}")
    return json.loads(result.stdout)["forecast"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--horizon", type=int, default=4)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dlopt-forecasts-"))
    print(f"| series | kind | model (seeds {' / '.join(map(str, args.seeds))}) | persistence | seasonal naive | seasonal naive + trend | model beats all three |")
    print("|---|---|---|---|---|---|---|")
    for name, (rows, season, kind) in series().items():
        path = write_series(rows, folder / f"{len(list(folder.glob('*.csv')))}.csv")
        forecasts = [train(path, season, args.horizon, seed, folder / "runs") for seed in args.seeds]
        models = [f["model"]["rmse"] for f in forecasts]
        naive = {k: forecasts[0][k]["rmse"] for k in ("persistence", "seasonal_naive", "seasonal_naive_trend")}
        wins = sum(len(f["model_beats"]) == 3 for f in forecasts)
        print(f"| {name} | {kind} | {' / '.join(f'{m:.4g}' for m in models)} | {naive['persistence']:.4g} | {naive['seasonal_naive']:.4g} | {naive['seasonal_naive_trend']:.4g} | {wins} of {len(forecasts)} seeds |", flush=True)


if __name__ == "__main__":
    main()
