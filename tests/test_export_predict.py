"""After training: export (Keras, SavedModel, TFLite), predict, model summary and cost, feature
maps, and training in mixed precision."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import quadrant_images, tiny_cnn_config, write_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained CNN run (8x8 grayscale images, 4 classes)."""
    from conftest import quadrant_idx_folder, train_once

    tmp = tmp_path_factory.mktemp("exported")
    folder = quadrant_idx_folder(tmp / "idx")
    data = {"source": "idx", "path": str(folder), "batch_size": 32, "preprocess": {"rescale": 1 / 255, "standardize": "global"}}
    result = train_once(tiny_cnn_config(folder, train={"epochs": 3, "progress": "none"}, data=data), tmp)
    assert result.exit_code == 0, result.stderr
    return Path(json.loads(result.stdout)["run_dir"])


def raw_examples(n: int = 6) -> np.ndarray:
    x, _ = quadrant_images(n, seed=9)
    return x.astype(np.float32)[..., None]  # raw pixels, channel last: the saved model rescales and standardises itself


def keras_outputs(run: Path, x: np.ndarray) -> np.ndarray:
    import keras

    model = keras.models.load_model(run / "checkpoints" / "best.keras", compile=False, safe_mode=True)
    return model.predict(x, verbose=0)


def test_summary_json_reports_model_cost(run):
    summary = json.loads((run / "summary.json").read_text())
    # conv 3x3x1x4 on 8x8 (2*9*4*64 = 4608) + dense 64->8 (2*64*8 = 1024) + head 8->4 (64), plus bias/BN/softmax ops
    assert 4608 + 1024 + 64 <= summary["flops_per_example"] <= 2 * (4608 + 1024 + 64)
    assert summary["parameters"] > 0 and summary["model_bytes"] == (run / "checkpoints" / "best.keras").stat().st_size
    assert summary["samples_per_second"] > 0 and summary["peak_memory_mb"] > 0


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
@pytest.mark.parametrize("fmt", ["keras", "saved_model", "tflite"])
def test_exports_match_the_keras_model(run, cli, fmt, tmp_path):
    x = raw_examples()
    expected = keras_outputs(run, x)
    suffix = {"keras": ".keras", "saved_model": "", "tflite": ".tflite"}[fmt]
    output = tmp_path / f"exported{suffix}"
    code, out, err = cli("export", run, "--format", fmt, "-o", output)
    assert code == 0, err
    assert Path(out.strip()) == output and output.exists()
    if fmt == "keras":
        import keras

        got = keras.models.load_model(output, compile=False, safe_mode=True).predict(x, verbose=0)
    elif fmt == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(output))  # kept referenced: its variables live as long as it does
        got = loaded.serve(tf.constant(x)).numpy()
    else:
        import tensorflow as tf

        interpreter = tf.lite.Interpreter(model_path=str(output))
        inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        interpreter.resize_tensor_input(inp["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        got = interpreter.get_tensor(outp["index"])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_export_defaults_into_the_run_and_never_overwrites(run, cli):
    code, out, err = cli("export", run)
    assert code == 0, err
    target = run / "export" / "model.keras"
    assert Path(out.strip()) == target and target.exists()
    before = target.read_bytes()
    code, _, err = cli("export", run)
    assert code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1
    assert target.read_bytes() == before


def test_predict_images_and_arrays(run, cli, tmp_path):
    import tensorflow as tf

    x = raw_examples()
    expected = keras_outputs(run, x)
    png = tmp_path / "one.png"
    png.write_bytes(tf.io.encode_png(x[0].astype(np.uint8)).numpy())
    big = tmp_path / "big.png"  # another size and colour: converted to grayscale and resized to 8x8
    big.write_bytes(tf.io.encode_png(np.repeat(np.kron(x[1, ..., 0], np.ones((4, 4))).astype(np.uint8)[..., None], 3, axis=-1)).numpy())
    np.save(tmp_path / "batch.npy", x[2:5, ..., 0])  # without the channel axis: added for the model
    np.savez(tmp_path / "one.npz", x=x[5])
    code, out, err = cli("predict", run, png, big, tmp_path / "batch.npy", tmp_path / "one.npz", "--json", "--top-k", "2")
    assert code == 0, err
    results = json.loads(out)
    assert [r["input"] for r in results] == [str(png), str(big), f"{tmp_path / 'batch.npy'}[0]", f"{tmp_path / 'batch.npy'}[1]", f"{tmp_path / 'batch.npy'}[2]", str(tmp_path / "one.npz")]
    for index in (0, 2, 3, 4, 5):  # exact inputs: exactly the model's answer
        assert results[index]["class"] == int(expected[index].argmax())
        assert results[index]["probability"] == pytest.approx(float(expected[index].max()), abs=1e-5)
        assert [k["class"] for k in results[index]["top_k"]] == list(np.argsort(-expected[index])[:2])
    assert results[1]["class"] == int(expected[1].argmax())  # the upscaled copy still reads as its quadrant
    code, out, err = cli("predict", run, png)
    assert code == 0 and "probability" in out


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: np.save(p / "wrong.npy", np.zeros((3, 5))), "expected an array of shape (8, 8, 1) or (N, 8, 8, 1), got (3, 5)"),
        (lambda p: (p / "notes.txt").write_text("hello"), "expected an image"),
    ],
)
def test_predict_rejects_wrong_inputs_in_one_line(run, cli, tmp_path, make, message):
    make(tmp_path)
    target = next(tmp_path.iterdir())
    code, _, err = cli("predict", run, target)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_predict_brings_image_files_into_the_training_range_and_warns_about_inputs_unlike_it(tmp_path, cli):
    """scikit-learn's digits are ink counts 0-16: a PNG of one (0-255) is scaled to that range
    before the model sees it, and an array of 0-255 values is named in a warning."""
    import tensorflow as tf
    from sklearn.datasets import load_digits

    from conftest import write_config

    config = {
        "name": "digits",
        "seed": 1,
        "data": {"source": "sklearn", "name": "digits", "splits": {"train": "all[:80%]", "test": "all[80%:]"}, "batch_size": 32, "preprocess": {"rescale": 0.0625}},
        "model": {"type": "cnn", "blocks": [{"filters": 8}], "dense": [32]},
        "optimizer": {"type": "adam", "learning_rate": 0.003},
        "train": {"epochs": 6, "progress": "none"},
    }
    code, out, err = cli("train", write_config(tmp_path / "d.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    statistics = json.loads((run / "inputs.json").read_text())
    assert statistics["value_max"] == 16.0 and statistics["min"] == 0.0 and statistics["max"] == 16.0
    digits = load_digits()
    pngs = []
    for i in range(10):  # ten digits saved as 8-bit images, as a user draws or exports them
        png = tmp_path / f"digit{i}.png"
        png.write_bytes(tf.io.encode_png((digits.images[i] * 255 / 16).round().astype(np.uint8)[..., None]).numpy())
        pngs.append(png)
    code, out, err = cli("predict", run, *pngs, "--json")
    assert code == 0 and "warning" not in err, err
    results = json.loads(out)
    assert not any("warnings" in r for r in results)
    np.save(tmp_path / "as_trained.npy", digits.images[:10][..., None])  # the same digits as the source gives them
    code, out, err = cli("predict", run, tmp_path / "as_trained.npy", "--json")
    as_trained = json.loads(out)
    # the PNGs get the answers the source's own values get (8-bit rounding may move one)
    assert sum(a["class"] == b["class"] for a, b in zip(results, as_trained)) >= 9, (results, as_trained)
    assert sum(r["class"] == digits.target[i] for i, r in enumerate(results)) >= 7, results
    np.save(tmp_path / "bright.npy", (digits.images[:2] * 255 / 16)[..., None])  # 0-255 values: 16x too bright
    code, out, err = cli("predict", run, tmp_path / "bright.npy", "--json")
    assert code == 0
    warned = json.loads(out)[0]["warnings"]
    assert "of its values lie outside the training inputs' range 0 to 16" in warned[0] and warned[0] in err


def test_predict_text_lines(tmp_path, cli):
    from test_sequences import text_config, trained_run, write_reviews_folder

    folder = write_reviews_folder(tmp_path / "reviews")
    model = {"type": "transformer", "width": 16, "heads": 2, "ff_width": 32, "depth": 1}
    run, summary = trained_run(cli, tmp_path, text_config("text_folder", folder, model, splits={"train": "train", "test": "test"}))
    lines = tmp_path / "new.txt"
    lines.write_text("loved it indeed\n\nawful acting\n")
    code, out, err = cli("predict", run, lines, "superb story", "--json")
    assert code == 0, err
    results = json.loads(out)
    assert [r["input"] for r in results] == [f"{lines}:1", f"{lines}:2", "superb story"]
    import keras
    import tensorflow as tf

    saved = keras.models.load_model(run / "checkpoints" / "best.keras", compile=False, safe_mode=True)
    probabilities = saved.predict(tf.constant(["loved it indeed", "awful acting", "superb story"]), verbose=0)
    assert [r["name"] for r in results] == [summary["class_names"][i] for i in probabilities.argmax(1)]
    assert [r["probability"] for r in results] == pytest.approx(probabilities.max(1).tolist(), abs=1e-5)
    assert not any("warnings" in r for r in results)  # words it knows
    code, out, err = cli("predict", run, "zorgle blimfax quuxen wibble", "--json")  # words it never saw
    assert code == 0 and "% of its words are unknown to the model" in json.loads(out)[0]["warnings"][0] and "warning: " in err


def test_summary_command_shows_layers_and_flops(tmp_path, cli, idx_dir):
    config = tiny_cnn_config(idx_dir, model={"type": "mlp", "layers": [16]})
    path = write_config(tmp_path / "c.yaml", config)
    code, out, err = cli("summary", path, "--json")
    assert code == 0, err
    result = json.loads(out)
    by_name = {row["name"]: row for row in result["layers"]}
    assert by_name["dense0"]["parameters"] == 64 * 16 + 16 and by_name["head"]["parameters"] == 16 * 4 + 4
    assert by_name["dense0"]["output_shape"] == [16]
    assert 2 * 64 * 16 <= by_name["dense0"]["flops"] <= 2 * 64 * 16 + 64  # the matmul, plus the bias add
    assert result["parameters"] == sum(row["parameters"] for row in result["layers"])
    assert result["flops_per_example"] >= sum(row["flops"] for row in result["layers"]) > 0
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written
    code, out, err = cli("summary", path)
    assert code == 0 and "dense0" in out and "FLOPs per example" in out


def test_feature_maps_png(run, cli, tmp_path):
    import tensorflow as tf

    png = tmp_path / "in.png"
    png.write_bytes(tf.io.encode_png(raw_examples(1)[0].astype(np.uint8)).numpy())
    output = tmp_path / "maps.png"
    code, out, err = cli("plot", run, "--feature-maps", "--input", png, "-o", output)
    assert code == 0, err
    assert out.strip() == str(output) and output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from dlopt.feature_maps import activations
    from dlopt.saved_models import load_run_model

    _, model, _ = load_run_model(run)
    name, maps = activations(model, raw_examples(1)[0], None)
    assert name == "block0_conv0" and maps.shape == (8, 8, 4)
    code, _, err = cli("plot", run, "--feature-maps", "--input", png, "--layer", "block0_conv9")
    assert code == 2 and "no convolution layer named 'block0_conv9'" in err and "block0_conv0" in err


@pytest.mark.parametrize("policy, optimizer", [("mixed_float16", "LossScaleOptimizer"), ("mixed_bfloat16", "Adam")])
def test_mixed_precision_trains_with_a_float32_head(tmp_path, cli, idx_dir, policy, optimizer):
    import keras

    config = tiny_cnn_config(idx_dir, train={"epochs": 3, "progress": "none", "mixed_precision": policy})
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["mixed_precision"] == policy and summary["optimizer_class"] == optimizer
    assert summary["test"]["accuracy"] > 0.5
    model = keras.models.load_model(run / "checkpoints" / "best.keras", compile=False, safe_mode=True)
    from dlopt.models.finetune import leaf_layers

    layers = {layer.name: layer for layer in leaf_layers(model)}
    assert layers["block0_conv0"].compute_dtype == policy.split("_")[1] and layers["block0_conv0"].variable_dtype == "float32"
    assert model.predict(raw_examples(), verbose=0).dtype == np.float32
    assert keras.mixed_precision.global_policy().name == "float32"  # the process's policy is left as it was


def test_mixed_precision_auto_is_float32_on_cpu():
    from dlopt.train import _precision_policy

    assert _precision_policy("auto") == "float32" and _precision_policy("none") == "float32"
