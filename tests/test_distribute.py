"""tf.distribute: MirroredStrategy over two logical CPU devices, and two workers on loopback.

Both run `dlopt train` in fresh processes: logical devices and the collective runtime must be set
up before TensorFlow starts, which this test process has long done.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_cnn_config, write_config
from dlopt.config import load_config
from dlopt.distribute import scaled
from dlopt.errors import ConfigError


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def dlopt_process(args: list, env: dict | None = None) -> subprocess.Popen:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "dlopt.cli", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)


def test_mirrored_over_two_logical_cpus_scales_batch_and_learning_rate(tmp_path, idx_dir):
    config = tiny_cnn_config(idx_dir, distribute={"strategy": "mirrored", "cpu_devices": 2}, train={"epochs": 3, "progress": "lines"})
    path = write_config(tmp_path / "c.yaml", config)
    process = dlopt_process(["train", path, "--runs-dir", tmp_path / "runs", "--json"])
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    run = Path(json.loads(out)["run_dir"])
    summary = json.loads((run / "summary.json").read_text())
    # data.batch_size is per replica: 2 replicas make a global batch of 64, and the rate doubles (linear)
    assert summary["distribute"] == {"strategy": "mirrored", "replicas": 2, "global_batch_size": 64, "learning_rate": 0.02}
    assert summary["epochs_run"] == 3 and summary["test"]["accuracy"] > 0.5
    assert "2 replicas (mirrored, global batch 64)" in err
    # the saved config is the user's, unscaled
    assert load_config(run / "config.yaml").data.batch_size == 32


def test_two_workers_on_loopback_train_one_run_folder(tmp_path, idx_dir):
    config = tiny_cnn_config(idx_dir, distribute={"strategy": "multi_worker"}, train={"epochs": 2, "progress": "lines"})
    path = write_config(tmp_path / "c.yaml", config)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    scratch = [tmp_path / f"tmp{i}" for i in range(2)]
    workers = []
    for index in range(2):
        scratch[index].mkdir()
        env = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}), "TMPDIR": str(scratch[index])}
        workers.append(dlopt_process(["train", path, "--runs-dir", tmp_path / "runs", "--json"], env))
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=300))
    finally:
        for worker in workers:
            worker.kill()
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    chief, other = json.loads(outputs[0][0]), json.loads(outputs[1][0])
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and Path(chief["run_dir"]) == runs[0]  # one run folder, written by the chief
    assert other["run_dir"] is None and other["worker"] == "worker:1" and other["status"] == "completed"
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["distribute"]["replicas"] == 2 and summary["distribute"]["strategy"] == "multi_worker"
    assert json.loads((runs[0] / "run.json").read_text())["status"] == "completed"
    assert len((runs[0] / "metrics.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    # both workers computed the same (all-reduced) metrics; the other worker's scratch folder is gone
    from dlopt.runs.metrics_csv import TIMING as timing

    assert {k: v for k, v in chief["final"].items() if k not in timing} == pytest.approx({k: v for k, v in other["final"].items() if k not in timing}, rel=1e-5)
    assert "val_accuracy" in chief["final"]
    assert not any(p.name.startswith("dlopt-") for p in scratch[1].iterdir())


def test_multi_worker_without_tf_config_is_a_config_error(tmp_path, idx_dir, cli, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    path = write_config(tmp_path / "c.yaml", tiny_cnn_config(idx_dir, distribute={"strategy": "multi_worker"}))
    code, _, err = cli("train", path, "--runs-dir", tmp_path / "runs")
    assert code == 2 and "TF_CONFIG" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_devices_only_with_mirrored(tmp_path, idx_dir, cli):
    path = write_config(tmp_path / "c.yaml", tiny_cnn_config(idx_dir, distribute={"devices": ["/gpu:0"]}))
    code, _, err = cli("validate", path)
    assert code == 2 and "distribute.devices: only applies with strategy 'mirrored'" in err


@pytest.mark.parametrize(
    "distribute, expected",
    [
        ({"strategy": "mirrored"}, (128, 0.004)),
        ({"strategy": "mirrored", "scale_learning_rate": "sqrt"}, (128, 0.001 * 2**0.5 * 2)),
        ({"strategy": "mirrored", "scale_learning_rate": "none"}, (128, 0.002)),
        ({"strategy": "mirrored", "batch_size": "global"}, (64, 0.002)),
    ],
)
def test_global_batch_and_learning_rate_scaling(tmp_path, idx_dir, distribute, expected):
    config = load_config(write_config(tmp_path / "c.yaml", tiny_cnn_config(idx_dir, distribute=distribute, optimizer={"type": "adam", "learning_rate": 0.002}, data={"source": "idx", "path": str(idx_dir), "batch_size": 64})))
    used = scaled(config, 2)
    assert (used.data.batch_size, used.optimizer.learning_rate) == pytest.approx(expected)
    assert config.data.batch_size == 64 and config.optimizer.learning_rate == 0.002  # the user's config is untouched


def test_global_batch_must_split_over_replicas(tmp_path, idx_dir):
    config = load_config(write_config(tmp_path / "c.yaml", tiny_cnn_config(idx_dir, distribute={"strategy": "mirrored", "batch_size": "global"}, data={"source": "idx", "path": str(idx_dir), "batch_size": 33})))
    with pytest.raises(ConfigError, match="does not split evenly over 2 replicas"):
        scaled(config, 2)
