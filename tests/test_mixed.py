"""Tables of mixed columns (numbers, categories, text, sets of values, dates) in one model."""

from __future__ import annotations

import csv
import datetime
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_config

from dlopt import data as data_module
from dlopt.config.schema import Config

KINDS = ("a", "b", "c")
WORDS = {"a": ["apple", "cherry"], "b": ["cloud", "rain"], "c": ["grass", "leaf"]}
NEUTRAL_WORDS = ["the", "of", "some", "with", "very", "and"]


def mixed_csv(path: Path, n: int = 300, seed: int = 0) -> Path:
    """A table whose label only text and tags together give: the description names the kind on
    even rows, the tags on odd rows; numbers, a category and a date are noise beside them."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        kind = KINDS[i % 3]
        said_by_text = i % 2 == 0
        words = list(rng.choice(WORDS[kind], 2)) if said_by_text else []
        tags = {str(t) for t in rng.choice(["t1", "t2", "t3"], 2)} | (set() if said_by_text else {f"x{kind}"})
        day = datetime.date(2021, 1, 1) + datetime.timedelta(days=int(rng.integers(0, 700)))
        rows.append(
            {
                "size": f"{rng.normal(0, 1):.3f}",
                "colour": str(rng.choice(["red", "green"])),
                "description": " ".join(words + list(rng.choice(NEUTRAL_WORDS, 4))),
                "tags": ", ".join(sorted(tags)),
                "seen": day.isoformat(),
                "kind": kind,
            }
        )
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def mixed_config(path: Path, **model) -> dict:
    return {
        "name": "mixed",
        "seed": 2,
        "data": {
            "source": "csv",
            "path": str(path),
            "splits": {"train": "all[:80%]", "test": "all[80%:]"},
            "batch_size": 16,
            "text": {"max_tokens": 60, "sequence_length": 8},
            "table": {"label_column": "kind", "set_columns": ["tags"], "set_separator": ","},
        },
        "model": {"type": "mixed", "layers": [16], "text": {"type": "fasttext", "embedding_dim": 8}, **model},
        "optimizer": {"type": "adam", "learning_rate": 0.02},
        "train": {"epochs": 12, "progress": "lines"},
    }


def test_text_and_tags_together_give_the_label_and_the_saved_model_takes_raw_rows(tmp_path, cli):
    path = mixed_csv(tmp_path / "things.csv")
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", mixed_config(path)), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    for line in ("  size: number (every value is a number)", "  colour: category (2 different values)", "  tags: set (data.table.set_columns)", "  seen: date (every value is an ISO date)"):
        assert line in err
    assert "  description: text (" in err and "not used" not in err
    summary = json.loads(out)
    run = Path(summary["run_dir"])
    recorded = json.loads((run / "summary.json").read_text())
    assert recorded["parameters"] > 0 and recorded["flops_per_example"] > 2 * 16 * 3  # at least the head's multiply-adds
    columns = {c["column"]: c for c in recorded["table_columns"]}
    assert {name: c["kind"] for name, c in columns.items()} == {"size": "numeric", "colour": "categorical", "description": "text", "tags": "set", "seen": "date"}
    assert columns["tags"]["values"] == 6 and columns["description"]["words"] == 12  # t1-t3, xa-xc; 6 kind words and 6 neutral ones
    # each of text and tags names the kind on half the rows: only a model reading both gets near all
    assert summary["test"]["accuracy"] >= 0.9

    rows = tmp_path / "rows.csv"
    rows.write_text("size,colour,description,tags,seen\n0.1,red,the rain of some,t1,2022-02-02\n0.3,green,the of,\"t2, xc\",\n")
    code, out, err = cli("predict", run, rows, '{"description": "cherry apple", "tags": "t3"}', "--json")
    assert code == 0, err
    predicted = json.loads(out)
    assert [p["name"] for p in predicted] == ["b", "c", "a"]  # missing columns are missing values, not errors
    assert not any("warnings" in p for p in predicted)
    code, out, err = cli("predict", run, '{"description": "rain", "tags": "t1", "seen": "2031-01-01", "colour": "purple"}', "--json")
    assert code == 0, err
    dates = json.loads((run / "inputs.json").read_text())["dates"]["seen"]
    assert "2021-01-01" <= dates["first"] < dates["last"] <= "2022-12-02"  # the span the table's dates were drawn from
    assert json.loads(out)[0]["warnings"] == [
        f"row 1: column 'seen' is 2031-01-01, outside its training dates {dates['first']} to {dates['last']}",
        "row 1: column 'colour' is 'purple', not among the 2 values the model learnt from training (read as 'other')",
    ]

    assert json.loads((run / "inputs.json").read_text())["texts"]["description"]["unknown_word_share"] == 0.0  # 12 words, all in the vocabulary
    code, out, err = cli("predict", run, '{"description": "zebra quantum xylophone rain", "tags": "t1"}', "--json")
    assert code == 0, err
    assert json.loads(out)[0]["warnings"] == ["row 1: column 'description': 75% of its words are unknown to the model (0% in the training texts)"]

    code, out, err = cli("export", run, "--format", "saved_model")
    assert code == 0, err
    import tensorflow as tf

    served = tf.saved_model.load(out.strip())
    row = {"size": tf.constant([[0.0]]), "colour": tf.constant([["red"]]), "description": tf.constant([["leaf grass"]]), "tags": tf.constant([["t1"]]), "seen": tf.constant([["2022-05-01"]])}
    assert int(np.argmax(served.serve(row).numpy())) == 2


@pytest.mark.parametrize(
    "model, text",
    [
        ({"combiner": "transformer", "token_width": 8, "heads": 2, "depth": 1}, {}),
        ({"text": {"type": "textcnn", "embedding_dim": 8, "filters": 8, "kernel_sizes": [2]}}, {}),
        ({"text": {"type": "tfidf", "dense": [8]}}, {"sequence_length": None}),  # a bag of words: every token
    ],
)
def test_other_combiner_and_text_encoders_learn_the_same_table(tmp_path, cli, model, text):
    path = mixed_csv(tmp_path / "things.csv")
    config = mixed_config(path, **model)
    config["data"]["text"].update(text)
    config["train"]["epochs"] = 20
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    assert json.loads(out)["test"]["accuracy"] >= 0.85


def test_date_parts_are_the_calendars():
    import tensorflow as tf

    from dlopt.models.tabular import DateParts

    dates = ["1970-01-01", "2000-02-29 13:45", "2024-12-31T23:59:59Z", "", "not a date", "2024-13-01"]
    parts = DateParts(mean=0.0, variance=1.0)(tf.constant([[d] for d in dates])).numpy()
    assert parts.shape == (6, DateParts.PARTS)
    for row, text in zip(parts[:3], dates[:3]):
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        assert row[0] == pytest.approx((when.date() - datetime.date(1970, 1, 1)).days)  # day number, mean 0 variance 1
        assert np.arctan2(row[1], row[2]) % (2 * np.pi) == pytest.approx(2 * np.pi * (when.month - 1) / 12, abs=1e-5)
        assert np.arctan2(row[3], row[4]) % (2 * np.pi) == pytest.approx(2 * np.pi * when.weekday() / 7, abs=1e-5)
        assert row[5] == pytest.approx((when.day - 1) / 30)
        assert np.arctan2(row[6], row[7]) % (2 * np.pi) == pytest.approx(2 * np.pi * when.hour / 24, abs=1e-5)
        assert row[8] == 0.0
    assert (parts[3:, :8] == 0).all() and (parts[3:, 8] == 1).all()  # missing, not a date, month 13: flagged


def test_set_values_split_strip_and_share_one_slot_for_the_unseen():
    import tensorflow as tf

    from dlopt.models.tabular import SetValues

    layer = SetValues(["red", "blue"], separator=",")
    got = layer(tf.constant([["red, blue"], [" blue ,green"], [""]])).numpy()
    assert got.tolist() == [[0, 1, 1], [1, 0, 1], [0, 0, 0]]  # slot 0: values outside the vocabulary


def test_column_vocabularies_come_from_the_training_split_only(tmp_path):
    path = tmp_path / "t.csv"
    lines = ["note,tags,when,y"] + [f"alpha beta number {i},t1 t2,2020-01-0{1 + i % 9},{i % 2}" for i in range(20)] + ["gamma delta,t9,2030-06-01,0"] * 5
    path.write_text("\n".join(lines) + "\n")
    config = mixed_config(path)
    config["data"]["table"] = {"label_column": "y", "text_columns": ["note"], "set_columns": ["tags"]}
    config["data"].update(split_shuffle=False, splits={"train": "all[:20]", "val": "all[20:]", "test": None})
    data = data_module.build(Config.model_validate(config))
    note, tags, when = data.table.columns
    assert "gamma" not in note.vocabulary and "alpha" in note.vocabulary
    assert tags.vocabulary == ["t1", "t2"]
    days = [(datetime.date(2020, 1, 1 + i % 9) - datetime.date(1970, 1, 1)).days for i in range(20)]
    assert (when.kind, when.mean) == ("date", pytest.approx(np.mean(days)))


def test_mixed_config_errors_name_the_file_line_and_key(tmp_path, cli):
    path = mixed_csv(tmp_path / "things.csv")
    config = mixed_config(path)
    config["model"] = {"type": "mlp", "layers": [8]}
    config["data"]["table"]["text_columns"] = ["description"]
    code, _, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code == 2 and err.strip().splitlines()[-1] == "error: data.table.text_columns: 'description' is text, which only model.type: mixed reads (an encoder per column); use it, or list the column in categorical_columns"
    config = mixed_config(path)
    config["data"]["table"]["categorical_columns"] = ["tags"]
    code, _, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code == 2 and err.startswith(f"error: {tmp_path / 'c.yaml'}:") and "data.table.set_columns: 'tags' is in categorical_columns too; a column is read one way" in err
    config = mixed_config(path, text={"type": "fasttext", "init_from": "elsewhere"})
    code, _, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code == 2 and "model.text.init_from: applies to a whole model, not to a column's text encoder; set model.init_from" in err
    lines = path.read_text().splitlines()
    lines[4] = lines[4].rsplit(",", 2)[0] + ",2021-02-30," + lines[4].rsplit(",", 1)[1]  # the right shape, not a day
    path.write_text("\n".join(lines) + "\n")
    config = mixed_config(path)
    config["data"]["table"]["date_columns"] = ["seen"]
    code, _, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code == 2 and f"error: {path}:5: column 'seen': '2021-02-30' is not an ISO date such as 2024-03-01" in err
    assert not (tmp_path / "runs").exists()


def image_table(folder: Path, n: int = 90) -> Path:
    """A table of a photo path (its bright channel is the kind), a number and the kind."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (folder / "photos").mkdir(parents=True)
    lines = ["photo,weight,kind"]
    for i in range(n):
        pixels = rng.integers(0, 60, (16, 18, 3)).astype(np.uint8)
        pixels[..., i % 3] += 150
        Image.fromarray(pixels).save(folder / "photos" / f"{i:03d}.png")
        lines.append(f"photos/{i:03d}.png,{rng.normal():.2f},{KINDS[i % 3]}")
    (folder / "things.csv").write_text("\n".join(lines) + "\n")
    return folder / "things.csv"


