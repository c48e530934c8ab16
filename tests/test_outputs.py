"""Several outputs from one table (`data.table.outputs`): a category, a number, a binary and a
multi-label column predicted by one mixed model, each with its loss, metrics, weight and report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_config

KINDS = ("a", "b", "c")
WORDS = {"a": ["apple", "cherry"], "b": ["cloud", "rain"], "c": ["grass", "leaf"]}


def outputs_csv(path: Path, n: int = 360, seed: int = 0) -> Path:
    """Inputs: a description (naming the kind), a size and a colour. Outputs: the kind (category),
    a price (a number: 3 x size, plus 1 for red), big (binary: size > 0) and labels (several per
    row: the kind's word and `warm` for red rows)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        kind = KINDS[i % 3]
        size = rng.normal(0, 1)
        colour = str(rng.choice(["red", "green"]))
        labels = [f"is_{kind}"] + (["warm"] if colour == "red" else [])
        rows.append(
            {
                "description": " ".join([*rng.choice(WORDS[kind], 2), *rng.choice(["the", "of", "some"], 2)]),
                "size": f"{size:.3f}",
                "colour": colour,
                "kind": kind,
                "price": f"{3 * size + (colour == 'red') + rng.normal(0, 0.05):.3f}",
                "big": "yes" if size > 0 else "no",
                "labels": " ".join(labels),
            }
        )
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


OUTPUTS = [
    {"column": "kind"},
    {"column": "price", "weight": 0.5, "metrics": ["mae"]},
    {"column": "big", "metrics": ["accuracy", "auc"]},
    {"column": "labels", "type": "multi_label"},
]


def outputs_config(path: Path, outputs=OUTPUTS, **train) -> dict:
    return {
        "name": "outputs",
        "seed": 3,
        "data": {
            "source": "csv",
            "path": str(path),
            "splits": {"train": "all[:80%]", "test": "all[80%:]"},
            "batch_size": 16,
            "text": {"max_tokens": 40, "sequence_length": 6},
            "table": {"outputs": outputs},
        },
        "model": {"type": "mixed", "layers": [32], "text": {"type": "fasttext", "embedding_dim": 8}},
        "optimizer": {"type": "adam", "learning_rate": 0.02},
        "train": {"epochs": 15, "progress": "lines", **train},
        "checkpoint": {"monitor": "val_kind_accuracy"},
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One run of the four outputs: (run folder, --json summary, the training's stderr)."""
    from click.testing import CliRunner

    from dlopt.cli import main

    tmp = tmp_path_factory.mktemp("outputs")
    config = write_config(tmp / "c.yaml", outputs_config(outputs_csv(tmp / "things.csv")))
    result = CliRunner().invoke(main, ["train", str(config), "--runs-dir", str(tmp / "runs"), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return Path(json.loads(result.stdout)["run_dir"]), json.loads(result.stdout), result.stderr


def test_each_output_is_read_learnt_and_logged_with_its_own_loss_metrics_and_weight(trained):
    run, summary, err = trained
    for line in ("  kind: output (data.table.outputs)", "  kind: category (3 values), sparse_categorical_crossentropy, weight 1", "  price: number, mse, weight 0.5", "  big: binary, binary_crossentropy, weight 1", "  labels: multi_label (4 values), binary_crossentropy, weight 1"):
        assert line in err
    test = summary["test"]
    assert test["kind_accuracy"] >= 0.95  # the description names the kind
    assert test["price_mae"] < 0.6  # 3 x size (+1 when red): predicting the mean would miss by ~2.5
    assert test["big_accuracy"] >= 0.85 and test["big_auc"] >= 0.95
    assert test["labels_accuracy"] >= 0.9  # per (row, label): is_a/is_b/is_c from the text, warm from the colour
    assert summary["best"]["monitor"] == "val_kind_accuracy"
    with open(run / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {"val_kind_accuracy", "val_price_mae", "val_big_auc", "val_labels_accuracy", "val_price_loss"} <= set(rows[0])
    # the loss trained on is the weighted sum of the outputs' losses (in one batch: Keras averages
    # the per-output losses over batches apart from the total)
    from dlopt import data as data_module
    from dlopt.saved_models import load_run_model

    config, model, _ = load_run_model(run, "best")
    data = data_module.build(config, roles=("test",), with_statistics=False, for_training=False)
    model.compile(loss=data.objective.loss(), loss_weights=data.objective.loss_weights(), metrics=data.objective.metrics())
    x, y = next(iter(data.pipelines["test"].unbatch().batch(1000)))
    scored = model.evaluate(x, y, batch_size=1000, return_dict=True, verbose=0)
    assert scored["loss"] == pytest.approx(scored["kind_loss"] + 0.5 * scored["price_loss"] + scored["big_loss"] + scored["labels_loss"], rel=1e-5)
    assert scored["price_loss"] > 0.01  # the weight is not hidden by a vanishing loss
    recorded = json.loads((run / "summary.json").read_text())
    described = {o["name"]: o for o in recorded["outputs"]}
    assert described["big"]["values"] == ["no", "yes"] and described["labels"]["values"] == ["is_a", "is_b", "is_c", "warm"]
    assert described["price"]["type"] == "number" and "values" not in described["price"]


def test_eval_and_the_report_cover_every_output(trained, cli):
    run, _, _ = trained
    summary = json.loads((run / "summary.json").read_text())
    tested = json.loads((run / "eval" / "test.json").read_text())["outputs"]
    assert [c["class"] for c in tested["kind"]["per_class"]["classes"]] == ["a", "b", "c"]
    assert np.array(tested["kind"]["confusion_matrix"]).sum() == summary["examples"]["test"]
    assert tested["big"]["roc_auc"] == pytest.approx(summary["test"]["big_auc"], abs=0.02)
    assert tested["price"]["residuals"]["max_abs"] > 0 and [c["class"] for c in tested["labels"]["per_class"]["classes"]] == ["is_a", "is_b", "is_c", "warm"]
    plots = {p.name for p in (run / "plots").glob("*.png")}
    assert {"confusion_matrix_test_kind.png", "confusion_matrix_test_big.png", "roc_pr_test_big.png", "regression_test_price.png"} <= plots
    code, out, err = cli("eval", run, "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["metrics"]["kind_accuracy"] == pytest.approx(summary["test"]["kind_accuracy"])
    assert again["metrics"]["price_mae"] == pytest.approx(summary["test"]["price_mae"], rel=1e-4)
    code, out, err = cli("eval", run)
    assert code == 0 and "test kind: per class" in out and "test labels: per class" in out
    code, out, err = cli("report", run, "-o", run / "page.html")
    assert code == 0, err
    page = (run / "page.html").read_text()
    for heading in ("Output kind (category, test): per class", "Output price (number, test): residuals", "Output labels (multi_label, test): per label", "regression test price"):
        assert heading in page


def test_predict_serve_export_and_mlflow_answer_each_output(trained, cli, tmp_path):
    run, _, _ = trained
    rows = ['{"description": "rain cloud", "size": 1.5, "colour": "red"}', '{"description": "apple the", "size": -1, "colour": "green"}']
    code, out, err = cli("predict", run, *rows, "--json")
    assert code == 0, err
    first, second = (p["outputs"] for p in json.loads(out))
    assert (first["kind"]["name"], second["kind"]["name"]) == ("b", "a")
    assert first["price"]["values"][0] == pytest.approx(5.5, abs=1.0) and second["price"]["values"][0] == pytest.approx(-3.0, abs=1.0)
    assert (first["big"]["name"], second["big"]["name"]) == ("yes", "no")
    assert set(first["labels"]["labels"]) == {"is_b", "warm"} and second["labels"]["labels"] == ["is_a"]
    code, out, err = cli("predict", run, *rows)
    assert code == 0 and "price" in out and "is_b" in out

    code, out, err = cli("export", run, "--format", "saved_model", "-o", tmp_path / "saved")
    assert code == 0, err
    import tensorflow as tf

    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    served = loaded.serve({"description": tf.constant([["leaf grass"]]), "size": tf.constant([[0.5]]), "colour": tf.constant([["green"]])})
    assert set(served) == {"kind", "price", "big", "labels"} and int(np.argmax(served["kind"].numpy())) == 2

    mlflow = pytest.importorskip("mlflow", reason="pip install mlflow (the test extra) for the MLflow model")
    import pandas as pd

    from dlopt.tracking.mlflow_model import save_run_model

    answered = mlflow.pyfunc.load_model(str(save_run_model(run, tmp_path / "pyfunc"))).predict(pd.DataFrame([json.loads(rows[0])]))
    assert answered[0]["outputs"]["kind"]["name"] == "b" and answered[0]["outputs"]["price"]["values"][0] == pytest.approx(first["price"]["values"][0], abs=1e-4)


def test_a_served_model_answers_each_output(trained):
    httpx = pytest.importorskip("httpx", reason="pip install httpx (the test extra) for the served-model tests")
    pytest.importorskip("starlette", reason="pip install 'dlopt[serve]' for the served-model tests")
    from test_serve import serving

    run, _, _ = trained
    with serving(run) as url:
        reply = httpx.post(f"{url}/v1/models/outputs:predict", json={"instances": [{"description": "grass leaf", "size": 2.0, "colour": "red"}]}, timeout=30)
        assert reply.status_code == 200, reply.text
        answer = reply.json()["predictions"][0]["outputs"]
        assert answer["kind"]["name"] == "c" and answer["big"]["name"] == "yes" and "warm" in answer["labels"]["labels"]
        status = httpx.get(f"{url}/v1/models/outputs", timeout=30).json()
        assert [o["name"] for o in status["signature"]["outputs"]["outputs"]] == ["kind", "price", "big", "labels"]


def test_compare_and_tune_read_an_output_metric(trained, cli, tmp_path):
    run, summary, _ = trained
    code, out, err = cli("compare", run.parent, "--json")
    assert code == 0, err
    assert json.loads(out)[0]["test_kind_accuracy"] == pytest.approx(summary["test"]["kind_accuracy"])
    config = outputs_config(outputs_csv(tmp_path / "things.csv", n=150), epochs=2)
    config["search"] = {"trials": 2, "sampler": "grid", "pruner": "none", "metric": "val_price_mae", "params": {"model.combiner": {"type": "categorical", "choices": ["concat", "transformer"]}}}
    config["model"].update({"token_width": 8, "heads": 2, "depth": 1})
    code, out, err = cli("tune", write_config(tmp_path / "t.yaml", config), "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    study = json.loads(out)
    assert study["direction"] == "minimize" and study["trials"] == {"complete": 2}
    best = json.loads((Path(study["best"]["run_dir"]) / "summary.json").read_text())
    assert study["best"]["value"] == pytest.approx(min(r["val_price_mae"] for r in _rows(Path(study["best"]["run_dir"]))))
    assert best["outputs"][1]["name"] == "price"


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as handle:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(handle)]


@pytest.mark.parametrize(
    "change, key, message",
    [
        ({"model": {"type": "mlp", "layers": [8]}}, "data.table.outputs", "several outputs are for model.type mixed, not mlp"),
        ({"train": {"loss": "mse"}}, "train.loss", "each output names its own loss"),
        ({"data": {"table": {"outputs": OUTPUTS, "label_column": "kind"}}}, "data.table.label_column", "not both"),
        ({"data": {"table": {"outputs": [{"column": "kind"}, {"column": "kind"}]}}}, "data.table.outputs", "'kind' is predicted twice"),
        ({"data": {"table": {"outputs": [{"column": "kind", "weight": -1}]}}}, "data.table.outputs[0].weight", "greater than or equal to 0"),
        ({"data": {"table": {"outputs": [{"column": "kind", "type": "colour"}]}}}, "data.table.outputs[0].type", "expected one of auto, category, binary, number, multi_label, got 'colour'"),
        ({"data": {"table": {"outputs": OUTPUTS, "set_columns": ["labels"]}}}, "data.table.set_columns", "'labels' is an output, not a feature"),
    ],
)
def test_output_mistakes_are_config_errors_with_file_and_line(tmp_path, cli, change, key, message):
    config = outputs_config(outputs_csv(tmp_path / "things.csv", n=30))
    for section, values in change.items():
        config[section] = {**config[section], **values} if section != "data" else {**config["data"], "table": values["table"]}
    path = write_config(tmp_path / "c.yaml", config)
    code, _, err = cli("train", path, "--runs-dir", tmp_path / "runs")
    assert code == 2 and f"{path}:" in err and f"{key}: " in err and message in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "outputs, message",
    [
        ([{"column": "kind", "type": "binary"}], "data.table.outputs[0].type: binary needs two values; the training split's 'kind' has 3"),
        ([{"column": "kind"}, {"column": "labels", "type": "multi_label", "loss": "mse"}], "data.table.outputs[1].loss: 'mse' does not fit several labels per example"),
        ([{"column": "price", "metrics": ["accuracy"]}], "data.table.outputs[0].metrics: 'accuracy' does not apply to regression data"),
        ([{"column": "price", "type": "category"}, {"column": "nothing"}], "data.table.outputs: "),
        ([{"column": "description", "type": "number"}], "the train split's 'description' holds"),
    ],
)
def test_outputs_that_do_not_fit_their_data_stop_the_run_in_one_line(tmp_path, cli, outputs, message):
    config = outputs_config(outputs_csv(tmp_path / "things.csv", n=60), outputs=outputs)
    config["checkpoint"] = {"monitor": "val_loss"}
    code, _, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code != 0 and message in err and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if line.startswith("error")]) == 1


def test_a_category_the_training_split_never_has_is_named(tmp_path, cli):
    lines = outputs_csv(tmp_path / "things.csv", n=60).read_text().splitlines()
    folder = tmp_path / "splits"
    folder.mkdir()
    (folder / "train.csv").write_text("\n".join(lines[:49]) + "\n")
    last = lines[-1].split(",")
    (folder / "test.csv").write_text("\n".join([lines[0], *lines[49:-1], ",".join(last[:3] + ["z"] + last[4:])]) + "\n")
    config = outputs_config(folder, outputs=[{"column": "kind"}])
    config["data"]["splits"] = {"train": "train", "test": "test"}
    config["checkpoint"] = {"monitor": "val_accuracy"}
    code, _, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code != 0 and "the test split's 'kind' has value 'z', which the training split never has (its values: a, b, c)" in err, err
