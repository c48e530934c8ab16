"""`dlopt serve`: a real server process on 127.0.0.1, asked by a real HTTP client, in TensorFlow
Serving's REST shape; batching of concurrent requests; bad input answered 400, never a 500."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import quadrant_idx_folder, quadrant_images, tiny_cnn_config, write_config

httpx = pytest.importorskip("httpx", reason="pip install httpx (the test extra) for the served-model tests")
pytest.importorskip("starlette", reason="pip install 'dlopt[serve]' for the served-model tests")

DLOPT = [sys.executable, "-m", "dlopt.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    config = write_config(tmp / "c.yaml", tiny_cnn_config(quadrant_idx_folder(tmp / "idx"), train={"epochs": 2, "progress": "none"}))
    result = subprocess.run([*DLOPT, "train", str(config), "--runs-dir", str(tmp / "runs"), "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return Path(json.loads(result.stdout)["run_dir"])


@pytest.fixture(scope="module")
def server(trained):
    port = free_port()
    proc = subprocess.Popen([*DLOPT, "serve", str(trained), "--port", str(port), "--max-wait-ms", "150", "--max-request-bytes", "200000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise AssertionError(proc.stderr.read())
    yield url, httpx.get(f"{url}/healthz").json()["model"]
    proc.terminate()
    proc.wait(timeout=30)


def test_predictions_are_the_models_in_tf_servings_shape(trained, server):
    import keras

    import dlopt  # noqa: F401  (registers dlopt's saved objects)

    url, name = server
    x = quadrant_images(4, seed=1)[0][..., None].astype(np.float32)
    expected = keras.models.load_model(trained / "checkpoints" / "best.keras", compile=False).predict(x, verbose=0)
    reply = httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": x.tolist()}, timeout=30)
    assert reply.status_code == 200, reply.text
    predictions = reply.json()["predictions"]
    assert [p["class"] for p in predictions] == expected.argmax(1).tolist()
    assert [p["probability"] for p in predictions] == pytest.approx(expected.max(1).tolist(), abs=1e-5)
    columnar = httpx.post(f"{url}/v1/models/{name}:predict", json={"inputs": x[:2, ..., 0].tolist()}, timeout=30)  # no channel axis
    assert [p["class"] for p in columnar.json()["predictions"]] == expected.argmax(1).tolist()[:2]
    import tensorflow as tf

    png = tf.io.encode_png(x[0].astype(np.uint8)).numpy()
    image = httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": [{"b64": base64.b64encode(png).decode()}]}, timeout=30)
    assert image.json()["predictions"][0]["class"] == int(expected[0].argmax())
    status = httpx.get(f"{url}/v1/models/{name}").json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert status["signature"]["inputs"]["inputs"] == {"shape": [None, 8, 8, 1], "dtype": "float32"}


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"{not json", 400, "the body is not JSON"),
        (b'{"rows": []}', 400, 'expected a JSON object with "instances"'),
        (b'{"instances": []}', 400, '"instances" must be a non-empty list'),
        (b'{"instances": [[1, 2, 3]]}', 400, "expected an array of shape [8, 8, 1], got [3]"),
        (b'{"instances": [["a"]]}', 400, "expected an array of shape"),
        (b'{"instances": [{"b64": "%%%"}]}', 400, '"b64" is not valid base64'),
        (b'{"instances": [{"b64": "aGVsbG8="}]}', 400, '"b64": not a readable image'),
        (b'{"instances": [' + b",".join([b"[" + b",".join([b"0"] * 64) + b"]"] * 2000) + b"]}", 413, "the limit is 200,000"),
    ],
)
def test_bad_requests_are_answered_in_one_line_and_the_server_goes_on(server, body, status, message):
    url, name = server
    reply = httpx.post(f"{url}/v1/models/{name}:predict", content=body, timeout=30)
    assert reply.status_code == status and message in reply.json()["error"], reply.text
    assert "\n" not in reply.json()["error"]
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.post(f"{url}/v1/models/other:predict", json={"instances": [[0]]}).status_code == 404


def test_concurrent_requests_share_model_calls(server):
    url, name = server
    before = httpx.get(f"{url}/v1/models/{name}").json()["counts"]
    x = np.zeros((8, 8, 1)).tolist()
    codes = []

    def ask():
        codes.append(httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": [x]}, timeout=60).status_code)

    threads = [threading.Thread(target=ask) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = httpx.get(f"{url}/v1/models/{name}").json()["counts"]
    assert codes == [200] * 12
    assert after["requests"] - before["requests"] == 12 and after["examples"] - before["examples"] == 12
    assert after["model_calls"] - before["model_calls"] < 12  # gathered into fewer calls (--max-wait-ms 150)


def test_a_table_model_takes_rows_as_json_objects(tmp_path):
    from test_own_data import penguin_like_csv, table_config

    config = write_config(tmp_path / "t.yaml", {**table_config(penguin_like_csv(tmp_path / "birds.csv")), "train": {"epochs": 2, "progress": "none"}})
    trained = subprocess.run([*DLOPT, "train", str(config), "--runs-dir", str(tmp_path / "runs"), "--json"], capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    with serving(json.loads(trained.stdout)["run_dir"]) as url:
        rows = [{"bill": 50.1, "island": "east", "year": 2008}, {"bill": None, "island": "north"}]
        reply = httpx.post(f"{url}/v1/models/table:predict", json={"instances": rows}, timeout=30)
        assert reply.status_code == 200, reply.text
        assert [p["name"] for p in reply.json()["predictions"]][0] == "chinstrap"
        columns = httpx.post(f"{url}/v1/models/table:predict", json={"inputs": {"bill": [50.1], "island": ["east"], "year": [2008]}}, timeout=30)
        assert columns.json()["predictions"][0]["name"] == "chinstrap"
        bad = httpx.post(f"{url}/v1/models/table:predict", json={"instances": [[1, 2, 3]]}, timeout=30)
        assert bad.status_code == 400 and "table rows" in bad.json()["error"]
        unknown = httpx.post(f"{url}/v1/models/table:predict", json={"instances": [{"wings": 2}]}, timeout=30)
        assert unknown.status_code == 400 and "none of the model's" in unknown.json()["error"]


@contextlib.contextmanager
def serving(run_dir):
    """`dlopt serve RUN` on a free port of 127.0.0.1, once it answers /healthz: its URL."""
    port = free_port()
    proc = subprocess.Popen([*DLOPT, "serve", str(run_dir), "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(400):
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
