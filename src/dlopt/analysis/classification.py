"""Per-class precision, recall, F1 and support (scikit-learn's metrics), the confusion matrix, the
most confident mistakes, and for two classes the ROC and precision-recall curves."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from . import plots
from .predictions import Predictions


def per_class(found: Predictions, class_names: list[str]) -> dict:
    """{"classes": [{class, precision, recall, f1, support}], "macro": {...}, "weighted": {...}, "accuracy"}."""
    from sklearn.metrics import classification_report

    labels = list(range(len(class_names)))
    table = classification_report(found.truth, found.predicted, labels=labels, target_names=class_names, output_dict=True, zero_division=0)
    row = lambda d: {"precision": d["precision"], "recall": d["recall"], "f1": d["f1-score"], "support": int(d["support"])}
    return {
        "classes": [{"class": name, **row(table[name])} for name in class_names],
        "macro": row(table["macro avg"]),
        "weighted": row(table["weighted avg"]),
        "accuracy": float(np.mean(found.truth == found.predicted)),
    }


def report(found: Predictions, class_names: list[str], folder: Path, split: str, eval_folder: Path) -> dict:
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(found.truth, found.predicted, labels=list(range(len(class_names))))
    written = [plots.save(plots.confusion_matrix(matrix, class_names, split), folder / f"confusion_matrix_{split}.png")]
    result = {"per_class": per_class(found, class_names), "confusion_matrix": matrix.tolist()}
    if found.mistakes and np.asarray(found.mistakes[0]["input"]).ndim == 3:  # images
        written.append(plots.save(plots.mistakes(found.mistakes, class_names, split), folder / f"mistakes_{split}.png"))
    elif found.mistakes and np.asarray(found.mistakes[0]["input"]).ndim == 0:  # text: a table to read
        eval_folder.mkdir(parents=True, exist_ok=True)
        path = eval_folder / f"{split}_mistakes.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "true", "predicted", "probability"])
            for m in found.mistakes:
                text = m["input"].decode("utf-8", "replace") if isinstance(m["input"], bytes) else str(m["input"])
                writer.writerow([text, class_names[m["truth"]], class_names[m["predicted"]], f"{m['probability']:.4f}"])
        result["mistakes_file"] = path.name
    result["mistakes"] = [{"true": class_names[m["truth"]], "predicted": class_names[m["predicted"]], "probability": m["probability"]} for m in found.mistakes]
    if len(class_names) == 2:
        curves, fig = plots.binary_curves(found.truth, found.outputs[:, 1], class_names, split)
        result.update(curves)
        written.append(plots.save(fig, folder / f"roc_pr_{split}.png"))
    result["plots"] = [p.name for p in written]
    return result
