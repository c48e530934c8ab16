"""The `optimizer` and `schedule` sections: each optimizer and each schedule a config class
registered under its `type` (`OPTIMIZERS`, `SCHEDULES`), naming what it builds."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from ..registry import Registry
from .schema_base import Fraction, NonNegativeFloat, PositiveFloat, Section, field_error

OPTIMIZERS: Registry = Registry("optimizer")  # each builds a Keras optimizer from its own keys
SCHEDULES: Registry = Registry("schedule")  # each builds a keras.optimizers.schedules object (dlopt.optim)


class OptimizerBase(Section):
    learning_rate: PositiveFloat = Field(1e-3, description="Base learning rate (the peak, when a schedule warms up or decays).")
    clipnorm: Optional[PositiveFloat] = Field(None, description="Clip each gradient to this L2 norm.")
    clipvalue: Optional[PositiveFloat] = Field(None, description="Clip each gradient element to [-clipvalue, clipvalue].")
    global_clipnorm: Optional[PositiveFloat] = Field(None, description="Clip all gradients together to this global L2 norm.")
    weight_decay: Optional[NonNegativeFloat] = Field(None, description="Decoupled weight decay (AdamW default 0.004; unset elsewhere means none).")
    ema_momentum: Optional[Annotated[float, Field(gt=0, lt=1)]] = Field(
        None,
        description="Keep an exponential moving average of the weights (Polyak averaging), updated each step with this momentum (e.g. 0.999: about the last 1,000 steps). Validation, checkpoints, early stopping and the test use the averaged weights; training updates the raw ones. Batch norm's moving statistics stay those of the raw weights, so a momentum averaging far back (0.9998 and up) can score well below them. Unset: no average.",
    )

    @model_validator(mode="after")
    def _one_clipping(self):
        chosen = [k for k in ("clipnorm", "clipvalue", "global_clipnorm") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise field_error(chosen[1], f"set one of clipnorm, clipvalue, global_clipnorm, not {' and '.join(chosen)}")
        return self


@OPTIMIZERS.section
class Sgd(OptimizerBase):
    """Stochastic gradient descent (with `batch_size: full`, plain gradient descent)."""

    builds = "keras.optimizers:SGD"
    type: Literal["sgd"] = Field(..., description="Optimizer (see below).")
    learning_rate: PositiveFloat = 0.01
    momentum: Annotated[float, Field(ge=0, lt=1)] = Field(0.0, description="Momentum (`sgd`, `rmsprop`).")
    nesterov: bool = Field(False, description="Nesterov momentum (`sgd`).")


@OPTIMIZERS.section
class Adagrad(OptimizerBase):
    builds = "keras.optimizers:Adagrad"
    type: Literal["adagrad"]
    initial_accumulator_value: NonNegativeFloat = Field(0.1, description="Starting value of the squared-gradient accumulators (`adagrad`).")
    epsilon: PositiveFloat = Field(1e-7, description="Numerical-stability constant (`adagrad`, `rmsprop`, `adam`, `adamw`).")


@OPTIMIZERS.section
class Rmsprop(OptimizerBase):
    builds = "keras.optimizers:RMSprop"
    type: Literal["rmsprop"]
    rho: Fraction = Field(0.9, description="Discount of the squared-gradient average (`rmsprop`).")
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    epsilon: PositiveFloat = 1e-7
    centered: bool = Field(False, description="Normalise by the gradient's estimated variance (`rmsprop`).")


@OPTIMIZERS.section
class Adam(OptimizerBase):
    builds = "keras.optimizers:Adam"
    type: Literal["adam"]
    beta_1: Fraction = Field(0.9, description="First-moment decay (`adam`, `adamw`).")
    beta_2: Fraction = Field(0.999, description="Second-moment decay (`adam`, `adamw`).")
    epsilon: PositiveFloat = 1e-7
    amsgrad: bool = Field(False, description="Use the AMSGrad variant (`adam`, `adamw`).")


@OPTIMIZERS.section
class AdamW(Adam):
    builds = "keras.optimizers:AdamW"
    type: Literal["adamw"]
    weight_decay: Optional[NonNegativeFloat] = 0.004


OptimizerConfig = OPTIMIZERS.union()
Sgd.model_fields["type"].description = f"Optimizer: {OPTIMIZERS.listed()}."


class ScheduleBase(Section):
    warmup_epochs: NonNegativeFloat = Field(0.0, description="Linear warm-up from `warmup_start` to the base learning rate over this many epochs (fractions allowed), before any schedule.")
    warmup_start: NonNegativeFloat = Field(0.0, description="Learning rate at the first warm-up step.")


@SCHEDULES.section
class Constant(ScheduleBase):
    builds = "dlopt.optim:constant_schedule"
    type: Literal["constant"] = Field(..., description="Schedule (see below).")


@SCHEDULES.section
class Exponential(ScheduleBase):
    builds = "dlopt.optim:exponential_schedule"
    type: Literal["exponential"]
    decay_rate: Annotated[float, Field(gt=0, lt=1)] = Field(0.9, description="Multiply the rate by this every `decay_epochs` (`exponential`).")
    decay_epochs: PositiveFloat = Field(1.0, description="Epochs per decay period (`exponential`); for `cosine`, the length of the decay (unset: the rest of training; with restarts, the first period).")
    staircase: bool = Field(False, description="Decay in steps at whole periods instead of smoothly (`exponential`).")


@SCHEDULES.section
class Step(ScheduleBase):
    """Piecewise-constant: the rate changes at the given epochs."""

    builds = "dlopt.optim:step_schedule"
    type: Literal["step"]
    boundaries: list[PositiveFloat] = Field(..., description="Epochs at which the rate changes (`step`), increasing.")
    values: Optional[list[PositiveFloat]] = Field(None, description="Rates for each piece, one more than `boundaries` (`step`); unset: base rate times `factor` per boundary.")
    factor: Annotated[float, Field(gt=0)] = Field(0.1, description="Multiplier at each boundary when `values` is unset (`step`); for `plateau`, the reduction factor.")

    @model_validator(mode="after")
    def _consistent(self):
        if any(b >= a for b, a in zip(self.boundaries, self.boundaries[1:])) or not self.boundaries:
            raise field_error("boundaries", f"expected a non-empty increasing list of epochs, got {self.boundaries}")
        if self.values is not None and len(self.values) != len(self.boundaries) + 1:
            raise field_error("values", f"expected {len(self.boundaries) + 1} values (one more than boundaries), got {len(self.values)}")
        return self


@SCHEDULES.section
class Cosine(ScheduleBase):
    builds = "dlopt.optim:cosine_schedule"
    type: Literal["cosine"]
    decay_epochs: Optional[PositiveFloat] = None
    alpha: Fraction = Field(0.0, description="Final rate as a fraction of the base rate (`cosine`).")
    restarts: bool = Field(False, description="Warm restarts (SGDR) (`cosine`).")
    t_mul: PositiveFloat = Field(2.0, description="Each restart period is this many times longer (`cosine` with restarts).")
    m_mul: PositiveFloat = Field(1.0, description="Each restart starts at this fraction of the previous peak (`cosine` with restarts).")


@SCHEDULES.section
class Plateau(ScheduleBase):
    """Reduce the rate when a monitored metric stops improving (Keras ReduceLROnPlateau)."""

    builds = "dlopt.optim:plateau_schedule"
    type: Literal["plateau"]
    monitor: str = Field("val_loss", description="Metric watched (`plateau`).")
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.1
    patience: Annotated[int, Field(ge=0)] = Field(3, description="Epochs without improvement before reducing (`plateau`).")
    min_delta: NonNegativeFloat = Field(1e-4, description="Smallest change that counts as improvement (`plateau`).")
    min_lr: NonNegativeFloat = Field(0.0, description="Lower bound on the rate (`plateau`).")
    cooldown: Annotated[int, Field(ge=0)] = Field(0, description="Epochs to wait after a reduction (`plateau`).")


ScheduleConfig = SCHEDULES.union()
Constant.model_fields["type"].description = f"Schedule: {SCHEDULES.listed()}."
