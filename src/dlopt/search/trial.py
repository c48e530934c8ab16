"""One trial of a search: its values sampled from the ranges, trained as an ordinary run whose
run.json names the study, the trial number and the values, reporting its metric after each epoch."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .spec import Choices, FloatRange, IntRange, Search, choice_label


def sample(trial, search: Search) -> dict:
    """The trial's value for each searched key (an enqueued or retried trial gets its fixed ones)."""
    values = {}
    for key, param in search.spec.params.items():
        if isinstance(param, FloatRange):
            values[key] = trial.suggest_float(key, param.low, param.high, log=param.log, step=param.step)
        elif isinstance(param, IntRange):
            values[key] = trial.suggest_int(key, param.low, param.high, step=param.step, log=param.log)
        else:
            values[key] = choice_value(param, trial.suggest_categorical(key, [choice_label(c) for c in param.choices]))
    return values


def choice_value(param: Choices, label):
    """The YAML value behind a categorical label Optuna stored."""
    return next(choice for choice in param.choices if choice_label(choice) == label)


def values_of(params: dict, search: Search) -> dict:
    """A finished trial's stored params as config values (lists and mappings decoded)."""
    return {key: choice_value(param, params[key]) if isinstance(param, Choices) else params[key] for key, param in search.spec.params.items() if key in params}


class TrialRun:
    """What train() needs from a trial: the run's name, what run.json records, the per-epoch
    report to Optuna (and the pruning decision), and the value the trial ends with."""

    def __init__(self, trial, study_name: str, storage: str, search: Search, values: dict, retry_of: int | None = None):
        self.trial, self.study_name, self.storage, self.values = trial, study_name, storage, values
        self.metric, self.direction = search.metric(), search.direction()
        self.run_name = f"{search.base.name}-trial{trial.number:03d}"
        self.retry_of = retry_of
        self.pruned: str | None = None  # why, once Optuna has pruned it

    def started(self, run_dir: Path) -> dict:
        """run.json's `search` entry; Optuna learns where the trial's run folder is."""
        self.trial.set_user_attr("run_dir", str(run_dir))
        self.trial.set_user_attr("trial", self.trial.number)
        return {
            "study": self.study_name,
            "storage": self.storage,
            "trial": self.trial.number,
            "params": self.values,
            "metric": self.metric,
            "direction": self.direction,
            **({"retry_of": self.retry_of} if self.retry_of is not None else {}),
        }

    def callback(self):
        import keras

        run = self

        class ReportToOptuna(keras.callbacks.Callback):
            """After each epoch: the metric to Optuna; stop training when Optuna prunes the trial."""

            def on_epoch_end(self, epoch, logs=None):
                value = (logs or {}).get(run.metric)
                if value is None or not math.isfinite(value):
                    return  # a NaN epoch fails the run; nothing to report
                run.trial.report(float(value), step=epoch + 1)
                if run.trial.should_prune():
                    run.pruned = f"pruned by the search after epoch {epoch + 1}: {run.metric} {value:.4g} is behind the other trials at this epoch"
                    self.model.stop_training = True

        return ReportToOptuna()

    def value(self, summary: dict) -> float:
        """The trial's result: the metric at its best epoch."""
        from ..runs import RunFolder, read_metrics
        from ..train import best_epoch

        rows = read_metrics(RunFolder(summary["run_dir"]).metrics)
        return best_epoch(rows, self.metric, "max" if self.direction == "maximize" else "min")["value"]


def describe(values: dict) -> str:
    """`learning_rate=0.0031, dropout=0.21, blocks=[{"filters":32}]`: the last part of each key,
    short numbers, lists and mappings whole as compact JSON (never cut: it is what to train)."""
    return ", ".join(f"{key.rsplit('.', 1)[-1]}={shown_value(value)}" for key, value in values.items())


def shown_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) else str(value)
