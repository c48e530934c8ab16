"""`dlopt eval`: reload a finished run's saved model and evaluate it on one split."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from . import data as data_module
from . import runs, tta
from .errors import ConfigError
from .saved_models import load_run_model


def evaluate(run_dir: Path, split: str = "test", checkpoint: str = "best", views: list[str] | None = None) -> dict:
    """Metrics of the run's model on `split`; `views`: test-time augmentation views (None: the run's
    `data.tta`, [] none), with single-view metrics beside them when there are views."""
    from .objectives import build_loss, build_metrics

    config, model, path = load_run_model(run_dir, checkpoint)
    data = data_module.build(config, roles=(split,), with_statistics=False, for_training=False)
    if split not in data.pipelines:
        raise ConfigError(f"--split: the run has no '{split}' split; it has: {', '.join(data.pipelines)}")
    if views is None:
        views = list(config.data.tta)
    else:
        tta.check(views, data.input_shape, data.task, where="--tta")
    loss = build_loss(config.train, data.task, data.label_format)
    model.compile(loss=loss, metrics=build_metrics(config.train, data.task, data.label_format, data.series))
    # the views model gets metric objects of its own
    with_views, single_view = tta.evaluate(model, data.pipelines[split], views, loss, build_metrics(config.train, data.task, data.label_format, data.series))
    from .analysis import analyse

    analysis = analyse(model, data, split, run_dir, views)
    result = {
        "run_dir": str(run_dir),
        "status": "completed",
        "split": split,
        "split_read": data.split_names.get(split),
        "checkpoint": checkpoint,
        "examples": data.counts[split],
        **({"class_names": data.class_names} if data.class_names else {}),
        "metrics": with_views,
        **({"metrics_single_view": single_view, "tta": views} if single_view else {}),
        **analysis,
        "evaluated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    runs.write_json(run_dir / "eval" / f"{split}.json", result)
    return result
