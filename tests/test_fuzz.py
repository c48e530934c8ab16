"""Bad input never gets a traceback: generated bad configs through `validate`, generated bad data
files through `train`, each answered by one line per mistake that names the file, and exit 2 (or 1
for a run that started and failed), with nothing left looking complete."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import write_config

GOOD = {
    "name": "fuzz",
    "seed": 3,
    "data": {"source": "sklearn", "name": "iris", "splits": {"train": "all[:80%]", "test": "all[80%:]"}, "batch_size": 16},
    "model": {"type": "mlp", "layers": [8], "dropout": 0.1},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "schedule": {"type": "cosine", "warmup_epochs": 1},
    "train": {"epochs": 2, "metrics": ["accuracy"], "progress": "none"},
    "checkpoint": {"monitor": "val_accuracy"},
}
WRONG_VALUES = [-1, 0, "fast", "", None, True, [], {}, [1, "x"], {"a": 1}, 1e400, "1e-3", "32", 3.5, "../../etc"]


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for key, sub in value.items():
            yield prefix + (key,)
            yield from _paths(sub, prefix + (key,))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield prefix + (i,)
            yield from _paths(sub, prefix + (i,))


def _set(data, path, value):
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def bad_configs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """(kind, YAML text) of configs that are wrong in one or more places."""
    rng = random.Random(seed)
    paths = list(_paths(GOOD))
    made = []
    while len(made) < count:
        kind = rng.choice(["value", "value", "typo", "typo", "delete", "yaml", "several"])
        data = copy.deepcopy(GOOD)
        if kind in ("value", "several"):
            for _ in range(1 if kind == "value" else rng.randint(2, 4)):
                path = rng.choice(paths)
                try:
                    _set(data, path, rng.choice(WRONG_VALUES))
                except (KeyError, IndexError, TypeError):
                    continue
        elif kind == "typo":
            path = rng.choice([p for p in paths if isinstance(p[-1], str) and p[-1] not in ("type",)])
            try:
                node = data
                for part in path[:-1]:
                    node = node[part]
                word = path[-1]
                i = rng.randrange(len(word))
                node[word[:i] + word[i + 1 :] + rng.choice("xyz")] = node.pop(word)
            except (KeyError, TypeError, AttributeError):
                continue
        elif kind == "delete":
            for key in rng.sample(["data", "model"], rng.randint(1, 2)):
                data.pop(key)
        if kind == "yaml":
            text = yaml.safe_dump(data, sort_keys=False)
            cut = rng.randrange(len(text))
            text = text[:cut] + rng.choice(["{", "]", ":\n  - : :", "\t", "&a *b", "!!python/object:os.system {}", "'"]) + text[cut:]
        else:
            text = yaml.safe_dump(data, sort_keys=False)
        if yaml.safe_load(text) == GOOD if kind != "yaml" else False:
            continue
        made.append((kind, text))
    return made


def test_two_hundred_bad_configs_are_each_answered_in_lines_naming_the_file(tmp_path, cli):
    from dlopt.config import load_config
    from dlopt.errors import ConfigError

    answered = {}
    for n, (kind, text) in enumerate(bad_configs(220)):
        path = tmp_path / f"bad{n:03d}.yaml"
        path.write_text(text)
        try:
            load_config(path)
            continue  # a mutation that is still a valid config (e.g. a wrong value set twice back): not bad
        except ConfigError:
            pass
        code, out, err = cli("validate", path)
        assert code == 2 and out == "", (kind, text, err)
        lines = err.strip().splitlines()
        assert lines and all(line.startswith(f"error: {path}") for line in lines), (kind, text, err)
        assert "Traceback" not in err
        answered[kind] = answered.get(kind, 0) + 1
    assert sum(answered.values()) >= 200, answered
    assert set(answered) == {"value", "typo", "delete", "yaml", "several"}, answered


def _table(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


def bad_data(folder: Path) -> list[tuple[str, dict, Path]]:
    """(what, config data section, the file or folder the error must name) for 50 bad data sets."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    cases = []
    good_rows = ["a,b,y"] + [f"{rng.normal():.3f},{rng.normal():.3f},{i % 2}" for i in range(60)]
    table = {"source": "csv", "splits": {"train": "all[:80%]", "test": "all[80%:]"}, "table": {"label_column": "y"}}
    for i in range(12):  # tables whose values do not fit their column
        rows = list(good_rows)
        rows[1 + i * 4] = rows[1 + i * 4].replace(rows[1 + i * 4].split(",")[0], ["abc", "inf", "-inf", "1,2", "x y"][i % 5], 1)
        path = _table(folder / f"values{i}.csv", rows)
        cases.append((f"a bad value ({i})", {**table, "path": str(path)}, path))
    for i in range(8):  # ragged rows
        rows = list(good_rows)
        rows[2 + i * 5] = rows[2 + i * 5] + ",extra" * (1 + i % 2) if i % 3 else rows[2 + i * 5].split(",")[0]
        path = _table(folder / f"ragged{i}.csv", rows)
        cases.append((f"a ragged row ({i})", {**table, "path": str(path)}, path))
    for i, content in enumerate([b"", b"a,b,y\n", b"\x00\x01\x02binary", b"a,b,y\n1,2,\xff\xfe\n", bytes(range(256)) * 4, b"y\n1\n0\n"]):
        path = folder / f"odd{i}.csv"
        path.write_bytes(content)
        cases.append((f"an odd table file ({i})", {**table, "path": str(path)}, path))
    for i in range(6):  # a label column that is not there, columns named that are not there
        path = _table(folder / f"named{i}.csv", good_rows)
        named = [{"label_column": "label"}, {"label_column": "y", "feature_columns": ["a", "c"]}, {"label_column": "y", "ignore_columns": ["q"]},
                 {"label_column": "y", "categorical_columns": ["z"]}, {"label_column": "a", "feature_columns": ["a"]}, {"label_column": "y", "ignore_columns": ["a", "b"]}][i]
        cases.append((f"columns named wrong ({i})", {**table, "path": str(path), "table": named}, path))
    for i in range(8):  # image folders whose files are no images, or that hold no class folder
        root = folder / f"images{i}"
        (root / "cat").mkdir(parents=True)
        (root / "dog").mkdir()
        for j in range(3):
            (root / "cat" / f"{j}.png").write_bytes(rng.integers(0, 256, 40 + i, dtype=np.uint8).tobytes())
            (root / "dog" / f"{j}.jpg").write_bytes(b"\xff\xd8\xff" + rng.integers(0, 256, 30, dtype=np.uint8).tobytes())
        if i % 4 == 3:
            for sub in ("cat", "dog"):
                for file in (root / sub).iterdir():
                    file.unlink()
        cases.append((f"an image folder without images ({i})", {"source": "image_folder", "path": str(root), "splits": {"train": "all[:70%]", "test": "all[70%:]"}, "image": {"size": [8, 8]}}, root))
    for i in range(5):  # text folders with nothing to read
        root = folder / f"texts{i}"
        (root / "train" / "pos").mkdir(parents=True)
        if i % 2:
            (root / "train" / "neg").mkdir()
        cases.append((f"a text folder without texts ({i})", {"source": "text_folder", "path": str(root), "splits": {"train": "train", "test": None}}, root))
    for i in range(5):  # arrays that are not
        path = folder / f"arrays{i}.npz"
        if i % 2:
            path.write_bytes(rng.integers(0, 256, 100, dtype=np.uint8).tobytes())
        else:
            np.savez(path, x_train=np.zeros((4, 3)), y_train=np.zeros(5 + i))
        cases.append((f"arrays that do not fit ({i})", {"source": "npz", "path": str(path), "splits": {"train": "train", "test": None}}, path))
    return cases


def test_fifty_bad_data_sets_fail_in_one_line_naming_the_file(tmp_path, cli):
    cases = bad_data(tmp_path / "data")
    assert len(cases) == 50
    runs = tmp_path / "runs"
    for n, (what, data, named) in enumerate(cases):
        config = {**GOOD, "name": f"bad{n}", "data": {**data, "batch_size": 8}, "model": {"type": "mlp", "layers": [4]}, "checkpoint": {"monitor": "val_loss"}}
        config["train"] = {"epochs": 1, "progress": "none"}
        code, out, err = cli("train", write_config(tmp_path / f"c{n}.yaml", config), "--runs-dir", runs)
        errors = [line for line in err.strip().splitlines() if line.startswith("error: ")]
        assert code in (1, 2) and errors, (what, code, err)
        assert "Traceback" not in err and all(str(named) in line or named.name in line for line in errors[:1]), (what, err)
        made = [p for p in runs.glob(f"bad{n}-*")] if runs.exists() else []
        if code == 2:
            assert not made, (what, err)  # a config or data error found first: nothing created
        for run in made:  # a run that started: marked failed, never left looking complete
            assert json.loads((run / "run.json").read_text())["status"] == "failed" and not (run / "summary.json").exists(), (what, err)
