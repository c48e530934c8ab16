"""Optimizers and learning-rate schedules from the config, on keras.optimizers(.schedules).

Schedules are written in epochs in the config and turned into steps here. Warm-up runs first;
the configured schedule starts when it ends.
"""

from __future__ import annotations

import keras

from .config.optim import OPTIMIZERS, OptimizerBase
from .config.schema import Config
from .registry import load_attribute
from .objectives import monitor_mode

@keras.saving.register_keras_serializable(package="dlopt")
class Warmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from `start` to `target` over `warmup_steps`, then `after` (or constant `target`)."""

    def __init__(self, warmup_steps: int, start: float, target: float, after=None):
        self.warmup_steps = int(warmup_steps)
        self.start = float(start)
        self.target = float(target)
        self.after = after

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warm = self.start + (self.target - self.start) * step / max(self.warmup_steps, 1)
        rest = self.after(ops.maximum(step - self.warmup_steps, 0.0)) if self.after is not None else self.target
        return ops.where(step < self.warmup_steps, warm, ops.cast(rest, "float32"))

    def get_config(self):
        after = keras.optimizers.schedules.serialize(self.after) if self.after is not None else None
        return {"warmup_steps": self.warmup_steps, "start": self.start, "target": self.target, "after": after}

    @classmethod
    def from_config(cls, config):
        after = config.get("after")
        config = {**config, "after": keras.optimizers.schedules.deserialize(after) if after else None}
        return cls(**config)


def build_schedule(config: Config, steps_per_epoch: int):
    """A float or a LearningRateSchedule; for `plateau`, a float the plateau callback lowers."""
    s = config.schedule
    base = config.optimizer.learning_rate
    warmup_steps = round(s.warmup_epochs * steps_per_epoch)
    remaining = max(config.train.epochs * steps_per_epoch - warmup_steps, 1)
    after = s.builder()(s, base, steps_per_epoch, remaining)  # config/optim.py's SCHEDULES name it
    # plateau warms up through WarmupCallback: ReduceLROnPlateau needs a plain float rate
    if warmup_steps and s.type != "plateau":
        return Warmup(warmup_steps, s.warmup_start, base, after)
    return after if after is not None else base


# what each schedule of config/optim.py builds, after any warm-up: (section, base rate, steps per
# epoch, steps after warm-up) -> a keras.optimizers.schedules object, or None for the base rate


def constant_schedule(s, base: float, steps_per_epoch: int, remaining: int):
    return None


def plateau_schedule(s, base: float, steps_per_epoch: int, remaining: int):
    return None  # a plain rate that ReduceLROnPlateau lowers (schedule_callbacks)


def exponential_schedule(s, base: float, steps_per_epoch: int, remaining: int):
    return keras.optimizers.schedules.ExponentialDecay(base, max(round(s.decay_epochs * steps_per_epoch), 1), s.decay_rate, staircase=s.staircase)


def step_schedule(s, base: float, steps_per_epoch: int, remaining: int):
    values = s.values or [base * s.factor**i for i in range(len(s.boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay([round(b * steps_per_epoch) for b in s.boundaries], values)


def cosine_schedule(s, base: float, steps_per_epoch: int, remaining: int):
    decay_steps = max(round(s.decay_epochs * steps_per_epoch) if s.decay_epochs else remaining, 1)
    if s.restarts:
        return keras.optimizers.schedules.CosineDecayRestarts(base, decay_steps, t_mul=s.t_mul, m_mul=s.m_mul, alpha=s.alpha)
    return keras.optimizers.schedules.CosineDecay(base, decay_steps, alpha=s.alpha)


def _with_lr_multipliers(cls):
    """`cls` whose update for some variables uses a fraction of the learning rate (fine-tuning:
    pretrained layers slower than the new head). Keras has no per-variable rate; the multiplier
    scales the rate each update step receives, so it is exact for every optimizer (also Adam, where
    scaling the gradient instead would cancel out)."""

    @keras.saving.register_keras_serializable(package="dlopt", name=f"{cls.__name__}WithLrMultipliers")
    class WithLrMultipliers(cls):
        def __init__(self, *args, lr_multipliers=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.lr_multipliers = dict(lr_multipliers or {})  # variable path -> multiplier

        def build(self, var_list):
            super().build(var_list)
            # update_step sees the backend variable, not its Keras path: look it up by index
            self._lr_scale = [self.lr_multipliers.get(v.path, 1.0) for v in var_list]

        def update_step(self, gradient, variable, learning_rate):
            scale = self._lr_scale[self._get_variable_index(variable)]
            if scale != 1.0:
                learning_rate = keras.ops.multiply(learning_rate, scale)
            return super().update_step(gradient, variable, learning_rate)

        def get_config(self):
            return {**super().get_config(), "lr_multipliers": self.lr_multipliers}

    WithLrMultipliers.__name__ = WithLrMultipliers.__qualname__ = f"{cls.__name__}WithLrMultipliers"
    return WithLrMultipliers


# every registered optimizer with per-variable rates, registered with Keras at import so that a
# fine-tuning checkpoint loads in any process that imported dlopt
_WITH_MULTIPLIERS = {name: _with_lr_multipliers(load_attribute(section.builds)) for name, section in zip(OPTIMIZERS.names(), OPTIMIZERS.entries())}


def own_keys(optimizer_config) -> list[str]:
    """The keys an optimizer's section adds to what every optimizer has: its constructor's own."""
    return [k for k in type(optimizer_config).model_fields if k not in OptimizerBase.model_fields and k != "type"]


def build_optimizer(config: Config, steps_per_epoch: int, lr_multipliers: dict[str, float] | None = None):
    o = config.optimizer
    cls = o.builder()  # the Keras optimizer class config/optim.py's OPTIMIZERS name
    kwargs = {key: getattr(o, key) for key in own_keys(o)}
    for key in ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay"):
        if getattr(o, key) is not None:
            kwargs[key] = getattr(o, key)
    if o.ema_momentum is not None:
        kwargs.update(use_ema=True, ema_momentum=o.ema_momentum)
    if lr_multipliers:
        return _WITH_MULTIPLIERS[o.type](learning_rate=build_schedule(config, steps_per_epoch), lr_multipliers=lr_multipliers, **kwargs)
    return cls(learning_rate=build_schedule(config, steps_per_epoch), **kwargs)


class WarmupCallback(keras.callbacks.Callback):
    """Linear warm-up for a plain-float learning rate (used with the plateau schedule)."""

    def __init__(self, warmup_steps: int, start: float, target: float):
        super().__init__()
        self.warmup_steps, self.start, self.target = warmup_steps, start, target
        self.step = 0

    def on_train_begin(self, logs=None):
        self.step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))  # resumed runs go on

    def on_train_batch_begin(self, batch, logs=None):
        if self.step <= self.warmup_steps:
            fraction = min(self.step / max(self.warmup_steps, 1), 1.0)
            self.model.optimizer.learning_rate = self.start + (self.target - self.start) * fraction
        self.step += 1


def schedule_callbacks(config: Config, steps_per_epoch: int) -> list:
    """Callbacks the schedule needs: reduce-on-plateau and its warm-up."""
    s = config.schedule
    if s.type != "plateau":
        return []
    callbacks = []
    warmup_steps = round(s.warmup_epochs * steps_per_epoch)
    if warmup_steps:
        callbacks.append(WarmupCallback(warmup_steps, s.warmup_start, config.optimizer.learning_rate))
    callbacks.append(
        keras.callbacks.ReduceLROnPlateau(
            monitor=s.monitor, mode=monitor_mode(s.monitor), factor=s.factor, patience=s.patience, min_delta=s.min_delta, min_lr=s.min_lr, cooldown=s.cooldown
        )
    )
    return callbacks
