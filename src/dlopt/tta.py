"""Test-time augmentation: a classifier's probabilities averaged over an image and flipped views of it.

Used by the final test evaluation, `dlopt eval` and `dlopt predict` when `data.tta` names views.
"""

from __future__ import annotations

from .errors import ConfigError

FLIP_AXES = {"horizontal_flip": 2, "vertical_flip": 1}  # axis of a (batch, height, width, channels) batch
VIEWS = tuple(FLIP_AXES)


def check(views, input_shape: tuple, task: str, where: str = "data.tta") -> None:
    """Views need images (height, width, channels) and a classifier (flipping regression targets is not free)."""
    if not views:
        return
    if len(input_shape) != 3:
        raise ConfigError(f"{where}: test-time augmentation needs image inputs (height, width, channels); the data's inputs have shape {input_shape}")
    if task != "classification":
        raise ConfigError(f"{where}: test-time augmentation averages class probabilities and needs classification data; this data is {task}")


def wrap(model, views):
    """`model` itself without views; else a model whose output is the mean of `model` over the
    input and each view of it (sharing `model`'s layers, so nothing is copied)."""
    if not views:
        return model
    import keras

    inputs = keras.Input(shape=model.inputs[0].shape[1:], dtype=model.inputs[0].dtype, name="tta_input")
    outputs = [model(inputs)] + [model(keras.ops.flip(inputs, axis=FLIP_AXES[view])) for view in views]
    return keras.Model(inputs, keras.layers.Average(dtype="float32", name="tta_average")(outputs), name=f"{model.name}_tta")


def evaluate(model, dataset, views, loss, metrics, callbacks=()) -> tuple[dict, dict | None]:
    """(metrics with the views, single-view metrics) when views are set, else (single-view metrics, None).
    `model` must be compiled; the views model is compiled with `loss` and `metrics`. `callbacks`
    watch each pass (progress)."""
    single = _evaluate(model, dataset, callbacks)
    if not views:
        return single, None
    averaged = wrap(model, views)
    averaged.compile(loss=loss, metrics=metrics)
    return _evaluate(averaged, dataset, callbacks), single


def _evaluate(model, dataset, callbacks=()) -> dict:
    return {key: float(value) for key, value in model.evaluate(dataset, verbose=0, return_dict=True, callbacks=list(callbacks)).items()}
