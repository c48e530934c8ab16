"""Data sources, split slicing, validation carving, statistics and the tf.data pipelines."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import quadrant_images, write_idx
from dlopt import data as data_module
from dlopt.config.schema import Config
from dlopt.data import idx, tfds_source
from dlopt.data.splits import parse_split, slice_bounds
from dlopt.errors import ConfigError, RunFailed


def make_config(**sections) -> Config:
    return Config.model_validate({"data": sections.pop("data"), "model": {"type": "mlp", "layers": [4]}, **sections})


def first_batch(dataset):
    return next(iter(dataset.as_numpy_iterator()))


def test_split_strings():
    assert parse_split("train[:90%]") == ("train", None, "90%")
    assert slice_bounds("train[:90%]", 1000) == ("train", 0, 900)
    assert slice_bounds("train[90%:]", 1000) == ("train", 900, 1000)
    assert slice_bounds("test[10:-10]", 100) == ("test", 10, 90)
    assert slice_bounds("train", 7) == ("train", 0, 7)
    with pytest.raises(ConfigError, match="cannot read split"):
        parse_split("train[::2]")


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reads_gzipped_and_plain(tmp_path, gz):
    images, labels = quadrant_images(10)
    write_idx(tmp_path / "train-images-idx3-ubyte", images, gz=gz)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels, gz=gz)
    x, y = idx.load_split(tmp_path, "train")
    assert x.shape == (10, 8, 8, 1) and x.dtype == np.uint8  # a channel axis is added for convnets
    np.testing.assert_array_equal(x[..., 0], images)
    np.testing.assert_array_equal(y, labels)


def test_idx_errors_are_one_line(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(RunFailed, match="not an IDX file"):
        idx.read_idx(tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(RunFailed, match="expected one IDX labels file for split 'train'"):
        idx.find_file(tmp_path, "train", "labels")


def test_idx_splits_slicing_and_validation_carved_from_train(idx_dir):
    config = make_config(data={"source": "idx", "path": str(idx_dir), "splits": {"train": "train[:200]"}, "batch_size": 16})
    data = data_module.build(config)
    # 200 selected, 10% (20) carved off the end for validation, the rest trains
    assert data.counts == {"train": 180, "val": 20, "test": 80}
    assert data.input_shape == (8, 8, 1)
    assert (data.task, data.num_classes, data.label_format) == ("classification", 4, "sparse")
    x, y = first_batch(data.pipelines["train"])
    assert x.shape == (16, 8, 8, 1) and x.dtype == np.float32 and y.dtype == np.int32
    val_labels = np.concatenate([y for _, y in data.pipelines["val"].as_numpy_iterator()])
    _, all_labels = idx.load_split(idx_dir, "train")
    np.testing.assert_array_equal(val_labels, all_labels[180:200])  # validation order is kept
    assert data.steps_per_epoch == 12


def test_explicit_validation_split_and_full_batch(idx_dir):
    config = make_config(data={"source": "idx", "path": str(idx_dir), "splits": {"train": "train[:50%]", "val": "train[50%:]"}, "batch_size": "full"})
    data = data_module.build(config)
    assert data.counts["train"] == 120 and data.counts["val"] == 120
    assert data.batch_size == 120 and data.steps_per_epoch == 1  # full-batch gradient descent
    assert first_batch(data.pipelines["train"])[0].shape[0] == 120


def test_standardize_statistics_come_from_training_split_only(tmp_path):
    # training inputs are 0..9, test inputs are 1000: test must not move the statistics
    train_x = np.arange(10, dtype=np.float32).reshape(10, 1).repeat(2, axis=1)
    train_x[:, 1] *= 2
    np.savez(tmp_path / "d.npz", x_train=train_x, y_train=np.arange(10) % 2, x_test=np.full((5, 2), 1000, np.float32), y_test=np.zeros(5, int))
    for mode, mean, var in (("global", [6.75], None), ("per_channel", [4.5, 9.0], [8.25, 33.0])):
        config = make_config(data={"source": "npz", "path": str(tmp_path / "d.npz"), "splits": {"val": "train"}, "preprocess": {"standardize": mode}})
        data = data_module.build(config)
        np.testing.assert_allclose(data.mean, mean, rtol=1e-6)
        expected_var = var if var is not None else [np.var(np.concatenate([train_x[:, 0], train_x[:, 1]]))]
        np.testing.assert_allclose(data.variance, expected_var, rtol=1e-6)


def test_npz_folder_layout_and_regression_task(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        np.savez(tmp_path / f"{split}.npz", x=rng.normal(size=(40, 3)), y=rng.normal(size=(40,)))
    data = data_module.build(make_config(data={"source": "npz", "path": str(tmp_path)}))
    assert (data.task, data.num_classes, data.label_format) == ("regression", None, "value")
    assert data.counts == {"train": 36, "val": 4, "test": 40}


def test_npz_missing_array_is_reported(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((3, 2)))
    with pytest.raises(RunFailed, match="has no array 'y_train'"):
        data_module.build(make_config(data={"source": "npz", "path": str(tmp_path / "d.npz")}))


def test_label_encodings_follow_loss_and_metrics(idx_dir):
    base = {"source": "idx", "path": str(idx_dir), "batch_size": 8}
    smoothing = data_module.build(make_config(data=base, train={"label_smoothing": 0.1}))
    assert smoothing.label_format == "onehot"
    y = first_batch(smoothing.pipelines["train"])[1]
    assert y.shape == (8, 4) and np.all(y.sum(axis=1) == 1)
    assert data_module.build(make_config(data=base, train={"metrics": ["accuracy", "macro_f1"]})).label_format == "onehot"
    with pytest.raises(ConfigError, match="binary_crossentropy needs 2 classes, the data has 4"):
        data_module.build(make_config(data=base, train={"loss": "binary_crossentropy"}))
    with pytest.raises(ConfigError, match="'rmse' does not apply to classification"):
        data_module.build(make_config(data=base, train={"metrics": ["rmse"]}))


def test_preflight_reports_missing_paths(tmp_path):
    with pytest.raises(ConfigError, match="data.path: no such file or folder"):
        data_module.preflight(make_config(data={"source": "idx", "path": str(tmp_path / "nope")}))


def test_tfds_unknown_name_suggests():
    with pytest.raises(ConfigError, match="unknown TFDS dataset 'mnistt' \\(did you mean 'mnist'\\?\\)"):
        tfds_source.get_builder("mnistt", None)


def test_tfds_offline_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_source, "_PROBE_HOST", "no-network.invalid")  # .invalid never resolves
    config = make_config(data={"source": "tfds", "name": "mnist", "data_dir": str(tmp_path)})
    with pytest.raises(RunFailed) as info:
        data_module.build(config)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("data.name: TFDS cannot download 'mnist' (no network); offline, `dlopt train configs/cnn_digits.yaml` trains on")
    assert "tfds build mnist" in message and "data.manual_dir" in message


def test_tfds_source_with_mock_data(monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(tfds_source, "_offline", lambda: False)
    config = make_config(data={"source": "tfds", "name": "mnist", "batch_size": 10, "preprocess": {"rescale": 1 / 255, "standardize": "global"}})
    with tfds.testing.mock_data(num_examples=50):
        data = data_module.build(config)
        x, y = first_batch(data.pipelines["train"])
    assert data.counts == {"train": 45, "val": 5, "test": 50}  # no validation split: carved from train
    assert (data.num_classes, data.input_shape) == (10, (28, 28, 1))
    assert x.shape == (10, 28, 28, 1) and y.shape == (10,)
    assert data.mean.shape == (1,) and 0 < data.mean[0] < 1
