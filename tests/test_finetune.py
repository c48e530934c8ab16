"""Fine-tuning: init_from a run or a .keras file, freezing, a new head, slower pretrained layers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_cnn_config, write_config


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny CNN trained on the quadrant images: the run to fine-tune from."""
    from conftest import quadrant_idx_folder, train_once

    tmp = tmp_path_factory.mktemp("pretrained")
    folder = quadrant_idx_folder(tmp / "idx")
    result = train_once(tiny_cnn_config(folder, train={"epochs": 3, "progress": "none"}), tmp)
    assert result.exit_code == 0, result.stderr
    return Path(json.loads(result.stdout)["run_dir"]), folder


def weights_of(path: Path) -> dict[str, list[np.ndarray]]:
    import keras

    from dlopt.models.finetune import leaf_layers

    model = keras.models.load_model(path, compile=False, safe_mode=True)
    return {layer.name: layer.get_weights() for layer in leaf_layers(model) if layer.weights}


def finetune(cli, tmp_path, folder, model_overrides: dict, **config_overrides) -> tuple[int, str, Path | None]:
    model = {"type": "cnn", "blocks": [{"filters": 4}], "dense": [8], **model_overrides}
    path = write_config(tmp_path / "ft.yaml", tiny_cnn_config(folder, model=model, **config_overrides))
    code, out, err = cli("train", path, "--runs-dir", tmp_path / "runs", "--json")
    run = Path(json.loads(out)["run_dir"]) if code == 0 else None
    return code, err, run


def test_init_from_a_run_loads_every_layer_and_frozen_layers_stay_put(tmp_path, cli, pretrained):
    source, folder = pretrained
    code, err, run = finetune(cli, tmp_path, folder, {"init_from": str(source), "freeze": ["block0_*"], "pretrained_lr_multiplier": 0.1})
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["init_from"]["loaded"]) >= {"block0_conv0", "dense0", "head"} and summary["init_from"]["reinitialised"] == []
    assert summary["frozen_layers"] == ["block0_conv0", "block0_conv0_act", "block0_pool"]
    assert summary["optimizer_class"] == "AdamWithLrMultipliers"
    assert "3 layers frozen" in err and "layers loaded" in err
    before, after = weights_of(source / "checkpoints" / "best.keras"), weights_of(run / "checkpoints" / "last.keras")
    for a, b in zip(before["block0_conv0"], after["block0_conv0"]):
        np.testing.assert_array_equal(a, b)  # loaded (a fresh kernel would differ) and frozen: not one value moved
    assert any(not np.array_equal(a, b) for a, b in zip(before["dense0"], after["dense0"]))  # trained on
    # and it reloads and evaluates like any run
    code, out, err = cli("eval", run, "--json")
    assert code == 0, err


def test_a_different_number_of_classes_gets_a_new_head(tmp_path, cli, pretrained):
    source, folder = pretrained
    code, err, run = finetune(cli, tmp_path, folder, {"init_from": str(source / "checkpoints" / "best.keras"), "freeze": "all"}, data={"source": "idx", "path": str(folder), "batch_size": 32, "preprocess": {"rescale": 1 / 255}, "num_classes": 6})
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert [item["layer"] for item in summary["init_from"]["reinitialised"]] == ["head"]
    assert summary["init_from"]["reinitialised"][0]["shapes"][0] == [8, 6]
    # freeze: all trains the head alone (a linear probe): kernel 8x6 + bias 6
    assert summary["trainable_parameters"] == 8 * 6 + 6
    assert "re-initialised (shape changed): head" in err


def test_freeze_up_to_a_layer(tmp_path, cli, pretrained):
    source, folder = pretrained
    code, err, run = finetune(cli, tmp_path, folder, {"init_from": str(source), "freeze": {"up_to": "dense0"}})
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["frozen_layers"][-1] == "dense0" and "head" not in summary["frozen_layers"]
    assert summary["trainable_parameters"] == 8 * 4 + 4


@pytest.mark.parametrize(
    "model, message",
    [
        ({"freeze": {"up_to": "dense9"}}, "model.freeze.up_to: no layer named 'dense9' (did you mean 'dense0'?)"),
        ({"freeze": ["conv*"]}, "model.freeze: 'conv*' matches no layer"),
        ({"init_from": "nowhere/at/all"}, "model.init_from: no such file or folder: nowhere/at/all"),
    ],
)
def test_finetuning_mistakes_are_config_errors_and_leave_nothing(tmp_path, cli, pretrained, model, message):
    _, folder = pretrained
    code, err, _ = finetune(cli, tmp_path, folder, model)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_lr_multiplier_needs_init_from(tmp_path, cli, idx_dir):
    path = write_config(tmp_path / "c.yaml", tiny_cnn_config(idx_dir, model={"type": "cnn", "pretrained_lr_multiplier": 0.1}))
    code, _, err = cli("validate", path)
    assert code == 2 and "model.pretrained_lr_multiplier: only applies with model.init_from" in err


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_lr_multiplier_scales_each_update_exactly(name):
    """Two identical variables and gradients; the one with multiplier 0.25 moves a quarter as far.
    (AdamW's decoupled weight decay keeps the base rate; it is off here to see the update alone.)"""
    import keras

    from dlopt.config.optim import OPTIMIZERS
    from dlopt.optim import _WITH_MULTIPLIERS
    from dlopt.registry import load_attribute

    slow, fast = keras.Variable(np.ones(3, np.float32), name="slow"), keras.Variable(np.ones(3, np.float32), name="fast")
    plain_var = keras.Variable(np.ones(3, np.float32), name="plain")
    extra = {"weight_decay": 0.0} if name == "adamw" else {}
    optimizer = _WITH_MULTIPLIERS[name](learning_rate=0.1, lr_multipliers={slow.path: 0.25}, **extra)
    plain = load_attribute(OPTIMIZERS.get(name).builds)(learning_rate=0.1, **extra)
    gradient = np.array([0.5, -1.0, 2.0], np.float32)
    for _ in range(3):
        optimizer.apply([gradient, gradient], [slow, fast])
        plain.apply([gradient], [plain_var])
    np.testing.assert_allclose(fast.numpy(), plain_var.numpy(), rtol=1e-6)  # the rest is the stock optimizer
    # every update these optimizers make is linear in the rate: a quarter of the rate, a quarter of the way
    np.testing.assert_allclose(1 - slow.numpy(), 0.25 * (1 - fast.numpy()), rtol=1e-5)


def test_two_phase_run_killed_in_phase_two_resumes_in_phase_two(tmp_path, cli):
    """SIGKILL during phase two; --resume must go on unfrozen, at the lower rate, from the backup."""
    import signal

    import yaml

    from test_runs import read_rows, slow_config, start, wait_for_epochs

    path = slow_config(tmp_path, 4)
    config = yaml.safe_load(path.read_text())
    config["model"].update({"freeze": ["block0_*"], "unfreeze_at_epoch": 1, "unfreeze_lr_multiplier": 0.1})
    path.write_text(yaml.safe_dump(config))
    proc = start(path, tmp_path / "runs")
    run = wait_for_epochs(tmp_path / "runs", 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    code, _, err = cli("train", "--resume", run)
    assert code == 0, err
    rows = read_rows(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([0.003, 0.0003, 0.0003, 0.0003])
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
