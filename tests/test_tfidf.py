"""The `tfidf` text family: TF-IDF weighting exactly as scikit-learn's TfidfVectorizer weights the
same vocabulary, a linear model that learns, saved with its weighting (raw text in), and the
`fasttext` wide part made of it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import write_config
from test_sequences import deep_part, sentences, softmax, text_config, trained_run

DLOPT = [sys.executable, "-m", "dlopt.cli"]


def texts_csv(path: Path, n: int = 120) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(sentences(n, seed=4))
    return path


def test_tfidf_weights_as_scikit_learn_does(tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer

    from dlopt import data as data_module
    from dlopt import models
    from dlopt.config import load_config
    from dlopt.models.finetune import leaf_layers

    path = texts_csv(tmp_path / "t.csv")
    config = text_config("csv", path, {"type": "tfidf"}, splits={"train": "train[:80%]", "test": "train[80%:]"}, text={"max_tokens": 200, "sequence_length": 12, "ngrams": 2})
    config = load_config(write_config(tmp_path / "c.yaml", config))
    data = data_module.build(config)
    model = models.build(config, data)
    layers = {layer.name: layer for layer in leaf_layers(model)}
    train_texts = [t.decode() for x, _ in data.pipelines["train"].as_numpy_iterator() for t in x]
    vocabulary = layers["vectorize"].get_vocabulary()  # id 0 padding, 1 out of vocabulary, then the terms
    sklearn = TfidfVectorizer(vocabulary={term: i for i, term in enumerate(vocabulary[2:])}, ngram_range=(1, 2), sublinear_tf=True, lowercase=False, token_pattern=r"\S+")
    sklearn.fit(train_texts)
    probe = ["really good fun really good", "awful acting and more", "unseen words only", "great movie great movie indeed"]
    ours = layers["tfidf_linear"].features(layers["vectorize"](np.array(probe, dtype=object)))
    import tensorflow as tf

    ours = np.asarray(tf.sparse.to_dense(ours))[:, 2:]
    theirs = sklearn.transform(probe).toarray()
    assert ours.shape == theirs.shape and np.abs(theirs).sum() > 0
    np.testing.assert_allclose(ours, theirs, atol=1e-5)  # 1 + log tf, smooth idf, unit length; unknown words nothing


def test_tfidf_learns_and_its_saved_model_takes_raw_text(tmp_path, cli):
    path = texts_csv(tmp_path / "t.csv")
    config = text_config("csv", path, {"type": "tfidf", "l2": 1e-5}, splits={"train": "train[:75%]", "test": "train[75%:]"}, text={"max_tokens": 200, "sequence_length": 12, "ngrams": 2})
    config["train"]["epochs"] = 12
    run, summary = trained_run(cli, tmp_path, config)
    assert summary["test"]["accuracy"] >= 0.9
    import keras

    from dlopt.models.finetune import leaf_layers

    saved = keras.models.load_model(run / "checkpoints" / "best.keras", safe_mode=True)
    layer = next(item for item in leaf_layers(saved) if item.name == "tfidf_linear")
    # logistic regression: one weight per token id and class, a bias per class (and the saved IDF)
    assert layer.kernel.shape == (layer.vocabulary_size, 2) and summary["trainable_parameters"] == layer.vocabulary_size * 2 + 2
    # the IDF travels in the model: a fresh process predicts from raw text with it
    result = subprocess.run([*DLOPT, "predict", str(run), "loved it indeed", "hated it", "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert [a["name"] for a in answers] == ["pos", "neg"]
    exported = subprocess.run([*DLOPT, "export", str(run), "--format", "saved_model"], capture_output=True, text=True, timeout=180)
    assert exported.returncode == 0, exported.stderr


def test_fasttext_with_a_tfidf_wide_part(tmp_path, cli):
    path = texts_csv(tmp_path / "t.csv")
    model = {"type": "fasttext", "embedding_dim": 8, "token_dropout": 0.1, "wide": "tfidf"}
    config = text_config("csv", path, model, splits={"train": "train[:75%]", "test": "train[75%:]"}, text={"max_tokens": 200, "sequence_length": 12, "ngrams": 2})
    config["train"]["epochs"] = 12
    run, summary = trained_run(cli, tmp_path, config)
    assert summary["test"]["accuracy"] >= 0.9
    saved, layer, ids, deep = deep_part(run, "loved it and more")
    logits = deep + np.asarray(layer["wide_tfidf"](ids))[0]  # the deep part's logits plus the TF-IDF model's
    assert saved.predict(np.array(["loved it and more"], dtype=object), verbose=0)[0] == pytest.approx(softmax(logits), abs=1e-5)


def test_tfidf_on_numbers_is_a_config_error(tmp_path, cli, idx_dir):
    from conftest import tiny_cnn_config

    config = tiny_cnn_config(idx_dir, model={"type": "tfidf"})
    code, _, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code == 2 and "model.type: tfidf expects text" in err and err.count("\n") == 1


def test_the_shipped_text_folder_config_learns_along_its_c_path(tmp_path, cli):
    from test_sequences import write_reviews_folder

    from dlopt.config import load_config

    folder = write_reviews_folder(tmp_path / "reviews", train=160, test=40)
    config = Path(__file__).resolve().parents[1] / "configs" / "text_folder_reviews.yaml"
    code, out, err = cli("train", config, "--set", f"data.path={folder}", "--set", "data.batch_size=16", "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    printed = json.loads(out)
    assert printed["test"]["accuracy"] >= 0.9
    summary = json.loads((Path(printed["run_dir"]) / "summary.json").read_text())
    shipped = load_config(config)  # an easy small set: the path ends once two values of C in a row do no better
    assert printed["epochs_run"] % shipped.model.epochs_per_c == 0 and printed["epochs_run"] < shipped.train.epochs
    best = summary["best"]["epoch"]  # judged at the end of each C's stage only
    assert best % shipped.model.epochs_per_c == 0 and summary["best_c"] == shipped.model.c_at_epoch(best - 1)


def test_a_regularisation_path_walks_c_and_keeps_the_best_stage(tmp_path, cli):
    """model.c_path: a penalty so strong the weights cannot fit the training texts, then a weak one
    under which they do; the checkpoint keeps an epoch of the stage validation liked, and its C."""
    path = texts_csv(tmp_path / "t.csv")
    model = {"type": "tfidf", "c_path": [0.05, 100.0], "epochs_per_c": 6}
    config = text_config("csv", path, model, splits={"train": "train[:75%]", "test": "train[75%:]"}, text={"max_tokens": 200, "sequence_length": 12, "ngrams": 2})
    config["train"]["epochs"] = 12
    config["optimizer"] = {"type": "sgd", "learning_rate": 0.5}  # no step-size memory: each stage acts at once
    run, summary = trained_run(cli, tmp_path, config)
    with open(run / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    strong, weak = rows[:6], rows[6:]
    # held near zero, the weights cannot fit the training texts; let go, they do
    assert min(float(r["loss"]) for r in strong) > 0.6 > 0.45 > float(weak[-1]["loss"]) and float(weak[-1]["accuracy"]) > 0.95
    assert summary["best"]["epoch"] == 12 and summary["best_c"] == 100.0 and summary["test"]["accuracy"] >= 0.8  # a stage's end
    result = subprocess.run([*DLOPT, "predict", str(run), "loved it indeed", "hated it", "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr  # the path's regularizer loads in safe mode, in a fresh process
    assert [a["name"] for a in json.loads(result.stdout)] == ["pos", "neg"]

    # the path ends early once two values of C in a row do no better than the best before them
    stops = {**config, "model": {"type": "tfidf", "c_path": [100.0, 0.01, 0.01, 0.01], "epochs_per_c": 4, "c_path_patience": 2}, "checkpoint": {"monitor": "val_loss"}}
    stops["train"] = {**config["train"], "epochs": 16}
    code, out, err = cli("train", write_config(tmp_path / "stops.yaml", stops), "--runs-dir", tmp_path / "stops", "--json")
    assert code == 0, err
    stopped = json.loads((Path(json.loads(out)["run_dir"]) / "summary.json").read_text())
    assert stopped["epochs_run"] == 12 and stopped["best"]["epoch"] == 4 and stopped["best_c"] == 100.0
    assert "model.c_path: stopped after C 0.01" in err

    config["train"]["epochs"] = 11  # too few epochs for two stages of six
    code, _, err = cli("train", write_config(tmp_path / "short.yaml", config), "--runs-dir", tmp_path / "short")
    assert code == 2 and "train.epochs" in err and "expected at least 12 to walk model.c_path" in err and err.count("\n") == 1
