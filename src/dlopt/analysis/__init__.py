"""What a model gets right and wrong on one split, in numbers and pictures: a per-class report and
confusion matrix, the most confident mistakes, ROC and precision-recall curves for two classes,
predicted against true values for regression, the forecast drawn over a time series, and each
of several outputs' own report (outputs.py).

`analyse` runs after training (the test split) and for `dlopt eval`; it reads nothing but the
model and the split, and writes `RUN/plots/*_<split>.png` (and `eval/<split>_mistakes.csv` for text).
"""

from __future__ import annotations

from pathlib import Path

from . import classification, plots, regression
from .predictions import predict_split


def analyse(model, data, split: str, run_dir: Path, views=(), progress=None) -> dict:
    """The split's analysis as a JSON-able dict; plots written into `run_dir/plots/`. `progress`:
    a callback shown the prediction pass."""
    from .. import tta
    from ..runs import RunFolder

    run = RunFolder(run_dir)
    folder = run.plots
    if data.outputs is not None:  # several outputs: a report per output
        from . import outputs

        return outputs.report(model, data.outputs, data.pipelines[split], folder, split, run.eval, progress)
    found = predict_split(tta.wrap(model, list(views)), data.pipelines[split], data.label_format, progress)
    if data.series is not None:
        return {"plots": [plots.save(plots.forecast(model, data.series, data.pipelines, split), folder / f"forecast_{split}.png").name]}
    if data.task == "regression":
        return regression.report(found, folder, split)
    return classification.report(found, data.class_names or [str(i) for i in range(data.num_classes)], folder, split, run.eval)
