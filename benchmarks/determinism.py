"""What each `train.deterministic` tier costs: the same Fashion-MNIST training (a CNN with flip and
translation augmentation) with `off`, `seeded` and `strict`, side by side in one run, their order
rotated every repeat. Reports CPU-seconds (user + system of the whole command) and wall time of
each, as ratios to `off`, and whether two runs of a tier wrote the same metrics.

    apt-get install dataset-fashion-mnist
    python benchmarks/determinism.py [--data /usr/share/datasets/fashion-mnist] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

TIERS = ("off", "seeded", "strict")


def config(data: Path, epochs: int) -> dict:
    return {
        "name": "determinism",
        "seed": 1,
        "data": {
            "source": "idx",
            "path": str(data),
            "splits": {"train": "train[:20000]", "test": "test[:2000]"},
            "val_fraction": 0.1,
            "batch_size": 128,
            "preprocess": {"rescale": 1 / 255},
            "augment": [{"type": "random_flip", "mode": "horizontal"}, {"type": "random_translation", "height": 0.08, "width": 0.08}],
        },
        "model": {"type": "cnn", "blocks": [{"filters": 32}, {"filters": 64}], "batch_norm": True, "dense": [128], "dropout": 0.3},
        "optimizer": {"type": "adam", "learning_rate": 1.0e-3},
        "train": {"epochs": epochs, "progress": "none"},
        "checkpoint": {"monitor": "val_accuracy"},
    }


def train(config_file: Path, runs_dir: Path, tier: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "dlopt.cli", "train", str(config_file), "--runs-dir", str(runs_dir), "--set", f"train.deterministic={tier}", "--json"], capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    run = Path(json.loads(done.stdout)["run_dir"])
    with open(run / "metrics.csv") as handle:
        metrics = [{k: v for k, v in row.items() if k not in ("epoch_seconds", "samples_per_second")} for row in csv.DictReader(handle)]
    return {"tier": tier, "wall": wall, "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), "metrics": metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not (args.data / "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(f"no Fashion-MNIST IDX files in {args.data}: apt-get install dataset-fashion-mnist")
    results: dict[str, list[dict]] = {tier: [] for tier in TIERS}
    with tempfile.TemporaryDirectory() as scratch:
        config_file = Path(scratch) / "determinism.yaml"
        config_file.write_text(yaml.safe_dump(config(args.data, args.epochs), sort_keys=False))
        for repeat in range(args.repeats):
            order = TIERS[repeat % 3 :] + TIERS[: repeat % 3]
            for tier in order:
                result = train(config_file, Path(scratch) / "runs", tier)
                results[tier].append(result)
                print(f"repeat {repeat} {tier}: {result['cpu']:.0f} CPU-s, {result['wall']:.0f} s wall, val_accuracy {result['metrics'][-1]['val_accuracy']}", flush=True)
    off_cpu = statistics.median(r["cpu"] for r in results["off"])
    off_wall = statistics.median(r["wall"] for r in results["off"])
    print("\n| tier | CPU-seconds (median) | vs off | wall (median) | vs off | repeats wrote the same metrics |")
    print("|---|---:|---:|---:|---:|---|")
    for tier in TIERS:
        cpu = statistics.median(r["cpu"] for r in results[tier])
        wall = statistics.median(r["wall"] for r in results[tier])
        same = all(r["metrics"] == results[tier][0]["metrics"] for r in results[tier])
        print(f"| {tier} | {cpu:.0f} | {cpu / off_cpu:.2f}x | {wall:.0f} s | {wall / off_wall:.2f}x | {'yes' if same else 'no'} |")


if __name__ == "__main__":
    main()
