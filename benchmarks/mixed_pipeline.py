"""Training samples per second of a mixed table through dlopt's input pipeline, against the same
model fed from in-memory arrays.

Both sides train the same `mixed` model (built by dlopt from the config: its text vocabularies,
category lookups, set and date layers inside it) for the same epochs with the same batch size.
`dlopt` fits on `data.pipelines["train"]`, the tf.data pipeline a run trains on (shuffled each epoch,
prefetched). `arrays` hands Keras the training split's columns as in-memory tensors
(`model.fit(x=dict of tensors, y, shuffle=True)`), the plain Keras way. Epoch 1 (tracing) is left
out; the sides alternate in one process, their order reversed every repeat, so the host's state
hits each. The goal: dlopt / arrays >= 0.9.

    python benchmarks/mixed_tables.py /tmp/dlopt-mixed --tables debian_packages
    python benchmarks/mixed_pipeline.py configs/mixed_table.yaml --set data.path=/tmp/dlopt-mixed/debian_packages
"""

from __future__ import annotations

import argparse
import statistics
import time


def load(config_path: str, overrides: list[str]):
    from dlopt.config.load import load_config

    return load_config(config_path, overrides)


def timed_epochs(model, fit, epochs: int, samples: int) -> tuple[float, float]:
    """(samples per second, CPU-seconds per epoch) over epochs 2..epochs (epoch 1 traces)."""
    fit(1)
    wall, cpu = time.perf_counter(), time.process_time()
    fit(epochs - 1)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return samples * (epochs - 1) / wall, cpu / (epochs - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="KEY=VALUE, as dlopt train --set")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from dlopt import data as data_module
    from dlopt import models
    from dlopt.data.source import source_for

    config = load(args.config, args.overrides)
    data = data_module.build(config, roles=("train", "val"))
    train = source_for(config).read(("train",), ("train",)).splits["train"]
    columns, labels = train.arrays
    x = {name: tf.constant(values) for name, values in columns.items()}
    class_ids = {name: i for i, name in enumerate(data.class_names)} if data.class_names else None
    y = tf.constant(np.array([class_ids[str(v)] for v in labels]) if class_ids and labels.dtype.kind in "OUS" else labels)
    samples = data.counts["train"]
    assert len(labels) >= samples  # the arrays side reads the whole train split (validation not carved off)

    def fresh():
        keras.utils.set_random_seed(config.seed)
        model = models.build(config, data)
        model.compile(optimizer=keras.optimizers.Adam(config.optimizer.learning_rate), loss="sparse_categorical_crossentropy")
        return model

    results = {"dlopt": [], "arrays": []}
    for repeat in range(args.repeats):
        sides = ["dlopt", "arrays"] if repeat % 2 == 0 else ["arrays", "dlopt"]
        for side in sides:
            model = fresh()
            if side == "dlopt":
                fit = lambda n: model.fit(data.pipelines["train"], epochs=n, shuffle=False, verbose=0)  # noqa: E731  (the pipeline shuffles)
                results[side].append(timed_epochs(model, fit, args.epochs, samples))
            else:
                count = len(labels)
                fit = lambda n: model.fit(x, y, batch_size=data.batch_size, epochs=n, shuffle=True, verbose=0)  # noqa: E731
                results[side].append(timed_epochs(model, fit, args.epochs, count))
            speed, cpu = results[side][-1]
            print(f"repeat {repeat + 1} {side:>6}: {speed:,.0f} samples/s, {cpu:.1f} CPU-s per epoch", flush=True)
    dlopt = statistics.median(s for s, _ in results["dlopt"])
    arrays = statistics.median(s for s, _ in results["arrays"])
    print(f"median: dlopt {dlopt:,.0f} samples/s, arrays {arrays:,.0f} samples/s; dlopt / arrays = {dlopt / arrays:.2f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
