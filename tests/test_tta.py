"""Test-time augmentation (`data.tta`): flipped views averaged by the final test evaluation,
`dlopt eval` and `dlopt predict`, checked against the saved model run by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import quadrant_images, tiny_cnn_config, write_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny CNN on quadrant images (class = the bright quadrant), tested with a horizontal flip too.
    A flip moves the quadrant, so the averaged views score clearly apart from the image alone."""
    from conftest import quadrant_idx_folder, train_once

    tmp = tmp_path_factory.mktemp("tta")
    folder = quadrant_idx_folder(tmp / "idx")
    data = {"source": "idx", "path": str(folder), "batch_size": 32, "preprocess": {"rescale": 1 / 255}, "tta": ["horizontal_flip"]}
    result = train_once(tiny_cnn_config(folder, train={"epochs": 4, "progress": "none"}, data=data), tmp)
    assert result.exit_code == 0, result.stderr
    return Path(json.loads(result.stdout)["run_dir"])


def by_hand(run: Path, flip_axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities averaged over the test images and their flips, labels), from the saved model."""
    import keras

    model = keras.models.load_model(run / "checkpoints" / "best.keras", compile=False, safe_mode=True)
    x, y = quadrant_images(80, seed=2)  # the test split of quadrant_idx_folder
    x = x.astype(np.float32)[..., None]
    views = [x] + [np.flip(x, axis=axis) for axis in flip_axes]
    return np.mean([model.predict(view, verbose=0) for view in views], axis=0), y


def accuracy(probabilities, labels) -> float:
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def test_test_metrics_average_the_views_and_keep_the_single_view(run):
    summary = json.loads((run / "summary.json").read_text())
    averaged, labels = by_hand(run, (2,))
    single, _ = by_hand(run, ())
    assert summary["tta"] == ["horizontal_flip"]
    assert summary["test"]["accuracy"] == pytest.approx(accuracy(averaged, labels), abs=1e-6)
    assert summary["test_single_view"]["accuracy"] == pytest.approx(accuracy(single, labels), abs=1e-6)
    cross_entropy = -np.mean(np.log(np.clip(averaged[np.arange(len(labels)), labels], 1e-7, 1)))
    assert summary["test"]["loss"] == pytest.approx(cross_entropy, rel=1e-4)
    assert abs(summary["test"]["accuracy"] - summary["test_single_view"]["accuracy"]) > 0.05  # the flip really ran


def test_eval_uses_the_runs_views_or_the_ones_given(run, cli):
    summary = json.loads((run / "summary.json").read_text())
    code, out, err = cli("eval", run, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["tta"] == ["horizontal_flip"]
    assert result["metrics"]["accuracy"] == pytest.approx(summary["test"]["accuracy"], abs=1e-6)
    assert result["metrics_single_view"]["accuracy"] == pytest.approx(summary["test_single_view"]["accuracy"], abs=1e-6)

    code, out, err = cli("eval", run, "--no-tta", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["metrics"]["accuracy"] == pytest.approx(summary["test_single_view"]["accuracy"], abs=1e-6)
    assert "tta" not in result and "metrics_single_view" not in result

    code, out, err = cli("eval", run, "--tta", "horizontal_flip", "--tta", "vertical_flip", "--json")
    assert code == 0, err
    averaged, labels = by_hand(run, (2, 1))
    assert json.loads(out)["metrics"]["accuracy"] == pytest.approx(accuracy(averaged, labels), abs=1e-6)

    code, out, err = cli("eval", run)  # the table shows both columns
    assert code == 0 and "tta: image + horizontal_flip" in out and "1 view" in out

    code, _, err = cli("eval", run, "--no-tta", "--tta", "vertical_flip")
    assert code == 2 and "--no-tta and --tta" in err and len(err.strip().splitlines()) == 1


def test_predict_averages_the_same_views(run, cli, tmp_path):
    averaged, _ = by_hand(run, (2,))
    x, _ = quadrant_images(80, seed=2)
    np.save(tmp_path / "batch.npy", x[:5])
    code, out, err = cli("predict", run, tmp_path / "batch.npy", "--json")
    assert code == 0, err
    for result, expected in zip(json.loads(out), averaged[:5]):
        assert result["class"] == int(expected.argmax())
        assert result["probability"] == pytest.approx(float(expected.max()), abs=1e-5)


def test_tta_needs_image_classification_in_one_line(tmp_path, cli):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 4)).astype(np.float32), rng.integers(0, 3, 120)
    np.savez(tmp_path / "features.npz", x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])
    config = {
        "name": "flat", "data": {"source": "npz", "path": str(tmp_path / "features.npz"), "tta": ["horizontal_flip"]},
        "model": {"type": "mlp", "layers": [4]}, "train": {"epochs": 1, "progress": "none"},
    }
    code, _, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "data.tta: test-time augmentation needs image inputs (height, width, channels); the data's inputs have shape (4,)" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing left behind


def test_unknown_tta_view_is_a_config_error(tmp_path, cli, idx_dir):
    config = tiny_cnn_config(idx_dir)
    config["data"]["tta"] = ["sideways_flip"]
    code, _, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code == 2 and "data.tta" in err and "horizontal_flip" in err and len(err.strip().splitlines()) == 1, err
