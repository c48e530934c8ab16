"""The user's own data: image folders, tabular CSV, bundled scikit-learn data and fair splits."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_config
from dlopt import data as data_module
from dlopt.config.schema import Config
from dlopt.data.splits import shuffled_order
from dlopt.errors import RunFailed

CLASSES = ("cat", "dog", "eel")


def colour_image(rng, class_index: int, size: tuple[int, int]) -> np.ndarray:
    """An RGB image whose class is its bright channel: learnable by a tiny model."""
    image = rng.integers(0, 60, size + (3,)).astype(np.uint8)
    image[..., class_index] += 150
    return image


def image_folder(root: Path, per_class=(12, 12, 12), splits=("train", "test"), seed=0) -> Path:
    """`root/<split>/<class>/` of real PNG, JPEG, BMP and GIF files in two sizes."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for c, name in enumerate(CLASSES):
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class[c]):
                size = (20, 24) if i % 2 else (32, 30)
                Image.fromarray(colour_image(rng, c, size)).save(folder / f"{i:03d}.{('png', 'jpg', 'bmp', 'gif')[i % 4]}")
    return root


def image_config(path: Path, **data) -> dict:
    return {
        "name": "pics",
        "seed": 3,
        "data": {"source": "image_folder", "path": str(path), "image": {"size": [12, 12]}, "batch_size": 16, "preprocess": {"rescale": 1 / 255}, **data},
        "model": {"type": "cnn", "blocks": [{"filters": 4}], "dense": [8]},
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "train": {"epochs": 3, "progress": "lines"},
    }


