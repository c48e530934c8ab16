"""`dlopt eval`: reload a finished run's saved model and evaluate it on one split."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from . import data as data_module
from . import runs
from .errors import ConfigError
from .saved_models import load_run_model


def evaluate(run_dir: Path, split: str = "test", checkpoint: str = "best") -> dict:
    from .objectives import build_loss, build_metrics

    config, model, path = load_run_model(run_dir, checkpoint)
    data = data_module.build(config, roles=(split,), with_statistics=False, for_training=False)
    if split not in data.pipelines:
        raise ConfigError(f"--split: the run has no '{split}' split; it has: {', '.join(data.pipelines)}")
    model.compile(loss=build_loss(config.train, data.task, data.label_format), metrics=build_metrics(config.train, data.task, data.label_format))
    metrics = {k: float(v) for k, v in model.evaluate(data.pipelines[split], verbose=0, return_dict=True).items()}
    result = {
        "run_dir": str(run_dir),
        "status": "completed",
        "split": split,
        "split_read": data.split_names.get(split),
        "checkpoint": checkpoint,
        "examples": data.counts[split],
        "metrics": metrics,
        "evaluated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    runs.write_json(run_dir / "eval" / f"{split}.json", result)
    return result
