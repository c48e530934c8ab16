"""Sequence models and their data: LSTM/GRU, the Transformer encoder, text sources, time series."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import write_config

ROOT = Path(__file__).resolve().parent.parent
POSITIVE = ["great movie", "loved it", "wonderful acting", "a delight", "superb story", "really good fun"]
NEGATIVE = ["terrible film", "hated it", "awful acting", "a bore", "dreadful plot", "really bad mess"]


def sentences(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """A few dozen short reviews whose sentiment is in the words: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        label = "pos" if rng.random() < 0.5 else "neg"
        phrase = rng.choice(POSITIVE if label == "pos" else NEGATIVE)
        rows.append((f"{phrase} {rng.choice(['today', 'and more', 'indeed', ''])}".strip(), label))
    return rows


@pytest.fixture
def reviews_csv(tmp_path) -> Path:
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "sentiment"])
        writer.writerows(sentences(80))
    return path


def write_reviews_folder(root: Path, train: int = 60, test: int = 24) -> Path:
    """`root/<split>/<pos|neg>/<i>.txt`: short reviews as text files, one folder per class."""
    for split, rows in (("train", sentences(train, seed=1)), ("test", sentences(test, seed=2))):
        for i, (text, label) in enumerate(rows):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}.txt").write_text(text)
    return root


@pytest.fixture
def reviews_folder(tmp_path) -> Path:
    return write_reviews_folder(tmp_path / "reviews")


def text_config(source: str, path: Path, model: dict, **data) -> dict:
    return {
        "name": "text",
        "seed": 3,
        "data": {"source": source, "path": str(path), "batch_size": 16, "text": {"max_tokens": 64, "sequence_length": 6}, **data},
        "model": model,
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "train": {"epochs": 4, "progress": "none"},
        "checkpoint": {"monitor": "val_accuracy"},
    }


def trained_run(cli, tmp_path, config: dict) -> tuple[Path, dict]:
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    return run, json.loads((run / "summary.json").read_text())


