"""Images per second of dlopt's `image_folder` pipeline next to keras.utils.image_dataset_from_directory.

All read the same folder of JPEG and PNG files of mixed sizes, decode, resize to the same size with
the same interpolation, shuffle and batch, for two epochs. The sides alternate in one process (their
order reversed every repeat) so the host's state hits each. Epoch 1 decodes every file (dlopt: the
pass that finds unreadable files and fills its cache, then the epoch); in epoch 2 dlopt reads its
cache and reshuffles. `keras` is image_dataset_from_directory as it comes (it has no cache: each
epoch decodes again); `keras + cache` adds `.cache()` after it, which caches whole batches, so every
epoch then repeats epoch 1's batches in the same order.

    python benchmarks/image_folder.py --images 3000 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def make_folder(root: Path, images: int, classes: int = 5, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(images):
        folder = root / "train" / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        height, width = int(rng.integers(90, 160)), int(rng.integers(90, 160))
        # smooth content, so JPEG and PNG sizes look like photos' rather than noise's
        base = rng.integers(0, 255, (height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
        image = np.kron(base, np.ones((8, 8, 1), np.uint8))[:height, :width]
        Image.fromarray(image).save(folder / f"{i:05d}.{'jpg' if i % 2 else 'png'}", quality=90)
    return root


def count(dataset) -> int:
    return sum(int(y.shape[0]) for _, y in dataset)


def dlopt_side(folder: Path, size: int, batch: int, cache: bool) -> tuple[float, float]:
    from dlopt import data as data_module
    from dlopt.config.schema import Config

    config = Config.model_validate(
        {
            "data": {"source": "image_folder", "path": str(folder), "splits": {"train": "train", "val": "train[:1]", "test": None}, "image": {"size": [size, size]}, "batch_size": batch},
            "model": {"type": "cnn"},
        }
    )
    start = time.perf_counter()
    data = data_module.build(config, roles=("train",))  # lists, decodes, resizes and caches every file
    first = count(data.pipelines["train"]) / (time.perf_counter() - start)
    start = time.perf_counter()
    return first, count(data.pipelines["train"]) / (time.perf_counter() - start)


def keras_side(folder: Path, size: int, batch: int, cache: bool) -> tuple[float, float]:
    import keras
    import tensorflow as tf

    start = time.perf_counter()
    dataset = keras.utils.image_dataset_from_directory(folder / "train", image_size=(size, size), interpolation="bilinear", batch_size=batch, shuffle=True, seed=1, verbose=False)
    dataset = (dataset.cache() if cache else dataset).prefetch(tf.data.AUTOTUNE)
    first = count(dataset) / (time.perf_counter() - start)
    start = time.perf_counter()
    return first, count(dataset) / (time.perf_counter() - start)


SIDES = {"dlopt": (dlopt_side, True), "keras": (keras_side, False), "keras + cache": (keras_side, True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp), args.images)
        results = {name: [] for name in SIDES}
        for name, (side, cache) in SIDES.items():  # a warm-up round: TensorFlow starts, functions are traced
            side(folder, args.size, args.batch, cache)
        for repeat in range(args.repeats):
            for name in list(SIDES)[:: 1 if repeat % 2 == 0 else -1]:
                side, cache = SIDES[name]
                results[name].append(side(folder, args.size, args.batch, cache))
                print(f"repeat {repeat + 1} {name:13s}: epoch 1 {results[name][-1][0]:8.0f} images/s, epoch 2 {results[name][-1][1]:9.0f} images/s", flush=True)
        print(f"\n{args.images} images ({args.size}x{args.size}, batch {args.batch}), median of {args.repeats}:")
        print("| pipeline | epoch 1 (decode + resize), images/s | epoch 2, images/s | epoch 2, dlopt / this |")
        print("|---|---|---|---|")
        for name, rates in results.items():
            ratios = [d[1] / r[1] for d, r in zip(results["dlopt"], rates)]
            print(f"| {name} | {statistics.median(r[0] for r in rates):,.0f} | {statistics.median(r[1] for r in rates):,.0f} | {statistics.median(ratios):.2f} |")


if __name__ == "__main__":
    main()
