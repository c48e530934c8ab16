"""A run stopped and resumed behaves exactly like one that never stopped (train.deterministic: strict):
the same data order, augmentation and dropout draws, the same early-stopping and reduce-on-plateau
decisions, the same metrics."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import quadrant_idx_folder, tiny_cnn_config, write_config

from dlopt.runs.metrics_csv import TIMING

DLOPT = [sys.executable, "-m", "dlopt.cli"]

def rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)]


def config_file(tmp_path: Path, deterministic: str, ema_momentum: float | None = None) -> Path:
    """A tiny CNN whose plateau schedule lowers the rate and whose early stopping ends the run
    within 12 epochs: both decisions depend on counters carried over epochs."""
    folder = quadrant_idx_folder(tmp_path / "idx", train=1200, test=100)
    config = tiny_cnn_config(
        folder,
        train={"epochs": 12, "progress": "none", "deterministic": deterministic, "early_stopping": {"monitor": "val_loss", "patience": 2, "min_delta": 3.0e-4}},
        schedule={"type": "plateau", "monitor": "val_loss", "patience": 1, "factor": 0.5, "min_delta": 1.0e-4},
        checkpoint={"monitor": "val_loss"},
    )
    config["data"]["batch_size"] = 8
    config["data"]["val_fraction"] = 0.2
    config["model"]["dropout"] = 0.3  # random draws that must continue, not restart, after a resume
    config["data"]["augment"] = [{"type": "random_flip", "mode": "horizontal"}, {"type": "random_translation", "height": 0.1, "width": 0.1}]
    config["optimizer"]["learning_rate"] = 0.003
    if ema_momentum is not None:
        config["optimizer"]["ema_momentum"] = ema_momentum
    return write_config(tmp_path / "exact.yaml", config)


def wait_for_rows(runs_dir: Path, count: int, proc: subprocess.Popen, timeout: float = 240) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        for run in runs_dir.glob("*/metrics.csv"):
            if len(rows(run.parent)) >= count:
                return run.parent
        time.sleep(0.1)
    raise AssertionError("the run did not reach the epoch in time")


def test_stopped_and_resumed_equals_never_stopped(tmp_path):
    path = config_file(tmp_path, "strict")
    expected, _ = train_straight(tmp_path, path)
    rates = [float(r["learning_rate"]) for r in expected]
    assert 4 < len(expected) < 12 and len(set(rates)) > 1, expected  # early stopping and the plateau both acted
    stop_and_resume(tmp_path, path, expected)


def test_weight_average_resumes_exactly(tmp_path):
    """The moving average of the weights lives in the optimizer: the resume state must carry it.
    Validation scores the average, so each later row shows whether it came back whole."""
    path = config_file(tmp_path, "strict", ema_momentum=0.9)
    expected, straight = train_straight(tmp_path, path)
    assert len(expected) > 4, expected
    resumed = stop_and_resume(tmp_path, path, expected)
    assert resumed["test"] == straight["test"]  # tested on the same averaged weights


def train_straight(tmp_path: Path, path: Path) -> tuple[list[dict], dict]:
    straight = subprocess.run([*DLOPT, "train", str(path), "--runs-dir", str(tmp_path / "straight"), "--json"], capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]
    summary = json.loads(straight.stdout)
    return rows(Path(summary["run_dir"])), summary


def stop_and_resume(tmp_path: Path, path: Path, expected: list[dict]) -> dict:
    proc = subprocess.Popen([*DLOPT, "train", str(path), "--runs-dir", str(tmp_path / "stopped")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = wait_for_rows(tmp_path / "stopped", 3, proc)
    proc.send_signal(signal.SIGTERM)  # lands in epoch 4 (or at its start)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert 3 <= len(rows(run)) < len(expected)
    resumed = subprocess.run([*DLOPT, "train", "--resume", str(run), "--json"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert rows(run) == expected  # every epoch, learning rate, metric and the stopping epoch alike
    with open(run / "metrics.csv") as handle:  # the CPU count goes on from the first process's, never restarts
        cpu = [float(row["cpu_seconds"]) for row in csv.DictReader(handle)]
    summary = json.loads(resumed.stdout)
    assert all(a < b for a, b in zip(cpu, cpu[1:])) and cpu[-1] < summary["cpu_seconds"]
    return summary


def test_a_mixed_table_run_resumes_exactly(tmp_path):
    """Text vocabularies, set and date layers, word and unit dropout inside the model: a stopped
    mixed-table run goes on as if it never stopped."""
    from test_mixed import mixed_config, mixed_csv

    config = mixed_config(mixed_csv(tmp_path / "things.csv", n=2400), text={"type": "fasttext", "embedding_dim": 8, "token_dropout": 0.2}, dropout=0.3)
    config["data"]["batch_size"] = 8
    config["train"] = {"epochs": 6, "progress": "none", "deterministic": "strict"}
    path = write_config(tmp_path / "mixed.yaml", config)
    expected, _ = train_straight(tmp_path, path)
    assert len(expected) == 6
    stop_and_resume(tmp_path, path, expected)


def test_a_run_of_several_outputs_resumes_exactly(tmp_path):
    """Every output's loss and metrics, and the monitor on one of them, go on after a resume as if
    the run never stopped."""
    from test_outputs import outputs_config, outputs_csv

    config = outputs_config(outputs_csv(tmp_path / "things.csv", n=2400))
    config["data"]["batch_size"] = 8
    config["model"]["dropout"] = 0.3
    config["train"] = {"epochs": 6, "progress": "none", "deterministic": "strict"}
    path = write_config(tmp_path / "outputs.yaml", config)
    expected, straight = train_straight(tmp_path, path)
    assert len(expected) == 6 and "val_price_mae" in expected[0]
    resumed = stop_and_resume(tmp_path, path, expected)
    assert resumed["best"] == straight["best"] and resumed["test"] == straight["test"]
