"""oneDNN kernels on and off: training-step time of the shipped Fashion-MNIST CNN in plain Keras.

    python benchmarks/onednn.py [--pairs 4] [--steps 40]

TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it starts, so each side runs in a fresh
process; the two alternate (off, on, off, on, ...) so that drifts in machine speed hit both.
Each process trains the config's model on random 28x28 images (fixed tensors: no input pipeline)
for 6 epochs of `--steps` steps and reports the median step time of epochs 2-6 (the first
traces the graph). Prints each pair and the median speed-up off/on. This is why dlopt's
`train.onednn` defaults to on: TensorFlow turns oneDNN on by itself only for some CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys


def median_step_ms(steps: int, batch: int = 128) -> float:
    import time

    import keras
    import numpy as np
    import tensorflow as tf

    from throughput import shipped_cnn_layers  # the same plain-Keras model as the throughput benchmark

    model = keras.Sequential([keras.Input((28, 28, 1))] + shipped_cnn_layers())
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    x = np.random.default_rng(0).random((batch * steps, 28, 28, 1), dtype=np.float32)
    y = keras.utils.to_categorical(np.arange(batch * steps) % 10, 10)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).prefetch(4)
    stamps: list[float] = []
    epoch = [0]
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: epoch.__setitem__(0, e),
        on_train_batch_end=lambda b, logs: stamps.append(time.perf_counter()) if epoch[0] > 0 else None,
    )
    model.fit(data, epochs=6, verbose=0, callbacks=[timer])
    gaps = [later - earlier for earlier, later in zip(stamps, stamps[1:]) if later > earlier]
    return 1000 * statistics.median(gaps)


def measure(onednn: bool, steps: int) -> float:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1" if onednn else "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, __file__, "--worker", "--steps", str(steps)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"worker failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["median_step_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps({"median_step_ms": median_step_ms(args.steps)}))
        return
    speedups = []
    for pair in range(args.pairs):
        off, on = measure(False, args.steps), measure(True, args.steps)
        speedups.append(off / on)
        print(f"pair {pair + 1}: median step {off:.1f} ms with TensorFlow's kernels, {on:.1f} ms with oneDNN: {speedups[-1]:.2f}x", flush=True)
    print(f"oneDNN speed-up over {args.pairs} pairs: median {statistics.median(speedups):.2f}x (min {min(speedups):.2f}x, max {max(speedups):.2f}x)")


if __name__ == "__main__":
    main()
