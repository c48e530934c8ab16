"""Evaluation that explains: per-class report, confusion matrix, mistakes, ROC/PR, regression and
forecast plots, and the HTML page of a run, checked in a real headless browser."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import quadrant_idx_folder, tiny_cnn_config, train_once, write_config

CLASS_NAMES = ["top-left", "top-right", "bottom-left", "bottom-right"]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG, read from its header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("analysis")
    folder = quadrant_idx_folder(tmp / "idx")
    config = tiny_cnn_config(folder, train={"epochs": 2, "progress": "none"})
    config["data"]["class_names"] = CLASS_NAMES
    result = train_once(config, tmp)
    assert result.exit_code == 0, result.stderr
    return Path(json.loads(result.stdout)["run_dir"])


def test_training_ends_with_a_per_class_report_confusion_matrix_and_mistakes(image_run):
    analysis = json.loads((image_run / "eval" / "test.json").read_text())
    report = analysis["per_class"]
    assert [row["class"] for row in report["classes"]] == CLASS_NAMES
    assert sum(row["support"] for row in report["classes"]) == 80 == report["macro"]["support"]
    matrix = np.array(analysis["confusion_matrix"])
    assert matrix.shape == (4, 4) and matrix.sum() == 80
    assert report["accuracy"] == pytest.approx(np.trace(matrix) / 80)
    assert report["accuracy"] == pytest.approx(analysis["metrics"]["accuracy"], abs=1e-6)  # the same predictions as Keras' metric
    # recall of each class is the confusion matrix's diagonal over its row
    for i, row in enumerate(report["classes"]):
        assert row["recall"] == pytest.approx(matrix[i, i] / matrix[i].sum())
    wrong = 80 - np.trace(matrix)
    assert len(analysis["mistakes"]) == min(wrong, 16)
    assert [m["probability"] for m in analysis["mistakes"]] == sorted((m["probability"] for m in analysis["mistakes"]), reverse=True)
    width, height = png_size(image_run / "plots" / "confusion_matrix_test.png")
    assert width > 1.5 * height  # counts and shares side by side
    if wrong:
        assert png_size(image_run / "plots" / "mistakes_test.png")[0] > 200


def test_eval_prints_the_per_class_table_and_writes_the_split(image_run, cli):
    code, out, err = cli("eval", image_run, "--split", "val")
    assert code == 0, err
    table = out.split("val: per class", 1)[1]
    assert all(name in table for name in CLASS_NAMES) and "macro average" in table
    saved = json.loads((image_run / "eval" / "val.json").read_text())
    assert sum(row["support"] for row in saved["per_class"]["classes"]) == saved["examples"]
    assert (image_run / "plots" / "confusion_matrix_val.png").exists()


def test_confusion_matrix_figure_names_classes_and_keeps_the_most_confused():
    from dlopt.analysis import plots

    names = [f"class {i}" for i in range(30)]
    matrix = np.diag(np.full(30, 50))
    matrix[3, 7] = matrix[7, 3] = 20  # the most confused pair
    for i in range(10, 28):
        matrix[i, i + 1] = 2
    fig = plots.confusion_matrix(matrix, names, "test")
    counts, shares = fig.axes[:2]  # then their colour bars
    shown = [t.get_text() for t in counts.get_xticklabels()]
    assert len(shown) == 20 and "class 3" in shown and "class 7" in shown and "class 0" not in shown
    assert [t.get_text() for t in counts.get_yticklabels()] == shown
    assert "20 most confused of 30" in fig._suptitle.get_text()
    assert (counts.get_xlabel(), counts.get_ylabel()) == ("predicted", "true")
    image = shares.get_images()[0].get_array()
    row = shown.index("class 3")
    assert image[row].sum() == pytest.approx(1.0)  # each true class's shares add up to one
    small = plots.confusion_matrix(np.array([[5, 1], [2, 7]]), ["cat", "dog"], "val")
    assert [t.get_text() for t in small.axes[0].texts] == ["5", "1", "2", "7"]


def test_mistakes_figure_shows_each_image_with_true_and_predicted_class():
    from dlopt.analysis import plots

    found = [{"input": np.full((8, 8, 1), i, dtype=np.float32), "truth": i % 2, "predicted": 1 - i % 2, "probability": 0.9 - i / 10} for i in range(5)]
    fig = plots.mistakes(found, ["cat", "dog"], "test")
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert len(shown) == 5 and shown[0].get_images()[0].get_array().shape == (8, 8)
    assert shown[0].get_title() == "true cat\npredicted dog (0.90)" and shown[1].get_title() == "true dog\npredicted cat (0.80)"
    assert fig._suptitle.get_text() == "most confident mistakes (test)"


def test_two_classes_add_roc_and_precision_recall(tmp_path):
    from dlopt.analysis import plots

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 200)
    scores = np.clip(truth * 0.6 + rng.normal(0.2, 0.25, 200), 0, 1)
    from sklearn.metrics import roc_auc_score

    areas, fig = plots.binary_curves(truth, scores, ["ham", "spam"], "test")
    assert areas["roc_auc"] == pytest.approx(roc_auc_score(truth, scores))
    roc, pr = fig.axes
    assert roc.get_title() == "ROC" and pr.get_title() == "precision-recall"
    assert roc.get_legend().get_texts()[0].get_text() == f"AUC {areas['roc_auc']:.3f}"
    assert "'spam' against 'ham'" in fig._suptitle.get_text()


def test_binary_run_writes_roc_pr(tmp_path, cli):
    folder = tmp_path / "idx"
    quadrant_idx_folder(folder)
    config = tiny_cnn_config(folder, train={"epochs": 2, "progress": "none", "loss": "binary_crossentropy"})
    config["data"]["class_names"] = ["no", "yes"]
    # two classes: the top row against the bottom row of the quadrant images
    from conftest import quadrant_images, write_idx

    for split, n, seed in (("train", 240, 1), ("t10k", 80, 2)):
        x, y = quadrant_images(n, seed=seed)
        write_idx(folder / f"{split}-images-idx3-ubyte", x)
        write_idx(folder / f"{split}-labels-idx1-ubyte", (y >= 2).astype(np.uint8))
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    analysis = json.loads((run / "eval" / "test.json").read_text())
    assert 0 <= analysis["roc_auc"] <= 1 and "roc_pr_test.png" in analysis["plots"]
    assert png_size(run / "plots" / "roc_pr_test.png")[0] > 400


def test_regression_plots_predicted_against_true(tmp_path, cli, regression_npz):
    config = {"name": "reg", "data": {"source": "npz", "path": str(regression_npz), "batch_size": 32}, "model": {"type": "mlp", "layers": [8]}, "train": {"epochs": 2, "progress": "none"}}
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    analysis = json.loads((run / "eval" / "test.json").read_text())
    assert analysis["plots"] == ["regression_test.png"] and analysis["residuals"]["std"] > 0
    from dlopt.analysis import plots

    fig = plots.regression(np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 2.0]), "test")
    scatter, histogram = fig.axes
    assert (scatter.get_xlabel(), scatter.get_ylabel()) == ("true", "predicted")
    assert "residuals (mean -0.167" in histogram.get_title()


def test_text_mistakes_are_a_table(tmp_path, cli):
    from test_sequences import text_config, write_reviews_folder

    texts = write_reviews_folder(tmp_path / "texts", train=30, test=20)
    config = {**text_config("text_folder", texts, {"type": "lstm", "units": [4], "embedding_dim": 4}), "train": {"epochs": 1, "progress": "none"}}
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    analysis = json.loads((run / "eval" / "test.json").read_text())
    if analysis["mistakes"]:  # one epoch of a 4-unit LSTM gets some wrong
        lines = (run / "eval" / "test_mistakes.csv").read_text().splitlines()
        assert lines[0] == "text,true,predicted,probability" and len(lines) == len(analysis["mistakes"]) + 1
        assert lines[1].split(",")[1] in ("neg", "pos")


def test_forecast_plot_over_the_test_part(tmp_path, cli):
    from test_sequences import write_trend_series

    path = write_trend_series(tmp_path / "s.csv", steps=200)
    config = {"data": {"source": "csv", "path": str(path), "timeseries": {"time_column": "t", "input_width": 24, "horizon": 3, "season": 12}}, "model": {"type": "mlp", "layers": []}, "train": {"epochs": 2, "progress": "none"}}
    code, out, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    assert png_size(run / "plots" / "forecast_test.png")[1] > 500  # two panels: 1 and 3 steps ahead
    from dlopt.analysis import plots
    from dlopt.data import build
    from dlopt.saved_models import load_run_model

    config, model, _ = load_run_model(run)
    data = build(config, roles=("test",), for_training=False)
    fig = plots.forecast(model, data.series, data.pipelines, "test")
    first, last = fig.axes
    assert (first.get_title(), last.get_title()) == ("1 step ahead", "3 steps ahead")
    labels = [t.get_text() for t in first.get_legend().get_texts()]
    assert labels[0] == "true" and labels[1].startswith("model (RMSE ") and any(l.startswith("seasonal naive + trend (RMSE") for l in labels)
    truth = first.get_lines()[0].get_ydata()
    assert truth.min() > 0.05 * 150  # the test part of the rising line, in its own units (not scaled)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_html_report_is_one_self_contained_page(image_run, cli, tmp_path):
    code, out, err = cli("report", image_run)
    assert code == 0, err
    page = Path(out.strip())
    assert page == image_run / "report.html"
    text = page.read_text()
    assert text.count("data:image/png;base64,") == len(list((image_run / "plots").glob("*.png"))) >= 3
    assert "src=\"http" not in text and "<script" not in text  # nothing fetched: opens offline
    for name in CLASS_NAMES:
        assert name in text
    target = tmp_path / "mine.html"
    target.write_text("mine")
    code, _, err = cli("report", image_run, "-o", target)
    assert code == 2 and "already exists" in err and target.read_text() == "mine"


@pytest.mark.skipif(chromium() is None, reason="no chromium here (apt-get install chromium): the page is not rendered in a browser")
def test_html_report_renders_in_a_headless_browser(image_run, cli, tmp_path):
    code, out, _ = cli("report", image_run)
    page = Path(out.strip())
    browser = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert "Per class (test)" in dom.stdout and "confusion matrix test" in dom.stdout, dom.stderr[-2000:]
    shot = tmp_path / "report.png"
    subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri()], capture_output=True, timeout=120)
    width, height = png_size(shot)
    assert (width, height) == (1200, 3000)
    # the page is drawn, not blank: many distinct colours (plots) in the screenshot
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1])[::97], axis=0)) > 50
