"""`backbone` models: keras.applications feature extractors with a new head, two-phase fine-tuning."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_cnn_config, write_config

ROOT = Path(__file__).resolve().parent.parent


def backbone_config(idx_dir: Path, **model) -> dict:
    """8x8 grayscale images, resized to 32x32 RGB for a narrow MobileNetV2 (the smallest size it takes)."""
    config = tiny_cnn_config(idx_dir, train={"epochs": 2, "progress": "none"})
    config["data"] = {"source": "idx", "path": str(idx_dir), "batch_size": 32}  # raw pixels: the backbone preprocesses
    config["model"] = {"type": "backbone", "name": "MobileNetV2", "weights": None, "input_size": 32, "options": {"alpha": 0.35}, "dense": [8], **model}
    return config


def train(cli, tmp_path, config) -> tuple[int, str, Path | None]:
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    return code, err, Path(json.loads(out)["run_dir"]) if code == 0 else None


def backbone_weights(path: Path) -> list[np.ndarray]:
    import keras

    from dlopt.models.finetune import find_nested

    return find_nested(keras.models.load_model(path, compile=False, safe_mode=True), "backbone").get_weights()


def test_backbone_trains_reloads_evaluates_and_fine_tunes_from(tmp_path, cli, idx_dir):
    code, err, run = train(cli, tmp_path, backbone_config(idx_dir))
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_run"] == 2 and summary["parameters"] > 400_000  # MobileNetV2 (alpha 0.35) without its top: 410k
    import keras

    from dlopt.models.finetune import leaf_layers

    model = keras.models.load_model(run / "checkpoints" / "best.keras", compile=False, safe_mode=True)
    names = [layer.name for layer in leaf_layers(model)]
    assert names[:3] == ["gray_to_rgb", "resize", "backbone_preprocess"] and names[-1] == "head"
    x = np.full((1, 8, 8, 1), 255.0, np.float32)
    assert model.predict(x, verbose=0).shape == (1, 4)
    code, out, err = cli("eval", run, "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"]["accuracy"] == pytest.approx(summary["test"]["accuracy"], abs=1e-6)
    # init_from works on a backbone run like on any other
    (tmp_path / "tuned").mkdir()
    code, err, tuned = train(cli, tmp_path / "tuned", backbone_config(idx_dir, init_from=str(run), freeze="all"))
    assert code == 0, err
    tuned_summary = json.loads((tuned / "summary.json").read_text())
    assert "head" in tuned_summary["init_from"]["loaded"] and tuned_summary["init_from"]["reinitialised"] == []
    for a, b in zip(backbone_weights(run / "checkpoints" / "best.keras"), backbone_weights(tuned / "checkpoints" / "last.keras")):
        np.testing.assert_array_equal(a, b)  # loaded, and frozen (`all`: the backbone)


def test_weights_from_a_file_and_two_phase_fine_tuning(tmp_path, cli, idx_dir):
    import keras

    keras.utils.set_random_seed(7)
    reference = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg", alpha=0.35)
    weights_file = tmp_path / "mobilenet_v2_notop.weights.h5"
    reference.save_weights(weights_file)
    config = backbone_config(idx_dir, weights=str(weights_file), freeze="all", unfreeze_at_epoch=1, unfreeze_lr_multiplier=0.1)
    config["train"] = {"epochs": 3, "progress": "lines"}
    config["optimizer"] = {"type": "adam", "learning_rate": 0.01}
    code, err, run = train(cli, tmp_path, config)
    assert code == 0, err
    assert "epoch 1: frozen layers unfrozen (batch norm stays frozen), learning rate x 0.1" in err
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["frozen_layers"]) == len(reference.layers) - 1  # every backbone layer but its input
    with open(run / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([0.01, 0.001, 0.001])
    # the backbone started from the file, and the second phase trained it
    trained = backbone_weights(run / "checkpoints" / "last.keras")
    start = reference.get_weights()
    assert len(trained) == len(start)
    assert any(not np.allclose(a, b) for a, b in zip(start, trained))
    moving = [w for layer in reference.layers if isinstance(layer, keras.layers.BatchNormalization) for w in layer.weights[2:]]
    assert moving  # batch norm stays in inference mode: its moving statistics never change
    model_bn = {w.path: w for w in keras.models.load_model(run / "checkpoints" / "last.keras", compile=False).weights}
    for w in moving:
        np.testing.assert_allclose(model_bn[w.path].numpy(), w.numpy())


def test_imagenet_weights_offline_is_one_line_and_leaves_nothing(tmp_path, cli, idx_dir, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):  # what get_file raises without network
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    code, err, _ = train(cli, tmp_path, backbone_config(idx_dir, weights="imagenet", input_size=96))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "model.weights: could not fetch the ImageNet weights of MobileNetV2" in err and "set model.weights to its path" in err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": {"name": "MobileNetV9"}}, "model.name: no keras.applications model 'MobileNetV9' (did you mean"),
        ({"data": {"preprocess": {"rescale": 0.1}}}, "data.preprocess: model.type backbone applies the backbone's own preprocessing"),
        ({"model": {"freeze": "all", "unfreeze_at_epoch": 2}}, "model.unfreeze_at_epoch: expected fewer than train.epochs (2), got 2"),
        ({"model": {"unfreeze_at_epoch": 1}}, "model.unfreeze_at_epoch: needs model.freeze"),
    ],
)
def test_backbone_config_errors(tmp_path, cli, idx_dir, change, message):
    config = backbone_config(idx_dir)
    for section, values in change.items():
        config[section] = {**config[section], **values}
    code, err, _ = train(cli, tmp_path, config)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_shipped_transfer_config_validates(cli):
    code, out, err = cli("validate", ROOT / "configs" / "mobilenet_transfer.yaml")
    assert code == 0, err
    assert "type: backbone" in out and "unfreeze_at_epoch" in out