def penguin_like_csv(path: Path, n: int = 150, seed: int = 0) -> Path:
    """A class-ordered table: a numeric column with gaps, a categorical column, a label."""
    rng = np.random.default_rng(seed)
    rows = []
    for c, species in enumerate(("adelie", "gentoo", "chinstrap")):
        for _ in range(n // 3):
            length = 40 + 5 * c + rng.normal(0, 0.5)
            rows.append({"bill": "NA" if rng.random() < 0.1 else f"{length:.2f}", "island": ("north", "south", "east")[c] if rng.random() < 0.9 else "west", "year": 2007 + int(rng.integers(0, 3)), "species": species})
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["bill", "island", "year", "species"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def table_config(path: Path, **data) -> dict:
    return {
        "name": "table",
        "seed": 5,
        "data": {"source": "csv", "path": str(path), "splits": {"train": "all[:80%]", "test": "all[80%:]"}, "batch_size": 16, "table": {"label_column": "species"}, **data},
        "model": {"type": "mlp", "layers": [16]},
        "optimizer": {"type": "adam", "learning_rate": 0.02},
        "train": {"epochs": 4, "progress": "lines"},
    }


def build(config: dict, **kwargs):
    return data_module.build(Config.model_validate(config), **kwargs)


# ------------------------------------------------------------------------------ fair splits


@pytest.mark.parametrize("stratify", [True, False])
def test_shuffled_order_is_a_seeded_permutation_spreading_each_class(stratify):
    labels = np.repeat([0, 1, 2], [60, 30, 10])  # class-ordered, unbalanced
    order = shuffled_order(labels, seed=7, stratify=stratify)
    assert sorted(order) == list(range(100))
    np.testing.assert_array_equal(order, shuffled_order(labels, seed=7, stratify=stratify))
    assert not np.array_equal(order, shuffled_order(labels, seed=8, stratify=stratify))
    if stratify:  # every prefix holds each class in proportion, to within one example
        for cut in (10, 25, 50, 80):
            counts = np.bincount(labels[order[:cut]], minlength=3)
            assert np.all(np.abs(counts - cut * np.array([0.6, 0.3, 0.1])) <= 1), (cut, counts)


def test_a_class_of_one_example_stays_in_training_whatever_the_seed(tmp_path, cli):
    labels = np.repeat([0, 1, 2], [60, 39, 1])  # class 2 has one example
    for seed in range(200):  # placed anywhere, it would fall in a 10% carve for 18 of these
        order = shuffled_order(labels, seed=seed, stratify=True)
        assert labels[order[:90]].tolist().count(2) == 1, seed
    # and end to end: a CSV whose rare class has one row trains, and that row is in training
    rows = ["text,label"] + [f"word{i % 7} common,a" for i in range(40)] + [f"word{i % 5} other,b" for i in range(20)] + ["rare words,c"]
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "train.csv").write_text("\n".join(rows) + "\n")
    (folder / "test.csv").write_text("text,label\nword1 common,a\nword2 other,b\nrare words,c\n")
    config = {
        "name": "rare", "seed": 3,
        "data": {"source": "csv", "path": str(folder), "splits": {"train": "train", "test": "test"}, "val_fraction": 0.2, "batch_size": 16, "text": {"max_tokens": 50, "sequence_length": 4}},
        "model": {"type": "fasttext", "embedding_dim": 4},
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "train": {"epochs": 1, "progress": "lines"},
    }
    path = write_config(tmp_path / "c.yaml", config)
    for seed in (2, 8):  # seeds whose 20% carve took the row before classes of one were placed early
        code, _, err = cli("train", path, "--runs-dir", tmp_path / "runs", "--seed", str(seed))
        assert code == 0, err
        assert "c 1/0/1" in err, err


def text_folder(root: Path, per_class=(30, 20, 10)) -> Path:
    for split, scale in (("train", 1), ("test", 1)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class[c] * scale):
                (folder / f"{i:03d}.txt").write_text(f"{name} text number {i}")
    return root


def assert_in_proportion(counts: dict[str, int], expected_share: dict[str, float]):
    total = sum(counts.values())
    for name, share in expected_share.items():
        assert abs(counts[name] - total * share) <= 1, (counts, expected_share)


@pytest.mark.parametrize("source", ["text_folder", "image_folder", "csv"])
def test_class_ordered_sources_get_stratified_validation_and_slices(tmp_path, source):
    """Listed in class order, the carved validation split and `[:80%]` slices still hold every class in proportion."""
    share = {"cat": 0.5, "dog": 1 / 3, "eel": 1 / 6}
    if source == "text_folder":
        config = {"name": "t", "data": {"source": "text_folder", "path": str(text_folder(tmp_path / "txt")), "val_fraction": 0.2}, "model": {"type": "mlp", "layers": [4]}}
        roles_with_share = ("train", "val")
    elif source == "image_folder":
        config = image_config(image_folder(tmp_path / "img", per_class=(30, 20, 10), splits=("train",)), val_fraction=0.2, splits={"train": "train[:80%]", "test": "train[80%:]"})
        roles_with_share = ("train", "val", "test")
    else:
        rows = [{"x": str(i), "species": name} for name, n in zip(CLASSES, (30, 20, 10)) for i in range(n)]
        with open(tmp_path / "t.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["x", "species"])
            writer.writeheader()
            writer.writerows(rows)
        config = table_config(tmp_path / "t.csv", val_fraction=0.2)
        roles_with_share = ("train", "val", "test")
    data = build(config)
    assert data.class_names == list(CLASSES)
    for role in roles_with_share:
        assert_in_proportion(data.class_counts[role], share)
    assert sum(data.class_counts["train"].values()) == data.counts["train"]
    assert data.overview()[1].startswith("per class (train/val/test): cat")
    assert data.missing_classes() == []
    first_val = np.concatenate([y for _, y in data.pipelines["val"].as_numpy_iterator()])
    assert sorted(set(first_val.tolist())) == [0, 1, 2]


def test_keeping_file_order_is_a_choice_and_a_missing_class_is_warned(tmp_path):
    config = {"name": "t", "data": {"source": "text_folder", "path": str(text_folder(tmp_path / "txt")), "val_fraction": 0.1, "split_shuffle": False}, "model": {"type": "mlp", "layers": [4]}}
    data = build(config)
    # file order: the carved end of the class-ordered training split holds only the last class
    assert data.class_counts["val"] == {"cat": 0, "dog": 0, "eel": 6}
    assert data.missing_classes() == ["warning: class 'cat' has no examples in the val split", "warning: class 'dog' has no examples in the val split"]


# ----------------------------------------------------------------------------- image folders


def test_image_folder_trains_evaluates_predicts_exports_end_to_end(tmp_path, cli):
    folder = image_folder(tmp_path / "pics", per_class=(16, 16, 16))
    (folder / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (folder / "train" / "dog" / "notes.txt").write_text("not an image")
    config = write_config(tmp_path / "c.yaml", image_config(folder, augment=[{"type": "random_flip"}], tta=["horizontal_flip"]))
    code, out, err = cli("train", config, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    assert "skipped 2 files that are not a readable image (first: " in err and "broken.png" in err
    run = Path(json.loads(out)["run_dir"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["class_names"] == list(CLASSES)
    # 50 training files, 5 carved off for validation, then the 2 unreadable ones dropped
    assert summary["examples"]["train"] + summary["examples"]["val"] == 48 and summary["examples"]["test"] == 48
    assert summary["class_counts"]["test"] == {"cat": 16, "dog": 16, "eel": 16}
    assert summary["test"]["accuracy"] > 0.6  # a colour per class: the tiny CNN learns it
    assert "per class (train/val/test)" in err

    code, out, err = cli("eval", run, "--json")
    assert code == 0, err
    evaluated = json.loads(out)
    assert evaluated["examples"] == 48
    assert evaluated["metrics"]["accuracy"] == pytest.approx(summary["test"]["accuracy"], abs=1e-6)

    # predict decodes and resizes a file exactly as training did, and names the class
    files = [folder / "test" / name / "001.jpg" for name in CLASSES]
    code, out, err = cli("predict", run, *files, "--json")
    assert code == 0, err
    predicted = json.loads(out)
    assert [p["name"] for p in predicted] == [CLASSES[p["class"]] for p in predicted]
    assert sum(p["name"] == name for p, name in zip(predicted, CLASSES)) >= 2

    code, out, err = cli("export", run, "--format", "saved_model")
    assert code == 0, err
    code, out, err = cli("plot", run, "--feature-maps", "--input", files[0], "-o", tmp_path / "maps.png")
    assert code == 0, err
    assert Image.open(tmp_path / "maps.png").size[0] > 100


def test_class_folders_without_split_folders_are_sliced(tmp_path):
    folder = image_folder(tmp_path / "flat", per_class=(10, 10, 10), splits=(None,))
    data = build(image_config(folder, splits={"train": "all[:70%]", "val": "all[70%:85%]", "test": "all[85%:]"}))
    assert data.counts == {"train": 21, "val": 5, "test": 4}
    assert data.input_shape == (12, 12, 3)
    x, y = next(iter(data.pipelines["train"].as_numpy_iterator()))
    assert x.shape == (16, 12, 12, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255


@pytest.mark.parametrize("mode,channels", [("grayscale", 1), ("rgb", 3), ("rgba", 4)])
def test_image_settings_color_mode_and_crop(tmp_path, mode, channels):
    folder = tmp_path / "wide"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir(parents=True)
    left_red = np.zeros((10, 40, 3), np.uint8)
    left_red[:, :10, 0] = 255  # the outer quarters are cropped away by a square centre crop
    for name in ("a", "b"):
        for i in range(4):
            Image.fromarray(left_red).save(folder / name / f"{i}.png")
    cropped = build(image_config(folder, image={"size": [10, 10], "color_mode": mode, "crop_to_aspect_ratio": True}, splits={"train": "all", "val": "all", "test": None}))
    x, _ = next(iter(cropped.pipelines["val"].as_numpy_iterator()))
    assert x.shape[1:] == (10, 10, channels)
    assert x[..., 0].max() == 0  # only the black centre is left
    squeezed = build(image_config(folder, image={"size": [10, 10], "color_mode": mode}, splits={"train": "all", "val": "all", "test": None}))
    x, _ = next(iter(squeezed.pipelines["val"].as_numpy_iterator()))
    assert x[..., 0].max() > 50  # resized whole: the red quarter is still there


def test_images_of_different_sizes_need_a_size(tmp_path, cli):
    folder = image_folder(tmp_path / "pics", per_class=(4, 4, 4))
    config = image_config(folder)
    del config["data"]["image"]
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code == 1
    message = err.strip().splitlines()[-1]
    assert "data.image.size: images differ in size (" in message and "set data.image.size: [height, width]" in message
    assert message.count("/pics/") == 2  # both files are named


def test_bad_files_stop_the_run_when_not_skipped(tmp_path):
    folder = image_folder(tmp_path / "pics", per_class=(4, 4, 4))
    (folder / "test" / "cat" / "zz.jpg").write_text("text, not a jpeg")
    with pytest.raises(RunFailed, match=r"zz.jpg is not a readable image \(1 such file\)"):
        build(image_config(folder, skip_bad_files=False))


@pytest.mark.parametrize("cache", ["memory", "file"])
def test_after_the_first_pass_no_image_file_is_read(tmp_path, cache):
    folder = image_folder(tmp_path / "pics", per_class=(6, 6, 6))
    setting = True if cache == "memory" else str(tmp_path / "cache" / "pics")
    data = build(image_config(folder, cache=setting))
    first = sum(len(y) for _, y in data.pipelines["train"])
    for image in folder.rglob("*.*"):
        image.write_bytes(b"gone")  # any read of a file from now on would fail to decode
    second = sum(len(y) for _, y in data.pipelines["train"])
    assert first == second == data.counts["train"]
    if cache == "file":
        assert list((tmp_path / "cache" / "pics").glob("dlopt-train-*"))


# --------------------------------------------------------------------------------------- tables


def test_table_trains_evaluates_predicts_raw_rows_and_exports(tmp_path, cli):
    csv_path = penguin_like_csv(tmp_path / "birds.csv")
    config = write_config(tmp_path / "c.yaml", table_config(csv_path))
    code, out, err = cli("train", config, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["class_names"] == ["adelie", "chinstrap", "gentoo"]
    kinds = {c["column"]: c for c in summary["table_columns"]}
    assert kinds["bill"] == {"column": "bill", "kind": "numeric", "missing_feature": True}
    assert kinds["island"]["kind"] == "categorical" and kinds["year"]["kind"] == "numeric"
    assert summary["test"]["accuracy"] > 0.8

    code, out, err = cli("eval", run, "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"]["accuracy"] == pytest.approx(summary["test"]["accuracy"], abs=1e-6)

    rows = tmp_path / "rows.csv"
    rows.write_text("species,bill,island,year\n,50.1,east,2008\n,NA,,2009\n")
    code, out, err = cli("predict", run, rows, '{"bill": 40.2, "island": "north"}', "--json")
    assert code == 0, err
    predicted = json.loads(out)
    assert [p["input"] for p in predicted] == [f"{rows}:2", f"{rows}:3", "row 3"]
    assert predicted[0]["name"] == "chinstrap" and predicted[2]["name"] == "adelie"
    assert all(0 <= p["probability"] <= 1 for p in predicted)  # a row of missing values still predicts
    assert not any("warnings" in p for p in predicted)
    code, out, err = cli("predict", run, '{"bill": 400, "island": "north", "year": 2008}', "--json")  # a bill ten times any seen
    assert code == 0 and json.loads(out)[0]["warnings"] == [f"row 1: column 'bill' is 400, outside its training range {json.loads((run / 'inputs.json').read_text())['columns']['bill']['min']:.4g} to {json.loads((run / 'inputs.json').read_text())['columns']['bill']['max']:.4g}"]
    assert "warning: row 1: column 'bill' is 400" in err

    # the exported SavedModel takes the raw columns, no dlopt needed
    code, out, err = cli("export", run, "--format", "saved_model")
    assert code == 0, err
    import tensorflow as tf

    served = tf.saved_model.load(out.strip())
    probabilities = served.serve({"bill": tf.constant([[50.1]]), "island": tf.constant([["east"]]), "year": tf.constant([[2008.0]])})
    assert int(np.argmax(probabilities.numpy())) == 1


def test_table_preprocessing_is_learnt_from_the_training_split_only(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("v,colour,y\n" + "".join(f"{i},red,{i % 2}\n" for i in range(10)) + "1000,blue,0\n1000,blue,1\n")
    data = build({**table_config(path), "data": {**table_config(path)["data"], "split_shuffle": False, "splits": {"train": "all[:10]", "val": "all[10:]", "test": None}, "table": {"label_column": "y"}}})
    numeric, categorical = data.table.columns
    assert (numeric.mean, numeric.variance, numeric.has_missing) == (4.5, 8.25, False)  # the 1000s are not training rows
    assert categorical.vocabulary == ["red"]  # 'blue' is unseen: the out-of-vocabulary slot
    x, _ = next(iter(data.pipelines["val"].as_numpy_iterator()))
    assert x["colour"].tolist() == [[b"blue"], [b"blue"]] and x["v"].tolist() == [[1000.0], [1000.0]]


def test_table_regression_with_a_numeric_label(tmp_path, cli):
    rng = np.random.default_rng(1)
    lines = ["a,kind,target"] + [f"{a:.3f},{k},{2 * a + (1 if k == 'x' else -1):.3f}" for a, k in zip(rng.normal(size=120), rng.choice(["x", "y"], 120))]
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    config = table_config(tmp_path / "r.csv", table={"label_column": "target"})
    config["train"]["epochs"] = 30
    data = build(config)
    assert (data.task, data.class_counts) == ("regression", None)
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    assert json.loads(out)["test"]["rmse"] < 1.0  # the target's spread is about 2.2


def test_table_columns_are_checked_before_a_run_exists(tmp_path, cli):
    csv_path = penguin_like_csv(tmp_path / "birds.csv")
    config = write_config(tmp_path / "c.yaml", table_config(csv_path, table={"label_column": "specis"}))
    code, out, err = cli("train", config, "--runs-dir", tmp_path / "runs")
    assert code == 2
    assert err.strip() == f"error: data.table.label_column: {csv_path} has no column 'specis' (has: bill, island, year, species)"
    assert not (tmp_path / "runs").exists()


def _with_lines(path: Path, changes: dict[int, str]) -> Path:
    """The CSV with some (1-based) lines replaced."""
    lines = path.read_text().splitlines()
    for number, text in changes.items():
        lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return path


def test_how_each_column_is_read_is_said_before_a_run_exists_and_a_bad_value_stops_it(tmp_path, cli):
    csv_path = penguin_like_csv(tmp_path / "birds.csv")
    rows = csv_path.read_text().splitlines()
    bill_at = {n: line.split(",", 1)[1] for n, line in enumerate(rows, 1)}
    _with_lines(csv_path, {5: "abc," + bill_at[5], 9: "inf," + bill_at[9], 12: "nan," + bill_at[12]})  # nan: a missing value
    config = write_config(tmp_path / "c.yaml", table_config(csv_path))
    code, out, err = cli("train", config, "--runs-dir", tmp_path / "runs")
    assert code == 2 and not (tmp_path / "runs").exists(), err
    assert f"{csv_path}: 4 columns, 3 read as features:" in err
    assert re.search(r"^  bill: number \((\d+) of (\d+) values are numbers\)$", err, flags=re.M)  # two of them are not
    assert "  island: category (4 different values)" in err and "  species: label (data.table.label_column)" in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors[0] == f"error: {csv_path}:5: column 'bill': 'abc' is not a finite number (its other values are numbers)"
    assert errors[1].startswith(f"error: {csv_path}:9: column 'bill': 'inf' is not a finite number") and "data.table.bad_values" in errors[1]
    # told what to do with them: the rows are left out, counted, printed and kept in run.json
    code, out, err = cli("train", config, "--runs-dir", tmp_path / "runs", "--set", "data.table.bad_values=drop_row", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    assert "data.table: 2 rows dropped: a value that does not fit its column" in err
    assert json.loads((run / "run.json").read_text())["rows_handled"] == {"rows dropped: a value that does not fit its column": 2}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["parameters"] < 200  # bill stayed a number: not 150 one-hot categories


def test_a_ragged_row_and_a_free_text_column_are_never_read_silently(tmp_path, cli):
    csv_path = penguin_like_csv(tmp_path / "birds.csv")
    rows = csv_path.read_text().splitlines()
    _with_lines(csv_path, {7: rows[6] + ",1,2", 8: rows[7].split(",")[0]})
    code, _, err = cli("train", write_config(tmp_path / "c.yaml", table_config(csv_path)), "--runs-dir", tmp_path / "runs")
    assert code == 2 and err.strip().splitlines()[-1] == f"error: {csv_path}:7: 6 fields where the header has 4; every row needs one value per column (quote values that hold commas)"
    assert not (tmp_path / "runs").exists()
    csv_path = penguin_like_csv(tmp_path / "birds.csv")
    rng = np.random.default_rng(1)
    words = ["small", "bird", "seen", "near", "the", "shore", "at", "dawn", "with", "a", "red", "bill"]
    lines = csv_path.read_text().splitlines()
    lines = [lines[0] + ",note"] + [f"{line},{' '.join(rng.choice(words, 6))} {n}" for n, line in enumerate(lines[1:])]
    csv_path.write_text("\n".join(lines) + "\n")
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", table_config(csv_path)), "--runs-dir", tmp_path / "runs", "--set", "train.epochs=1", "--json")
    assert code == 0, err
    assert "  note: text, not used (150 different values, 7.0 words each on average: free text or names;" in err
    summary = json.loads((Path(json.loads(out)["run_dir"]) / "summary.json").read_text())
    assert [c["column"] for c in summary["table_columns"]] == ["bill", "island", "year"]


@pytest.mark.parametrize("strategy, expect", [("mean", {"features": 6, "fill": "mean"}), ("constant", {"features": 6, "fill": -1.0}), ("indicator", {"features": 7, "fill": "mean"})])
def test_missing_numbers_follow_the_configured_strategy(tmp_path, strategy, expect):
    csv_path = penguin_like_csv(tmp_path / "birds.csv")
    data = build(table_config(csv_path, table={"label_column": "species", "missing_numbers": strategy, "fill_value": -1.0}))
    (bill,) = [c for c in data.table.columns if c.name == "bill"]
    assert bill.has_missing == (strategy == "indicator")
    assert bill.fill == (bill.mean if expect["fill"] == "mean" else expect["fill"])
    dropped = build(table_config(csv_path, table={"label_column": "species", "missing_numbers": "drop_row"}))
    assert dropped.table.rows_handled["rows dropped: a missing number"] > 0
    assert sum(dropped.counts.values()) == sum(data.counts.values()) - dropped.table.rows_handled["rows dropped: a missing number"]


def test_an_empty_class_folder_is_warned_by_name(tmp_path, capsys):
    folder = image_folder(tmp_path / "pics")
    (folder / "train" / "zebra").mkdir()
    build(image_config(folder))
    assert f"warning: {folder / 'train' / 'zebra'} is empty: class 'zebra' has no images and is left out" in capsys.readouterr().err


# ----------------------------------------------------------------------------- bundled data


def test_sklearn_digits_are_images_with_class_names():
    data = build({"name": "d", "data": {"source": "sklearn", "name": "digits", "splits": {"train": "all[:50%]", "test": "all[50%:]"}}, "model": {"type": "cnn"}})
    assert data.input_shape == (8, 8, 1)
    assert data.class_names == [str(i) for i in range(10)]
    assert data.counts["train"] + data.counts["val"] + data.counts["test"] == 1797
    for counts in data.class_counts.values():  # stratified: every digit in every part
        assert min(counts.values()) > 0


def test_package_data_path_names_the_missing_package(tmp_path, cli):
    config = write_config(tmp_path / "c.yaml", table_config(Path("data/x.csv"), package="no_such_package_here"))
    code, out, err = cli("validate", config)
    assert code == 2
    line = next(n for n, text in enumerate(config.read_text().splitlines(), 1) if "package:" in text)
    assert err.strip() == f"error: {config}:{line}: data.package: no installed Python package 'no_such_package_here' (install it: pip install no_such_package_here)"


def test_shipped_backbone_config_trains_on_a_folder(tmp_path, cli):
    """configs/backbone_image_folder.yaml end to end (random weights: no ImageNet download here, and small)."""
    folder = image_folder(tmp_path / "photos", per_class=(8, 8, 8))
    root = Path(__file__).resolve().parent.parent
    overrides = [
        f"data.path={folder}", "data.image.size=[32, 32]", "model.weights=null", "model.options={alpha: 0.35}",
        "train.epochs=2", "model.unfreeze_at_epoch=1", "data.batch_size=8",
    ]
    code, out, err = cli("train", root / "configs" / "backbone_image_folder.yaml", "--runs-dir", tmp_path / "runs", "--json", *[a for o in overrides for a in ("--set", o)])
    assert code == 0, err
    summary = json.loads((Path(json.loads(out)["run_dir"]) / "summary.json").read_text())
    assert summary["epochs_run"] == 2 and summary["class_names"] == list(CLASSES)
    assert summary["tta"] == ["horizontal_flip"] and "frozen_layers" in summary
