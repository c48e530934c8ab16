"""What a model costs: floating-point operations per example, counted by TensorFlow's profiler,
and its trainable parameters.

The profiler counts each op of the inference graph traced for one example (a multiply-add is two
FLOPs, as in most papers). Ops without a registered count (lookups, casts) add nothing.
"""

from __future__ import annotations

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
        return tf.compat.v1.profiler.profile(graph=graph, options=options)
    except Exception:  # a model the profiler cannot trace: report no count rather than fail the run
        return None
    finally:
        logger.setLevel(level)


def flops_per_example(model) -> int | None:
    return count_flops(model)[0]


def count_flops(model, layer_names: list[str] = ()) -> tuple[int | None, dict[str, int]]:
    """(FLOPs per example, FLOPs per layer name) from one profile; each profiled op is credited to
    the innermost layer its name scope names. (None, {}) if the profiler cannot trace the model."""
    profile = _profile(model)
    if profile is None:
        return None, {}
    wanted = set(layer_names)
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
