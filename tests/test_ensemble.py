"""`dlopt ensemble`: several runs of one task as one run folder whose model averages theirs; its
eval, predict and export work as any run's; runs of other data or classes are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import quadrant_idx_folder, quadrant_images, tiny_cnn_config, write_config

DLOPT = [sys.executable, "-m", "dlopt.cli"]


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> tuple[Path, list[Path]]:
    tmp = tmp_path_factory.mktemp("ensemble")
    folder = quadrant_idx_folder(tmp / "idx")
    trained = []
    for seed in (1, 2, 3):
        # an L2 penalty each: the ensemble's loss must be the data's alone, not theirs added up
        config = tiny_cnn_config(folder, seed=seed, train={"epochs": 2, "progress": "none"}, model={"type": "cnn", "blocks": [{"filters": 4}], "dense": [8], "l2": 0.01})
        config["data"]["tta"] = ["horizontal_flip"]  # the ensemble is tested as its members were: with their views
        config = write_config(tmp / f"c{seed}.yaml", config)
        result = subprocess.run([*DLOPT, "train", str(config), "--runs-dir", str(tmp / "runs"), "--json", "--name", f"m{seed}"], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        trained.append(Path(json.loads(result.stdout)["run_dir"]))
    return tmp, trained


def test_an_ensemble_averages_its_members_and_is_a_run(members, cli):
    import keras

    import dlopt  # noqa: F401

    tmp, runs = members
    code, out, err = cli("ensemble", *runs, "--runs-dir", tmp / "ensembles", "--json")
    assert code == 0, err
    result = json.loads(out)
    run = Path(result["run_dir"])
    assert result["status"] == "completed" and len(result["members_test"]) == 3
    x = quadrant_images(6, seed=7)[0][..., None].astype(np.float32)
    each = [keras.models.load_model(r / "checkpoints" / "best.keras", compile=False).predict(x, verbose=0) for r in runs]
    averaged = keras.models.load_model(run / "checkpoints" / "best.keras", compile=False).predict(x, verbose=0)
    np.testing.assert_allclose(averaged, np.mean(each, axis=0), atol=1e-5)
    # the test metrics are the averaged model's, written as any run's; the loss is its cross-entropy
    test = json.loads((run / "eval" / "test.json").read_text())
    assert test["metrics"]["accuracy"] == pytest.approx(result["test"]["accuracy"])
    images, labels = quadrant_images(80, seed=2)  # the test split's files
    probabilities = keras.models.load_model(run / "checkpoints" / "best.keras", compile=False).predict(images[..., None].astype(np.float32), verbose=0)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["tta"] == ["horizontal_flip"] and summary["test_single_view"] == pytest.approx(test["metrics_single_view"])
    assert summary["test_single_view"]["loss"] == pytest.approx(float(-np.log(probabilities[np.arange(80), labels]).mean()), abs=1e-4)
    assert json.loads((run / "run.json").read_text())["ensemble"]["members"] == [str(r) for r in runs]
    # eval, predict and export take it as a run
    np.save(tmp / "x0.npy", x[0])
    for command in (["eval", str(run), "--json"], ["predict", str(run), str(tmp / "x0.npy"), "--json"], ["export", str(run), "--format", "saved_model"]):
        done = subprocess.run([*DLOPT, *command], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    predicted = json.loads(subprocess.run([*DLOPT, "predict", str(run), str(tmp / "x0.npy"), "--json"], capture_output=True, text=True, timeout=300).stdout)
    assert predicted[0]["class"] == int(averaged[0].argmax())


def test_top_k_picks_the_best_runs_of_a_folder(members, cli):
    tmp, runs = members
    best = sorted(runs, key=lambda r: json.loads((r / "summary.json").read_text())["best"]["value"])[:2]  # val_loss: lower is better
    code, out, err = cli("ensemble", tmp / "runs", "--top", "2", "--runs-dir", tmp / "top", "--json")
    assert code == 0, err
    assert sorted(json.loads(out)["ensemble"]) == sorted(str(r) for r in best)


def test_members_of_other_data_or_classes_are_refused_in_one_line(members, cli, tmp_path):
    tmp, runs = members
    other = quadrant_idx_folder(tmp_path / "other", train=200)
    config = write_config(tmp_path / "c.yaml", tiny_cnn_config(other, train={"epochs": 1, "progress": "none"}))
    code, out, err = cli("train", config, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    stranger = json.loads(out)["run_dir"]
    code, _, err = cli("ensemble", runs[0], stranger, "--runs-dir", tmp_path / "ensembles")
    assert code == 2 and err.count("\n") == 1 and "trained on other data" in err
    assert not (tmp_path / "ensembles").exists() or not any((tmp_path / "ensembles").iterdir())
    code, _, err = cli("ensemble", runs[0], "--runs-dir", tmp_path / "ensembles")
    assert code == 2 and "at least two runs" in err


def test_an_ensemble_of_forecasts_averages_values_and_reports_against_naive_forecasts(tmp_path, cli):
    from test_sequences import write_series

    import keras

    path = write_series(tmp_path / "s.csv", steps=240, noise=0.05)
    runs = []
    for seed in (1, 2):
        config = {
            "name": "wave",
            "seed": seed,
            "data": {"source": "csv", "path": str(path), "batch_size": 32, "timeseries": {"time_column": "t", "target_columns": ["wave"], "input_width": 12, "horizon": 2, "season": 12}},
            "model": {"type": "lstm", "units": [4]},
            "train": {"epochs": 2, "progress": "none"},
        }
        code, out, err = cli("train", write_config(tmp_path / f"c{seed}.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
        assert code == 0, err
        runs.append(Path(json.loads(out)["run_dir"]))
    code, out, err = cli("ensemble", *runs, "--runs-dir", tmp_path / "ensembles", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    summary = json.loads((run / "summary.json").read_text())
    models = [keras.models.load_model(r / "checkpoints" / "best.keras", compile=False) for r in runs]
    x = np.random.default_rng(0).normal(size=(5, *models[0].inputs[0].shape[1:])).astype(np.float32)  # windows of every column
    each = [model.predict(x, verbose=0) for model in models]
    averaged = keras.models.load_model(run / "checkpoints" / "best.keras", compile=False).predict(x, verbose=0)
    np.testing.assert_allclose(averaged, np.mean(each, axis=0), atol=1e-5)  # values averaged, not classes
    forecast = summary["forecast"]  # scored on the members' test windows, in the series' units, as a run is
    members = [json.loads((r / "summary.json").read_text())["forecast"] for r in runs]
    assert forecast["windows"] == members[0]["windows"] and forecast["seasonal_naive"]["rmse"] == pytest.approx(members[0]["seasonal_naive"]["rmse"])
    assert forecast["model"]["rmse"] > 0 and forecast["model"]["rmse"] != members[0]["model"]["rmse"]
