"""Saved models outside dlopt: `import dlopt` then `keras.models.load_model` loads every model family
with its optimizer and schedule, in either import order; exported SavedModels need no dlopt at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import quadrant_idx_folder, tiny_cnn_config, train_once
from test_own_data import penguin_like_csv, table_config
from test_sequences import text_config, write_reviews_folder


def _train(config: dict, folder: Path) -> Path:
    folder.mkdir(parents=True)
    result = train_once(config, folder)
    assert result.exit_code == 0, result.stderr
    return Path(json.loads(result.stdout)["run_dir"])


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory) -> dict[str, Path]:
    """One tiny trained run per model family, with a warm-up schedule and a fine-tuning optimizer."""
    tmp = tmp_path_factory.mktemp("families")
    images = quadrant_idx_folder(tmp / "idx")
    runs = {}
    cnn = tiny_cnn_config(images, schedule={"type": "cosine", "warmup_epochs": 1}, train={"epochs": 2, "progress": "none"})
    runs["cnn"] = _train(cnn, tmp / "cnn")
    tuned = tiny_cnn_config(images, train={"epochs": 1, "progress": "none"})
    tuned["model"] = {**tuned["model"], "init_from": str(runs["cnn"]), "pretrained_lr_multiplier": 0.1}
    runs["cnn_fine_tuned"] = _train(tuned, tmp / "tuned")
    mlp = tiny_cnn_config(images, model={"type": "mlp", "layers": [8]}, train={"epochs": 1, "progress": "none"})
    runs["mlp"] = _train(mlp, tmp / "mlp")
    texts = write_reviews_folder(tmp / "texts", train=40, test=12)
    transformer = {"type": "transformer", "width": 8, "heads": 2, "ff_width": 16, "depth": 1, "pooling": "first"}
    runs["transformer"] = _train({**text_config("text_folder", texts, transformer), "train": {"epochs": 1, "progress": "none"}, "schedule": {"type": "constant", "warmup_epochs": 0.5}}, tmp / "transformer")
    lstm = {"type": "lstm", "units": [8], "embedding_dim": 8}
    runs["lstm"] = _train({**text_config("text_folder", texts, lstm), "train": {"epochs": 1, "progress": "none"}}, tmp / "lstm")
    table = table_config(penguin_like_csv(tmp / "birds.csv"))
    runs["table"] = _train({**table, "train": {"epochs": 1, "progress": "none"}}, tmp / "table")
    backbone = tiny_cnn_config(images, train={"epochs": 1, "progress": "none"})
    backbone["data"] = {"source": "idx", "path": str(images), "batch_size": 32}
    backbone["model"] = {"type": "backbone", "name": "MobileNetV2", "weights": None, "input_size": 32, "options": {"alpha": 0.35}, "dense": [8]}
    runs["backbone"] = _train(backbone, tmp / "backbone")
    return runs


def fresh_python(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)


LOAD_ALL = """
import json, sys
{imports}
paths = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {paths!r}
loaded = {{}}
for family, path in paths.items():
    model = keras.models.load_model(path)  # compiled, safe mode: optimizer and schedule included
    loaded[family] = [type(model.optimizer).__name__, type(model.optimizer._learning_rate).__name__, model.count_params()]
print(json.dumps(loaded))
"""


@pytest.mark.parametrize("imports", ["import dlopt\nimport keras", "import keras\nimport dlopt", "import tensorflow as tf\nimport dlopt\nkeras = tf.keras"])
def test_import_dlopt_then_load_every_family_in_a_fresh_process(family_runs, imports):
    paths = {family: str(run / "checkpoints" / "best.keras") for family, run in family_runs.items()}
    result = fresh_python(LOAD_ALL.format(imports=imports, paths=paths))
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(loaded) == set(paths)
    assert loaded["cnn"][:2] == ["Adam", "Warmup"]
    assert loaded["transformer"][:2] == ["Adam", "Warmup"]
    assert loaded["cnn_fine_tuned"][0] == "AdamWithLrMultipliers"


def test_the_docs_loading_snippet_runs_as_written(family_runs):
    """docs/data.md's snippet, with the path of a real transformer run."""
    docs = (Path(__file__).resolve().parent.parent / "docs" / "data.md").read_text()
    snippet = docs.split("```python\n", 1)[1].split("```", 1)[0]
    assert "import dlopt" in snippet and "runs/transformer_imdb-.../checkpoints/best.keras" in snippet
    script = snippet.replace("runs/transformer_imdb-.../checkpoints/best.keras", str(family_runs["transformer"] / "checkpoints" / "best.keras"))
    script = script.replace("model.predict(", "print(model.predict(").rstrip() + ")\n"
    result = fresh_python(script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[[" in result.stdout  # two rows of class probabilities


def test_exported_saved_models_need_no_dlopt(family_runs, cli):
    from dlopt.saved_models import load_run_model

    exports, expected = {}, {}
    inputs = {
        "cnn": np.random.default_rng(0).integers(0, 255, (2, 8, 8, 1)).astype(np.float32),
        "transformer": np.array(["great movie today", "awful acting indeed"]),
    }
    for family, x in inputs.items():
        code, out, err = cli("export", family_runs[family], "--format", "saved_model")
        assert code == 0, err
        exports[family] = out.strip()
        _, model, _ = load_run_model(family_runs[family])
        import tensorflow as tf

        expected[family] = np.asarray(model.predict(tf.constant(x), verbose=0)).tolist()
    script = f"""
import json, sys
import numpy as np, tensorflow as tf
exports = {exports!r}
inputs = {{"cnn": tf.constant(np.array({inputs['cnn'].tolist()!r}, dtype=np.float32)), "transformer": tf.constant({inputs['transformer'].tolist()!r})}}
loaded = {{family: tf.saved_model.load(path) for family, path in exports.items()}}  # kept: the functions need their variables
outputs = {{family: loaded[family].serve(inputs[family]).numpy().tolist() for family in exports}}
assert "dlopt" not in sys.modules
print(json.dumps(outputs))
"""
    result = fresh_python(script)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    for family in inputs:
        np.testing.assert_allclose(outputs[family], expected[family], rtol=1e-4, atol=1e-5)
