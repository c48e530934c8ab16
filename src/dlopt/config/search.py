"""The `search:` section (read by `dlopt tune` only; training ignores it): which keys to vary over
which ranges, and how to search. No Optuna here."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from .schema_base import PositiveFloat, PositiveInt, Section, field_error


TYPE_HELP = "`float` (low, high, log, step), `int` (low, high, step, log) or `categorical` (choices)."


class FloatRange(Section):
    type: Literal["float"] = Field(..., description=TYPE_HELP)
    low: float = Field(..., description="Smallest value.")
    high: float = Field(..., description="Largest value.")
    log: bool = Field(False, description="Sample on a log scale (learning rates, weight decay).")
    step: PositiveFloat | None = Field(None, description="Only multiples of `step` from `low` (needed by the grid sampler).")

    @model_validator(mode="after")
    def _consistent(self):
        _check_range(self.low, self.high, self.log, self.step, 1.0 if self.step is None else self.step)
        return self


class IntRange(Section):
    type: Literal["int"] = Field(..., description=TYPE_HELP)
    low: int = Field(..., description="Smallest value.")
    high: int = Field(..., description="Largest value.")
    step: PositiveInt = Field(1, description="Only `low`, `low + step`, ... up to `high`.")
    log: bool = Field(False, description="Sample on a log scale (layer widths); only with step 1.")

    @model_validator(mode="after")
    def _consistent(self):
        _check_range(self.low, self.high, self.log, self.step if self.step > 1 else None, self.step)
        return self


class Choices(Section):
    type: Literal["categorical"] = Field(..., description=TYPE_HELP)
    choices: list[Any] = Field(..., min_length=1, description="Any YAML values, e.g. whole `model.blocks` lists.")

    @model_validator(mode="after")
    def _distinct(self):
        labels = [choice_label(c) for c in self.choices]
        if len(set(labels)) != len(labels):
            raise field_error("choices", "the choices must differ from each other")
        return self


def _check_range(low, high, log, step, unit) -> None:
    if low > high:
        raise field_error("high", f"expected at least low ({low}), got {high}")
    if log and low <= 0:
        raise field_error("low", f"a log range needs low > 0, got {low}")
    if log and step is not None:
        raise field_error("step", "log: true and a step do not go together")
    if step is not None and not math.isclose(round((high - low) / unit) * unit, high - low, rel_tol=1e-9, abs_tol=1e-12):
        raise field_error("high", f"expected low plus a whole number of steps ({unit}), got {high}")


Param = Annotated[Union[FloatRange, IntRange, Choices], Field(discriminator="type")]


class SearchConfig(Section):
    params: dict[str, Param] = Field(..., min_length=1, description="Dotted config keys and the range each is searched over.")
    trials: PositiveInt = Field(20, description="Trials of the whole study (all workers together); running `dlopt tune` again continues up to this.")
    timeout: PositiveFloat | None = Field(None, description="Seconds after which this worker starts no new trial.")
    metric: str | None = Field(None, description="The epoch metric to optimise (its best epoch counts); default: checkpoint.monitor.")
    direction: Literal["auto", "maximize", "minimize"] = Field("auto", description="`auto`: maximize accuracies, AUC, F1; minimize losses and errors.")
    sampler: Literal["tpe", "random", "grid", "cmaes"] = Field("tpe", description="Optuna sampler; `grid` tries every combination (ranges need a step), `cmaes` samples numeric keys.")
    pruner: Literal["median", "hyperband", "none"] = Field("median", description="Stops hopeless trials early, judged on `metric` each epoch.")
    pruner_startup_trials: PositiveInt = Field(5, description="Trials that finish before the median pruner stops any.")
    pruner_warmup_epochs: Annotated[int, Field(ge=0)] = Field(1, description="Epochs every trial trains before it can be pruned.")
    seed: int | None = Field(None, description="Seeds the sampler (a single worker's study is then reproducible); leave unset with several workers.")
    retries: Annotated[int, Field(ge=0)] = Field(0, description="Times a trial whose worker died (kill -9, a lost machine) is run again with the same values.")
    heartbeat_seconds: PositiveInt = Field(60, description="How often a worker tells the storage it is alive; after twice this without a sign, its trial is failed.")

    @model_validator(mode="after")
    def _grid_needs_steps(self):
        if self.sampler == "grid":
            for key, param in self.params.items():
                if isinstance(param, FloatRange) and param.step is None:
                    raise field_error(f"params.{key}", "the grid sampler needs a step (or categorical choices) for a float range")
        return self


def choice_label(value) -> Any:
    """What Optuna stores for a categorical choice: scalars as they are, lists and mappings as JSON."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value, sort_keys=True)