def test_image_path_columns_are_read_inside_the_model(tmp_path, cli):
    path = image_table(tmp_path / "table")
    config = mixed_config(path, image={"type": "cnn", "blocks": [{"filters": 4}], "global_pool": "avg", "dense": [8]})
    config["data"]["table"] = {"label_column": "kind"}
    config["data"]["image"] = {"size": [8, 8]}
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    assert "  photo: image (every value is an image file name)" in err
    assert json.loads(out)["test"]["accuracy"] >= 0.9
    run = Path(json.loads(out)["run_dir"])
    rows = tmp_path / "table" / "rows.csv"  # paths from the rows file's folder, as training read them
    rows.write_text("photo,weight\nphotos/000.png,0.5\nphotos/001.png,\n")
    code, out, err = cli("predict", run, rows, "--json")
    assert code == 0, err
    assert [p["name"] for p in json.loads(out)] == ["a", "b"]
    code, _, err = cli("predict", run, '{"photo": "photos/nowhere.png"}')
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: row 1: column 'photo': 'photos/nowhere.png' is no image file")

    lines = path.read_text().splitlines()
    lines[3] = "photos/gone.png," + lines[3].split(",", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    code, _, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs2")
    assert code == 2 and f"error: {path}:4: column 'photo': 'photos/gone.png' is no image file" in err and not (tmp_path / "runs2").exists()


def test_image_columns_are_decoded_once_for_training_and_never_saved(tmp_path):
    """`data.cache: true`: every image path is decoded before training and served from memory, as
    an image folder's images are; the saved model holds no pixels and reads the files again."""
    import dataclasses

    import keras

    from dlopt import models

    path = image_table(tmp_path / "table")
    config = mixed_config(path, image={"type": "cnn", "blocks": [{"filters": 4}], "global_pool": "avg", "dense": [8]})
    config["data"]["table"] = {"label_column": "kind"}
    config["data"]["image"] = {"size": [8, 8]}
    config = Config.model_validate(config)
    data = data_module.build(config)
    paths, pixels = data.images["photo"]
    assert len(paths) == 90 and pixels.shape == (90, 8, 8, 3) and pixels.dtype == np.uint8
    model = models.build(config, data)
    x, _ = next(iter(data.pipelines["test"]))
    expected = model(x, training=False).numpy()
    model.save(tmp_path / "saved.keras")
    (tmp_path / "table" / "photos").rename(tmp_path / "table" / "moved")  # every file gone: memory serves them
    np.testing.assert_allclose(model(x, training=False).numpy(), expected, rtol=1e-6)
    uncached = models.build(config, dataclasses.replace(data, images=None))
    uncached.set_weights(model.get_weights())
    uncached.save(tmp_path / "uncached.keras")
    assert abs((tmp_path / "saved.keras").stat().st_size - (tmp_path / "uncached.keras").stat().st_size) < 1000  # no pixels saved
    with pytest.raises(Exception, match="moved|No such file|not found"):
        uncached(x, training=False)
    (tmp_path / "table" / "moved").rename(tmp_path / "table" / "photos")
    reloaded = keras.models.load_model(tmp_path / "saved.keras")
    np.testing.assert_allclose(reloaded(x, training=False).numpy(), expected, rtol=1e-5)


def test_a_parquet_table_reads_as_its_csv_does(tmp_path, cli):
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pandas.read_csv(mixed_csv(tmp_path / "things.csv"), keep_default_na=False)
    frame["size"] = frame["size"].astype(float)
    frame["seen"] = pandas.to_datetime(frame["seen"])  # a timestamp column: read as ISO dates
    frame["tags"] = frame["tags"].str.split(", ")  # a list column: a set's values
    (tmp_path / "folder").mkdir()
    frame.iloc[:240].to_parquet(tmp_path / "folder" / "train.parquet")
    frame.iloc[240:].to_parquet(tmp_path / "folder" / "test.parquet")
    config = mixed_config(tmp_path / "folder")
    config["data"]["splits"] = {"train": "train", "test": "test"}
    config["data"]["table"]["set_separator"] = None
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    assert "  seen: date (every value is an ISO date)" in err and "  tags: set (data.table.set_columns)" in err
    assert json.loads(out)["test"]["accuracy"] >= 0.85
    code, out, err = cli("predict", json.loads(out)["run_dir"], tmp_path / "folder" / "test.parquet", "--json")
    assert code == 0, err
    predicted = json.loads(out)
    assert len(predicted) == 60 and predicted[0]["input"] == f"{tmp_path / 'folder' / 'test.parquet'}:1"


def test_an_empty_text_is_no_words_not_a_nan(tmp_path, cli):
    """A missing or empty text cell has no tokens: its encoding is zeros, not the NaN of a mean over
    nothing, which would make the whole batch's loss NaN."""
    path = mixed_csv(tmp_path / "things.csv", n=120)
    lines = path.read_text().splitlines()
    header = next(csv.reader([lines[0]]))
    rows = list(csv.reader(lines[1:]))
    for row in rows[::4]:
        row[header.index("description")] = ""
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    config = mixed_config(path)
    config["data"]["table"]["text_columns"] = ["description"]
    config["train"]["epochs"] = 3
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    assert "  description: text (data.table.text_columns)" in err
    summary = json.loads(out)
    assert np.isfinite(summary["final"]["loss"])
    code, out, err = cli("predict", summary["run_dir"], '{"description": "", "tags": "t1"}', '{"tags": "t2"}', "--json")
    assert code == 0, err
    assert all(0 < p["probability"] <= 1 for p in json.loads(out))
    # called directly (eagerly, as `dlopt serve` and the test report call it), not only in a graph
    import tensorflow as tf

    from dlopt.saved_models import load_run_model

    _, model, _ = load_run_model(Path(summary["run_dir"]), "best")
    row = {"size": tf.constant([[0.0]]), "colour": tf.constant([["red"]]), "description": tf.constant([[""]]), "tags": tf.constant([["t1"]]), "seen": tf.constant([[""]])}
    assert np.all(np.isfinite(model(row, training=False).numpy()))
