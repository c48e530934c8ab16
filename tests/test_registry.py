import pytest

from dlopt.registry import Registry, did_you_mean


def test_register_get_and_list():
    registry = Registry("model")

    @registry.register("resnet_small")
    def small():
        return "small"

    registry.register("resnet_big")(lambda: "big")
    assert registry.get("resnet_small") is small
    assert registry.names("resnet*") == ["resnet_small", "resnet_big"]  # registration order, as the docs list them
    assert "resnet_big" in registry


def test_duplicate_names_are_refused():
    registry = Registry("model")
    registry.register("a")(lambda: 1)
    with pytest.raises(ValueError, match="model 'a' is already registered"):
        registry.register("a")(lambda: 2)


def test_unknown_name_suggests_and_lists():
    registry = Registry("model")
    registry.register("transformer")(lambda: 1)
    registry.register("cnn")(lambda: 1)
    with pytest.raises(KeyError) as info:
        registry.get("transfomer")
    assert info.value.args[0] == "unknown model 'transfomer' (did you mean 'transformer'?); known: transformer, cnn"
    assert did_you_mean("zzz", ["cnn"]) == ""


def test_every_name_of_a_kind_lives_in_its_registry_alone():
    """The config's union types, literals, descriptions and errors are derived from the registries."""
    import typing

    from dlopt.config.data import SOURCES, DataConfig
    from dlopt.config.model import MODELS, CnnConfig
    from dlopt.config.optim import OPTIMIZERS, SCHEDULES, Sgd
    from dlopt.config.schema import Config
    from dlopt.config.train import LOSSES, METRICS, TrainConfig
    from dlopt.registry import load_attribute

    assert typing.get_args(DataConfig.model_fields["source"].annotation) == tuple(SOURCES)
    assert typing.get_args(TrainConfig.model_fields["loss"].annotation) == ("auto", *LOSSES)
    assert all(f"`{name}`" in CnnConfig.model_fields["type"].description for name in MODELS)
    assert all(f"`{name}`" in Sgd.model_fields["type"].description for name in OPTIMIZERS)
    assert all(name in TrainConfig.model_fields["metrics"].description for name in METRICS)
    # each entry names what it builds, and that exists
    for registry in (MODELS, OPTIMIZERS, SCHEDULES):
        for section in registry.entries():
            assert callable(load_attribute(section.builds)), section.builds
    for registry in (LOSSES, METRICS, SOURCES):
        for entry in registry.entries():
            assert callable(load_attribute(entry.builds)), entry.builds
    # a registered section is accepted by the config under its tag, with no other list to update
    for name in OPTIMIZERS:
        assert Config.model_validate({"data": {"source": "sklearn", "name": "iris"}, "model": {"type": "mlp"}, "optimizer": {"type": name}}).optimizer.type == name
