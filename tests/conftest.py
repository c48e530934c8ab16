"""Tiny data made by the tests, and helpers to run the real CLI."""

from __future__ import annotations

import gzip
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def quadrant_images(n: int, size: int = 8, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is the bright quadrant: learnable in a few epochs by a tiny model."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
    half = size // 2
    for i, label in enumerate(labels):
        r, c = divmod(int(label), 2)
        images[i, r * half : (r + 1) * half, c * half : (c + 1) * half] += 180
    return images, labels


@pytest.fixture
def idx_dir(tmp_path) -> Path:
    """An MNIST-style IDX folder: 240 training and 80 test 8x8 images, 4 classes."""
    folder = tmp_path / "idx"
    folder.mkdir()
    x, y = quadrant_images(240, seed=1)
    write_idx(folder / "train-images-idx3-ubyte", x)
    write_idx(folder / "train-labels-idx1-ubyte", y)
    x, y = quadrant_images(80, seed=2)
    write_idx(folder / "t10k-images-idx3-ubyte", x)
    write_idx(folder / "t10k-labels-idx1-ubyte", y)
    return folder


@pytest.fixture
def regression_npz(tmp_path) -> Path:
    """y = 2*x0 - x1 + 0.5, in one .npz with x_<split>/y_<split> arrays."""
    rng = np.random.default_rng(3)
    arrays = {}
    for split, n in (("train", 300), ("test", 100)):
        x = rng.normal(size=(n, 4)).astype(np.float32)
        arrays[f"x_{split}"] = x
        arrays[f"y_{split}"] = (2 * x[:, 0] - x[:, 1] + 0.5).astype(np.float32)
    path = tmp_path / "reg.npz"
    np.savez(path, **arrays)
    return path


def tiny_cnn_config(idx_dir: Path, **overrides) -> dict:
    config = {
        "name": "tiny",
        "seed": 1,
        "data": {"source": "idx", "path": str(idx_dir), "batch_size": 32, "preprocess": {"rescale": 1 / 255}},
        "model": {"type": "cnn", "blocks": [{"filters": 4}], "dense": [8]},
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "train": {"epochs": 2, "progress": "lines"},
    }
    for key, value in overrides.items():
        config[key] = value
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def cli():
    """Run `dlopt ...` in-process through click's runner; returns (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from dlopt.cli import main

    def run(*args):
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return run


def quadrant_idx_folder(folder: Path, train: int = 240, test: int = 80) -> Path:
    """An MNIST-style IDX folder of quadrant images (8x8, 4 classes)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", train, 1), ("t10k", test, 2)):
        x, y = quadrant_images(n, seed=seed)
        write_idx(folder / f"{split}-images-idx3-ubyte", x)
        write_idx(folder / f"{split}-labels-idx1-ubyte", y)
    return folder


def slow_idx_folder(folder: Path) -> Path:
    """3,000 training images: with batch 8, an epoch takes a moment (something to stop mid-way)."""
    return quadrant_idx_folder(folder, train=3000, test=200)


def train_once(config: dict, folder: Path):
    """`dlopt train --json` in-process on `config` (written into `folder`); returns click's result."""
    from click.testing import CliRunner

    from dlopt.cli import main

    path = write_config(folder / "c.yaml", config)
    return CliRunner().invoke(main, ["train", str(path), "--runs-dir", str(folder / "runs"), "--json"], catch_exceptions=False)


def fake_run(folder: Path, name: str, lr: float, status: str = "completed", val_accuracy: float = 0.5, epochs: int = 3) -> Path:
    """A run folder as dlopt writes it, for the readers that only read the contract."""
    run = folder / name
    run.mkdir(parents=True)
    config = {"name": "r", "seed": 1, "optimizer": {"type": "adam", "learning_rate": lr}, "train": {"epochs": epochs}, "checkpoint": {"monitor": "val_accuracy", "mode": "auto"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "run.json").write_text(json.dumps({"status": status, "pid": 0, "host": "elsewhere"}))
    with open(run / "metrics.csv", "w") as handle:
        handle.write("epoch,learning_rate,loss,accuracy,val_loss,val_accuracy,epoch_seconds,samples_per_second\n")
        for epoch in range(1, epochs + 1):
            handle.write(f"{epoch},{lr},{1 / epoch},{val_accuracy - 0.1},{1.2 / epoch},{val_accuracy * epoch / epochs},1.0,100\n")
    if status == "completed":
        summary = {
            "best": {"epoch": epochs, "monitor": "val_accuracy", "value": val_accuracy},
            "final": {"loss": 0.3, "val_accuracy": val_accuracy, "epoch_seconds": 1.0},
            "test": {"accuracy": val_accuracy - 0.01},
            "epochs_run": epochs,
            "train_seconds": 3.0,
        }
        (run / "summary.json").write_text(json.dumps(summary))
    return run
