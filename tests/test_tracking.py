"""MLflow tracking against a real MLflow tracking server (SQLite backend, on 127.0.0.1, started here),
read back through MLflow's own client: params, tags, every epoch, results, artifacts, the model
(loaded by MLflow and served by `mlflow models serve`), tune's parent and child runs, resume, a
server that is down at the start or dies mid-run, and `dlopt mlflow-sync`."""

from __future__ import annotations

import base64
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import quadrant_idx_folder, quadrant_images, slow_idx_folder, tiny_cnn_config, write_config

mlflow = pytest.importorskip("mlflow", reason="pip install mlflow (the test extra) for the tracking tests")
httpx = pytest.importorskip("httpx", reason="pip install httpx (the test extra) for the tracking tests")
from mlflow import MlflowClient  # noqa: E402

DLOPT = [sys.executable, "-m", "dlopt.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path, port: int) -> subprocess.Popen:
    """`mlflow server` on 127.0.0.1 with a SQLite backend and local artifacts, once it answers."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # its own process group: `mlflow server` runs the app in a child process, which must go with it
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runners (GenAI jobs): a process less per server
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=open(folder / "server.log", "a"), start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, (folder / "server.log").read_text()[-2000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.3)
    kill(proc)
    raise AssertionError("the MLflow server did not start in 120 s")


def kill(proc: subprocess.Popen) -> None:
    """The server and its workers, at once (as a crash would)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        kill(proc)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    proc = start_server(folder, port)
    yield f"http://127.0.0.1:{port}"
    stop(proc)


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def tracked_config(tmp_path: Path, uri: str | None, experiment: str, **train) -> Path:
    config = tiny_cnn_config(quadrant_idx_folder(tmp_path / "idx"), train={"epochs": 2, "progress": "none", **train})
    if uri is not None:
        config["tracking"] = {"mlflow": {"uri": uri, "experiment": experiment}}
    return write_config(tmp_path / "c.yaml", config)


def train(cli, config: Path, runs_dir: Path, *extra) -> tuple[Path, str]:
    code, out, err = cli("train", config, "--runs-dir", runs_dir, "--json", *extra)
    assert code == 0, err
    return Path(json.loads(out)["run_dir"]), err


def steps(client, run_id: str, key: str = "loss") -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_a_run_is_logged_whole_and_its_model_loads_in_mlflow(tmp_path, cli, server, monkeypatch):
    import keras

    run_dir, err = train(cli, tracked_config(tmp_path, server, "whole"), tmp_path / "runs")
    entry = record(run_dir)["tracking"]["mlflow"]
    assert entry["uri"] == server and entry["synced"] is True and "warning" not in err
    client = MlflowClient(server)
    run = client.get_run(entry["run_id"])
    assert run.info.status == "FINISHED" and client.get_experiment(run.info.experiment_id).name == "whole"
    # the resolved config, flattened, as params
    params = run.data.params
    assert params["optimizer.learning_rate"] == "0.01" and params["model.type"] == "cnn" and params["train.epochs"] == "2"
    assert json.loads(params["model.blocks"])[0]["filters"] == 4  # lists as JSON
    assert not any(key.startswith("tracking.") for key in params)
    # the manifest as tags
    manifest = record(run_dir)["manifest"]
    tags = run.data.tags
    assert tags["dlopt.config_sha256"] == manifest["config_sha256"]
    assert tags["dlopt.data.listing_sha256"] == manifest["data"]["listing_sha256"]
    assert tags["mlflow.runName"] == run_dir.name and tags["dlopt.status"] == "completed"
    if manifest["git"]:
        assert tags["mlflow.source.git.commit"] == manifest["git"]["commit"]
    # every epoch with its step, equal to metrics.csv
    written = rows(run_dir)
    for key in ("loss", "val_loss", "accuracy", "learning_rate"):
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [m.step for m in history] == [1, 2]
        assert [m.value for m in history] == pytest.approx([float(r[key]) for r in written])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert run.data.metrics["test_accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert run.data.metrics["best_epoch"] == summary["best"]["epoch"]
    # plots and report as artifacts
    uploaded = artifact_paths(client, run.info.run_id)
    assert {"config.yaml", "run.json", "summary.json", "metrics.csv", "report.html", "plots/curves.png", "eval/test.json"} <= uploaded
    assert "backup" not in {p.split("/")[0] for p in uploaded}
    # the model, as MLflow loads it, answers as the checkpoint does
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)  # where MLflow finds models:/ URIs
    model = mlflow.pyfunc.load_model(entry["model_uri"])
    x = quadrant_images(5, seed=4)[0][..., None].astype(np.float32)
    expected = keras.models.load_model(run_dir / "checkpoints" / "best.keras", compile=False).predict(x, verbose=0)
    answers = model.predict(x)  # raw pixels, as `dlopt serve` takes them: the run's scaling is in the model
    assert [a["class"] for a in answers] == expected.argmax(1).tolist()
    assert [a["probability"] for a in answers] == pytest.approx(expected.max(1).tolist(), abs=1e-5)


def test_mlflow_models_serve_answers_the_logged_model(tmp_path, cli, server):
    run_dir, _ = train(cli, tracked_config(tmp_path, server, "served"), tmp_path / "runs")
    model_uri = record(run_dir)["tracking"]["mlflow"]["model_uri"]
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": server}
    serve = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        x = quadrant_images(4, seed=5)[0].astype(np.float32)
        served = httpx.post(f"{url}/invocations", json={"instances": x.tolist()}, timeout=60)
        assert served.status_code == 200, served.text
        predictions = served.json()["predictions"]
        ours = subprocess.run([*DLOPT, "predict", str(run_dir), *[str(_npy(tmp_path, i, xi)) for i, xi in enumerate(x)], "--json"], capture_output=True, text=True, timeout=120)
        assert ours.returncode == 0, ours.stderr
        assert [p["class"] for p in predictions] == [p["class"] for p in json.loads(ours.stdout)]
        import tensorflow as tf

        png = tf.io.encode_png(x[0][..., None].astype(np.uint8)).numpy()
        image = httpx.post(f"{url}/invocations", json={"instances": [{"b64": base64.b64encode(png).decode()}]}, timeout=60)
        assert image.status_code == 200 and image.json()["predictions"][0]["class"] == predictions[0]["class"]
        wrong = httpx.post(f"{url}/invocations", json={"instances": [[1.0, 2.0]]}, timeout=60)
        assert wrong.status_code == 400 and "expected an array of shape [8, 8, 1], got [2]" in wrong.text
    finally:
        stop(proc)


def _npy(folder: Path, i: int, array: np.ndarray) -> Path:
    path = folder / f"x{i}.npy"
    np.save(path, array)
    return path


def test_the_environments_tracking_uri_turns_tracking_on(tmp_path, cli, server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    config = tracked_config(tmp_path, None, "")
    run_dir, _ = train(cli, config, tmp_path / "runs", "--name", "from-env")
    entry = record(run_dir)["tracking"]["mlflow"]
    run = MlflowClient(server).get_run(entry["run_id"])
    assert entry["experiment"] == "from-env" and MlflowClient(server).get_experiment(run.info.experiment_id).name == "from-env"
    # and a config can say no, whatever the environment says
    run_dir, _ = train(cli, config, tmp_path / "runs", "--set", "tracking.mlflow.enabled=false")
    assert "tracking" not in record(run_dir)


def test_tune_logs_each_trial_as_a_child_of_the_studys_run(tmp_path, cli, server):
    config = tiny_cnn_config(quadrant_idx_folder(tmp_path / "idx"), train={"epochs": 1, "progress": "none"})
    config["tracking"] = {"mlflow": {"uri": server, "experiment": "tuned", "log_model": False}}
    config["search"] = {"trials": 2, "sampler": "random", "seed": 3, "metric": "val_accuracy", "params": {"optimizer.learning_rate": {"type": "float", "low": 0.001, "high": 0.03, "log": True}}}
    path = write_config(tmp_path / "search.yaml", config)
    code, out, err = cli("tune", path, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    client = MlflowClient(server)
    experiment = client.get_experiment_by_name("tuned")
    found = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.run_name == "tiny-tune" and len(children) == 2 and len(found) == 3
    assert sorted(r.data.tags["dlopt.trial"] for r in children) == ["0", "1"]
    assert len({r.data.params["optimizer.learning_rate"] for r in children}) == 2  # each trial's own sampled value
    assert "search.optimizer.learning_rate" in parent.data.params and parent.data.metrics["trials_complete"] == 2
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(json.loads(out)["best"]["value"])
    # a continued study keeps its parent
    code, _, err = cli("tune", path, "--runs-dir", tmp_path / "runs", "--trials", "3")
    assert code == 0, err
    found = client.search_runs([experiment.experiment_id])
    assert len(found) == 4 and sum(r.data.tags.get("mlflow.parentRunId") == parent.info.run_id for r in found) == 3


def slow_config(tmp_path: Path, uri: str, experiment: str, epochs: int) -> Path:
    """Enough data that an epoch takes a moment: something to interrupt or to outlive a server."""
    config = tiny_cnn_config(slow_idx_folder(tmp_path / "idx"), train={"epochs": epochs, "progress": "none"})
    config["data"]["batch_size"] = 8
    config["tracking"] = {"mlflow": {"uri": uri, "experiment": experiment}}
    return write_config(tmp_path / "slow.yaml", config)


def wait_for(condition, proc: subprocess.Popen, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("not reached in time")


def first_run(runs_dir: Path):
    found = [p for p in runs_dir.iterdir() if (p / "metrics.csv").exists()] if runs_dir.exists() else []
    return found[0] if found and len(rows(found[0])) >= 1 else None


def test_resume_continues_the_same_mlflow_run(tmp_path, cli, server):
    config = slow_config(tmp_path, server, "resumed", epochs=3)
    proc = subprocess.Popen([*DLOPT, "train", str(config), "--runs-dir", str(tmp_path / "runs")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = wait_for(lambda: first_run(tmp_path / "runs"), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    client = MlflowClient(server)
    run_id = record(run_dir)["tracking"]["mlflow"]["run_id"]
    assert client.get_run(run_id).info.status == "KILLED" and client.get_run(run_id).data.tags["dlopt.status"] == "interrupted"
    code, _, err = cli("train", "--resume", run_dir)
    assert code == 0, err
    assert record(run_dir)["tracking"]["mlflow"]["run_id"] == run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    assert steps(client, run_id) == [1, 2, 3]
    assert len(client.search_runs([client.get_experiment_by_name("resumed").experiment_id])) == 1


def test_a_server_that_dies_mid_run_loses_nothing_and_sync_completes_it(tmp_path):
    folder, port = tmp_path / "own-server", free_port()
    uri = f"http://127.0.0.1:{port}"
    own = start_server(folder, port)
    try:
        config = slow_config(tmp_path, uri, "outlived", epochs=3)
        proc = subprocess.Popen([*DLOPT, "train", str(config), "--runs-dir", str(tmp_path / "runs"), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        client = MlflowClient(uri)
        run_dir = wait_for(lambda: first_run(tmp_path / "runs"), proc)
        run_id = wait_for(lambda: (record(run_dir).get("tracking") or {}).get("mlflow", {}).get("run_id"), proc)
        wait_for(lambda: steps(client, run_id), proc)
        kill(own)  # the server goes away mid-run
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        assert json.loads(out)["status"] == "completed" and len(rows(run_dir)) == 3
        assert f"MLflow ({uri})" in err and f"dlopt mlflow-sync {run_dir}" in err
        assert record(run_dir)["tracking"]["mlflow"]["synced"] is False
        own = start_server(folder, port)  # back again: the same database
        synced = subprocess.run([*DLOPT, "mlflow-sync", str(run_dir), "--json"], capture_output=True, text=True, timeout=300)
        assert synced.returncode == 0, synced.stderr[-2000:]
        assert json.loads(synced.stdout)[0]["run_id"] == run_id  # completed in the same MLflow run
        run = client.get_run(run_id)
        assert steps(client, run_id) == [1, 2, 3] and run.info.status == "FINISHED" and "dlopt.model_uri" in run.data.tags
        assert record(run_dir)["tracking"]["mlflow"]["synced"] is True
    finally:
        stop(own)


def test_unreachable_server_warns_or_refuses_and_sync_uploads_later(tmp_path, cli, server):
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = tracked_config(tmp_path, down, "later")
    run_dir, err = train(cli, config, tmp_path / "runs")
    assert f"warning: MLflow tracking server {down} cannot be reached" in err and "dlopt mlflow-sync" in err
    assert record(run_dir)["status"] == "completed" and record(run_dir)["tracking"]["mlflow"]["run_id"] is None
    # `error`: no run at all, one line, exit 1
    code, _, err = cli("train", config, "--runs-dir", tmp_path / "refused", "--set", "tracking.mlflow.on_unreachable=error")
    assert code == 1 and err.count("\n") == 1 and "cannot be reached" in err and "nothing was trained" in err
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())
    # a run trained with no tracking at all beside it; the folder of runs synced at once
    plain, _ = train(cli, tracked_config(tmp_path, None, ""), tmp_path / "runs", "--name", "plain")
    assert "tracking" not in record(plain)
    code, out, err = cli("mlflow-sync", tmp_path / "runs", "--uri", server, "--experiment", "synced", "--json")
    assert code == 0, err
    uploaded = {Path(r["run_dir"]).name: r for r in json.loads(out)}
    assert set(uploaded) == {run_dir.name, plain.name}
    client = MlflowClient(server)
    for name, result in uploaded.items():
        run = client.get_run(result["run_id"])
        assert run.info.status == "FINISHED" and run.info.run_name == name
        assert steps(client, result["run_id"]) == [1, 2] and "test_accuracy" in run.data.metrics and "dlopt.model_uri" in run.data.tags
        assert run.data.params["optimizer.learning_rate"] == "0.01"
    # again: the same MLflow runs, nothing doubled
    code, out, err = cli("mlflow-sync", tmp_path / "runs", "--uri", server, "--json")
    assert code == 0, err
    assert {Path(r["run_dir"]).name: r["run_id"] for r in json.loads(out)} == {name: r["run_id"] for name, r in uploaded.items()}
    assert all(steps(client, r["run_id"]) == [1, 2] for r in uploaded.values())
    assert len(client.search_runs([client.get_experiment_by_name("synced").experiment_id])) == 2


def test_mlflow_sync_mistakes_are_one_line(tmp_path, cli):
    plain, _ = train(cli, tracked_config(tmp_path, None, ""), tmp_path / "runs")
    code, _, err = cli("mlflow-sync", plain)
    assert code == 2 and "no MLflow tracking URI" in err and err.count("\n") == 1
    code, _, err = cli("mlflow-sync", plain, "--uri", f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "cannot be reached" in err and err.count("\n") == 1
    code, _, err = cli("mlflow-sync", tmp_path / "empty-nothing")
    assert code == 2