def test_lstm_on_csv_text_learns_and_evaluates_raw_text(tmp_path, cli, reviews_csv):
    model = {"type": "lstm", "units": [12, 8], "bidirectional": True, "embedding_dim": 8}
    config = text_config("csv", reviews_csv, model, splits={"train": "train[:75%]", "test": "train[75%:]"}, text={"max_tokens": 64, "sequence_length": 6, "column": "review", "label_column": "sentiment"})
    run, summary = trained_run(cli, tmp_path, config)
    assert summary["class_names"] == ["neg", "pos"] and summary["examples"]["test"] == 20
    assert summary["test"]["accuracy"] >= 0.8
    code, out, err = cli("eval", run, "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"]["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    # the saved model takes raw text: its first layer is the adapted TextVectorization
    import keras

    saved = keras.models.load_model(run / "checkpoints" / "best.keras", safe_mode=True)
    assert saved.layers[1].name == "vectorize" and "loved" in saved.layers[1].get_vocabulary()
    import tensorflow as tf

    probabilities = saved.predict(tf.constant(["loved it indeed", "awful acting"]), verbose=0)
    assert probabilities.argmax(axis=1).tolist() == [1, 0]  # pos, neg


def test_transformer_on_text_folder_reloads_in_a_fresh_process(tmp_path, cli, reviews_folder):
    model = {"type": "transformer", "width": 16, "heads": 2, "ff_width": 32, "depth": 1, "pooling": "first", "dropout": 0.1}
    run, summary = trained_run(cli, tmp_path, text_config("text_folder", reviews_folder, model, splits={"train": "train", "test": "test"}))
    assert summary["examples"] == {"train": 54, "val": 6, "test": 24} and summary["test"]["accuracy"] >= 0.75
    names = {layer["class_name"] for layer in json.loads(__import__("zipfile").ZipFile(run / "checkpoints/best.keras").read("config.json"))["config"]["layers"]}
    assert "Lambda" not in names
    script = (
        "import sys, keras, tensorflow as tf\n"
        "import dlopt.models.transformer\n"
        f"model = keras.models.load_model({str(run / 'checkpoints/best.keras')!r}, safe_mode=True)\n"
        "print(model.predict(tf.constant(['superb story', 'dreadful plot']), verbose=0).argmax(1).tolist())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[1, 0]"


def test_vocabulary_comes_from_the_training_split_only(tmp_path, reviews_csv):
    from dlopt.config.schema import Config
    from dlopt.data import build

    with open(reviews_csv, "a", newline="") as handle:
        csv.writer(handle).writerows([("zebra zebra zebra", "pos")] * 20)  # only in the last rows: the test split
    config = text_config("csv", reviews_csv, {"type": "lstm", "units": [4]}, splits={"train": "train[:80]", "test": "train[80:]"}, split_shuffle=False, text={"column": "review", "label_column": "sentiment"})
    data = build(Config.model_validate(config))
    vocabulary = data.vectorizer.get_vocabulary()
    assert "zebra" not in vocabulary and "loved" in vocabulary
    x, _ = next(iter(data.pipelines["test"]))
    assert x.dtype.name == "string"  # the pipeline carries raw text; the model vectorises it


def test_shipped_lstm_imdb_config_on_mock_tfds_text(tmp_path, cli, monkeypatch):
    import tensorflow_datasets as tfds

    from dlopt.data import tfds_source

    monkeypatch.setattr(tfds_source, "_offline", lambda: False)
    overrides = ["--set", "train.epochs=1", "--set", "data.text.sequence_length=16", "--set", "model.units=[8]", "--set", "model.embedding_dim=8"]
    with tfds.testing.mock_data(num_examples=48):
        code, out, err = cli("train", ROOT / "configs" / "lstm_imdb.yaml", "--runs-dir", tmp_path / "runs", "--json", *overrides)
    assert code == 0, err
    summary = json.loads((Path(json.loads(out)["run_dir"]) / "summary.json").read_text())
    assert set(summary["test"]) == {"loss", "accuracy", "auc"}


def test_lstm_and_gru_structure():
    from dlopt.config.schema import Config
    from dlopt.models import InputSpec, OutputSpec, builder_of

    config = Config.model_validate({"data": {"source": "npz", "path": "x"}, "model": {"type": "lstm", "cell": "gru", "units": [8, 6, 4], "bidirectional": True, "recurrent_dropout": 0.1}})
    model = builder_of(config.model)(config.model, InputSpec((20, 3)), OutputSpec("regression", 2, "linear", (2,)))
    recurrent = [layer for layer in model.layers if layer.name.startswith("bi_gru")]
    assert [layer.forward_layer.units for layer in recurrent] == [8, 6, 4]
    assert [layer.forward_layer.return_sequences for layer in recurrent] == [True, True, False]
    assert model.output_shape == (None, 2) and recurrent[0].forward_layer.recurrent_dropout == 0.1


def word_order_csv(path: Path, n: int = 120) -> Path:
    """Two classes with the same bag of words, told apart only by order ("red blue" vs "blue red")
    amid filler words: a model of single words cannot beat a coin, one of word pairs can."""
    rng = np.random.default_rng(5)
    fillers = ["the", "a", "big", "small", "one", "very", "old", "new"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for _ in range(n):
            label = rng.integers(2)
            pair = "red blue" if label == 0 else "blue red"
            before, after = rng.choice(fillers, 2), rng.choice(fillers, 2)
            writer.writerow([" ".join([*before, pair, *after]), ["forward", "backward"][label]])
    return path


@pytest.mark.parametrize("min_count", [1, 2])
def test_min_count_leaves_words_of_a_single_training_text_out_of_the_vocabulary(tmp_path, cli, min_count):
    rows = [("good film shared words", "pos"), ("bad film shared words", "neg")] * 10
    rows += [("good film lonely", "pos"), ("bad film echo echo echo", "neg")]  # each only in one text
    rows += [("good film rare pair", "pos"), ("bad film rare", "neg")]  # "rare" in two texts
    rows += [("good film unseen", "pos"), ("bad film unseen", "neg")]  # in the test rows only
    path = tmp_path / "texts.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([("text", "label"), *rows])
    train_rows = len(rows) - 2
    splits = {"train": f"train[:{train_rows}]", "val": f"train[{train_rows}:]", "test": f"train[{train_rows}:]"}
    config = text_config("csv", path, {"type": "fasttext", "embedding_dim": 4}, splits=splits, split_shuffle=False, text={"max_tokens": 64, "sequence_length": 8, "min_count": min_count})
    run, summary = trained_run(cli, tmp_path, config)
    import keras

    vectorize = keras.models.load_model(run / "checkpoints" / "best.keras", safe_mode=True).get_layer("vectorize")
    vocabulary = set(vectorize.get_vocabulary())
    assert {"good", "bad", "film", "shared", "words", "rare"} <= vocabulary and "unseen" not in vocabulary
    # "echo" is three times in one text: like "lonely", it is in one text only
    assert vocabulary & {"lonely", "echo"} == ({"lonely", "echo"} if min_count == 1 else set())
    unknown = vectorize.get_vocabulary().index("[UNK]")
    assert (int(vectorize(["lonely"])[0][0]) == unknown) == (min_count == 2)


def test_min_count_that_leaves_no_word_is_a_one_line_error(tmp_path, cli, reviews_csv):
    config = text_config("csv", reviews_csv, {"type": "fasttext", "embedding_dim": 4}, splits={"train": "train[:75%]", "test": "train[75%:]"}, text={"min_count": 10000, "column": "review", "label_column": "sentiment"})
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code != 0 and "data.text.min_count: no word is in 10000 or more training texts" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "model, ngrams, learns_order",
    [
        ({"type": "fasttext", "embedding_dim": 8}, 1, False),
        ({"type": "fasttext", "embedding_dim": 8, "token_dropout": 0.1}, 2, True),
        ({"type": "textcnn", "embedding_dim": 8, "filters": 8, "kernel_sizes": [2, 3]}, 1, True),
    ],
)
def test_text_families_see_word_order_through_bigrams_or_convolutions(tmp_path, cli, model, ngrams, learns_order):
    path = word_order_csv(tmp_path / "order.csv")
    config = text_config("csv", path, model, splits={"train": "train[:70%]", "test": "train[70%:]"}, text={"max_tokens": 100, "sequence_length": 16, "ngrams": ngrams})
    config["train"]["epochs"] = 15
    run, summary = trained_run(cli, tmp_path, config)
    if learns_order:
        assert summary["test"]["accuracy"] >= 0.9
    else:
        assert summary["test"]["accuracy"] <= 0.75  # the same bag of words either way
    import keras

    saved = keras.models.load_model(run / "checkpoints" / "best.keras", safe_mode=True)
    assert ("red blue" in saved.get_layer("vectorize").get_vocabulary()) == (ngrams == 2)


def test_wide_fasttext_adds_a_linear_model_of_the_tokens_to_the_head(tmp_path, cli):
    path = word_order_csv(tmp_path / "order.csv")
    model = {"type": "fasttext", "embedding_dim": 8, "token_dropout": 0.1, "wide": True}
    config = text_config("csv", path, model, splits={"train": "train[:70%]", "test": "train[70%:]"}, text={"max_tokens": 100, "sequence_length": 16, "ngrams": 2})
    config["train"]["epochs"] = 15
    run, summary = trained_run(cli, tmp_path, config)
    assert summary["test"]["accuracy"] >= 0.9
    saved, layer, ids, deep = deep_part(run, "old red blue big")
    wide = layer["wide"].get_weights()[0]
    logits = deep + wide[[int(i) for i in np.asarray(ids)[0] if i]].mean(axis=0)
    assert saved.predict(np.array(["old red blue big"], dtype=object), verbose=0)[0] == pytest.approx(softmax(logits), abs=1e-5)


def deep_part(run: Path, text: str):
    """A trained fasttext run's saved model, its layers by name, the text's token ids, and the
    logits of its deep part alone (averaged embeddings through the head's dense layer)."""
    import keras

    from dlopt.models.finetune import leaf_layers

    saved = keras.models.load_model(run / "checkpoints" / "best.keras", safe_mode=True)
    layer = {item.name: item for item in leaf_layers(saved)}
    ids = layer["vectorize"](np.array([text], dtype=object))
    kernel, bias = layer["head_logits"].get_weights()
    deep = layer["embedding"].get_weights()[0][[int(i) for i in np.asarray(ids)[0] if i]].mean(axis=0) @ kernel + bias
    return saved, layer, ids, deep


def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()


def test_simple_rnn_cell_learns_text(tmp_path, cli, reviews_csv):
    model = {"type": "lstm", "cell": "rnn", "units": [8], "embedding_dim": 8}
    config = text_config("csv", reviews_csv, model, splits={"train": "train[:75%]", "test": "train[75%:]"}, text={"max_tokens": 64, "sequence_length": 6, "column": "review", "label_column": "sentiment"})
    config["train"]["epochs"] = 8
    run, summary = trained_run(cli, tmp_path, config)
    assert summary["test"]["accuracy"] >= 0.8
    import keras

    saved = keras.models.load_model(run / "checkpoints" / "best.keras", safe_mode=True)
    assert isinstance(saved.get_layer("lstm").get_layer("rnn0"), keras.layers.SimpleRNN)


def test_text_families_refuse_numeric_inputs(tmp_path, cli):
    for family in ("fasttext", "textcnn"):
        config = {"name": "t", "data": {"source": "sklearn", "name": "digits"}, "model": {"type": family}, "train": {"epochs": 1, "progress": "none"}}
        code, _, err = cli("train", write_config(tmp_path / f"{family}.yaml", config), "--runs-dir", tmp_path / "runs")
        assert code == 2 and f"model.type: {family} expects text (token ids from data.text)" in err
    assert not any((tmp_path / "runs").glob("*/summary.json"))


def test_transformer_checks_heads_divide_width(tmp_path, cli, reviews_csv):
    config = text_config("csv", reviews_csv, {"type": "transformer", "width": 10, "heads": 4})
    code, _, err = cli("validate", write_config(tmp_path / "c.yaml", config))
    assert code == 2 and "model.heads: expected a divisor of width (10), got 4" in err


def write_series(path: Path, steps: int = 400, period: int = 12, noise: float = 0.0) -> Path:
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t", "wave", "trend"])
        for i in rng.permutation(steps):  # rows out of order: the time column orders them
            writer.writerow([i, np.sin(2 * np.pi * i / period) + noise * rng.normal(), i / steps])
    return path


def timeseries_settings(**overrides):
    from dlopt.config.schema import TimeseriesConfig

    return TimeseriesConfig.model_validate({"time_column": "t", "input_width": 12, "horizon": 3, "season": 12, **overrides})


def test_windows_never_cross_splits_and_scaling_comes_from_training(tmp_path):
    from dlopt.data import timeseries

    path = write_series(tmp_path / "s.csv", steps=200)
    arrays, series = timeseries.load(path, timeseries_settings(target_columns=["trend"], scale="none"))
    step = 1 / 200
    bounds = {"train": (0, 140), "val": (140, 170), "test": (170, 200)}  # 70% / 15% / 15% of 200 steps
    for role, (start, stop) in bounds.items():
        x, y = arrays[role]
        times = np.concatenate([x[..., 1].ravel(), y.ravel()]) / step
        assert times.min() >= start - 1e-3 and times.max() <= stop - 1 + 1e-3, role  # float32 rounding
        assert len(x) == (stop - start) - 12 - 3 + 1 and y.shape[1:] == (3, 1)
    values = np.array([np.sin(2 * np.pi * np.arange(140) / 12), np.arange(140) / 200]).T
    scaled, series = timeseries.load(path, timeseries_settings(target="level", window_inputs="absolute"))
    np.testing.assert_allclose(series.target_scaling.offset, values.mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(series.target_scaling.scale, values.std(axis=0), atol=1e-9)
    # windows relative to their last value, changes predicted: scaled by the spread of the changes
    scaled, series = timeseries.load(path, timeseries_settings())
    np.testing.assert_allclose(series.target_scaling.scale[0], np.diff(values[:, 0]).std(), atol=1e-9)


def test_smoothing_uses_only_past_values():
    from dlopt.data.timeseries import trailing_mean

    values = np.arange(10, dtype=float)[:, None] ** 2
    smoothed = trailing_mean(values, 3)
    assert smoothed[0, 0] == 0 and smoothed[1, 0] == 0.5 and smoothed[5, 0] == (9 + 16 + 25) / 3
    changed = values.copy()
    changed[7:] = -100.0  # the future changes; the past's smoothing must not
    np.testing.assert_array_equal(trailing_mean(changed, 3)[:7], smoothed[:7])


def test_naive_forecasts_by_hand(tmp_path):
    from dlopt.data import timeseries

    path = write_series(tmp_path / "s.csv", steps=300, period=12)
    arrays, series = timeseries.load(path, timeseries_settings(target_columns=["wave"], horizon=15, input_width=24))
    x, y = arrays["test"]
    forecasts = timeseries.naive_forecasts(x, series, horizon=15, season=12)
    np.testing.assert_allclose(forecasts["persistence"][:, :, 0], np.repeat(x[:, -1:, 0], 15, axis=1))
    # a pure wave of period 12 repeats exactly: seasonal naive is perfect, persistence is not
    assert timeseries.errors(forecasts["seasonal_naive"], y, series)["rmse"] < 1e-5
    assert timeseries.errors(forecasts["persistence"], y, series)["rmse"] > 0.3


def test_timeseries_training_reports_model_against_naive_forecasts(tmp_path, cli):
    path = write_series(tmp_path / "s.csv", steps=360, noise=0.05)
    config = {
        "data": {"source": "csv", "path": str(path), "batch_size": 32, "timeseries": {"time_column": "t", "target_columns": ["wave"], "input_width": 12, "horizon": 2, "season": 12, "smoothing": 2}},
        "model": {"type": "lstm", "units": [8]},
        "train": {"epochs": 2, "progress": "none"},
    }
    run, summary = trained_run(cli, tmp_path, config)
    forecast = summary["forecast"]
    assert forecast["windows"] == summary["examples"]["test"] and forecast["season"] == 12
    for name in ("model", "persistence", "seasonal_naive", "seasonal_naive_trend"):
        assert forecast[name]["rmse"] >= forecast[name]["mae"] > 0
    code, out, _ = cli("eval", run, "--json")
    assert code == 0 and json.loads(out)["metrics"]["loss"] == pytest.approx(summary["test"]["loss"], rel=1e-4)
    assert json.loads(out)["forecast"]["model"]["rmse"] == pytest.approx(forecast["model"]["rmse"], rel=1e-4)  # eval reports it too
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs2")
    assert code == 0 and "seasonal naive (12)" in out and "seasonal naive + trend" in out and "step 2" in out, err


def write_trend_series(path: Path, steps: int = 400, period: int = 12, noise: float = 0.0) -> Path:
    """A rising line plus a wave: the test part lies above every value of the training part."""
    rng = np.random.default_rng(1)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t", "sales"])
        for i in range(steps):
            writer.writerow([i, 0.05 * i + np.sin(2 * np.pi * i / period) + noise * rng.normal()])
    return path


def test_seasonal_naive_plus_trend_by_hand(tmp_path):
    from dlopt.data import timeseries

    path = write_trend_series(tmp_path / "s.csv")
    arrays, series = timeseries.load(path, timeseries_settings(target_columns=["sales"], horizon=15, input_width=24))
    x, y = arrays["test"]
    forecasts = timeseries.naive_forecasts(x, series, horizon=15, season=12)
    # a line plus a wave of period 12: the value a season back plus the season's rise is exact
    assert timeseries.errors(forecasts["seasonal_naive_trend"], y, series)["rmse"] < 1e-4
    assert timeseries.errors(forecasts["seasonal_naive"], y, series)["rmse"] > 0.5  # misses the rise
    errors = timeseries.errors(forecasts["persistence"], y, series)
    assert len(errors["rmse_per_step"]) == 15 and errors["rmse_per_step"][0] < errors["rmse_per_step"][-1]


def test_trending_series_forecast_as_change_from_the_last_value(tmp_path, cli):
    """A linear model (an MLP without hidden layers): predicting levels from scaled windows cannot
    reach a test part above the training range; predicting the change can, and beats all three
    naive forecasts. Metrics, test results and --json are in the series' own units."""
    path = write_trend_series(tmp_path / "s.csv", steps=400, noise=0.05)
    timeseries = {"time_column": "t", "input_width": 24, "horizon": 3, "season": 12}
    config = {
        "seed": 1,
        "data": {"source": "csv", "path": str(path), "batch_size": 32, "timeseries": timeseries},
        "model": {"type": "mlp", "layers": []},
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "train": {"epochs": 30, "progress": "none"},
    }
    config_file = write_config(tmp_path / "c.yaml", config)
    code, out, err = cli("train", config_file, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    result = json.loads(out)
    forecast = result["forecast"]
    assert forecast["model_beats"] == ["persistence", "seasonal_naive", "seasonal_naive_trend"], forecast
    assert len(forecast["model_beats_per_step"]) == 3 and forecast["model_beats_per_step"][0] == ["persistence", "seasonal_naive", "seasonal_naive_trend"], forecast
    # the Keras metrics are computed in the series' units too: the test RMSE is the forecast's
    assert result["test"]["rmse"] == pytest.approx(forecast["model"]["rmse"], rel=1e-3)
    # an LSTM's squashing units cannot reach levels above the training range; changes they can
    rmse = {}
    for target, inputs in (("level", "absolute"), ("difference", "relative")):
        sets = ["--set", f"data.timeseries.target={target}", "--set", f"data.timeseries.window_inputs={inputs}", "--set", "model={type: lstm, units: [16]}", "--set", "train.epochs=15"]
        code, out, err = cli("train", config_file, "--runs-dir", tmp_path / "runs", "--json", *sets)
        assert code == 0, err
        rmse[target] = json.loads(out)["forecast"]["model"]["rmse"]
    assert rmse["level"] > 3 * rmse["difference"], rmse


def test_timeseries_transformer_regression(tmp_path, cli):
    path = write_series(tmp_path / "s.csv", steps=240)
    config = {
        "data": {"source": "csv", "path": str(path), "timeseries": {"time_column": "t", "input_width": 12, "horizon": 1, "season": 12}},
        "model": {"type": "transformer", "width": 8, "heads": 2, "ff_width": 16, "depth": 1},
        "train": {"epochs": 1, "progress": "none"},
    }
    run, summary = trained_run(cli, tmp_path, config)
    assert summary["forecast"]["model"]["rmse"] > 0 and set(summary["test"]) == {"loss", "mae", "rmse"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": "idx", "path": "x", "timeseries": {}}, "data.timeseries: needs data.source 'csv', got 'idx'"),
        ({"source": "csv", "path": "x", "timeseries": {"input_width": 6, "season": 12}}, "data.timeseries.season: expected at most input_width (6)"),
        ({"source": "csv", "path": "x", "timeseries": {"train_fraction": 0.9, "val_fraction": 0.2}}, "must leave a test part"),
    ],
)
def test_timeseries_config_errors(tmp_path, cli, data, message):
    code, _, err = cli("validate", write_config(tmp_path / "c.yaml", {"data": data, "model": {"type": "lstm"}}))
    assert code == 2 and message in err, err


def test_augmenting_text_is_refused(tmp_path, cli, reviews_csv):
    config = text_config("csv", reviews_csv, {"type": "lstm", "units": [4]}, augment=[{"type": "gaussian_noise"}], text={"column": "review", "label_column": "sentiment"})
    code, _, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code == 2 and "data.augment[0].type: gaussian_noise needs numeric inputs; these inputs are text" in err


def test_shipped_sequence_configs_validate():
    for name in ("lstm_imdb", "transformer_imdb", "lstm_timeseries", "text_folder_reviews", "fasttext_text", "tfidf_text"):
        saved = yaml.safe_load(subprocess.run([sys.executable, "-m", "dlopt.cli", "validate", str(ROOT / "configs" / f"{name}.yaml")], capture_output=True, text=True, check=True).stdout)
        assert saved["model"]["type"] in ("lstm", "transformer", "fasttext", "tfidf")


# ------------------------------------------------------------------------------- model cost


def test_flops_of_recurrent_and_attention_layers_match_a_hand_count():
    import keras

    from dlopt import cost

    # LSTM, 5 steps of 3 features, 4 units: per step x.W (3x16) and h.U (4x16) multiply-adds
    # = 2 * (48 + 64) = 224, plus 16 bias additions = 240; 5 steps = 1200
    x = keras.Input((5, 3))
    lstm = keras.layers.LSTM(4, name="lstm")
    assert cost.count_flops(keras.Model(x, lstm(x)), ["lstm"]) == (1200, {"lstm": 1200})
    # the same, both directions: twice
    bidirectional = keras.layers.Bidirectional(keras.layers.LSTM(4), name="both")
    assert cost.count_flops(keras.Model(x, bidirectional(x)), ["both"])[1] == {"both": 2400}
    # GRU (3 gates, two biases): per step 2 * (3*12 + 4*12) + 2*12 = 192; 5 steps = 960
    gru = keras.layers.GRU(4, name="gru")
    assert cost.count_flops(keras.Model(x, gru(x)), ["gru"])[1] == {"gru": 960}

    # self-attention over 6 positions of width 8, 2 heads of 4: the query, key, value and output
    # projections are 6 * (2 * 64 + 8) = 816 each; scores Q.K and the weighted sum of values are
    # 2 * 2 heads * 6 * 6 * 4 = 576 each; in all 4 * 816 + 2 * 576 = 4416
    x = keras.Input((6, 8))
    attention = keras.layers.MultiHeadAttention(2, 4, name="attention")
    assert cost.count_flops(keras.Model(x, attention(x, x)), ["attention"]) == (4416, {"attention": 4416})


def test_text_model_cost_counts_every_time_step(tmp_path, cli, reviews_folder):
    # an LSTM of 8 units over 6 tokens embedded in 8 dimensions: 6 * (2 * (64 + 64) + 32) = 1728 at least
    run, summary = trained_run(cli, tmp_path, {**text_config("text_folder", reviews_folder, {"type": "lstm", "units": [8], "embedding_dim": 8}), "train": {"epochs": 1, "progress": "none"}})
    assert summary["flops_per_example"] >= 1728
    code, out, err = cli("summary", write_config(tmp_path / "s.yaml", text_config("text_folder", reviews_folder, {"type": "transformer", "width": 8, "heads": 2, "ff_width": 16, "depth": 1})), "--json")
    assert code == 0, err
    layers = {row["name"]: row["flops"] for row in json.loads(out)["layers"]}
    # attention over 6 tokens of width 8, 2 heads of 4 each: 4416, as counted by hand above
    assert layers["block0_attention"] == 4416
    assert "flops stats" not in err
