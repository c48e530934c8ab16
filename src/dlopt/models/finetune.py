"""Fine-tuning: start from another run's weights, freeze layers, slow down the pretrained ones.

Weights move by layer name and shape (like timm's non-strict loading): a layer whose shape changed,
typically the `head` when the number of classes differs, keeps its fresh initialisation.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from ..errors import ConfigError
from ..registry import did_you_mean
from ..runs import RunFolder


def leaf_layers(model) -> list:
    """Every layer in model order, descending into nested models (which are not listed themselves)."""
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += leaf_layers(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            found.append(layer)
    return found


def find_nested(model, name: str):
    """The nested model called `name`, at any depth, or None."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            if layer.name == name:
                return layer
            found = find_nested(layer, name)
            if found is not None:
                return found
    return None


def unfreeze(model, frozen: list[str]) -> None:
    """The second phase of two-phase fine-tuning: every layer frozen by `freeze` trains again, except
    batch normalisation, which keeps its pretrained statistics in inference mode (as Keras' transfer
    learning guide advises: small fine-tuning batches would wreck them)."""
    import keras

    names = set(frozen)
    for layer in leaf_layers(model):
        if layer.name in names and not isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = True


def pretrained_path(source: str) -> Path:
    """`init_from` as a .keras file: a run folder's best checkpoint (or its last), or the file itself."""
    path = Path(source)
    if not path.exists():
        raise ConfigError(f"model.init_from: no such file or folder: {source}")
    if path.is_dir():
        for which in ("best", "last"):
            if RunFolder(path).checkpoint(which).exists():
                return RunFolder(path).checkpoint(which)
        raise ConfigError(f"model.init_from: {source} has no checkpoints/best.keras or last.keras (not a finished dlopt run?)")
    if path.suffix != ".keras":
        raise ConfigError(f"model.init_from: expected a run folder or a .keras file, got {source}")
    return path


def load_pretrained(model, path: Path) -> dict:
    """Copy the weights of the model saved at `path` into `model`, layer by layer; report what moved."""
    import keras

    from . import register_builtins

    register_builtins()
    try:
        source = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        raise ConfigError(f"model.init_from: cannot load {path}: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}") from None
    by_name = {layer.name: layer for layer in leaf_layers(source)}
    loaded, reinitialised = [], []
    for layer in leaf_layers(model):
        other = by_name.get(layer.name)
        if other is None:
            continue
        if isinstance(layer, keras.layers.TextVectorization) and isinstance(other, keras.layers.TextVectorization):
            # token ids must mean the same words as in pretraining, or the embedding rows are scrambled
            layer.set_vocabulary(other.get_vocabulary(include_special_tokens=False))
            loaded.append(layer.name)
            continue
        if not layer.weights:
            continue
        mine, theirs = [tuple(w.shape) for w in layer.weights], [tuple(w.shape) for w in other.weights]
        if mine == theirs:
            layer.set_weights(other.get_weights())
            loaded.append(layer.name)
        else:
            reinitialised.append({"layer": layer.name, "shapes": [list(s) for s in mine], "pretrained_shapes": [list(s) for s in theirs]})
    if not any(name for name in loaded if by_name[name].weights):
        raise ConfigError(f"model.init_from: no layer of {path} matches this model by name and shape; is it the same model family?")
    return {"source": str(path), "loaded": loaded, "reinitialised": reinitialised}


def freeze(model, setting) -> list[str]:
    """Set `trainable = False` on the layers `model.freeze` names; return their names."""
    if setting == "none":
        return []
    layers = leaf_layers(model)
    names = [layer.name for layer in layers]
    if setting == "all":  # the pretrained part: a `backbone` model's backbone, otherwise all but the head
        backbone = find_nested(model, "backbone")
        chosen = leaf_layers(backbone) if backbone is not None else [layer for layer in layers if layer.name != "head"]
    elif isinstance(setting, list):
        for pattern in setting:
            if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
                raise ConfigError(f"model.freeze: '{pattern}' matches no layer{did_you_mean(pattern, names)}; layers: {', '.join(names)}")
        chosen = [layer for layer in layers if any(fnmatch.fnmatchcase(layer.name, p) for p in setting)]
    else:
        if setting.up_to not in names:
            raise ConfigError(f"model.freeze.up_to: no layer named '{setting.up_to}'{did_you_mean(setting.up_to, names)}; layers: {', '.join(names)}")
        chosen = layers[: names.index(setting.up_to) + 1]
    for layer in chosen:
        layer.trainable = False  # batch norm then also runs in inference mode (Keras 3)
    return [layer.name for layer in chosen]


def pretrained_lr_multipliers(model, loaded: list[str], multiplier: float) -> dict[str, float]:
    """Variable path -> learning-rate multiplier for the trainable variables of loaded layers."""
    if multiplier == 1.0:
        return {}
    loaded = set(loaded)
    return {w.path: multiplier for layer in leaf_layers(model) if layer.name in loaded for w in layer.trainable_weights}
