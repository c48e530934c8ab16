"""Model registry and the built-in families, built from config on tiny shapes."""

from __future__ import annotations

import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

from dlopt import models
from dlopt.config.schema import Config
from dlopt.errors import ConfigError


def build(model: dict, input_shape=(8, 8, 1), task="classification", num_classes=4, fmt="sparse", preprocess=None, target_shape=()):
    config = Config.model_validate(
        {"name": "m", "data": {"source": "idx", "path": "/x", "preprocess": preprocess or {}}, "model": model}
    )
    data = SimpleNamespace(
        input_shape=input_shape, task=task, num_classes=num_classes, label_format=fmt, target_shape=target_shape,
        mean=np.array([0.5], np.float32), variance=np.array([0.25], np.float32), vectorizer=None,
    )
    return models.build(config, data)


def layers_of(model):
    """Every layer, descending into nested models."""
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out += layers_of(layer)
    return out


def test_cnn_structure_follows_config():
    model = build({"type": "cnn", "blocks": [{"filters": 4, "convs": 2}, {"filters": 8, "pool": "avg", "dropout": 0.1}], "dense": [16], "batch_norm": True, "dropout": 0.2, "l2": 1e-3})
    kinds = [type(layer).__name__ for layer in layers_of(model)]
    assert kinds.count("Conv2D") == 3 and kinds.count("BatchNormalization") == 4
    assert "MaxPooling2D" in kinds and "AveragePooling2D" in kinds and kinds.count("Dropout") == 2
    assert model.output_shape == (None, 4)
    assert len(model.losses) == 5  # an L2 penalty per kernel: 3 convs, 1 hidden dense, the head
    convs = [layer for layer in layers_of(model) if type(layer).__name__ == "Conv2D"]
    assert all(not conv.use_bias for conv in convs)  # batch norm's shift replaces the bias
    probabilities = model(np.random.rand(3, 8, 8, 1).astype("float32"))
    np.testing.assert_allclose(np.sum(probabilities, axis=1), 1.0, rtol=1e-5)


def test_cnn_pool_first_pools_before_batch_norm_and_matches_the_usual_order_at_inference():
    blocks = [{"filters": 4, "convs": 2}, {"filters": 8}, {"filters": 8, "pool": "none"}]
    usual = build({"type": "cnn", "blocks": blocks, "dense": [16], "batch_norm": True})
    early = build({"type": "cnn", "blocks": blocks, "dense": [16], "batch_norm": True, "pool_first": True})
    order = [layer.name for layer in layers_of(early)]
    assert order.index("block0_pool") == order.index("block0_conv1") + 1  # right after the block's last conv
    assert order.index("block0_pool") < order.index("block0_conv1_bn") < order.index("block0_conv1_act")
    assert order.index("block0_conv0_act") < order.index("block0_conv1")  # earlier convs of the block keep their norm
    assert "block2_pool" not in order and early.count_params() == usual.count_params()
    rng = np.random.default_rng(1)
    for layer in layers_of(usual):  # trained-looking batch norms: positive scales, any shifts and statistics
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(size=beta.shape), rng.normal(size=mean.shape), rng.uniform(0.5, 2, variance.shape)])
    early_layers = {layer.name: layer for layer in layers_of(early)}
    for layer in layers_of(usual):  # same weights by layer name
        if layer.weights:
            early_layers[layer.name].set_weights(layer.get_weights())
    # batch norm with a positive scale and ReLU are monotonic per channel, so they commute with max pooling
    x = np.random.default_rng(0).random((5, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(early(x, training=False), usual(x, training=False), rtol=1e-5, atol=1e-6)


def test_cnn_accepts_grayscale_without_channel_axis_and_global_pooling():
    model = build({"type": "cnn", "blocks": [{"filters": 4, "strides": 2, "padding": "valid", "pool": "none"}], "global_pool": "avg", "dense": []}, input_shape=(9, 9))
    assert model.output_shape == (None, 4)


def test_cnn_pooling_past_the_feature_map_is_a_config_error():
    with pytest.raises(ConfigError, match=r"model.blocks\[3\].pool_size: the feature map is 1x1 here"):
        build({"type": "cnn", "blocks": [{"filters": 2}] * 4})


def test_mlp_heads_for_each_task():
    mlp = {"type": "mlp", "layers": [8, 4], "batch_norm": True, "activation": "gelu"}
    assert build(mlp, input_shape=(3, 3)).output_shape == (None, 4)
    binary = build(mlp, input_shape=(5,), num_classes=2, fmt="binary")
    assert binary.output_shape == (None, 1) and binary.layers[-1].layers[-1].activation.__name__ == "sigmoid"
    regression = build(mlp, input_shape=(5,), task="regression", num_classes=None, fmt="value", target_shape=(2, 3))
    assert regression.output_shape == (None, 2, 3)


def test_preprocessing_lives_inside_the_model():
    model = build({"type": "mlp", "layers": [2]}, input_shape=(4,), preprocess={"rescale": 0.5, "standardize": "global"})
    names = [layer.name for layer in model.layers]
    assert names[1:3] == ["rescale", "standardize"]
    stem = model.get_layer("standardize")(model.get_layer("rescale")(np.array([[1.0, 2.0, 3.0, 4.0]], "float32")))
    np.testing.assert_allclose(stem, [[0.0, 1.0, 2.0, 3.0]], rtol=1e-5)  # (x*0.5 - 0.5) / sqrt(0.25)


def test_user_module_registers_a_model(tmp_path):
    module = tmp_path / "my_models.py"
    module.write_text(
        textwrap.dedent(
            """
            import keras
            from dlopt.models import register, output_head

            @register("tiny_linear")
            def build(model_config, input_spec, output_spec):
                inputs = keras.Input(shape=input_spec.shape)
                x = keras.layers.Flatten()(inputs)
                x = keras.layers.Dense(model_config.model_extra["width"])(x)
                return keras.Model(inputs, output_head(x, output_spec))
            """
        )
    )
    model = build({"type": "tiny_linear", "module": str(module), "width": 3})
    assert model.output_shape == (None, 4)
    assert any(getattr(layer, "units", None) == 3 for layer in layers_of(model))


def test_unknown_model_from_a_module_is_a_config_error(tmp_path):
    module = tmp_path / "empty_models.py"
    module.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="model.type: unknown model 'cnnx' \\(did you mean 'cnn'\\?\\)"):
        build({"type": "cnnx", "module": str(module)})
    with pytest.raises(ConfigError, match="model.module: no such file"):
        build({"type": "other", "module": str(tmp_path / "missing.py")})


def test_batch_norm_momentum_spans_a_tenth_of_an_epoch():
    from dlopt.models import batch_norm_momentum

    assert batch_norm_momentum("auto", 41) == 0.9  # a few dozen steps per epoch: PyTorch's default
    assert batch_norm_momentum("auto", 400) == pytest.approx(0.975)
    assert batch_norm_momentum("auto", 5000) == 0.99  # Keras' default for long epochs
    assert batch_norm_momentum(0.95, 41) == 0.95
