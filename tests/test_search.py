"""dlopt tune: a search on Optuna where every trial is an ordinary run folder."""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from conftest import quadrant_idx_folder, tiny_cnn_config, write_config

DLOPT = [sys.executable, "-m", "dlopt.cli"]


def search_config(tmp_path: Path, search: dict, epochs: int = 3, **config_overrides) -> Path:
    """The tiny quadrant-image CNN with a `search:` section."""
    folder = tmp_path / "idx"
    if not folder.exists():
        quadrant_idx_folder(folder)
    config = tiny_cnn_config(folder, train={"epochs": epochs, "progress": "none"}, checkpoint={"monitor": "val_accuracy"}, **config_overrides)
    config["data"]["val_fraction"] = 0.2
    config["search"] = search
    return write_config(tmp_path / "search.yaml", config)


LR_AND_WIDTH = {
    "optimizer.learning_rate": {"type": "float", "low": 1.0e-3, "high": 3.0e-2, "log": True},
    "model.dense": {"type": "categorical", "choices": [[8], [16]]},
}


def trial_runs(study_dir: Path) -> list[Path]:
    return sorted(p for p in study_dir.iterdir() if (p / "run.json").exists())


def record(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def metric_rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def test_search_mistakes_are_exit_2_with_file_and_line_before_any_trial(tmp_path, cli):
    path = search_config(
        tmp_path,
        {
            "params": {
                "optimizer.learning_rat": {"type": "float", "low": 1.0e-4, "high": 1.0e-2},
                "model.dropout": {"type": "float", "low": 0.0, "high": 1.5},
                "model.blocks": {"type": "categorical", "choices": [[{"filters": 4}], [{"filters": -3}]]},
            }
        },
    )
    code, _, err = cli("tune", path, "--runs-dir", tmp_path / "runs")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 3, err
    text = path.read_text().splitlines()
    line_of = {key: next(i + 1 for i, line in enumerate(text) if line.strip().startswith(key)) for key in ("optimizer.learning_rat", "model.dropout", "model.blocks")}
    assert lines[0].startswith(f"error: {path}:{line_of['optimizer.learning_rat']}: search.params.optimizer.learning_rat: ") and "did you mean 'learning_rate'" in lines[0]
    assert lines[1].startswith(f"error: {path}:{line_of['model.dropout']}: search.params.model.dropout: high 1.5 is not accepted by model.dropout")
    assert lines[2].startswith(f"error: {path}:{line_of['model.blocks']}: search.params.model.blocks: choices[1]") and "greater than 0" in lines[2]
    assert not (tmp_path / "runs").exists()  # nothing ran, nothing written

    path = search_config(tmp_path, {"sampler": "grid", "params": {"optimizer.learning_rate": {"type": "float", "low": 0.001, "high": 0.01}}})
    code, _, err = cli("tune", path, "--runs-dir", tmp_path / "runs")
    assert code == 2 and "search.params.optimizer.learning_rate: the grid sampler needs a step" in err
    code, _, err = cli("tune", write_config(tmp_path / "plain.yaml", tiny_cnn_config(tmp_path / "idx")), "--runs-dir", tmp_path / "runs")
    assert code == 2 and "no search: section" in err


def test_every_trial_is_a_run_and_the_study_keeps_best_yaml_and_plots(tmp_path, cli):
    path = search_config(tmp_path, {"trials": 4, "sampler": "random", "seed": 3, "pruner": "none", "params": LR_AND_WIDTH})
    runs_dir = tmp_path / "runs"
    from dlopt.callbacks.metrics import CpuClock

    counted_from = CpuClock.read_until  # where this process's next run starts counting its CPU
    code, out, err = cli("tune", path, "--runs-dir", runs_dir, "--json")
    spent = time.process_time() - counted_from
    assert code == 0, err
    result = json.loads(out)
    study_dir = runs_dir / "tiny-tune"
    assert result["trials"] == {"complete": 4} and result["study_dir"] == str(study_dir)
    trials = trial_runs(study_dir)
    assert len(trials) == 4
    cpu = [json.loads((run / "summary.json").read_text())["cpu_seconds"] for run in trials]
    assert all(c > 0 for c in cpu) and sum(cpu) <= spent + 0.1  # each trial counts its own CPU, never an earlier one's
    values = {}
    for run in trials:
        entry = record(run)["search"]
        assert record(run)["status"] == "completed" and entry["study"] == "tiny-tune" and entry["metric"] == "val_accuracy"
        assert set(entry["params"]) == set(LR_AND_WIDTH)
        config = yaml.safe_load((run / "config.yaml").read_text())  # the run trained the sampled values
        assert config["optimizer"]["learning_rate"] == entry["params"]["optimizer.learning_rate"] and config["model"]["dense"] == entry["params"]["model.dense"]
        values[entry["trial"]] = max(float(row["val_accuracy"]) for row in metric_rows(run))
    assert sorted(values) == [0, 1, 2, 3]
    best = result["best"]
    assert best["value"] == pytest.approx(max(values.values()), abs=1e-6) and values[best["trial"]] == pytest.approx(best["value"], abs=1e-6)

    best_yaml = yaml.safe_load((study_dir / "best.yaml").read_text())
    assert "search" not in best_yaml and best_yaml["optimizer"]["learning_rate"] == best["params"]["optimizer.learning_rate"]
    assert best_yaml["model"]["dense"] == best["params"]["model.dense"]
    assert best_yaml["name"] == "tiny-best"  # its runs are told apart from the base config's
    header = [line for line in (study_dir / "best.yaml").read_text().splitlines() if line.startswith("#")]
    assert f"# model.dense: {json.dumps(best['params']['model.dense'], separators=(',', ':'))}" in header  # whole, never cut
    for plot in ("optimization_history", "param_importances", "intermediate_values"):
        assert (study_dir / "plots" / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"

    code, out, _ = cli("compare", study_dir, "--csv")  # the trials, with the sampled keys as columns
    header, *rows = list(csv.reader(io.StringIO(out)))
    assert header[:5] == ["run", "trial", "status", "optimizer.learning_rate", "model.dense"] and len(rows) == 4
    code, out, _ = cli("compare", study_dir, "--csv", "--sort", "cpu_seconds")  # the cheapest trial first
    table = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [float(r["cpu_seconds"]) for r in table] == sorted(cpu)
    code, out, err = cli("eval", trials[0], "--json")  # a trial is an ordinary run
    assert code == 0 and "accuracy" in json.loads(out)["metrics"], err
    code, out, err = cli("train", study_dir / "best.yaml", "--runs-dir", tmp_path / "again", "--json")  # best.yaml trains as is
    assert code == 0 and json.loads(out)["status"] == "completed", err
    assert Path(json.loads(out)["run_dir"]).name.startswith("tiny-best-")

    code, out, err = cli("tune", path, "--runs-dir", runs_dir, "--trials", 5, "--json")  # again: the study continues
    assert code == 0, err
    assert json.loads(out)["trials"] == {"complete": 5} and len(trial_runs(study_dir)) == 5
    assert record(trial_runs(study_dir)[-1])["search"]["trial"] == 4

    changed = search_config(tmp_path, {"trials": 6, "params": {"model.dropout": {"type": "float", "low": 0.0, "high": 0.5}}})
    code, _, err = cli("tune", changed, "--runs-dir", runs_dir)
    assert code == 2 and "was started with other search.params" in err


def test_pruned_trials_end_cleanly_and_keep_their_files(tmp_path, cli):
    # a learning rate that cannot learn, after ones that can: the median pruner stops it after its warm-up epoch
    search = {
        "trials": 4,
        "sampler": "grid",
        "seed": 5,  # the grid's order with this seed: 0.03, 0.02, then the two that cannot learn
        "pruner": "median",
        "pruner_startup_trials": 2,
        "pruner_warmup_epochs": 1,
        "params": {"optimizer.learning_rate": {"type": "categorical", "choices": [0.03, 0.02, 1.0e-7, 2.0e-7]}},
    }
    path = search_config(tmp_path, search, epochs=6)
    code, out, err = cli("tune", path, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["trials"].get("pruned", 0) >= 1, (result, err)
    for run in trial_runs(tmp_path / "runs" / "tiny-tune"):
        entry = record(run)
        if entry["status"] == "pruned":
            assert entry["search"]["params"]["optimizer.learning_rate"] < 1e-6  # only the hopeless ones
            assert 2 <= len(metric_rows(run)) < 6 and "pruned by the search after epoch" in entry["error"]
            assert (run / "checkpoints" / "last.keras").exists() and json.loads((run / "summary.json").read_text())["status"] == "pruned"
        else:
            assert entry["status"] == "completed" and len(metric_rows(run)) == 6
    code, out, _ = cli("compare", tmp_path / "runs" / "tiny-tune", "--status", "pruned", "--json")
    assert len(json.loads(out)) == result["trials"]["pruned"]


@pytest.mark.parametrize("min_steps, max_resource", [(None, 3), (100, "auto")])
def test_hyperband_spans_the_epochs_a_trial_trains(tmp_path, min_steps, max_resource):
    # with train.min_steps the epochs depend on the data: Optuna reads them off the first finished trial
    from dlopt.search.spec import load_search
    from dlopt.search.study import _pruner

    search = {"pruner": "hyperband", "params": {"optimizer.learning_rate": {"type": "float", "low": 1.0e-3, "high": 1.0e-2}}}
    path = search_config(tmp_path, search, epochs=3)
    pruner = _pruner(load_search(path, [f"train.min_steps={min_steps}"] if min_steps else []))
    assert pruner._max_resource == max_resource


def test_a_trial_whose_loss_becomes_nan_fails_and_the_study_goes_on(tmp_path, cli):
    search = {"trials": 2, "sampler": "grid", "pruner": "none", "params": {"optimizer.learning_rate": {"type": "categorical", "choices": [0.01, 1.0e6]}}}
    path = search_config(tmp_path, search, optimizer={"type": "sgd", "learning_rate": 0.01})
    code, out, err = cli("tune", path, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["trials"] == {"complete": 1, "fail": 1} and result["best"]["params"]["optimizer.learning_rate"] == 0.01
    assert "loss became NaN or infinite" in err and "Traceback" not in err
    statuses = sorted(record(run)["status"] for run in trial_runs(tmp_path / "runs" / "tiny-tune"))
    assert statuses == ["completed", "failed"]


def _tune(path: Path, runs_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*DLOPT, "tune", str(path), "--runs-dir", str(runs_dir), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_epochs(study_dir: Path, epochs: int, proc: subprocess.Popen, timeout: float = 240) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        for run in trial_runs(study_dir) if study_dir.exists() else []:
            if (run / "metrics.csv").exists() and len(metric_rows(run)) >= epochs:
                return run
        time.sleep(0.2)
    raise AssertionError("the trial did not reach the epoch in time")


def _slow_search(tmp_path: Path, search: dict, epochs: int) -> Path:
    """Enough data that an epoch takes a moment: a worker to stop mid-trial."""
    folder = quadrant_idx_folder(tmp_path / "idx", train=2000, test=100)
    config = tiny_cnn_config(folder, train={"epochs": epochs, "progress": "none"}, checkpoint={"monitor": "val_accuracy", "backup_every_steps": 20})
    config["data"]["batch_size"] = 8
    config["search"] = search
    return write_config(tmp_path / "slow.yaml", config)


def _study(url: str, name: str = "tiny-tune"):
    import optuna

    return optuna.load_study(study_name=name, storage=url)


def test_sigterm_stops_the_worker_after_marking_its_trial(tmp_path):
    path = _slow_search(tmp_path, {"trials": 3, "pruner": "none", "params": LR_AND_WIDTH}, epochs=20)
    worker = _tune(path, tmp_path / "runs")
    run = _wait_for_epochs(tmp_path / "runs" / "tiny-tune", 1, worker)
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 130 and "Traceback" not in err, err
    assert record(run)["status"] == "interrupted"  # the run keeps its state: dlopt train --resume works on it
    study = _study(f"sqlite:///{tmp_path / 'runs' / 'tiny-tune' / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["FAIL"]


def test_a_killed_workers_trial_is_failed_by_the_next_worker_and_retried_from_its_state(tmp_path):
    search = {"trials": 1, "pruner": "none", "heartbeat_seconds": 1, "retries": 1, "params": LR_AND_WIDTH}
    path = _slow_search(tmp_path, search, epochs=8)
    study_dir = tmp_path / "runs" / "tiny-tune"
    killed = _tune(path, tmp_path / "runs")
    run = _wait_for_epochs(study_dir, 2, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert record(run)["status"] == "running"  # nobody could update it
    time.sleep(3)  # past the grace period of two heartbeats
    second = subprocess.run([*DLOPT, "tune", str(path), "--runs-dir", str(tmp_path / "runs"), "--json"], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    study = _study(f"sqlite:///{study_dir / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]
    assert study.trials[1].params == study.trials[0].params  # the same values, run again
    assert trial_runs(study_dir) == [run]  # ... in the killed trial's folder, from its saved state
    entry = record(run)
    assert entry["status"] == "completed" and entry["search"]["trial"] == 1 and entry["search"]["retry_of"] == 0
    assert entry["resumed"][0]["previous_status"] == "running"
    assert [int(r["epoch"]) for r in metric_rows(run)] == list(range(1, 9))  # every epoch once


def _two_workers(path: Path, runs_dir: Path, *extra: str) -> list[subprocess.CompletedProcess]:
    workers = [_tune(path, runs_dir, "--json", *extra) for _ in range(2)]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(worker.args, worker.returncode, out, err))
    return results


def _check_shared_study(results, url: str, trials: int, run_dirs: list[Path], name: str = "tiny-tune") -> None:
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
    study = _study(url, name)
    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(finished) >= trials and len({t.number for t in study.trials}) == len(study.trials)
    pids = {record(run)["pid"] for run in run_dirs}
    assert len(pids) == 2  # both workers trained trials of the one study
    assert sorted(record(run)["search"]["trial"] for run in run_dirs) == sorted(t.number for t in finished)


def test_two_workers_share_one_sqlite_study(tmp_path):
    path = search_config(tmp_path, {"trials": 6, "pruner": "none", "params": LR_AND_WIDTH}, epochs=4)
    results = _two_workers(path, tmp_path / "runs")
    study_dir = tmp_path / "runs" / "tiny-tune"
    _check_shared_study(results, f"sqlite:///{study_dir / 'study.db'}", 6, trial_runs(study_dir))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A real PostgreSQL server (Debian's postgresql package) on 127.0.0.1, for this test only."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not binaries:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); .ci/run installs it")
    pytest.importorskip("psycopg", reason="psycopg (pip install 'psycopg[binary]') is needed to talk to PostgreSQL")
    bin_dir = Path(binaries[-1])
    folder = Path(tempfile.mkdtemp(prefix="dlopt-pg-"))
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the package's postgres user
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as its own user")
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = folder / "data"
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres"], check=True, capture_output=True)
    started = subprocess.run(
        [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o", f"-h 127.0.0.1 -p {port} -k {folder}", "start"], capture_output=True, text=True
    )
    if started.returncode != 0:
        pytest.fail(f"PostgreSQL did not start: {started.stderr}{(folder / 'log').read_text() if (folder / 'log').exists() else ''}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_one_study_on_a_postgresql_server(tmp_path, postgres_url):
    path = search_config(tmp_path, {"trials": 6, "pruner": "none", "params": LR_AND_WIDTH}, epochs=4)
    results = _two_workers(path, tmp_path / "runs", "--storage", postgres_url, "--study", "shared")
    study_dir = tmp_path / "runs" / "shared"
    assert not (study_dir / "study.db").exists()  # the server holds the study
    _check_shared_study(results, postgres_url, 6, trial_runs(study_dir), "shared")
    for result in results:
        assert json.loads(result.stdout)["storage"] == postgres_url


def test_optuna_dashboard_reads_the_study(tmp_path, cli):
    dashboard = pytest.importorskip("optuna_dashboard")
    path = search_config(tmp_path, {"trials": 2, "sampler": "random", "seed": 1, "params": LR_AND_WIDTH}, epochs=2)
    code, out, err = cli("tune", path, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    url = f"sqlite:///{tmp_path / 'runs' / 'tiny-tune' / 'study.db'}"
    app = dashboard.wsgi(url)  # the app `optuna-dashboard <storage>` serves

    def get(route: str) -> dict:
        status = []
        from wsgiref.util import setup_testing_defaults

        environ = {"PATH_INFO": route, "REQUEST_METHOD": "GET"}
        setup_testing_defaults(environ)
        body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
        assert status[0].startswith("200"), (route, status, body[:300])
        return json.loads(body)

    studies = get("/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == ["tiny-tune"]
    detail = get(f"/api/studies/{studies[0]['study_id']}")
    assert len(detail["trials"]) == 2 and {p["name"] for p in detail["trials"][0]["params"]} == set(LR_AND_WIDTH)


def test_shell_loops_name_runs_by_their_overrides_and_skip_what_is_done(tmp_path, cli):
    path = write_config(tmp_path / "c.yaml", tiny_cnn_config(quadrant_idx_folder(tmp_path / "idx"), train={"epochs": 1, "progress": "none"}))
    runs_dir = tmp_path / "runs"
    args = ("train", path, "--runs-dir", runs_dir, "--set", "optimizer.learning_rate=3e-3", "--set", "model.dense=[8]", "--name", "auto", "--json")
    code, out, err = cli(*args)
    assert code == 0, err
    first = json.loads(out)
    assert Path(first["run_dir"]).name.startswith("tiny-optimizer.learning_rate=3e-3-model.dense=_8-")
    code, out, err = cli(*args, "--skip-if-done")  # the same resolved config: not trained again
    assert code == 0 and json.loads(out)["run_dir"] == first["run_dir"] and len(list(runs_dir.iterdir())) == 1
    code, out, err = cli("train", path, "--runs-dir", runs_dir, "--set", "optimizer.learning_rate=1e-3", "--name", "auto", "--skip-if-done", "--json")
    assert code == 0 and json.loads(out)["run_dir"] != first["run_dir"] and len(list(runs_dir.iterdir())) == 2
