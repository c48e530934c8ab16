"""`dlopt train` and `dlopt eval` end to end through the CLI, reading the run directory."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from conftest import tiny_cnn_config, write_config


def only_run(runs_dir: Path) -> Path:
    runs = sorted(runs_dir.iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def read_csv(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, request):
    """One tiny CNN run shared by the tests that only read its run directory."""
    from conftest import quadrant_idx_folder, train_once

    tmp = tmp_path_factory.mktemp("trained")
    folder = quadrant_idx_folder(tmp / "idx")
    config = tiny_cnn_config(
        folder,
        train={"epochs": 3, "progress": "lines", "metrics": ["accuracy", "macro_f1"], "label_smoothing": 0.05},
        schedule={"type": "cosine", "warmup_epochs": 1},
        checkpoint={"monitor": "val_accuracy"},
    )
    result = train_once(config, tmp)
    return result, only_run(tmp / "runs")


def test_run_directory_has_everything(trained):
    result, run = trained
    assert result.exit_code == 0, result.stderr
    for name in ("config.yaml", "run.json", "metrics.csv", "summary.json", "checkpoints/best.keras", "checkpoints/last.keras", "plots/curves.png"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert not list(run.rglob(".*.tmp"))  # atomic writes leave no temporary files


def test_run_json_records_status_versions_and_command(trained):
    _, run = trained
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["error"] is None
    assert set(record["versions"]) == {"python", "tensorflow", "keras", "dlopt"}
    assert record["seed"] == 1 and "train" in record["command"] and record["duration_seconds"] > 0


def test_metrics_csv_one_row_per_epoch_with_timing_and_learning_rate(trained):
    _, run = trained
    rows = read_csv(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert list(rows[0]) == [
        "epoch", "learning_rate", "loss", "accuracy", "macro_f1", "val_accuracy", "val_loss", "val_macro_f1", "epoch_seconds", "samples_per_second", "cpu_seconds",
    ]
    assert all(float(r["samples_per_second"]) > 0 and float(r["epoch_seconds"]) > 0 for r in rows)
    cpu = [float(r["cpu_seconds"]) for r in rows]  # the run's CPU so far: start-up in, and rising
    assert cpu[0] > 1 and cpu[0] < cpu[1] < cpu[2]
    # warm-up to 0.01 during epoch 1, then cosine decay towards 0 over epochs 2-3
    rates = [float(r["learning_rate"]) for r in rows]
    assert rates[0] == pytest.approx(0.01 * 6 / 7, rel=1e-4)  # the last of 7 warm-up steps (216 examples / 32)
    assert rates[1] < 0.01 and rates[2] < rates[1]


def test_summary_and_json_output(trained):
    result, run = trained
    summary = json.loads((run / "summary.json").read_text())
    printed = json.loads(result.stdout)
    assert printed["run_dir"] == str(run) and printed["status"] == "completed"
    assert printed["test"] == summary["test"]
    assert set(summary["test"]) == {"loss", "accuracy", "macro_f1"}
    assert summary["parameters"] > 0 and summary["model_bytes"] == (run / "checkpoints/best.keras").stat().st_size
    assert summary["examples"] == {"train": 216, "val": 24, "test": 80}
    assert summary["best"]["monitor"] == "val_accuracy" and summary["epochs_run"] == 3
    assert summary["test"]["accuracy"] > 0.5  # the quadrant task is learnable in three epochs


def test_saved_config_is_the_resolved_config(trained):
    _, run = trained
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["optimizer"]["beta_1"] == 0.9  # defaults filled in
    assert saved["schedule"]["type"] == "cosine"


def test_eval_reloads_the_model_and_matches_training(trained, cli):
    _, run = trained
    code, out, err = cli("eval", run, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["run_dir"], result["status"], result["split"]) == (str(run), "completed", "test")
    summary = json.loads((run / "summary.json").read_text())
    for key, value in summary["test"].items():
        assert result["metrics"][key] == pytest.approx(value, rel=1e-4, abs=1e-5)
    assert json.loads((run / "eval" / "test.json").read_text())["metrics"] == result["metrics"]
    code, out, _ = cli("eval", run, "--split", "val", "--checkpoint", "last")
    assert code == 0 and "accuracy" in out
    assert (run / "eval" / "val.json").exists()


def test_eval_of_a_folder_that_is_not_a_run(tmp_path, cli):
    code, _, err = cli("eval", tmp_path)
    assert code == 2 and "not a dlopt run folder" in err
    code, out, err = cli("eval", tmp_path, "--json")
    assert code == 2 and json.loads(out) == {"run_dir": str(tmp_path), "status": "config_error", "error": f"{tmp_path}: not a dlopt run folder (no config.yaml)"}


def test_regression_full_batch_sgd_and_early_stopping(tmp_path, cli, regression_npz):
    config = {
        "name": "reg",
        "data": {"source": "npz", "path": str(regression_npz), "batch_size": "full"},
        "model": {"type": "mlp", "layers": [16]},
        "optimizer": {"type": "sgd", "learning_rate": 0.05, "momentum": 0.9},
        "train": {"epochs": 30, "loss": "huber", "progress": "none",
                  "early_stopping": {"monitor": "val_loss", "patience": 1, "min_delta": 100.0}},
        "checkpoint": {"monitor": "val_rmse"},
    }
    code, _, err = cli("train", write_config(tmp_path / "r.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    run = only_run(tmp_path / "runs")
    rows = read_csv(run / "metrics.csv")
    assert len(rows) == 2  # no epoch improves by 100: stops after patience + 1 epochs
    assert {"mae", "rmse", "val_mae", "val_rmse"} <= set(rows[0])
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["test"]) == {"loss", "mae", "rmse"}


def test_plateau_schedule_lowers_the_logged_rate(tmp_path, cli, idx_dir):
    config = tiny_cnn_config(idx_dir, schedule={"type": "plateau", "patience": 0, "factor": 0.5, "min_delta": 100.0}, train={"epochs": 3, "progress": "none"})
    code, _, err = cli("train", write_config(tmp_path / "p.yaml", config), "--runs-dir", tmp_path / "runs", "--progress", "bar")
    assert code == 0, err
    assert "epoch 3/3" in err  # the bar mode still leaves one line per epoch
    rates = [float(r["learning_rate"]) for r in read_csv(only_run(tmp_path / "runs") / "metrics.csv")]
    # epoch 1 sets the best; epoch 2 fails to improve by 100 and halves the rate for epoch 3
    assert rates == pytest.approx([0.01, 0.01, 0.005])


def test_overrides_name_and_seed_from_the_command_line(tmp_path, cli, idx_dir):
    path = write_config(tmp_path / "c.yaml", tiny_cnn_config(idx_dir))
    code, _, err = cli("train", path, "--runs-dir", tmp_path / "runs", "--name", "sweep_a", "--seed", "7", "--set", "train.epochs=1", "--set", "model.dense=[]")
    assert code == 0, err
    run = only_run(tmp_path / "runs")
    assert run.name.startswith("sweep_a-")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["seed"], saved["train"]["epochs"], saved["model"]["dense"]) == (7, 1, [])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.blokcs=[]"], "model.blokcs: unknown key 'blokcs' (did you mean 'blocks'?)"),
        (["checkpoint.monitor=val_acuracy"], "checkpoint.monitor: 'val_acuracy' is not logged (did you mean 'val_accuracy'?)"),
        (["train.metrics=[rmse]"], "train.metrics: 'rmse' does not apply to classification data"),
        (["data.path=/no/such/folder"], "data.path: no such file or folder: /no/such/folder"),
        (["model.blocks=[{filters: 2}, {filters: 2}, {filters: 2}, {filters: 2}]"], "model.blocks[3].pool_size: the feature map is 1x1 here"),
    ],
)
def test_bad_configs_exit_2_and_leave_no_run(tmp_path, cli, idx_dir, overrides, message):
    path = write_config(tmp_path / "c.yaml", tiny_cnn_config(idx_dir))
    args = ["train", path, "--runs-dir", tmp_path / "runs"]
    for option in overrides:
        args += ["--set", option]
    code, out, err = cli(*args)
    assert code == 2
    assert message in err and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_bad_name_is_refused(tmp_path, cli, idx_dir):
    path = write_config(tmp_path / "c.yaml", tiny_cnn_config(idx_dir))
    code, _, err = cli("train", path, "--runs-dir", tmp_path / "runs", "--name", "../escape")
    assert code == 2 and "--name ../escape: name: expected letters" in err
    assert not (tmp_path / "escape").exists()


def test_nan_loss_fails_the_run_with_a_reason(tmp_path, cli, regression_npz):
    config = {
        "data": {"source": "npz", "path": str(regression_npz)},
        "model": {"type": "mlp", "layers": [8]},
        "optimizer": {"type": "sgd", "learning_rate": 1.0e6},
        "train": {"epochs": 3, "progress": "none"},
    }
    code, _, err = cli("train", write_config(tmp_path / "n.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code == 1 and "loss became NaN or infinite" in err
    record = json.loads((only_run(tmp_path / "runs") / "run.json").read_text())
    assert record["status"] == "failed" and "NaN" in record["error"]
    assert not (only_run(tmp_path / "runs") / "summary.json").exists()
    # NaN from the first epoch: no checkpoint was ever finite, so none is written, and it says so
    assert "no checkpoint was written" in err
    assert not list(only_run(tmp_path / "runs").glob("checkpoints/*.keras"))
    assert not (only_run(tmp_path / "runs") / "backup" / "latest.weights.h5").exists()


def _finite(path) -> bool:
    import keras
    import numpy as np

    import dlopt  # noqa: F401  (registers dlopt's saved objects)

    model = keras.models.load_model(path, compile=False)
    return all(np.all(np.isfinite(keras.ops.convert_to_numpy(v))) for v in model.weights)


def test_a_nan_after_good_epochs_keeps_the_last_finite_checkpoints_and_eval_refuses_a_nan_model(tmp_path, cli, regression_npz):
    config = {
        "data": {"source": "npz", "path": str(regression_npz)},
        "model": {"type": "mlp", "layers": [8]},
        "optimizer": {"type": "sgd", "learning_rate": 0.01},
        # two good epochs, then a rate no network survives
        "schedule": {"type": "step", "boundaries": [2], "values": [0.01, 1.0e30]},
        "train": {"epochs": 4, "progress": "none"},
    }
    code, _, err = cli("train", write_config(tmp_path / "n.yaml", config), "--runs-dir", tmp_path / "runs")
    run = only_run(tmp_path / "runs")
    assert code == 1 and "loss became NaN or infinite in epoch 3" in err and "checkpoints/last.keras holds epoch 2" in err, err
    for which in ("best", "last"):
        assert _finite(run / "checkpoints" / f"{which}.keras")
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 2  # --resume from the last finite state
    code, out, err = cli("eval", run, "--checkpoint", "last", "--json")
    assert code == 0, err
    # a checkpoint holding NaN (written by hand: dlopt never writes one) is refused in one line
    import keras
    import numpy as np

    model = keras.models.load_model(run / "checkpoints" / "last.keras", compile=False)
    kernel = next(v for v in model.weights if v.path.endswith("kernel"))
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    model.save(run / "checkpoints" / "last.keras")
    for command in (("eval", run, "--checkpoint", "last"), ("export", run, "--checkpoint", "last"), ("predict", run, str(tmp_path / "x.npy"), "--checkpoint", "last")):
        np.save(tmp_path / "x.npy", np.zeros((2, 4), "float32"))
        code, out, err = cli(*command)
        assert code == 1 and len(err.strip().splitlines()) == 1 and "non-finite weights (NaN or infinite)" in err, (command, err)
    assert not (run / "export").exists()


def test_help_of_every_command(cli):
    for command in ([], ["train"], ["eval"], ["validate"]):
        code, out, _ = cli(*command, "--help")
        assert code == 0 and "Usage:" in out


def test_user_model_from_the_command_line_trains_and_evaluates(tmp_path, cli, idx_dir):
    module = tmp_path / "user_models.py"
    module.write_text(
        "import keras\n"
        "from dlopt.models import register, output_head\n\n"
        "@register('tiny_dense')\n"
        "def build(model_config, input_spec, output_spec):\n"
        "    inputs = keras.Input(shape=input_spec.shape)\n"
        "    x = keras.layers.Flatten()(inputs)\n"
        "    x = keras.layers.Dense(model_config.model_extra['width'], activation='relu')(x)\n"
        "    return keras.Model(inputs, output_head(x, output_spec))\n"
    )
    path = write_config(tmp_path / "c.yaml", tiny_cnn_config(idx_dir, model={"type": "tiny_dense", "width": 6}))
    code, _, err = cli("train", path, "--module", module, "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    run = only_run(tmp_path / "runs")
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["module"] == str(module)
    code, _, err = cli("eval", run, "--json")
    assert code == 0, err


def test_early_stopping_restores_best_weights_by_default(idx_dir):
    from dlopt.config.schema import Config
    from dlopt.callbacks.stopping import StopAtSafePoint
    from dlopt.train import _callbacks
    from types import SimpleNamespace

    config = Config.model_validate(tiny_cnn_config(idx_dir, train={"early_stopping": {"monitor": "val_accuracy", "patience": 2}}))
    data = SimpleNamespace(counts={"train": 10}, steps_per_epoch=1, batch_size=10, epoch=None, random_states=None)
    callbacks, *_ = _callbacks(config, Path("/tmp/unused-run"), data, "none", [], StopAtSafePoint(), cpu_clock=lambda: 0.0)
    stop = next(c for c in callbacks if type(c).__name__ == "EarlyStopping")
    assert (stop.monitor, stop.patience, stop.restore_best_weights) == ("val_accuracy", 2, True)


def test_shipped_tfds_config_trains_on_mock_mnist(tmp_path, cli, monkeypatch):
    """configs/cnn_mnist.yaml end to end through the real TFDS code path, on TFDS's mock data."""
    import tensorflow_datasets as tfds

    from dlopt.data import tfds_source

    monkeypatch.setattr(tfds_source, "_offline", lambda: False)  # mock_data stands in for the download
    config = Path(__file__).resolve().parent.parent / "configs" / "cnn_mnist.yaml"
    with tfds.testing.mock_data(num_examples=64):
        code, _, err = cli("train", config, "--runs-dir", tmp_path / "runs", "--set", "train.epochs=1", "--name", "2024")
    assert code == 0, err
    run = only_run(tmp_path / "runs")
    assert run.name.startswith("2024-")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["examples"] == {"train": 58, "val": 6, "test": 64}
    assert set(summary["test"]) == {"loss", "accuracy"}


