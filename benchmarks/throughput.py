"""dlopt against a plain Keras script: the shipped Fashion-MNIST CNN, same data, side by side.

    python benchmarks/throughput.py [--epochs 2] [--repeats 4] [--augment] [--concurrent] [--plain-onednn on|default] [--data /usr/share/datasets/fashion-mnist]

Each measurement runs in its own process (a fresh TensorFlow), plain and dlopt back to back so that
machine noise hits both alike. `--concurrent` runs each pair at the same time instead, each side
pinned to its own CPU core with one thread per op (the cores swapped every repeat): a shared host's
slow phases then hit both sides at once, at the cost of measuring the one-core regime.

Prints, for each, the training throughput (samples/second over the whole `fit`, validation and
callbacks included) and the time from the process's start to the end of the first training step,
and the throughput ratio dlopt / plain (1.0 = no overhead): the median over pairs, and the ratio of
each side's best run (noise on a shared machine only slows a run down).
`--augment` adds the same augmentation to both (translation and flip, Keras preprocessing layers
mapped over batches, as the Keras guides write it). dlopt turns on TensorFlow's oneDNN kernels
(`train.onednn`); the plain script gets them too unless `--plain-onednn default`. Needs the real data:
`apt-get install dataset-fashion-mnist`.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "cnn_fashion_mnist_local.yaml"
AUGMENT = [{"type": "random_translation", "height": 0.08, "width": 0.08}, {"type": "random_flip", "mode": "horizontal"}]


def seconds_since_process_start() -> float:
    """Time since this process started, from Linux's /proc (the plain script measures like dlopt)."""
    with open("/proc/self/stat") as handle:
        started_ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as handle:
        return float(handle.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK")


def read_idx(path: Path):
    import numpy as np

    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


@functools.cache
def shipped_config() -> dict:
    """The shipped config's YAML as written (the plain script reads it without dlopt)."""
    import yaml

    return yaml.safe_load(CONFIG.read_text())


def shipped_cnn_layers() -> list:
    """The shipped config's CNN (widths, layer order, dense head, dropout) as plain Keras layers."""
    import keras

    shipped = shipped_config()["model"]
    layers = keras.layers

    def conv(filters, pool):
        convolution, norm = [layers.Conv2D(filters, 3, padding="same", use_bias=False)], [layers.BatchNormalization(), layers.Activation("relu")]
        pooling = [layers.MaxPooling2D(2)] if pool else []
        return convolution + pooling + norm if shipped.get("pool_first") else convolution + norm + pooling

    def conv_block(block):  # the block's convs; its pooling after the last
        convs, pool = block.get("convs", 1), block.get("pool", "max") != "none"
        return [layer for c in range(convs) for layer in conv(block["filters"], pool and c == convs - 1)]

    return (
        [layer for block in shipped["blocks"] for layer in conv_block(block)]
        + [layers.Flatten(), layers.Dense(shipped["dense"][0], use_bias=False), layers.BatchNormalization(), layers.Activation("relu")]
        + [layers.Dropout(shipped["dropout"]), layers.Dense(10, activation="softmax", dtype="float32")]  # as dlopt: float32 output
    )


def plain_keras(data: Path, epochs: int, augment: bool, threads: int | None) -> dict:
    """The same model and training, written the way the Keras and tf.data guides do it."""
    import keras
    import numpy as np
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)  # as dlopt's train.threads

    keras.utils.set_random_seed(42)
    shipped = shipped_config()
    precision = shipped["train"].get("mixed_precision", "none")
    keras.mixed_precision.set_global_policy("float32" if precision in ("none", "auto") else precision)  # auto: float32 on CPU
    x = read_idx(data / "train-images-idx3-ubyte.gz")[..., None].astype("float32") / 255.0
    y = read_idx(data / "train-labels-idx1-ubyte.gz")
    x_train, y_train, x_val, y_val = x[:57000], y[:57000], x[57000:], y[57000:]  # as the config: the last 5% validate
    y_train, y_val = keras.utils.to_categorical(y_train, 10), keras.utils.to_categorical(y_val, 10)
    batch = 128
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).cache().shuffle(len(x_train)).batch(batch)
    if augment:  # the Keras guide's way: preprocessing layers mapped over batches in tf.data
        shift, flip = keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant"), keras.layers.RandomFlip("horizontal")
        train = train.map(lambda x, y: (flip(shift(x, training=True), training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    train = train.prefetch(tf.data.AUTOTUNE)
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(batch).cache().prefetch(tf.data.AUTOTUNE)

    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Normalization(axis=None, mean=float(x_train.mean()), variance=float(x_train.var()))]
        + shipped_cnn_layers()
    )
    steps = int(np.ceil(len(x_train) / batch))
    schedule = keras.optimizers.schedules.CosineDecay(0.0, max((epochs - 1) * steps, 1), warmup_target=shipped["optimizer"]["learning_rate"], warmup_steps=steps)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=shipped["optimizer"]["weight_decay"]),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        metrics=["accuracy", keras.metrics.F1Score(average="macro", name="macro_f1")],
    )
    first_step = []
    on_first_step = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: first_step or first_step.append(seconds_since_process_start()))
    start = time.perf_counter()
    history = model.fit(train, validation_data=val, epochs=epochs, verbose=2, callbacks=[on_first_step])
    fit_seconds = time.perf_counter() - start
    return {"fit_seconds": fit_seconds, "train_examples": len(x_train), "parameters": model.count_params(), "val_accuracy": history.history["val_accuracy"][-1], "startup_seconds": first_step[0]}


