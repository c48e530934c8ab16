"""A finished run's saved model, loaded the one safe way (for eval, export, predict and plots)."""

from __future__ import annotations

import json
from pathlib import Path

from .config import load_config
from .errors import ConfigError, RunFailed
from .runs import RunFolder


def load_run_model(run_dir: Path, checkpoint: str = "best"):
    """(config, model, path) of `run_dir`'s checkpoint; config errors name the missing piece."""
    from . import runtime

    run = RunFolder(run_dir)
    if not run.config.exists():
        raise ConfigError(f"{run_dir}: not a dlopt run folder (no config.yaml)")
    path = run.checkpoint(checkpoint)
    if not path.exists():
        raise ConfigError(f"{run_dir}: no {checkpoint} checkpoint ({path.name} is missing; did the run finish an epoch?)")
    config = load_config(run.config)
    runtime.before_tensorflow(config.train)  # the same kernels as the training
    import keras

    from . import models

    models.register_builtins()  # dlopt's own saved layers (the transformer's position embedding)
    models.import_user_module(config.model.module)  # custom layers register themselves before loading
    try:
        # safe_mode: a model file cannot run arbitrary code (no Lambda deserialisation)
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        if "safe_mode" in str(exc):
            raise RunFailed(f"{path}: refused to load: it holds a Lambda layer (arbitrary Python code), and dlopt loads models in Keras safe mode") from None
        raise RunFailed(f"{path}: cannot load the model: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}") from None
    bad = models.non_finite_weights(model)
    if bad:  # such a model answers NaN, or worse a confident wrong class: never used
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise RunFailed(f"{path}: the model holds non-finite weights (NaN or infinite) in {bad[0]}{more}; it cannot give a right answer (retrain it)")
    return config, model, path


def run_summary(run_dir: Path) -> dict:
    """summary.json of a completed run, or {} (class names, metrics)."""
    path = RunFolder(run_dir).summary
    return json.loads(path.read_text()) if path.exists() else {}
