"""Nothing lost, whatever happens: a full disk while saving, a YAML alias bomb."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import quadrant_idx_folder, tiny_cnn_config, write_config

DLOPT = [sys.executable, "-m", "dlopt.cli"]


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB filesystem of its own (tmpfs), unmounted afterwards."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_fails_the_run_in_one_line_and_leaves_no_temporary_files(tmp_path, small_disk):
    folder = quadrant_idx_folder(tmp_path / "idx")
    # 300,000 parameters: weights and Adam's state need about 3.6 MB, more than the disk holds
    config = tiny_cnn_config(folder, model={"type": "mlp", "layers": [512, 512]}, train={"epochs": 2, "progress": "lines"})
    path = write_config(tmp_path / "c.yaml", config)
    result = subprocess.run([*DLOPT, "train", str(path), "--runs-dir", str(small_disk / "runs")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: run ") and "no space left on device writing" in last and "dlopt train --resume" in last
    (run,) = (small_disk / "runs").iterdir()
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and "no space left on device" in record["error"]
    assert [p.name for p in run.rglob(".*")] == []  # no temporary files


def test_a_disk_full_to_the_last_byte_still_records_the_run_failed(small_disk):
    """The disk fills up (another process, or this one's own files) until not a byte is left: the
    room the run holds in reserve is given up so that run.json still says `failed`."""
    import errno

    from dlopt import lifecycle, runs
    from dlopt.errors import RunFailed

    folder = runs.create(small_disk / "runs", "full")
    run = lifecycle.Run(folder.path, runs.RunRecord(folder.path, 1, ["dlopt", "train", "c.yaml"]))
    run.reserve_room()
    assert folder.reserve.stat().st_size == lifecycle.RESERVE_BYTES
    filler = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)  # every byte the disk has left
    try:
        while os.write(filler, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(filler)
    with pytest.raises(OSError):
        (small_disk / "one-more-byte").write_bytes(b"\0" * 8192)
    with pytest.raises(RunFailed, match="no space left on device"):
        with run.recorded():
            raise OSError(errno.ENOSPC, "No space left on device", str(folder.metrics))
    record = json.loads(folder.record.read_text())
    assert record["status"] == "failed" and "no space left on device" in record["error"]
    assert not folder.reserve.exists()


def test_a_save_that_cannot_fit_keeps_the_previous_checkpoint_and_resume_state(small_disk):
    import keras
    import numpy as np

    from dlopt.callbacks.resume import Backup
    from dlopt.callbacks.saving import AtomicCheckpoint

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 4)), np.ones((8, 1)), epochs=1, verbose=0)
    checkpoint, backup = AtomicCheckpoint(small_disk / "last.keras"), Backup(small_disk / "backup")
    for callback in (checkpoint, backup):
        callback.set_model(model)
    checkpoint.on_epoch_end(0, {"loss": 1.0})
    backup._current_epoch, backup._last_batch_seen = 1, 0
    backup._save_model()
    saved = [w.copy() for w in model.get_weights()]
    filler = small_disk / "filler"
    with open(filler, "wb") as handle:  # leave about 100 KB free
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        handle.write(b"\0" * (free - 100_000))
    model.set_weights([w + 1 for w in saved])
    with pytest.raises(OSError, match="No space left on device"):
        checkpoint.on_epoch_end(1, {"loss": 0.5})
    with pytest.raises(OSError, match="No space left on device"):
        backup._save_model()
    filler.unlink()
    assert sorted(p.name for p in small_disk.rglob("*")) == ["backup", "last.keras", "latest.weights.h5", "training_metadata.json"]
    reloaded = keras.models.load_model(small_disk / "last.keras")
    for a, b in zip(reloaded.get_weights(), saved):
        np.testing.assert_array_equal(a, b)
    model.load_weights(small_disk / "backup" / "latest.weights.h5")
    for a, b in zip(model.get_weights(), saved):
        np.testing.assert_array_equal(a, b)


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, cli):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):  # 10 levels of 9: 9**10 values once expanded
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nname: bomb\n")
    started = time.perf_counter()
    code, out, err = cli("validate", path)
    assert time.perf_counter() - started < 1.0
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"error: {path}: the YAML expands to more than 100,000 values (anchors and aliases): a config needs far fewer"]


def test_anchors_and_aliases_of_a_normal_size_still_work(tmp_path, cli):
    folder = quadrant_idx_folder(tmp_path / "idx")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"name: anchors\ndata: {{source: idx, path: {folder}}}\n"
        "model: {type: cnn, blocks: [&block {filters: 4}, *block]}\n"
    )
    code, out, err = cli("validate", path)
    assert code == 0, err
    assert out.count("filters: 4") == 2


def killed_after_two_epochs(tmp_path) -> Path:
    """A run killed with SIGKILL in its third epoch (of 4)."""
    import signal

    from test_runs import slow_config, start, wait_for_epochs

    proc = start(slow_config(tmp_path, 4), tmp_path / "runs")
    run = wait_for_epochs(tmp_path / "runs", 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return run


def damage(path: Path) -> None:
    import numpy as np

    path.write_bytes(np.random.default_rng(0).integers(0, 256, path.stat().st_size, dtype=np.uint8).tobytes())


def test_a_damaged_resume_state_falls_back_to_the_last_checkpoint(tmp_path):
    run = killed_after_two_epochs(tmp_path)
    damage(run / "backup" / "latest.weights.h5")
    (run / "backup" / ".99999999.tmp.weights.h5").write_bytes(b"half a save")  # what a kill mid-save leaves
    resumed = subprocess.run([*DLOPT, "train", "--resume", str(run), "--json"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    warning = [line for line in resumed.stderr.splitlines() if line.startswith("warning:")]
    assert warning == [f"warning: {run / 'backup' / 'latest.weights.h5'} is damaged; continuing from last.keras (the state after epoch 2)"]
    from test_runs import read_rows

    assert [r["epoch"] for r in read_rows(run / "metrics.csv")] == ["1", "2", "3", "4"]  # every epoch once, none from scratch
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert json.loads(resumed.stdout)["test"]["accuracy"] > 0.5
    assert [p.name for p in run.rglob(".*")] == []  # the stale temporary file is gone


@pytest.mark.parametrize("damaged", ["empty epoch record", "random counters"])
def test_every_file_of_the_resume_state_is_checked_and_a_damaged_one_falls_back_with_a_warning(tmp_path, damaged):
    run = killed_after_two_epochs(tmp_path)
    if damaged == "empty epoch record":  # was: a raw JSONDecodeError, the run failed, and every later --resume too
        (run / "backup" / "training_metadata.json").write_text("")
        expected = f"warning: {run / 'backup' / 'training_metadata.json'} is damaged; continuing from last.keras (the state after epoch 2)"
    else:  # was: resumed with no word
        damage(run / "backup" / "callback_states.json")
        expected = f"warning: {run / 'backup' / 'callback_states.json'} is damaged; early stopping's and the plateau schedule's counters and the random states start afresh (weights and epoch kept)"
    resumed = subprocess.run([*DLOPT, "train", "--resume", str(run), "--json"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [line for line in resumed.stderr.splitlines() if line.startswith("warning:")] == [expected]
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    from test_runs import read_rows

    assert [r["epoch"] for r in read_rows(run / "metrics.csv")] == ["1", "2", "3", "4"]


def test_nothing_loadable_is_a_clear_error_and_the_run_stays_resumable(tmp_path, cli):
    run = killed_after_two_epochs(tmp_path)
    damage(run / "backup" / "latest.weights.h5")
    damage(run / "checkpoints" / "last.keras")
    before = (run / "run.json").read_text()
    code, _, err = cli("train", "--resume", run)
    assert code == 2
    assert err.strip() == f"error: --resume {run}: {run / 'backup' / 'latest.weights.h5'} is damaged and {run / 'checkpoints' / 'last.keras'} cannot replace it (missing or damaged too); the run is left as it was"
    assert (run / "run.json").read_text() == before  # not marked failed: fix the files, resume again
    assert [p.name for p in (run / "backup").iterdir() if p.name.startswith(".")] == []


def test_run_json_records_what_reproduces_the_run(tmp_path, cli, monkeypatch):
    import hashlib

    repo = tmp_path / "project"
    repo.mkdir()
    for args in (["init", "-q"], ["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    folder = quadrant_idx_folder(tmp_path / "idx")
    path = write_config(tmp_path / "c.yaml", tiny_cnn_config(folder, train={"epochs": 1, "progress": "none"}))
    code, out, err = cli("train", path, "--runs-dir", tmp_path / "runs", "--set", "optimizer.learning_rate=0.02", "--seed", "3", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    manifest = json.loads((run / "run.json").read_text())["manifest"]
    assert manifest["config_sha256"] == hashlib.sha256((run / "config.yaml").read_bytes()).hexdigest()
    assert manifest["overrides"] == ["--set optimizer.learning_rate=0.02", "--seed 3"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert manifest["git"]["commit"] == head and manifest["git"]["dirty"] is False
    assert manifest["data"]["files"] == 4 and manifest["data"]["bytes"] == sum(p.stat().st_size for p in folder.iterdir())
    assert manifest["packages"]["tensorflow"] and manifest["packages"]["keras"]
    assert manifest["machine"]["cores"] == os.cpu_count() and manifest["machine"]["cpu"]
    # the same settings give the same hash; compare can pick the runs of one config
    code, out, _ = cli("train", path, "--runs-dir", tmp_path / "runs", "--set", "optimizer.learning_rate=0.02", "--seed", "3", "--json")
    other = cli("train", path, "--runs-dir", tmp_path / "runs", "--json")[1]
    same = json.loads((Path(json.loads(out)["run_dir"]) / "run.json").read_text())["manifest"]
    assert same["config_sha256"] == manifest["config_sha256"]
    assert json.loads((Path(json.loads(other)["run_dir"]) / "run.json").read_text())["manifest"]["config_sha256"] != manifest["config_sha256"]
    code, out, _ = cli("compare", tmp_path / "runs", "--config-hash", manifest["config_sha256"][:8], "--json")
    assert code == 0 and len(json.loads(out)) == 2 and all(r["config_hash"] == manifest["config_sha256"][:12] for r in json.loads(out))
    # a file that changes changes the fingerprint
    from dlopt.config import load_config
    from dlopt.manifest import data_fingerprint

    before = data_fingerprint(load_config(path).data)
    with open(folder / "train-labels-idx1-ubyte.gz", "ab") as handle:
        handle.write(b"\0")
    assert data_fingerprint(load_config(path).data)["listing_sha256"] != before["listing_sha256"]


def test_a_completed_run_trains_further_from_its_last_state(tmp_path, cli):
    folder = quadrant_idx_folder(tmp_path / "idx")
    path = write_config(tmp_path / "c.yaml", tiny_cnn_config(folder, train={"epochs": 2, "progress": "none"}))
    code, out, err = cli("train", path, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    first = json.loads((run / "summary.json").read_text())
    code, _, err = cli("train", "--resume", run)
    assert code == 2 and "--set train.epochs=N with N > 2" in err
    code, _, err = cli("train", "--resume", run, "--set", "train.epochs=2")
    assert code == 2 and "already trained 2 epochs" in err
    code, out, err = cli("train", "--resume", run, "--set", "train.epochs=4", "--json")
    assert code == 0, err
    assert f"continuing {run} from epoch 2 (checkpoints/last.keras) to 4" in err
    from test_runs import read_rows

    rows = read_rows(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    # the weights and the optimizer went on from epoch 2: no restart from a fresh model
    assert float(rows[2]["loss"]) < float(rows[0]["loss"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_run"] == 4 and json.loads((run / "summary.2-epochs.json").read_text()) == first
    assert (run / "eval" / "test.2-epochs.json").exists() and (run / "eval" / "test.json").exists()
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["resumed"][-1]["previous_status"] == "completed"
    assert "epochs: 4" in (run / "config.yaml").read_text()
    assert not (run / "backup").exists()


def test_nothing_is_written_outside_the_runs_folder_through_names_or_links(tmp_path, cli):
    path = write_config(tmp_path / "c.yaml", tiny_cnn_config(quadrant_idx_folder(tmp_path / "idx"), train={"epochs": 1, "progress": "none"}))
    code, out, err = cli("train", path, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / "tensorboard").rename(tmp_path / "moved")
    (run / "tensorboard").symlink_to(outside)  # a link planted in the run folder
    code, _, err = cli("train", "--resume", run, "--set", "train.epochs=2")
    assert code == 2 and err.strip() == f"error: --resume {run}: {run / 'tensorboard'} is a symbolic link out of the run folder; dlopt writes only inside it (remove the link)"
    assert list(outside.iterdir()) == []
    for option in (["--name", "../escape"], ["--name", "/tmp/escape"]):
        code, _, err = cli("train", path, "--runs-dir", tmp_path / "runs", *option)
        assert code == 2 and len(err.strip().splitlines()) == 1
    search = write_config(tmp_path / "s.yaml", {**tiny_cnn_config(tmp_path / "idx"), "search": {"params": {"model.dropout": {"type": "float", "low": 0.0, "high": 0.5}}}})
    code, _, err = cli("tune", search, "--runs-dir", tmp_path / "runs", "--study", "../escape")
    assert code == 2 and "--study '../escape'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "idx", "moved", "outside", "runs", "s.yaml"]


def test_a_run_folder_that_is_a_link_is_refused_by_every_command_that_writes(tmp_path, cli):
    """runs/ext, a link to a run folder elsewhere: eval, plot, report, export and --resume refuse
    it in one line (exit 2) and write nothing there; `latest` never picks it; predict may read it."""
    path = write_config(tmp_path / "c.yaml", tiny_cnn_config(quadrant_idx_folder(tmp_path / "idx"), train={"epochs": 1, "progress": "none"}))
    runs = tmp_path / "runs"
    code, out, err = cli("train", path, "--runs-dir", runs, "--json")
    assert code == 0, err
    real = Path(json.loads(out)["run_dir"])
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(real, elsewhere)
    (runs / "ext").symlink_to(elsewhere, target_is_directory=True)
    os.utime(real, (1, 1), follow_symlinks=False)  # the link is the newest entry in runs/
    before = sorted(str(p.relative_to(elsewhere)) for p in elsewhere.rglob("*"))
    for command in (["eval", runs / "ext"], ["plot", runs / "ext"], ["report", runs / "ext"], ["export", runs / "ext"], ["train", "--resume", runs / "ext", "--set", "train.epochs=2"]):
        code, _, err = cli(*command)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "symbolic link" in err, (command, err)
    assert sorted(str(p.relative_to(elsewhere)) for p in elsewhere.rglob("*")) == before  # nothing written there
    result = subprocess.run([sys.executable, "-m", "dlopt.cli", "eval", "latest", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and json.loads(result.stdout)["run_dir"] == str(real.relative_to(tmp_path)), result.stderr


def test_resume_after_an_edit_of_the_config_is_refused_naming_the_keys(tmp_path, cli):
    path = write_config(tmp_path / "c.yaml", tiny_cnn_config(quadrant_idx_folder(tmp_path / "idx"), train={"epochs": 1, "progress": "none"}))
    code, out, err = cli("train", path, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    original = (run / "config.yaml").read_text()
    assert "  dense: [8]\n" in original
    (run / "config.yaml").write_text(original.replace("  dense: [8]\n", "  dense: [128]\n"))
    before = (run / "run.json").read_text()
    code, _, err = cli("train", "--resume", run, "--set", "train.epochs=2")
    assert code == 2 and err.strip() == (
        f"error: --resume {run}: config.yaml was edited after the run started (model.dense: [8] -> [128] differ); "
        "a run resumes with the config it started with: undo the edit, or train the edited config as a new run"
    )
    assert (run / "run.json").read_text() == before  # its status untouched
    (run / "config.yaml").write_text(original)  # undone: it resumes (and trains further) as before
    code, out, err = cli("train", "--resume", run, "--set", "train.epochs=2", "--json")
    assert code == 0 and json.loads(out)["epochs_run"] == 2, err
    code, out, err = cli("train", "--resume", run, "--set", "train.epochs=3", "--json")  # the new config became the recorded one
    assert code == 0 and json.loads(out)["epochs_run"] == 3, err
