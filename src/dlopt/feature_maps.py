"""`dlopt plot RUN --feature-maps`: what one convolution layer of a run's model sees in an image."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .runs import RunFolder
from .registry import did_you_mean
from .analysis.plots import save_figure


def _conv_layers(model) -> list:
    import keras

    from .models.finetune import leaf_layers

    return [layer for layer in leaf_layers(model) if isinstance(layer, keras.layers.Conv2D)]


def activations(model, example: np.ndarray, layer_name: str | None) -> tuple[str, np.ndarray]:
    """(layer name, its output for one example: height x width x channels).

    dlopt's models are a chain at the top (preprocessing layers, then the network), so the
    example runs through the outer layers in order until the nested model that holds the layer."""
    import keras

    convs = _conv_layers(model)
    if not convs:
        raise ConfigError("--feature-maps: this model has no 2-D convolution layer")
    names = [layer.name for layer in convs]
    name = layer_name or names[0]
    if name not in names:
        raise ConfigError(f"--layer: no convolution layer named '{name}'{did_you_mean(name, names)}; convolution layers: {', '.join(names)}")

    def run(current, x):
        for layer in current.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            if layer.name == name:
                return layer(x)
            if isinstance(layer, keras.Model) and any(inner.name == name for inner in _conv_layers(layer)):
                try:
                    inner = layer.get_layer(name)
                    return keras.Model(layer.inputs, inner.output)(x)
                except ValueError:  # nested deeper still
                    return run(layer, x)
            x = layer(x)
        raise ConfigError(f"--layer: cannot reach '{name}' by running the model's top-level layers in order")

    output = run(model, keras.ops.convert_to_tensor(example[None]))
    return name, np.asarray(keras.ops.convert_to_numpy(output))[0]


def write_grid(maps: np.ndarray, title: str, path: Path, image: np.ndarray | None = None, max_channels: int = 64) -> int:
    """A PNG grid: the input image first, then one panel per channel (each scaled to its own
    range); returns the channel panels drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    channels = min(maps.shape[-1], max_channels)
    panels = channels + (image is not None)
    columns = math.ceil(math.sqrt(panels))
    rows = math.ceil(panels / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(max(1.6 * columns, 5.0), 1.6 * rows + 0.7), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    flat = list(axes.flat)
    if image is not None:
        shown = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        lo, hi = float(np.min(shown)), float(np.max(shown))
        flat[0].imshow((shown - lo) / (hi - lo or 1), cmap="gray" if shown.ndim == 2 else None)
        flat[0].set_title("input", fontsize=7, fontweight="bold")
        flat = flat[1:]
    for index in range(channels):
        flat[index].imshow(maps[..., index], cmap="viridis")
        flat[index].set_title(str(index), fontsize=7)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)
    return channels


def plot_feature_maps(run_dir: Path, image: str, layer: str | None, output: Path | None, checkpoint: str = "best") -> dict:
    """Default output: RUN/plots/feature_maps-<layer>-<input name>.png. The title names the class
    the model predicts for the image."""
    from .predict import gather
    from .saved_models import load_run_model, run_summary

    config, model, _ = load_run_model(run_dir, checkpoint)
    spec = model.inputs[0]
    image_settings = config.data.image if config.data.source == "image_folder" else None
    _, examples = gather([image], tuple(spec.shape[1:]), text=False, image_settings=image_settings)
    name, maps = activations(model, examples[0], layer)
    output = output or RunFolder(run_dir).plots / f"feature_maps-{name}-{Path(image).stem}.png"
    probabilities = np.asarray(model.predict(examples[:1], verbose=0))[0]
    predicted = ""
    if probabilities.ndim == 1 and len(probabilities) > 1:
        best = int(np.argmax(probabilities))
        class_names = run_summary(run_dir).get("class_names")
        predicted = f" · predicted {class_names[best] if class_names else best} ({probabilities[best]:.2f})"
    title = f"{run_dir.name}\n{name} · {Path(image).name} ({maps.shape[0]}x{maps.shape[1]}, {maps.shape[-1]} channels){predicted}"
    drawn = write_grid(maps, title, output, image=examples[0])
    return {"layer": name, "shape": list(maps.shape), "channels_drawn": drawn, "output": str(output)}
