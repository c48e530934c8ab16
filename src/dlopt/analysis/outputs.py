"""Several outputs (`data.table.outputs`): each output's report, as a model of that output alone
would have it. Categories and binary outputs: the per-class report, confusion matrix (and for two
classes ROC and precision-recall curves); numbers: residuals and the predicted-against-true plot;
multi-label outputs: precision, recall and F1 per label at 0.5. Plots are named
`<plot>_<split>_<output>.png`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import classification, regression
from .predictions import Predictions


def predict_outputs(model, dataset, progress=None) -> tuple[dict, dict]:
    """One pass over a split: (truth, outputs), each a dict of arrays by output name."""
    truths: dict[str, list] = {}
    outputs: dict[str, list] = {}
    if progress is not None:
        progress.on_predict_begin()
    for batch, (x, y) in enumerate(dataset):
        if progress is not None:
            progress.on_predict_batch_end(batch)
        predicted = model(x, training=False)
        for name, value in y.items():
            truths.setdefault(name, []).append(value.numpy())
            outputs.setdefault(name, []).append(np.asarray(predicted[name], dtype=np.float64))
    if progress is not None:
        progress.on_predict_end()
    return {n: np.concatenate(v) for n, v in truths.items()}, {n: np.concatenate(v) for n, v in outputs.items()}


def report(model, outputs: list, dataset, folder: Path, split: str, eval_folder: Path, progress=None) -> dict:
    """{"outputs": {name: that output's report}, "plots": every output's} for eval/<split>.json."""
    truths, predicted = predict_outputs(model, dataset, progress)
    reports = {}
    for output in outputs:
        truth, out = truths[output.name], predicted[output.name]
        where = f"{split}_{output.name}"
        if output.kind == "number":
            reports[output.name] = regression.report(Predictions(truth.reshape(-1), out.reshape(-1)), folder, where)
        elif output.kind == "multi_label":
            reports[output.name] = per_label(truth, out, output.values)
        else:
            ids = truth.argmax(axis=1) if truth.ndim == 2 and truth.shape[1] > 1 else truth.reshape(-1).astype(np.int64)
            probabilities = np.concatenate([1 - out, out], axis=1) if out.shape[1] == 1 else out
            reports[output.name] = classification.report(Predictions(ids, probabilities), output.values, folder, where, eval_folder)
        reports[output.name] = {"type": output.kind, "column": output.column, **reports[output.name]}
    return {"outputs": reports, "plots": [name for r in reports.values() for name in r.get("plots", [])]}


def per_label(truth: np.ndarray, scores: np.ndarray, labels: list[str]) -> dict:
    """Several labels per example, each predicted at score >= 0.5: per label precision, recall, F1
    and support, their macro and weighted averages, and the share of examples whose labels are all right."""
    from sklearn.metrics import classification_report

    predicted = (scores >= 0.5).astype(np.int64)
    table = classification_report(truth.astype(np.int64), predicted, labels=list(range(len(labels))), target_names=labels, output_dict=True, zero_division=0)
    row = lambda d: {"precision": d["precision"], "recall": d["recall"], "f1": d["f1-score"], "support": int(d["support"])}  # noqa: E731
    return {
        "per_class": {
            "classes": [{"class": name, **row(table[name])} for name in labels],
            "macro": row(table["macro avg"]),
            "weighted": row(table["weighted avg"]),
            "accuracy": float(np.mean(np.all(predicted == truth, axis=1))),  # every label of the example right
        },
    }
