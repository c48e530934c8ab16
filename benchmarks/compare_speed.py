"""How long `dlopt compare` takes over many runs (the target: well under a second for 100).

    python benchmarks/compare_speed.py [--runs 100] [--epochs 30] [--repeats 5]

Writes N run folders in the run-directory contract (config.yaml, run.json, metrics.csv,
summary.json; a sweep over learning rate and dropout) into a temporary folder, then times the whole
command `dlopt compare DIR --json` in a fresh process, Python start-up included, and reports the
median wall time and whether TensorFlow was imported (it must not be).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def write_run(folder: Path, index: int, epochs: int) -> None:
    run = folder / f"sweep-{index:03d}"
    run.mkdir(parents=True)
    lr, dropout = 10 ** -(2 + index % 5 / 2), [0.0, 0.1, 0.3, 0.5][index % 4]
    config = {
        "name": "sweep",
        "seed": 42,
        "data": {"source": "idx", "path": "/data", "batch_size": 128},
        "model": {"type": "cnn", "blocks": [{"filters": 32}, {"filters": 64}], "dropout": dropout, "dense": [128]},
        "optimizer": {"type": "adamw", "learning_rate": lr, "weight_decay": 1e-4},
        "schedule": {"type": "cosine", "warmup_epochs": 1},
        "train": {"epochs": epochs, "metrics": ["accuracy", "macro_f1"]},
        "checkpoint": {"monitor": "val_accuracy", "mode": "max"},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (run / "run.json").write_text(json.dumps({"status": "completed", "pid": 1, "host": "elsewhere", "seed": 42}))
    lines = ["epoch,learning_rate,loss,accuracy,macro_f1,val_loss,val_accuracy,val_macro_f1,epoch_seconds,samples_per_second"]
    for epoch in range(1, epochs + 1):
        acc = 0.9 * (1 - 0.5**epoch) + index / 10_000
        lines.append(f"{epoch},{lr},{1 - acc},{acc},{acc},{1.1 - acc},{acc - 0.01},{acc - 0.01},45.0,1200.0")
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    final = dict(zip(lines[0].split(",")[1:], map(float, lines[-1].split(",")[1:])))
    summary = {
        "name": "sweep",
        "status": "completed",
        "best": {"epoch": epochs, "monitor": "val_accuracy", "value": final["val_accuracy"]},
        "final": final,
        "test": {"loss": final["val_loss"], "accuracy": final["val_accuracy"], "macro_f1": final["val_macro_f1"]},
        "epochs_run": epochs,
        "train_seconds": 45.0 * epochs,
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.runs):
            write_run(Path(tmp), index, args.epochs)
        probe = f"import sys; from dlopt.cli import main\ntry: main(['compare', {tmp!r}, '--json', '--sort', 'val_accuracy'])\nexcept SystemExit: pass\nprint(json.dumps('tensorflow' in sys.modules), file=sys.stderr)"
        times, imported = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", "import json\n" + probe], capture_output=True, text=True, check=True)
            times.append(time.perf_counter() - start)
            rows = json.loads(done.stdout)
            imported = json.loads(done.stderr.strip().splitlines()[-1])
        startup = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            startup.append(time.perf_counter() - start)
    print(f"{len(rows)} runs, {args.epochs} epochs each")
    print(f"dlopt compare --json --sort val_accuracy: median {statistics.median(times):.3f}s over {args.repeats} (all: {', '.join(f'{t:.3f}' for t in times)})")
    print(f"bare Python start-up for scale: median {statistics.median(startup):.3f}s")
    print(f"TensorFlow imported: {imported}")


if __name__ == "__main__":
    main()
