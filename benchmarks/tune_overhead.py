"""Time `dlopt tune` adds per trial (Optuna's storage round trips, sampling, the trial's folder and
run.json entry, best.yaml) next to training the very same configs with plain `dlopt train`
calls, side by side in one process.

A study of N tiny trials runs with each call of the real train() timed: the study's time outside
train(), less its end-of-run plots (drawn once per worker, timed on their own), divided by N is the
cost per trial. Then each trial's saved config.yaml is trained again by plain train() calls, as a
side-by-side check (noisier: it is the difference of two whole runs).

    python benchmarks/tune_overhead.py [--trials 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import yaml

CONFIG = {
    "name": "overhead",
    "seed": 1,
    "data": {"source": "sklearn", "name": "digits", "splits": {"train": "all[:80%]", "test": "all[80%:]"}, "val_fraction": 0.1, "batch_size": 64, "preprocess": {"rescale": 0.0625}},
    "model": {"type": "mlp", "layers": [32]},
    "optimizer": {"type": "adam", "learning_rate": 1.0e-3},
    "train": {"epochs": 2, "progress": "none"},
    "checkpoint": {"monitor": "val_accuracy"},
}


def measure(trials: int, scratch: Path, repeat: int) -> dict:
    import optuna

    from dlopt.config import load_config
    from dlopt.search.spec import load_search
    from dlopt.search.study import tune, write_plots
    from dlopt.train import train

    config = dict(CONFIG, search={"trials": trials, "sampler": "tpe", "seed": repeat, "pruner": "none", "params": {"optimizer.learning_rate": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True}}})
    path = scratch / f"overhead{repeat}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    runs_dir = scratch / f"study{repeat}"
    quiet = io.StringIO()
    import dlopt.train

    inside_train = []
    real_train = dlopt.train.train

    def timed_train(*args, **kwargs):  # the real train(), timed: what is left of a trial is tune's own cost
        started = time.perf_counter()
        try:
            return real_train(*args, **kwargs)
        finally:
            inside_train.append(time.perf_counter() - started)

    with contextlib.redirect_stderr(quiet):
        dlopt.train.train = timed_train
        started = time.perf_counter()
        try:
            result = tune(load_search(path), runs_dir, ["benchmark"], progress="none")
        finally:
            dlopt.train.train = real_train
        tune_seconds = time.perf_counter() - started
        study = optuna.load_study(study_name=result["study"], storage=result["storage"])
        started = time.perf_counter()
        write_plots(study, runs_dir / result["study"])
        plot_seconds = time.perf_counter() - started
        trial_dirs = sorted(p for p in Path(result["study_dir"]).iterdir() if (p / "run.json").exists())
        started = time.perf_counter()
        import keras

        for run in trial_dirs:
            keras.backend.clear_session(free_memory=False)  # as tune does between trials
            train(load_config(run / "config.yaml"), scratch / f"plain{repeat}", ["benchmark"], "none")
        plain_seconds = time.perf_counter() - started
    return {
        "trials": len(trial_dirs),
        "tune_seconds": tune_seconds,
        "plot_seconds": plot_seconds,
        "plain_seconds": plain_seconds,
        "per_trial": (tune_seconds - plot_seconds - sum(inside_train)) / len(trial_dirs),
        "per_trial_side_by_side": (tune_seconds - plot_seconds - plain_seconds) / len(trial_dirs),
        "train_per_trial": plain_seconds / len(trial_dirs),
    }


def warm_up(scratch: Path) -> None:
    """One training before measuring: TensorFlow's imports and first graphs cost either side alike."""
    from dlopt.config import load_config
    from dlopt.train import train

    path = scratch / "warm.yaml"
    path.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    with contextlib.redirect_stderr(io.StringIO()):
        train(load_config(path), scratch / "warm", ["benchmark"], "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from dlopt.runtime import quiet_native_logs

    quiet_native_logs()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        warm_up(Path(scratch))
        for repeat in range(args.repeats):
            result = measure(args.trials, Path(scratch), repeat)
            results.append(result)
            print(f"repeat {repeat}: {result['trials']} trials; tune {result['tune_seconds']:.1f} s (plots {result['plot_seconds']:.1f} s), plain train {result['plain_seconds']:.1f} s; added per trial {result['per_trial']:.3f} s outside train() ({result['per_trial_side_by_side']:+.3f} s against the plain trainings; a trial trains {result['train_per_trial']:.2f} s)", flush=True)
    per_trial = [r["per_trial"] for r in results]
    print(f"added per trial: median {statistics.median(per_trial):.3f} s, range {min(per_trial):.3f}-{max(per_trial):.3f} s over {len(results)} repeats")


if __name__ == "__main__":
    main()
