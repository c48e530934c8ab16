"""`dlopt serve` under a bounded load on 127.0.0.1, beside the same model called in-process.

Trains the shipped digits CNN (or takes --run), starts two servers, one batching concurrent
requests (the defaults: 32 examples, 5 ms) and one not (--max-batch-size 1 --max-wait-ms 0), and
for 1, 8 and 32 concurrent clients sends a fixed number of one-example requests to each, each
client on its own keep-alive connection: requests/s and p50/p99 latency. The ceiling: the model
called in-process on one example at a time, and on batches of 32. Then 500 malformed requests
(all must be answered 4xx, the server still serving), and a soak of --soak-seconds at 8 clients
with the server's RSS sampled every 10 s. Every loop is bounded in count and time and stops by
itself; traffic goes to 127.0.0.1 only.

    python benchmarks/serve_load.py [--requests 400] [--soak-seconds 600]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

DLOPT = [sys.executable, "-m", "dlopt.cli"]
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_digits(folder: Path) -> Path:
    result = subprocess.run([*DLOPT, "train", str(ROOT / "configs" / "cnn_digits.yaml"), "--runs-dir", str(folder), "--json"], capture_output=True, text=True, timeout=600, check=True)
    return Path(json.loads(result.stdout)["run_dir"])


class Server:
    def __init__(self, run: Path, *options: str):
        import httpx

        self.port = free_port()
        self.proc = subprocess.Popen([*DLOPT, "serve", str(run), "--port", str(self.port), *options], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(600):
            try:
                self.name = httpx.get(f"{self.url}/healthz", timeout=1).json()["model"]
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(self.proc.stderr.read())

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS")) / 1024

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def load(server: Server, clients: int, requests: int, body: bytes, max_seconds: float = 120.0) -> dict:
    """`requests` one-example requests from `clients` threads; stops at `max_seconds` in any case."""
    import httpx

    latencies, errors, lock = [], [0], threading.Lock()
    remaining = [requests]
    deadline = time.perf_counter() + max_seconds

    def client():
        with httpx.Client(timeout=30) as session:
            while time.perf_counter() < deadline:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                started = time.perf_counter()
                reply = session.post(f"{server.url}/v1/models/{server.name}:predict", content=body, headers={"content-type": "application/json"})
                with lock:
                    latencies.append(time.perf_counter() - started)
                    errors[0] += reply.status_code != 200

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors[0],
        "per_second": len(latencies) / seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def in_process(run: Path, example: np.ndarray, count: int) -> dict:
    """The ceiling: the same model called in this process, one example at a time and 32 at a time."""
    import keras

    import dlopt  # noqa: F401  (registers dlopt's saved objects)

    model = keras.models.load_model(run / "checkpoints" / "best.keras", compile=False)
    one, batch = example[None], np.repeat(example[None], 32, axis=0)
    model(one, training=False)
    model(batch, training=False)
    started = time.perf_counter()
    for _ in range(count):
        model(one, training=False)
    single = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(count // 32 or 1):
        model(batch, training=False)
    batched = 32 * (count // 32 or 1) / (time.perf_counter() - started)
    return {"one_at_a_time_per_second": single, "batches_of_32_examples_per_second": batched}


def malformed(server: Server, count: int) -> dict:
    import httpx

    rng = random.Random(0)
    bodies = [b"{", b"[]", b'{"instances": []}', b'{"instances": [[1]]}', b'{"instances": [{"b64": "%%"}]}', b'{"inputs": {"a": [1], "b": []}}', b'{"instances": [["x"]]}', b"\xff\xfe", b'{"instances": [{"b64": "aGk="}]}', b'{"instances": 3}']
    codes = []
    with httpx.Client(timeout=30) as session:
        for _ in range(count):
            body = rng.choice(bodies)
            codes.append(session.post(f"{server.url}/v1/models/{server.name}:predict", content=body).status_code)
        healthy = session.get(f"{server.url}/healthz").status_code == 200
    return {"requests": count, "answered_4xx": sum(400 <= c < 500 for c in codes), "answered_5xx": sum(c >= 500 for c in codes), "healthy_after": healthy}


def soak(server: Server, seconds: float, body: bytes) -> dict:
    samples, stop = [server.rss_mb()], threading.Event()

    def sample():
        while not stop.wait(10):
            samples.append(server.rss_mb())

    sampler = threading.Thread(target=sample)
    sampler.start()
    result = load(server, 8, requests=10**9, body=body, max_seconds=seconds)
    stop.set()
    sampler.join()
    return {**result, "rss_mb_start": samples[0], "rss_mb_end": samples[-1], "rss_mb_max": max(samples), "rss_samples": len(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run folder to serve (default: train the digits CNN)")
    parser.add_argument("--requests", type=int, default=400, help="requests per load level")
    parser.add_argument("--soak-seconds", type=float, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or train_digits(Path(tmp))
        from sklearn.datasets import load_digits

        example = load_digits().images[0][..., None].astype(np.float32)
        body = json.dumps({"instances": [example.tolist()]}).encode()
        report = {"in_process": in_process(run, example, args.requests)}
        for label, options in (("batching", ()), ("no_batching", ("--max-batch-size", "1", "--max-wait-ms", "0"))):
            server = Server(run, *options)
            try:
                cpu = server.cpu_seconds()
                report[label] = [load(server, clients, args.requests, body) for clients in (1, 8, 32)]
                report[f"{label}_server_cpu_seconds"] = server.cpu_seconds() - cpu
                if label == "batching":
                    report["malformed"] = malformed(server, 500)
                    report["soak"] = soak(server, args.soak_seconds, body)
            finally:
                server.stop()
    print(json.dumps(report, indent=2))
    for label in ("batching", "no_batching"):
        for row in report[label]:
            print(f"{label:12s} {row['clients']:3d} clients: {row['per_second']:7.1f} req/s  p50 {row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:6.1f} ms  errors {row['errors']}")
    print(f"in-process: {report['in_process']['one_at_a_time_per_second']:.0f} calls/s one at a time, {report['in_process']['batches_of_32_examples_per_second']:.0f} examples/s in batches of 32")


if __name__ == "__main__":
    main()
