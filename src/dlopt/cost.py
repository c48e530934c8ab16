"""What a model costs: floating-point operations per example, counted by TensorFlow's profiler,
and its trainable parameters.

The profiler counts each op of the inference graph traced for one example (a multiply-add is two
FLOPs, as in most papers). Ops without a registered count (lookups, casts) add nothing.
"""

from __future__ import annotations

import contextlib
import io
import math
import re


def _profile(model):
    """TensorFlow's float-operation profile of `model` on one example, or None if it cannot trace."""
    import tensorflow as tf

    specs = [tf.TensorSpec((1,) + tuple(x.shape[1:]), x.dtype) for x in model.inputs]

    names = [x.name.split(":")[0] for x in model.inputs]

    @tf.function
    def forward(*inputs):  # a table's model takes a dict of named columns
        return model(inputs[0] if len(inputs) == 1 else dict(zip(names, inputs)), training=False)

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the v1 profiler warns about its own deprecated internals
    try:
        graph = forward.get_concrete_function(*specs).graph
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"  # no report on stdout
        # text models' string ops have no static shapes (and no float ops): the profiler would say so on stderr
        with contextlib.redirect_stderr(io.StringIO()):
            return tf.compat.v1.profiler.profile(graph=graph, options=options)
    except Exception:  # a model the profiler cannot trace: report no count rather than fail the run
        return None
    finally:
        logger.setLevel(level)


def flops_per_example(model) -> int | None:
    return count_flops(model)[0]


def count_flops(model, layer_names: list[str] = ()) -> tuple[int | None, dict[str, int]]:
    """(FLOPs per example, FLOPs per layer name) from one profile; each profiled op is credited to
    the innermost layer its name scope names. (None, {}) if the profiler cannot trace the model.

    Recurrent and attention layers are counted from their weights and input shapes instead: the
    profiler sees a recurrent layer's loop body once, not once per time step, and does not count
    attention's einsums. Those counts take matrix products (a multiply-add is 2 FLOPs) and bias
    additions, as the profiler does for dense layers."""
    profile = _profile(model)
    if profile is None:
        return None, {}
    by_hand = {}  # layer name -> (the top-level layer holding it, its FLOPs)
    for top in model.layers:
        for layer in _nested(top):
            flops = _counted_by_hand(layer)
            if flops is not None:
                by_hand[layer.name] = (top.name, flops)
    total, totals = _attribute(profile, set(layer_names) | set(by_hand))
    for name, (top, flops) in by_hand.items():
        total += flops - totals.pop(name, 0)
        credited = name if name in layer_names else top  # the layer itself when asked for (`dlopt summary`)
        totals[credited] = totals.get(credited, 0) + flops
    return total, {name: totals[name] for name in layer_names if name in totals}


def _nested(layer):
    """`layer` and, for a model used as a layer (dlopt's text models), every layer inside it."""
    yield layer
    for inner in getattr(layer, "layers", None) or []:
        yield from _nested(inner)


def _counted_by_hand(layer) -> int | None:
    """FLOPs per example of a recurrent or attention layer (None for every other layer)."""
    import keras

    nodes = getattr(layer, "_inbound_nodes", None)
    if not nodes:
        return None
    shapes = [tuple(t.shape) for t in nodes[0].input_tensors]
    if isinstance(layer, keras.layers.Bidirectional):
        return sum(_recurrent_flops(direction.cell, shapes[0]) for direction in (layer.forward_layer, layer.backward_layer))
    if isinstance(layer, keras.layers.RNN) and hasattr(layer, "cell"):
        return _recurrent_flops(layer.cell, shapes[0])
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return _attention_flops(layer, shapes[0], shapes[1] if len(shapes) > 1 else shapes[0])
    return None


def _size(weight) -> int:
    return 0 if weight is None else int(math.prod(weight.shape))


def _recurrent_flops(cell, input_shape) -> int:
    """Per time step: the input and recurrent matrix products and the bias (LSTM: 4 gates, GRU: 3)."""
    per_step = 2 * (_size(cell.kernel) + _size(cell.recurrent_kernel)) + _size(getattr(cell, "bias", None))
    return int(input_shape[1]) * per_step


def _attention_flops(layer, query_shape, value_shape) -> int:
    """Query, key, value and output projections, the scores (Q.K) and the weighted sum of values."""
    queries, keys = int(query_shape[1]), int(value_shape[1])

    def projection(dense, positions):
        return positions * (2 * _size(dense.kernel) + _size(getattr(dense, "bias", None)))

    heads, key_dim, value_dim = layer.num_heads, layer.key_dim, layer.value_dim or layer.key_dim
    return (
        projection(layer._query_dense, queries)
        + projection(layer._key_dense, keys)
        + projection(layer._value_dense, keys)
        + projection(layer._output_dense, queries)
        + 2 * heads * queries * keys * (key_dim + value_dim)
    )


def _attribute(profile, wanted: set[str]) -> tuple[int, dict[str, int]]:
    """The profile's total, and the FLOPs of each op credited to the innermost wanted layer its name
    scope names."""
    totals: dict[str, int] = {}

    def owner_of(part: str) -> str | None:
        # TensorFlow uniquifies a reused name scope (`dense0_1`): strip that suffix when it is not the name
        if part in wanted:
            return part
        stripped = re.sub(r"_\d+$", "", part)
        return stripped if stripped in wanted else None

    def visit(node):
        if not node.children:
            owner = next((owner_of(part) for part in reversed(node.name.split("/")) if owner_of(part)), None)
            if owner is not None:
                totals[owner] = totals.get(owner, 0) + int(node.total_float_ops)
        for child in node.children:
            visit(child)

    if wanted:
        visit(profile)
    return int(profile.total_float_ops), totals


def trainable_parameters(model) -> int:
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))
