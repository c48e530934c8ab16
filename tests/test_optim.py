"""Optimizers and schedules, checked against closed-form learning rates."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from dlopt.config.schema import Config
from dlopt.optim import Warmup, build_optimizer, build_schedule, schedule_callbacks

SPE = 10  # steps per epoch


def config(optimizer=None, schedule=None, epochs=10) -> Config:
    return Config.model_validate(
        {
            "data": {"source": "idx", "path": "/x"},
            "model": {"type": "mlp"},
            "optimizer": optimizer or {"type": "sgd", "learning_rate": 0.1},
            "schedule": schedule or {"type": "constant"},
            "train": {"epochs": epochs},
        }
    )


def lr_at(schedule, step) -> float:
    return float(keras.ops.convert_to_numpy(schedule(step))) if callable(schedule) else float(schedule)


@pytest.mark.parametrize(
    "spec, cls, attrs",
    [
        ({"type": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True}, keras.optimizers.SGD, {"momentum": 0.9, "nesterov": True}),
        ({"type": "adagrad", "initial_accumulator_value": 0.2}, keras.optimizers.Adagrad, {"initial_accumulator_value": 0.2}),
        ({"type": "rmsprop", "rho": 0.8, "centered": True}, keras.optimizers.RMSprop, {"rho": 0.8, "centered": True}),
        ({"type": "adam", "beta_1": 0.8, "amsgrad": True}, keras.optimizers.Adam, {"beta_1": 0.8, "amsgrad": True}),
        ({"type": "adamw", "weight_decay": 0.01}, keras.optimizers.AdamW, {"weight_decay": 0.01}),
        ({"type": "adam", "clipvalue": 0.5}, keras.optimizers.Adam, {"clipvalue": 0.5}),
        ({"type": "sgd", "global_clipnorm": 2.0, "weight_decay": 1e-4}, keras.optimizers.SGD, {"global_clipnorm": 2.0, "weight_decay": 1e-4}),
    ],
)
def test_optimizers_get_their_settings(spec, cls, attrs):
    optimizer = build_optimizer(config(optimizer=spec), SPE)
    assert type(optimizer) is cls
    for key, value in attrs.items():
        assert getattr(optimizer, key) == pytest.approx(value), key


def test_adamw_decays_weights_by_default():
    assert build_optimizer(config(optimizer={"type": "adamw"}), SPE).weight_decay == pytest.approx(0.004)


def test_exponential_decay_closed_form():
    s = build_schedule(config(schedule={"type": "exponential", "decay_rate": 0.5, "decay_epochs": 2}), SPE)
    assert lr_at(s, 0) == pytest.approx(0.1)
    assert lr_at(s, 30) == pytest.approx(0.1 * 0.5 ** (30 / 20))
    stair = build_schedule(config(schedule={"type": "exponential", "decay_rate": 0.5, "decay_epochs": 2, "staircase": True}), SPE)
    assert lr_at(stair, 39) == pytest.approx(0.1 * 0.5)


def test_step_schedule_with_factor_and_values():
    s = build_schedule(config(schedule={"type": "step", "boundaries": [2, 5], "factor": 0.1}), SPE)
    assert [lr_at(s, step) for step in (0, 20, 21, 50, 51)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    v = build_schedule(config(schedule={"type": "step", "boundaries": [1], "values": [0.3, 0.03]}), SPE)
    assert (lr_at(v, 5), lr_at(v, 15)) == pytest.approx((0.3, 0.03))


def test_cosine_decays_over_the_rest_of_training_after_warmup():
    s = build_schedule(config(schedule={"type": "cosine", "warmup_epochs": 2, "alpha": 0.1}, epochs=10), SPE)
    assert lr_at(s, 0) == pytest.approx(0.0)
    assert lr_at(s, 10) == pytest.approx(0.05)  # half-way through the 20 warm-up steps
    decay = 80  # 100 steps in all, 20 of warm-up
    for step in (20, 60, 100):
        t = (step - 20) / decay
        assert lr_at(s, step) == pytest.approx(0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))), rel=1e-5)


def test_cosine_restarts():
    s = build_schedule(config(schedule={"type": "cosine", "restarts": True, "decay_epochs": 1, "t_mul": 1.0, "m_mul": 0.5}), SPE)
    assert lr_at(s, 0) == pytest.approx(0.1)
    assert lr_at(s, 10) == pytest.approx(0.05)  # restarted at half the peak
    assert lr_at(s, 5) == pytest.approx(0.05, rel=1e-5)


def test_constant_with_warmup_and_warmup_start():
    s = build_schedule(config(schedule={"type": "constant", "warmup_epochs": 1, "warmup_start": 0.02}), SPE)
    assert [lr_at(s, step) for step in (0, 5, 10, 500)] == pytest.approx([0.02, 0.06, 0.1, 0.1])
    assert build_schedule(config(), SPE) == 0.1


def test_warmup_schedule_serialises():
    inner = keras.optimizers.schedules.CosineDecay(0.1, 50)
    s = Warmup(10, 0.0, 0.1, inner)
    clone = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
    for step in (0, 5, 10, 35):
        assert lr_at(clone, step) == pytest.approx(lr_at(s, step))


def test_plateau_uses_keras_callback_and_warmup_callback():
    cfg = config(schedule={"type": "plateau", "patience": 2, "factor": 0.5, "warmup_epochs": 1})
    assert build_schedule(cfg, SPE) == 0.1  # a float, which ReduceLROnPlateau can lower
    callbacks = schedule_callbacks(cfg, SPE)
    assert [type(c).__name__ for c in callbacks] == ["WarmupCallback", "ReduceLROnPlateau"]
    assert (callbacks[1].patience, callbacks[1].factor) == (2, 0.5)


def test_only_one_clipping_setting():
    from dlopt.errors import ConfigError
    from dlopt.config.load import validate

    data = {"data": {"source": "idx", "path": "/x"}, "model": {"type": "mlp"}, "optimizer": {"type": "adam", "clipnorm": 1, "clipvalue": 1}}
    with pytest.raises(ConfigError, match="optimizer.clipvalue: set one of clipnorm, clipvalue, global_clipnorm"):
        validate(data, {}, "c.yaml")


def test_gradient_clipping_changes_the_update():
    # one SGD step on loss = 10 * w: the gradient 10 is clipped to norm 1
    for spec, expected in (({"type": "sgd", "learning_rate": 1.0}, -10.0), ({"type": "sgd", "learning_rate": 1.0, "clipnorm": 1.0}, -1.0)):
        optimizer = build_optimizer(config(optimizer=spec), SPE)
        w = keras.Variable(np.zeros(1, "float32"))
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(np.array([10.0], "float32")), w)])
        assert float(w.numpy()[0]) == pytest.approx(expected)


class RecordWeights(keras.callbacks.Callback):
    """The model's trainable weights after every step, or at every epoch's end."""

    def __init__(self, every_step: bool = False):
        super().__init__()
        self.every_step = every_step
        self.seen = []

    def record(self):
        self.seen.append([w.numpy().copy() for w in self.model.trainable_weights])

    def on_train_batch_end(self, batch, logs=None):
        if self.every_step:
            self.record()

    def on_epoch_end(self, epoch, logs=None):
        if not self.every_step:
            self.record()


def test_weight_average_is_what_validation_and_checkpoints_see():
    from dlopt.callbacks.averaging import AveragedWeightsIn, AveragedWeightsOut

    momentum = 0.8
    optimizer = build_optimizer(config(optimizer={"type": "sgd", "learning_rate": 0.05, "ema_momentum": momentum}), SPE)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32")
    keras.utils.set_random_seed(1)  # not 0: TensorFlow's global seed 0 breaks dlopt's shuffle in later tests (see the closing note)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    start = [w.numpy().copy() for w in model.trainable_weights]
    swap, raw_steps, averaged, raw = AveragedWeightsIn(), RecordWeights(every_step=True), RecordWeights(), RecordWeights()
    history = model.fit(x, y, batch_size=10, epochs=2, validation_data=(x, y), shuffle=False, verbose=0, callbacks=[raw_steps, swap, averaged, AveragedWeightsOut(swap), raw])

    # the average, computed independently: Keras starts it at the weights after the first step
    expected = None
    for weights in raw_steps.seen:
        expected = weights if expected is None else [momentum * e + (1 - momentum) * w for e, w in zip(expected, weights)]
    assert not np.allclose(raw.seen[-1][0], start[0])
    np.testing.assert_allclose(raw.seen[-1][0], raw_steps.seen[-1][0], rtol=1e-6)  # after the swap back: raw again
    np.testing.assert_allclose(averaged.seen[-1][0], expected[0], rtol=1e-5)  # checkpoints see the average
    assert not np.allclose(averaged.seen[-1][0], raw.seen[-1][0])
    # validation scored the average; after fit() the model holds it (Keras' finalize_variable_values)
    averaged_loss = float(np.mean((x @ expected[0] + expected[1] - y) ** 2))
    assert history.history["val_loss"][-1] == pytest.approx(averaged_loss, rel=1e-4)
    np.testing.assert_allclose(model.trainable_weights[0].numpy(), expected[0], rtol=1e-5)


def test_weight_average_momentum_is_checked():
    with pytest.raises(Exception, match="ema_momentum"):
        config(optimizer={"type": "adam", "ema_momentum": 1.0})