def dlopt_run(data: Path, epochs: int, augment: bool, threads: int | None) -> dict:
    """The `dlopt train` command itself (in this worker process: start-up is measured from here)."""
    from dlopt.cli import main

    with tempfile.TemporaryDirectory() as runs:
        args = [
            "train", str(CONFIG), "--runs-dir", runs, "--progress", "lines", "--json",
            "--set", f"train.epochs={epochs}", "--set", "train.early_stopping=null", "--set", f"data.path={data}",
            "--set", f"data.augment={json.dumps(AUGMENT if augment else [])}",
        ] + (["--set", f"train.threads={threads}"] if threads else [])
        import contextlib
        import io

        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            try:
                main(args)
            except SystemExit as exit:
                if exit.code:
                    raise SystemExit(f"dlopt failed with exit code {exit.code}")
        summary = json.loads((Path(json.loads(printed.getvalue())["run_dir"]) / "summary.json").read_text())
    return {
        "fit_seconds": summary["train_seconds"], "train_examples": summary["examples"]["train"], "parameters": summary["parameters"],
        "val_accuracy": summary["final"]["val_accuracy"], "startup_seconds": summary["startup_seconds"],
    }


def start(kind: str, args, cpu: int | None = None) -> subprocess.Popen:
    """One measurement in a fresh process; `cpu`: pinned to that core, with one thread per op."""
    command = [sys.executable, __file__, "--worker", kind, "--epochs", str(args.epochs), "--data", str(args.data)]
    command += (["--augment"] if args.augment else []) + (["--threads", "1"] if cpu is not None else [])
    env = dict(os.environ)
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)  # dlopt decides by its train.onednn (auto: on)
    if kind == "plain" and args.plain_onednn != "default":
        env["TF_ENABLE_ONEDNN_OPTS"] = "1" if args.plain_onednn == "on" else "0"
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=pin)


def finish(kind: str, process: subprocess.Popen, epochs: int) -> dict:
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{kind} failed: {stderr[-2000:]}")
    out = json.loads(stdout.strip().splitlines()[-1])
    out["samples_per_second"] = epochs * out["train_examples"] / out["fit_seconds"]
    return out


def measure_pair(repeat: int, args) -> dict:
    """Back to back, the order swapped every repeat; or, with --concurrent, at once on swapped cores."""
    kinds = ("plain", "dlopt") if repeat % 2 == 0 else ("dlopt", "plain")
    if not args.concurrent:
        return {kind: finish(kind, start(kind, args), args.epochs) for kind in kinds}
    cores = sorted(os.sched_getaffinity(0))[:2]
    running = {kind: start(kind, args, core) for core, kind in zip(cores, kinds)}
    return {kind: finish(kind, process, args.epochs) for kind, process in running.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--augment", action="store_true", help="the same augmentation in both")
    parser.add_argument("--concurrent", action="store_true", help="run each pair at once, one pinned core each")
    parser.add_argument(
        "--plain-onednn", choices=["on", "default"], default="on",
        help="oneDNN kernels in the plain script: on (the same kernels as dlopt, so the ratio is dlopt's own cost) "
        "or TensorFlow's default for this CPU (the ratio is what a plain script gains by switching)",
    )
    parser.add_argument("--worker", choices=["plain", "dlopt"], help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run = plain_keras if args.worker == "plain" else dlopt_run
        print(json.dumps(run(args.data, args.epochs, args.augment, args.threads)))
        return
    if args.concurrent and len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("--concurrent needs 2 CPU cores")

    # Slow drifts in machine speed hit both sides of a pair alike, and the median pair ratio
    # ignores a pair caught by a burst.
    ratios, parameters, startups, rates = [], set(), {"plain": [], "dlopt": []}, {"plain": [], "dlopt": []}
    for repeat in range(args.repeats):
        pair = measure_pair(repeat, args)
        for kind, r in pair.items():
            parameters.add(r["parameters"])
            startups[kind].append(r["startup_seconds"])
            rates[kind].append(r["samples_per_second"])
            print(f"repeat {repeat + 1} {kind:5s}: {r['samples_per_second']:7.0f} samples/s  fit {r['fit_seconds']:6.1f}s  "
                  f"start to first step {r['startup_seconds']:5.1f}s  val_accuracy {r['val_accuracy']:.4f}  parameters {r['parameters']:,}", flush=True)
        ratios.append(pair["dlopt"]["samples_per_second"] / pair["plain"]["samples_per_second"])
        print(f"repeat {repeat + 1} ratio dlopt/plain: {ratios[-1]:.3f}", flush=True)
    assert len(parameters) == 1, f"the two models differ: {parameters}"
    label = ("with augmentation" if args.augment else "without augmentation") + f", plain script's oneDNN {args.plain_onednn}"
    label += ", concurrent on one core each" if args.concurrent else ", back to back"
    print(f"samples/s ratio dlopt/plain {label}, over {args.repeats} pairs: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    # Noise on a shared host only slows a process down, so each side's best run is its least
    # disturbed one (as timeit's best of N): the ratio of the bests compares the two undisturbed.
    best = {kind: max(rates[kind]) for kind in rates}
    print(f"best of {args.repeats}: plain {best['plain']:.0f} samples/s, dlopt {best['dlopt']:.0f} samples/s, "
          f"ratio {best['dlopt'] / best['plain']:.3f}")
    print(f"process start to first training step, median: plain {statistics.median(startups['plain']):.1f}s, dlopt {statistics.median(startups['dlopt']):.1f}s")


if __name__ == "__main__":
    main()
