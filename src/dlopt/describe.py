"""`dlopt summary`: the model a config builds (layers, shapes, parameters, FLOPs), without training."""

from __future__ import annotations

import numpy as np

from . import cost
from . import data as data_module
from . import models
from .config import Config


def describe(config: Config) -> dict:
    import keras

    from .models.finetune import leaf_layers

    data = data_module.build(config, roles=("train",), for_training=False)  # shapes, classes, statistics
    model = models.build(config, data)
    layers = leaf_layers(model)
    total_flops, flops = cost.count_flops(model, [layer.name for layer in layers])
    rows = []
    for layer in layers:
        try:
            shape = [None if d is None else int(d) for d in layer.output.shape[1:]]
        except (AttributeError, ValueError):  # a layer called more than once has no single output
            shape = None
        rows.append({"name": layer.name, "type": type(layer).__name__, "output_shape": shape, "parameters": int(layer.count_params()), "trainable": bool(layer.trainable), "flops": flops.get(layer.name, 0)})
    parameters = int(model.count_params())
    return {
        "name": config.name,
        "input_shape": list(data.input_shape),
        "layers": rows,
        "parameters": parameters,
        "trainable_parameters": cost.trainable_parameters(model),
        "flops_per_example": total_flops,
        "weights_bytes": int(sum(int(keras.ops.size(w)) * np.dtype(keras.backend.standardize_dtype(w.dtype)).itemsize for w in model.weights)),
    }
