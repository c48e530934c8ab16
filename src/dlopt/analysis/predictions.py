"""One pass of a model over a split: true labels, predicted probabilities or values, and the
inputs of the examples most confidently wrong (kept as the pass goes, not the whole split)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KEPT_MISTAKES = 16


@dataclass
class Predictions:
    truth: np.ndarray  # class ids (n,), or target values (n, ...)
    outputs: np.ndarray  # class probabilities (n, classes), or predicted values (n, ...)
    mistakes: list[dict] = field(default_factory=list)  # most confident wrong first: input, truth, predicted, probability

    @property
    def predicted(self) -> np.ndarray:
        return self.outputs.argmax(axis=1)


def _class_ids(labels: np.ndarray, label_format: str) -> np.ndarray:
    if label_format == "onehot":
        return labels.argmax(axis=-1)
    return labels.reshape(-1).astype(np.int64)


def _probabilities(outputs: np.ndarray) -> np.ndarray:
    """A sigmoid's one column -> two columns (class 0, class 1)."""
    return np.concatenate([1 - outputs, outputs], axis=1) if outputs.shape[1] == 1 else outputs


def predict_split(model, dataset, label_format: str, progress=None) -> Predictions:
    """`progress`: a Keras callback told of each batch as a prediction pass (its on_predict_* hooks)."""
    truths, outputs, mistakes = [], [], []
    if progress is not None:
        progress.on_predict_begin()
    for batch, (x, y) in enumerate(dataset):
        if progress is not None:
            progress.on_predict_batch_end(batch)
        out = np.asarray(model(x, training=False), dtype=np.float64)
        y = y.numpy()
        if label_format == "value":
            truths.append(y)
            outputs.append(out.reshape(y.shape))
            continue
        probabilities = _probabilities(out.reshape(len(out), -1))
        truth = _class_ids(y, label_format)
        truths.append(truth)
        outputs.append(probabilities)
        predicted = probabilities.argmax(axis=1)
        wrong = np.flatnonzero(predicted != truth)
        if isinstance(x, dict):  # table rows: the report names the row only
            continue
        inputs = x.numpy()
        for i in wrong:
            mistakes.append({"input": inputs[i], "truth": int(truth[i]), "predicted": int(predicted[i]), "probability": float(probabilities[i, predicted[i]])})
        mistakes = sorted(mistakes, key=lambda m: -m["probability"])[:KEPT_MISTAKES]
    if progress is not None:
        progress.on_predict_end()
    return Predictions(np.concatenate(truths), np.concatenate(outputs), mistakes)
