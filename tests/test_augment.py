"""Augmentation ops and the input pipeline options, on real Keras layers and real tf.data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import tiny_cnn_config, write_config
from dlopt.config.schema import DataConfig

IMAGE_OPS = [
    {"type": "random_flip", "mode": "horizontal_and_vertical"},
    {"type": "random_rotation", "factor": 0.1},
    {"type": "random_zoom", "factor": 0.2},
    {"type": "random_translation", "height": 0.2, "width": 0.2},
    {"type": "random_crop", "padding": 2},
    {"type": "random_contrast", "factor": 0.5},
    {"type": "random_brightness", "factor": 0.3},
    {"type": "gaussian_noise", "stddev": 0.1},
    {"type": "random_erasing", "probability": 1.0, "scale": [0.1, 0.3], "value": 0},
    {"type": "mixup", "alpha": 0.4},
    {"type": "cutmix", "alpha": 1.0},
]
SEQUENCE_OPS = [
    {"type": "scaling", "sigma": 0.2},
    {"type": "time_masking", "max_fraction": 0.3, "count": 2},
    {"type": "gaussian_noise", "stddev": 0.1},
    {"type": "mixup"},
]


def augmenter(ops, shape, value_range=(0.0, 255.0), seed=7):
    from dlopt.data import augment

    return augment.augmenter(DataConfig(source="idx", path="x", augment=ops).augment, shape, value_range, seed)


def class_images(n=32, classes=4, size=12, seed=0):
    """Constant images whose pixel value is 40 x class id, with one-hot labels."""
    import tensorflow as tf

    ids = np.random.default_rng(seed).integers(0, classes, n)
    x = (np.ones((n, size, size, 1)) * (40.0 * ids)[:, None, None, None]).astype(np.float32)
    x[:, : size // 2, : size // 3] += 5.0  # an asymmetric mark, so flips and shifts change pixels
    return tf.constant(x), tf.one_hot(ids, classes)


def eager_and_in_tf_data(fn, x, y):
    """The op applied eagerly and inside a parallel tf.data map: both must work the same way."""
    import tensorflow as tf

    eager = fn(x, y)
    (graph,) = list(tf.data.Dataset.from_tensors((x, y)).map(fn, num_parallel_calls=tf.data.AUTOTUNE))
    return eager, graph


@pytest.mark.parametrize("op", IMAGE_OPS, ids=lambda op: op["type"])
def test_image_op_keeps_shape_and_dtype_and_changes_pixels(op):
    x, y = class_images()
    for xa, ya in eager_and_in_tf_data(augmenter([op], tuple(x.shape[1:])), x, y):
        assert xa.shape == x.shape and xa.dtype == x.dtype and ya.shape == y.shape
        assert not np.allclose(xa.numpy(), x.numpy())  # the op did something
        np.testing.assert_allclose(ya.numpy().sum(axis=1), 1.0, rtol=1e-5)  # still a distribution over classes
        if op["type"] not in ("mixup", "cutmix"):
            np.testing.assert_array_equal(ya.numpy(), y.numpy())  # labels untouched


@pytest.mark.parametrize("op", [{"type": "mixup", "alpha": 1.0}, {"type": "cutmix"}], ids=["mixup", "cutmix"])
def test_mixed_labels_match_the_mixed_pixels(op):
    """Mixing image a (value 40a) with image b (40b) by weight w must give label w·e_a + (1-w)·e_b."""
    x, y = class_images(64, size=16)
    x = x.numpy()
    x[:, :8, :5] -= 5.0  # back to constant images: the mean pixel tells the mixing weight
    import tensorflow as tf

    xa, ya = augmenter([op], (16, 16, 1))(tf.constant(x), y)
    expected_mean = 40.0 * (ya.numpy() * np.arange(4)).sum(axis=1)
    np.testing.assert_allclose(xa.numpy().mean(axis=(1, 2, 3)), expected_mean, atol=40 * 0.02)
    assert (ya.numpy().max(axis=1) < 0.999).sum() > 5  # labels really were mixed


@pytest.mark.parametrize("op", SEQUENCE_OPS, ids=lambda op: op["type"])
def test_sequence_op_keeps_shape_and_dtype(op):
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(1).normal(size=(16, 40, 3)).astype(np.float32) + 2.0)
    y = tf.one_hot(np.arange(16) % 3, 3)
    for xa, ya in eager_and_in_tf_data(augmenter([op], (40, 3), (0.0, 1.0)), x, y):
        assert xa.shape == x.shape and xa.dtype == x.dtype and ya.shape == y.shape
        assert not np.allclose(xa.numpy(), x.numpy())
    if op["type"] == "time_masking":
        masked_steps = (xa.numpy() == 0).all(axis=2).sum(axis=1)
        assert masked_steps.max() <= 2 * int(0.3 * 40) and masked_steps.sum() > 0


def test_random_crop_shifts_each_example_by_whole_pixels():
    import tensorflow as tf

    x = tf.constant(np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1).repeat(32, axis=0))
    out = augmenter([{"type": "random_crop", "padding": 2}], (8, 8, 1))(x, tf.zeros((32, 4)))[0].numpy()
    assert len({o.tobytes() for o in out}) > 5  # offsets differ within one batch
    centre = out[:, 3, 3, 0]  # every pixel comes from the original image or the zero padding
    assert set(np.unique(out)) <= set(np.arange(64, dtype=np.float32)) | {0.0} and (centre > 0).all()


@pytest.fixture
def image_config(tmp_path, idx_dir):
    def make(augment, **train):
        config = tiny_cnn_config(idx_dir, train={"epochs": 1, "progress": "none", **train})
        config["data"]["augment"] = augment
        return config

    return make


def test_augmentation_only_touches_training_batches(image_config):
    from dlopt.config.schema import Config
    from dlopt.data import build

    plain = build(Config.model_validate(image_config([])))
    augmented = build(Config.model_validate(image_config([{"type": "random_erasing", "probability": 1.0, "value": 0}, {"type": "mixup"}])))
    for role in ("val", "test"):
        for (xa, ya), (xb, yb) in zip(plain.pipelines[role], augmented.pipelines[role]):
            np.testing.assert_array_equal(xa.numpy(), xb.numpy())
            np.testing.assert_array_equal(ya.numpy().argmax(-1) if ya.ndim > 1 else ya.numpy(), yb.numpy().argmax(-1))
    def example_sums(pipeline):
        return sorted(float(s) for x, _ in pipeline for s in x.numpy().sum(axis=(1, 2, 3)))

    assert example_sums(augmented.pipelines["train"]) != example_sums(plain.pipelines["train"])  # erased and mixed
    evaluation = build(Config.model_validate(image_config([{"type": "mixup"}])), roles=("train",), for_training=False)
    assert example_sums(evaluation.pipelines["train"]) == example_sums(plain.pipelines["train"])  # `eval --split train`: raw


def test_training_with_every_image_op_then_eval(tmp_path, cli, image_config):
    config = write_config(tmp_path / "c.yaml", image_config(IMAGE_OPS, metrics=["accuracy", "macro_f1"]))
    code, out, err = cli("train", config, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    run = json.loads(out)["run_dir"]
    saved = json.loads(json.dumps(__import__("yaml").safe_load(open(f"{run}/config.yaml"))))
    assert [op["type"] for op in saved["data"]["augment"]] == [op["type"] for op in IMAGE_OPS]
    code, out, err = cli("eval", run, "--json")
    assert code == 0, err
    assert json.loads(out)["examples"] == 80


@pytest.mark.parametrize(
    ("augment", "message"),
    [
        ([{"type": "time_masking"}], "data.augment[0].type: time_masking needs sequence inputs (time steps, features); the data's inputs have shape (8, 8, 1)"),
        ([{"type": "random_flip"}, {"type": "random_rotaton"}], "data.augment[1].type: unknown type 'random_rotaton' (did you mean 'random_rotation'?)"),
        ([{"type": "random_zoom", "factor": 2}], "data.augment[0].factor: expected less than 1, got 2"),
        ([{"type": "random_flip", "mode": "diagonal"}], "data.augment[0].mode: expected one of"),
    ],
)
def test_bad_augmentation_is_a_config_error(tmp_path, cli, image_config, augment, message):
    config = write_config(tmp_path / "c.yaml", image_config(augment))
    code, _, err = cli("train", config, "--runs-dir", tmp_path / "runs")
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_mixup_on_regression_is_refused(tmp_path, cli, regression_npz):
    config = {"data": {"source": "npz", "path": str(regression_npz), "augment": [{"type": "mixup"}]}, "model": {"type": "mlp", "layers": [4]}, "train": {"epochs": 1}}
    code, _, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code == 2 and "data.augment[0].type: mixup mixes class labels and needs classification data; this data is regression" in err


def test_pipeline_options_train(tmp_path, cli, image_config):
    config = image_config([{"type": "random_flip"}], steps_per_execution=4, jit_compile=False)
    config["data"].update(parallel_calls=2, prefetch=3)
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    assert json.loads(out)["final"]["val_accuracy"] >= 0


def test_file_cache_for_tfds_data(tmp_path, cli, monkeypatch):
    """`data.cache: FOLDER` caches decoded TFDS examples in files there instead of in memory."""
    import tensorflow_datasets as tfds

    from dlopt.data import tfds_source

    monkeypatch.setattr(tfds_source, "_offline", lambda: False)
    config = {
        "data": {"source": "tfds", "name": "mnist", "cache": str(tmp_path / "cache"), "preprocess": {"rescale": 1 / 255}},
        "model": {"type": "mlp", "layers": [8]},
        "train": {"epochs": 2, "progress": "none"},
    }
    with tfds.testing.mock_data(num_examples=40):
        code, _, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    names = {p.name.split("-")[1] for p in (tmp_path / "cache").iterdir()}
    assert names == {"train", "val", "test"}


def test_process_start_time_is_when_the_interpreter_started():
    code = "import time; t = time.time(); from dlopt.callbacks.metrics import process_start_time; print(t - process_start_time())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert -0.05 <= float(result.stdout) < 10  # interpreter start-up only, measured to 10 ms
