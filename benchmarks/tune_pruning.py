"""A 16-trial `dlopt tune` study on a Fashion-MNIST subset, without and with median pruning, side
by side in one run: epochs trained, wall time and CPU-seconds of each study, and its best
validation accuracy. Both studies sample with the same seeded TPE sampler; pruning changes only
which trials stop early (and, through their results, where TPE looks next).

    apt-get install dataset-fashion-mnist
    python benchmarks/tune_pruning.py [--data /usr/share/datasets/fashion-mnist] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SEARCH = {
    "trials": 16,
    "sampler": "tpe",
    "seed": 0,
    "pruner_startup_trials": 3,
    "pruner_warmup_epochs": 1,
    "params": {
        "optimizer.learning_rate": {"type": "float", "low": 1.0e-4, "high": 3.0e-2, "log": True},
        "model.dropout": {"type": "float", "low": 0.0, "high": 0.6},
        "model.dense": {"type": "categorical", "choices": [[32], [64], [128]]},
    },
}


def config(data: Path, epochs: int) -> dict:
    """A small CNN on 9,000 training and 3,000 validation images of Fashion-MNIST's training set."""
    return {
        "name": "fashion_subset",
        "seed": 1,
        "data": {
            "source": "idx",
            "path": str(data),
            "splits": {"train": "train[:12000]", "test": "test[:2000]"},
            "val_fraction": 0.25,
            "batch_size": 128,
            "preprocess": {"rescale": 1 / 255},
        },
        "model": {"type": "cnn", "blocks": [{"filters": 16}, {"filters": 32}], "batch_norm": True, "dense": [64], "dropout": 0.3},
        "optimizer": {"type": "adam", "learning_rate": 1.0e-3},
        "train": {"epochs": epochs, "progress": "none"},
        "checkpoint": {"monitor": "val_accuracy"},
        "search": SEARCH,
    }


def run_study(config_file: Path, runs_dir: Path, pruner: str, seed: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "dlopt.cli", "tune", str(config_file), "--runs-dir", str(runs_dir), "--study", f"pruner-{pruner}", "--set", f"search.pruner={pruner}", "--set", f"search.seed={seed}", "--json"],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    result = json.loads(done.stdout)
    study_dir = Path(result["study_dir"])
    epochs = 0
    for run in study_dir.iterdir():
        if (run / "metrics.csv").exists():
            with open(run / "metrics.csv") as handle:
                epochs += sum(1 for _ in csv.DictReader(handle))
    return {
        "pruner": pruner,
        "seed": seed,
        "epochs": epochs,
        "wall_seconds": wall,
        "cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "best": result["best"]["value"],
        "trials": result["trials"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="studies of each kind, with sampler seeds --first-seed, +1, ...")
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.data / "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(f"no Fashion-MNIST IDX files in {args.data}: apt-get install dataset-fashion-mnist")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        config_file = Path(scratch) / "fashion_subset.yaml"
        config_file.write_text(yaml.safe_dump(config(args.data, args.epochs), sort_keys=False))
        for repeat in range(args.repeats):
            order = ["none", "median"] if repeat % 2 == 0 else ["median", "none"]  # the host's slow phases hit both
            for pruner in order:
                result = run_study(config_file, Path(scratch) / f"runs{repeat}", pruner, args.first_seed + repeat)
                rows.append(result)
                print(json.dumps(result), flush=True)
    full = args.epochs * SEARCH["trials"]
    print(f"\n| sampler seed | pruning | epochs trained | of {full} | wall | CPU-seconds | best val_accuracy | trials |")
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        counts = ", ".join(f"{n} {state}" for state, n in r["trials"].items())
        print(f"| {r['seed']} | {r['pruner']} | {r['epochs']} | {r['epochs'] / full:.0%} | {r['wall_seconds'] / 60:.1f} min | {r['cpu_seconds']:.0f} | {r['best']:.4f} | {counts} |")


if __name__ == "__main__":
    main()
