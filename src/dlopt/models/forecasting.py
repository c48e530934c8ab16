"""Time-series models around any registered network: windows relative to their last value in,
the change from that value out, and metrics in the series' own units.

The network sees each window minus its last value (`data.timeseries.window_inputs: relative`) and
learns the change from the last value (`target: difference`); the model adds that value back, so
it takes raw (scaled) windows and outputs values like any other. The layers and metrics are
registered with Keras as `dlopt>...`, so saved models reload in safe mode after `import dlopt`.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="dlopt")
class RelativeToLast(keras.layers.Layer):
    """(batch, time, columns) -> the same minus each window's last time step."""

    def call(self, window):
        return window - window[:, -1:, :]


@keras.saving.register_keras_serializable(package="dlopt")
class AddLastValue(keras.layers.Layer):
    """(forecast (batch, horizon, targets), window (batch, time, columns)) -> forecast plus the
    window's last value of each target column."""

    def __init__(self, target_index: list[int], **kwargs):
        super().__init__(**kwargs)
        self.target_index = [int(i) for i in target_index]

    def call(self, forecast, window):
        last = keras.ops.take(window[:, -1, :], self.target_index, axis=-1)  # (batch, targets)
        return forecast + last[:, None, :]

    def get_config(self):
        return {**super().get_config(), "target_index": self.target_index}


def wrap(body, input_shape, settings, target_index: list[int], name: str):
    """The forecasting model: `body` (the registered network) between the window and its forecast."""
    window = keras.Input(shape=input_shape, name="inputs")
    x = RelativeToLast(name="relative_to_last")(window) if settings.window_inputs == "relative" else window
    forecast = body(x)
    if settings.target == "difference":
        forecast = AddLastValue(target_index, name="add_last_value", dtype="float32")(forecast, window)
    return keras.Model(window, forecast, name=name)


class _InSeriesUnits:
    """A regression metric computed after undoing the target scaling (the offset cancels in errors)."""

    def __init__(self, scale=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.scale = [float(s) for s in (scale or [1.0])]

    def update_state(self, y_true, y_pred, sample_weight=None):
        scale = keras.ops.convert_to_tensor(self.scale, dtype=self.dtype)
        return super().update_state(keras.ops.cast(y_true, self.dtype) * scale, keras.ops.cast(y_pred, self.dtype) * scale, sample_weight)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="dlopt")
class MaeInUnits(_InSeriesUnits, keras.metrics.MeanAbsoluteError):
    pass


@keras.saving.register_keras_serializable(package="dlopt")
class MseInUnits(_InSeriesUnits, keras.metrics.MeanSquaredError):
    pass


@keras.saving.register_keras_serializable(package="dlopt")
class RmseInUnits(_InSeriesUnits, keras.metrics.RootMeanSquaredError):
    pass


IN_UNITS = {"mae": MaeInUnits, "mse": MseInUnits, "rmse": RmseInUnits}
