import pytest

from dlopt.registry import Registry, did_you_mean


def test_register_get_and_list():
    registry = Registry("model")

    @registry.register("resnet_small")
    def small():
        return "small"

    registry.register("resnet_big")(lambda: "big")
    assert registry.get("resnet_small") is small
    assert registry.names("resnet*") == ["resnet_big", "resnet_small"]
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
    assert info.value.args[0] == "unknown model 'transfomer' (did you mean 'transformer'?); known: cnn, transformer"
    assert did_you_mean("zzz", ["cnn"]) == ""
