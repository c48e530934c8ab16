"""CPU-seconds per training epoch of the shipped Fashion-MNIST CNN in float32 and in mixed_bfloat16.

    python benchmarks/precision.py [--repeats 3] [--steps 96] [--config configs/cnn_fashion_mnist_local.yaml]

The model is the config's own (dlopt's `cnn` builder), trained by Keras' `fit` on random 28x28
images, so only the arithmetic differs. Each measurement runs in its own process (a fresh
TensorFlow, the precision policy set before the model is built), the two policies alternating so
that machine noise hits both alike. Prints CPU-seconds (user + system) per 57,000 images for each
and the median ratio float32 / bfloat16 (above 1: bfloat16 is faster). CPUs with AVX-512 BF16 or
AMX compute bfloat16 natively; elsewhere it is emulated and slower.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EPOCH_IMAGES = 57000


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(config_path: Path, policy: str, steps: int) -> dict:
    """Train the config's model for `steps` steps (after a warm-up) under `policy`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    from dlopt.config import load_config
    from dlopt.models import MODELS, InputSpec, OutputSpec, register_builtins, with_batch_norm_momentum

    config = load_config(config_path)
    keras.mixed_precision.set_global_policy(policy)
    register_builtins()
    model_config = with_batch_norm_momentum(config.model, EPOCH_IMAGES // config.data.batch_size)
    model = MODELS.get(config.model.type)(model_config, InputSpec((28, 28)), OutputSpec("classification", 10, "softmax", (10,)))
    model.compile(keras.optimizers.AdamW(1e-3), "sparse_categorical_crossentropy", steps_per_execution=config.train.steps_per_execution)
    batch = config.data.batch_size
    rng = np.random.default_rng(0)
    images, labels = rng.random((batch * 16, 28, 28), dtype=np.float32), rng.integers(0, 10, batch * 16)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch).repeat().prefetch(2)
    model.fit(data, steps_per_epoch=2 * config.train.steps_per_execution, epochs=1, verbose=0)  # tracing, first calls
    start = cpu_seconds()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return {"cpu_seconds_per_epoch": (cpu_seconds() - start) * EPOCH_IMAGES / (steps * batch)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=96, help="training steps timed per measurement")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "cnn_fashion_mnist_local.yaml")
    parser.add_argument("--worker", choices=["float32", "mixed_bfloat16"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.config, args.worker, args.steps)))
        return
    seconds = {"float32": [], "mixed_bfloat16": []}
    for repeat in range(args.repeats):
        order = ("float32", "mixed_bfloat16") if repeat % 2 == 0 else ("mixed_bfloat16", "float32")
        for policy in order:
            command = [sys.executable, __file__, "--worker", policy, "--steps", str(args.steps), "--config", str(args.config)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"{policy} failed: {done.stderr[-2000:]}")
            seconds[policy].append(json.loads(done.stdout.strip().splitlines()[-1])["cpu_seconds_per_epoch"])
        print(f"repeat {repeat + 1}: float32 {seconds['float32'][-1]:.1f} CPU-s/epoch, mixed_bfloat16 {seconds['mixed_bfloat16'][-1]:.1f}", flush=True)
    ratios = [f / b for f, b in zip(seconds["float32"], seconds["mixed_bfloat16"])]
    print(
        f"{args.config.name}: float32 {statistics.median(seconds['float32']):.1f}, mixed_bfloat16 {statistics.median(seconds['mixed_bfloat16']):.1f} "
        f"CPU-seconds per {EPOCH_IMAGES:,} images (medians); float32 / bfloat16 = {statistics.median(ratios):.2f} (median of {len(ratios)} pairs)"
    )


if __name__ == "__main__":
    main()
