"""Scoring a model on one split, the one way both training (its test split) and `dlopt eval` do it:
metrics (with test-time augmentation views, and one view beside them), then the per-class report,
confusion matrix, mistakes and plots; progress shown, so a long test is never silent."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import data as data_module
from .data.timeseries import forecast_report
from . import runs, tta
from .errors import ConfigError
from .runs import RunFolder
from .saved_models import load_run_model


@dataclass
class SplitResult:
    metrics: dict  # with the views, when there are views
    single_view: dict | None  # one view, when there are views
    analysis: dict  # per-class report, confusion matrix, mistakes, plots (see analysis.analyse)


def evaluate_split(model, data, split: str, run_dir: Path, views=(), progress: str = "auto", strategy=None) -> SplitResult:
    """`model` on `data`'s `split`: metrics and analysis (plots into the run folder). A model not
    compiled yet (loaded from a checkpoint) is compiled with the data's objective; `strategy`: the
    distribution strategy the model was built under."""
    from .analysis import analyse
    from .callbacks.progress import TestProgress

    objective = data.objective
    dataset = data.pipelines[split]
    steps = int(dataset.cardinality())
    steps = steps if steps > 0 else None  # unknown (-2) or infinite (-1): the bar counts without a total
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:  # the views model shares the (possibly mirrored) layers
        if not getattr(model, "compiled", False):
            model.compile(loss=objective.loss(), loss_weights=objective.loss_weights(), metrics=objective.metrics())
        shown = TestProgress(f"{split}: scoring {data.counts[split]:,} examples" + (f" x {len(views) + 1} views" if views else ""), steps, progress)
        metrics, single_view = tta.evaluate(model, dataset, list(views), objective.loss(), objective.metrics(), callbacks=[shown])  # the views model gets metric objects of its own
    analysis = analyse(model, data, split, run_dir, views, TestProgress(f"{split}: per-class report and mistakes", steps, progress))
    return SplitResult(metrics, single_view, analysis)


def evaluate(run_dir: Path, split: str = "test", checkpoint: str = "best", views: list[str] | None = None, progress: str = "auto") -> dict:
    """`dlopt eval`: metrics of the run's saved model on `split`, written to eval/<split>.json;
    `views`: test-time augmentation views (None: the run's `data.tta`, [] none), with single-view
    metrics beside them when there are views."""
    config, model, path = load_run_model(run_dir, checkpoint)
    data = data_module.build(config, roles=(split,), with_statistics=False, for_training=False)
    if split not in data.pipelines:
        raise ConfigError(f"--split: the run has no '{split}' split; it has: {', '.join(data.pipelines)}")
    if views is None:
        views = list(config.data.tta)
    else:
        tta.check(views, data.input_shape, data.task, where="--tta")
    scored = evaluate_split(model, data, split, run_dir, views, progress)
    result = {
        "run_dir": str(run_dir),
        "status": "completed",
        "split": split,
        "split_read": data.split_names.get(split),
        "checkpoint": checkpoint,
        "examples": data.counts[split],
        **({"class_names": data.class_names} if data.class_names else {}),
        **({"outputs": [output.describe() for output in data.outputs]} if data.outputs else {}),
        "metrics": scored.metrics,
        **({"metrics_single_view": scored.single_view, "tta": views} if scored.single_view else {}),
        **scored.analysis,
        **({"forecast": forecast_report(model, data.series, config.data.timeseries)} if data.series is not None and split == "test" else {}),  # as training reports it
        "evaluated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    runs.write_json(RunFolder(run_dir).eval_file(split), result)
    return result
