"""Run management: parallel launches, compare and plot, resume after a kill, signals, failures."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import fake_run, quadrant_images, slow_idx_folder, tiny_cnn_config, write_config, write_idx
from dlopt import runs

DLOPT = [sys.executable, "-m", "dlopt.cli"]


def read_rows(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def run_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.exists() else []


def test_create_never_shares_a_folder():
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        made = []
        threads = [threading.Thread(target=lambda: made.append(runs.create(Path(tmp), "same"))) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(made) == 16 and len(set(made)) == 16


def test_eight_parallel_trainings_each_get_their_own_run(tmp_path, idx_dir):
    # one thread each: eight runs share two cores without fighting over them
    config = write_config(tmp_path / "c.yaml", tiny_cnn_config(idx_dir, train={"epochs": 1, "progress": "none", "threads": 1}))
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    procs = [
        subprocess.Popen(DLOPT + ["train", str(config), "--name", "same", "--runs-dir", str(tmp_path / "runs"), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(8)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in outputs]
    reported = {json.loads(out)["run_dir"] for out, _ in outputs}
    folders = run_dirs(tmp_path / "runs")
    assert len(reported) == 8 and {str(f) for f in folders} == reported
    for folder in folders:
        assert json.loads((folder / "run.json").read_text())["status"] == "completed"
        assert len(read_rows(folder / "metrics.csv")) == 1
        summary = json.loads((folder / "summary.json").read_text())
        assert 0 < summary["startup_seconds"] < 300
        assert summary["onednn"] is True  # train.onednn: auto turns oneDNN on when the environment does not say
    assert not any("train.threads ignored" in err for _, err in outputs)


def test_onednn_setting_reaches_tensorflow(tmp_path, idx_dir):
    # TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, at import: each setting needs a fresh process
    config = write_config(tmp_path / "c.yaml", tiny_cnn_config(idx_dir, train={"epochs": 1, "progress": "none"}))
    seen = {}
    for setting in ("auto", "true"):
        command = DLOPT + ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "--json", "--set", f"train.onednn={setting}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"})
        assert done.returncode == 0, done.stderr[-500:]
        seen[setting] = json.loads((Path(json.loads(done.stdout)["run_dir"]) / "summary.json").read_text())["onednn"]
    assert seen == {"auto": False, "true": True}  # auto keeps the environment's choice, an explicit setting wins


def test_onednn_cannot_change_once_tensorflow_runs(tmp_path, idx_dir):
    from conftest import train_once
    from dlopt import runtime

    import tensorflow as tf  # started in this process, as in a notebook

    tf.constant(1.0)
    current = runtime.onednn_enabled()
    result = train_once(tiny_cnn_config(idx_dir, train={"epochs": 1, "progress": "none", "onednn": not current}), tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "warning: train.onednn ignored: TensorFlow was already started in this process" in result.stderr
    assert json.loads((Path(json.loads(result.stdout)["run_dir"]) / "summary.json").read_text())["onednn"] is current


def test_compare_shows_differing_settings_sorted_and_filtered(tmp_path, cli):
    fake_run(tmp_path, "a", 1e-3, val_accuracy=0.8)
    fake_run(tmp_path, "b", 3e-3, val_accuracy=0.9)
    fake_run(tmp_path, "c", 1e-2, status="failed")
    code, out, err = cli("compare", tmp_path, "--sort", "val_accuracy", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["run"] for r in rows] == ["b", "a", "c"]  # best first; runs without the value last
    assert rows[0]["optimizer.learning_rate"] == 3e-3 and "seed" not in rows[0]  # only settings that differ
    assert rows[0]["test_accuracy"] == pytest.approx(0.89) and rows[0]["best_val_accuracy"] == 0.9
    assert rows[2]["status"] == "failed" and rows[2]["epochs"] == 3  # counted from metrics.csv
    code, out, _ = cli("compare", tmp_path, "--status", "completed", "--csv", "--sort", "val_accuracy", "--asc")
    lines = out.strip().splitlines()
    assert lines[0].startswith("run,status,optimizer.learning_rate") and [l.split(",")[0] for l in lines[1:]] == ["a", "b"]
    code, out, _ = cli("compare", tmp_path)
    assert code == 0 and "3 runs" in out
    code, _, err = cli("compare", tmp_path, "--sort", "val_acc")
    assert code == 2 and "did you mean 'val_accuracy'" in err


def test_compare_marks_runs_whose_process_died(tmp_path, cli):
    run = fake_run(tmp_path, "dead", 1e-3, status="running")
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / "run.json").write_text(json.dumps({"status": "running", "pid": dead.pid, "host": socket.gethostname()}))
    code, out, _ = cli("compare", tmp_path, "--json")
    assert json.loads(out)[0]["status"] == "died"


def test_compare_does_not_import_tensorflow(tmp_path):
    for i in range(5):
        fake_run(tmp_path, f"r{i}", 10.0**-i)
    script = f"import sys; from dlopt.cli import main\ntry: main(['compare', {str(tmp_path)!r}])\nexcept SystemExit: pass\nassert 'tensorflow' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_plot_overlays_runs(tmp_path, cli):
    a, b = fake_run(tmp_path, "a", 1e-3), fake_run(tmp_path, "b", 1e-2)
    code, out, err = cli("plot", a, b, "-o", tmp_path / "both.png")
    assert code == 0, err
    assert (tmp_path / "both.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = cli("plot", tmp_path / "a" / "..", "-o", tmp_path / "x.png")
    assert code == 2 and "not a dlopt run folder" in err


def slow_config(tmp_path: Path, epochs: int) -> Path:
    """A tiny CNN on enough data that an epoch takes a moment: something to kill mid-way."""
    folder = slow_idx_folder(tmp_path / "idx")
    config = tiny_cnn_config(folder, train={"epochs": epochs, "progress": "none"}, checkpoint={"monitor": "val_accuracy", "backup_every_steps": 20})
    config["data"]["batch_size"] = 8
    config["optimizer"]["learning_rate"] = 0.003
    return write_config(tmp_path / "slow.yaml", config)


def start(config: Path, runs_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(DLOPT + ["train", str(config), "--runs-dir", str(runs_dir), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epochs(runs_dir: Path, epochs: int, proc: subprocess.Popen, timeout: float = 240) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-1000:]
        for run in run_dirs(runs_dir):
            if (run / "metrics.csv").exists() and len(read_rows(run / "metrics.csv")) >= epochs:
                return run
        time.sleep(0.2)
    raise AssertionError("training did not reach the epoch in time")


def test_sigkill_mid_epoch_then_resume(tmp_path):
    epochs = 4
    config = slow_config(tmp_path, epochs)
    killed = start(config, tmp_path / "runs")
    run = wait_for_epochs(tmp_path / "runs", 2, killed)
    time.sleep(1.0)  # into epoch 3, past at least one step-level backup
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert json.loads((run / "run.json").read_text())["status"] == "running"  # nobody could update it
    resumed = subprocess.run(DLOPT + ["train", "--resume", str(run), "--json"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rows = read_rows(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [str(e) for e in range(1, epochs + 1)]  # every epoch exactly once
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["resumed"][0]["previous_status"] == "running"
    assert not (run / "backup").exists()  # the resume state is dropped once the run completes

    reference = subprocess.run(DLOPT + ["train", str(config), "--runs-dir", str(tmp_path / "ref"), "--json"], capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr[-2000:]
    uninterrupted = json.loads(reference.stdout)["final"]["val_accuracy"]
    assert abs(float(rows[-1]["val_accuracy"]) - uninterrupted) <= 0.005


@pytest.mark.parametrize("min_steps", [None, 677], ids=["epochs", "min_steps"])
def test_killed_while_an_epochs_row_is_written_resumes_that_epoch(tmp_path, min_steps):
    """A kill after epoch 2's checkpoints but before its metrics row: the resume state must not
    count epoch 2 yet, or its row would be lost for good. With train.min_steps (2,700 images in
    batches of 8: 338 steps per epoch, so 677 steps are 3 epochs) the resumed run arrives at the
    same 3 epochs."""
    config = slow_config(tmp_path, 3)
    if min_steps:
        settings = yaml.safe_load(config.read_text())
        settings["train"].update(epochs=1, min_steps=min_steps)
        write_config(config, settings)
    killer = (
        "import os, sys\n"
        "import dlopt.callbacks.metrics as callbacks\n"
        "write_row = callbacks.MetricsCSV.on_epoch_end\n"
        "def dies_at_epoch_two(self, epoch, logs=None):\n"
        "    if epoch == 1:\n"
        "        os._exit(9)  # as abrupt as kill -9: no handler, no flush\n"
        "    write_row(self, epoch, logs)\n"
        "callbacks.MetricsCSV.on_epoch_end = dies_at_epoch_two\n"
        "from dlopt.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    killed = subprocess.run([sys.executable, "-c", killer, "train", str(config), "--runs-dir", str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
    assert killed.returncode == 9, killed.stderr[-2000:]
    [run] = run_dirs(tmp_path / "runs")
    assert [r["epoch"] for r in read_rows(run / "metrics.csv")] == ["1"]
    resumed = subprocess.run(DLOPT + ["train", "--resume", str(run), "--json"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [r["epoch"] for r in read_rows(run / "metrics.csv")] == ["1", "2", "3"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_signal_marks_interrupted_and_resume_finishes(tmp_path, cli, sig):
    config = slow_config(tmp_path, 3)
    proc = start(config, tmp_path / "runs")
    run = wait_for_epochs(tmp_path / "runs", 1, proc)
    time.sleep(0.3)  # mid-epoch
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-1000:]
    # stopping on purpose is not an error: one line saying how to go on
    assert err.strip().splitlines()[-1] == f"interrupted; resume with: dlopt train --resume {run}"
    assert "error" not in err
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted" and "--resume" in record["error"]
    assert (run / "backup" / "training_metadata.json").exists()
    code, _, err = cli("train", "--resume", run)
    assert code == 0, err
    assert [r["epoch"] for r in read_rows(run / "metrics.csv")] == ["1", "2", "3"]
    code, _, err = cli("train", "--resume", run)
    assert code == 2 and "already completed" in err


def test_resume_refuses_extra_settings(tmp_path, cli):
    run = fake_run(tmp_path, "r", 1e-3, status="interrupted")
    code, _, err = cli("train", "--resume", run, "--set", "optimizer.learning_rate=0.1")
    assert code == 2 and "--resume continues a run with its saved config" in err
    code, _, err = cli("train", "--resume", run, "--set", "train.epochs=9")
    assert code == 2 and "--set train.epochs is for training a completed run further" in err


def test_data_error_fails_the_run_with_one_line(tmp_path, cli):
    folder = tmp_path / "bad"
    folder.mkdir()
    x, y = quadrant_images(20)
    write_idx(folder / "train-images-idx3-ubyte", x)
    write_idx(folder / "train-labels-idx1-ubyte", y[:10])  # fewer labels than images
    config = write_config(tmp_path / "c.yaml", tiny_cnn_config(folder, data={"source": "idx", "path": str(folder), "splits": {"test": None}}))
    code, out, err = cli("train", config, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 1 and err.count("\n") == 1 and "split 'train' has 20 images but 10 labels" in err
    printed = json.loads(out)
    assert printed["status"] == "failed" and printed["run_dir"]
    assert json.loads((Path(printed["run_dir"]) / "run.json").read_text())["status"] == "failed"


def test_deterministic_runs_repeat_exactly(tmp_path, cli, idx_dir):
    config = tiny_cnn_config(idx_dir, train={"epochs": 2, "progress": "none", "deterministic": True})
    config["data"]["augment"] = [{"type": "random_translation"}, {"type": "random_flip"}, {"type": "mixup"}]  # random ops too
    config = write_config(tmp_path / "c.yaml", config)
    for name in ("one", "two"):
        code, _, err = cli("train", config, "--runs-dir", tmp_path / "runs", "--name", name)
        assert code == 0, err
    first, second = (read_rows(run / "metrics.csv") for run in run_dirs(tmp_path / "runs"))
    from dlopt.runs.metrics_csv import TIMING as timing

    assert [{k: v for k, v in r.items() if k not in timing} for r in first] == [{k: v for k, v in r.items() if k not in timing} for r in second]


def test_eval_loads_models_in_safe_mode(tmp_path, cli, idx_dir):
    """A checkpoint holding a Lambda (arbitrary Python) is refused, not run."""
    import keras

    config = write_config(tmp_path / "c.yaml", tiny_cnn_config(idx_dir, train={"epochs": 1, "progress": "none"}))
    code, _, err = cli("train", config, "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    run = run_dirs(tmp_path / "runs")[0]
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Lambda(lambda t: keras.ops.mean(t, axis=(1, 2, 3))[:, None] * keras.ops.ones((1, 4)))(inputs)
    keras.Model(inputs, outputs).save(run / "checkpoints" / "best.keras")
    code, _, err = cli("eval", run)
    assert code == 1 and err.count("\n") == 1 and "safe" in err.lower()


def test_model_that_cannot_be_built_fails_the_run_with_one_line(tmp_path, cli, idx_dir):
    """A user's model builder that Keras rejects: the run is marked failed and says why in one line."""
    module = tmp_path / "broken_models.py"
    module.write_text(
        "import keras\nfrom dlopt.models import register\n\n"
        "@register('broken')\ndef build(model_config, input_spec, output_spec):\n"
        "    return keras.Sequential([keras.Input(input_spec.shape), keras.layers.Dense(-3)])\n"
    )
    config = write_config(tmp_path / "c.yaml", tiny_cnn_config(idx_dir, model={"type": "broken", "module": str(module)}))
    code, out, err = cli("train", config, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: run ") and "failed: ValueError: " in err
    printed = json.loads(out)
    record = json.loads((Path(printed["run_dir"]) / "run.json").read_text())
    assert printed["status"] == record["status"] == "failed" and record["error"] in err
    assert "Traceback" in record["traceback"]  # the full story stays in run.json for a bug report