def test_offline_tfds_fails_before_creating_a_run(tmp_path, cli, monkeypatch):
    from dlopt.data import tfds_source

    monkeypatch.setattr(tfds_source, "_PROBE_HOST", "no-network.invalid")
    config = Path(__file__).resolve().parent.parent / "configs" / "mlp_mnist.yaml"
    code, out, err = cli("train", config, "--runs-dir", tmp_path / "runs", "--set", f"data.data_dir={tmp_path / 'tfds'}")
    assert code == 1 and err.startswith("error: data.name: TFDS cannot download 'mnist' (no network)") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("min_steps, epochs", [(30, 5), (10, 2)])
def test_min_steps_gives_small_data_more_epochs_and_the_schedule_runs_over_them(tmp_path, cli, idx_dir, min_steps, epochs):
    # 216 training images after the validation carve, batch 32: 7 steps per epoch
    config = tiny_cnn_config(idx_dir, schedule={"type": "cosine"}, train={"epochs": 2, "min_steps": min_steps, "progress": "lines"})
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    assert json.loads(out)["epochs_run"] == epochs
    assert (f"train.min_steps {min_steps}: {epochs} epochs of 7 steps (train.epochs 2)" in err) == (epochs != 2)
    assert f"epoch {epochs}/{epochs}" in err
    rates = [float(r["learning_rate"]) for r in read_csv(only_run(tmp_path / "runs") / "metrics.csv")]
    # the cosine runs over all the epochs trained: each row has the rate of its epoch's last step
    total = epochs * 7
    assert rates == pytest.approx([0.005 * (1 + math.cos(math.pi * (e * 7 - 1) / total)) for e in range(1, epochs + 1)], rel=1e-4)
