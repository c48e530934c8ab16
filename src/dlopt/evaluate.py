"""`dlopt eval`: reload a finished run's saved model and evaluate it on one split."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from . import data as data_module
from . import runs
from .config import load_config
from .errors import ConfigError, RunFailed


def evaluate(run_dir: Path, split: str = "test", checkpoint: str = "best") -> dict:
    import keras

    from . import models
    from .objectives import build_loss, build_metrics

    if not (run_dir / "config.yaml").exists():
        raise ConfigError(f"{run_dir}: not a dlopt run folder (no config.yaml)")
    path = run_dir / "checkpoints" / f"{checkpoint}.keras"
    if not path.exists():
        raise ConfigError(f"{run_dir}: no {checkpoint} checkpoint ({path.name} is missing; did the run finish an epoch?)")
    config = load_config(run_dir / "config.yaml")
    models.register_builtins()  # dlopt's own saved layers (the transformer's position embedding)
    models.import_user_module(config.model.module)  # custom layers register themselves before loading
    data = data_module.build(config, roles=(split,), with_statistics=False, for_training=False)
    if split not in data.pipelines:
        raise ConfigError(f"--split: the run has no '{split}' split; it has: {', '.join(data.pipelines)}")
    try:
        # safe_mode: a model file cannot run arbitrary code (no Lambda deserialisation)
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        if "safe_mode" in str(exc):
            raise RunFailed(f"{path}: refused to load: it holds a Lambda layer (arbitrary Python code), and dlopt loads models in Keras safe mode") from None
        raise RunFailed(f"{path}: cannot load the model: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}") from None
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
