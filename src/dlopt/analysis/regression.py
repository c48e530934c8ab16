"""Regression: error summary and the predicted-against-true and residual plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import plots
from .predictions import Predictions


def report(found: Predictions, folder: Path, split: str) -> dict:
    truth, predicted = found.truth.reshape(-1), found.outputs.reshape(-1)
    residuals = predicted - truth
    path = plots.save(plots.regression(truth, predicted, split), folder / f"regression_{split}.png")
    return {
        "residuals": {"mean": float(residuals.mean()), "std": float(residuals.std()), "max_abs": float(np.abs(residuals).max())},
        "plots": [path.name],
    }
