"""`dlopt predict`: run a finished run's model on image files, .npy/.npz arrays or text.

Inputs are raw, as the data source gave them: the saved model holds its own rescaling,
standardisation and text vectorisation. An image file (0-255) is brought into the value range the
run's source gave (0-16 for scikit-learn's digits), and an input unlike the training inputs (its
range, its mean, its share of unknown words: RUN/inputs.json) is named in a warning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import tta
from .errors import ConfigError
from .saved_models import load_run_model, run_summary

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def read_image(path: Path, shape: tuple, image_settings=None) -> np.ndarray:
    """An image file as the model's input shape: channels converted, resized if the size differs.
    `image_settings` (a run trained on an image folder): decoded exactly as its training images were."""
    return image_from_bytes(Path(path).read_bytes(), shape, image_settings, str(path))


def image_from_bytes(contents: bytes, shape: tuple, image_settings=None, label: str = "image") -> np.ndarray:
    """`read_image` of an image file's bytes (a file, or a served request's base64)."""
    import tensorflow as tf

    channels = shape[2] if len(shape) == 3 else 1
    if len(shape) not in (2, 3) or channels not in (1, 3, 4):
        raise ConfigError(f"{label}: this model takes inputs of shape {shape}, not images")
    try:
        if image_settings is not None:
            from .data.images import decode

            image = decode(contents, image_settings)
        else:
            image = tf.io.decode_image(contents, channels=channels, expand_animations=False)
    except tf.errors.InvalidArgumentError:
        raise ConfigError(f"{label}: not a readable image") from None
    if tuple(image.shape[:2]) != tuple(shape[:2]) and image_settings is not None and image_settings.size is None:
        raise ConfigError(f"{label}: the model takes {shape[0]}x{shape[1]} images, this one is {image.shape[0]}x{image.shape[1]} (the run set no data.image.size)")
    if tuple(image.shape[:2]) != tuple(shape[:2]):
        image = tf.image.resize(image, shape[:2], antialias=True)
    image = tf.cast(image, tf.float32).numpy()
    return image[..., 0] if len(shape) == 2 else image


def read_array(path: Path, shape: tuple) -> np.ndarray:
    """One example (the model's input shape) or a batch of them from .npy, or .npz (array `x` or its only array)."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the array: {exc}") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        keys = list(loaded.keys())
        if "x" not in keys and len(keys) != 1:
            raise ConfigError(f"{path}: expected an array named 'x' (or a single array), found: {', '.join(keys)}")
        loaded = loaded["x" if "x" in keys else keys[0]]
    array = np.asarray(loaded, dtype=np.float32)
    if shape and shape[-1] == 1 and array.shape[-len(shape) + 1 :] == tuple(shape[:-1]):
        array = array[..., None]  # grayscale images without their channel axis
    if tuple(array.shape) == tuple(shape):
        return array[None]
    if tuple(array.shape[1:]) == tuple(shape):
        return array
    raise ConfigError(f"{path}: expected an array of shape {tuple(shape)} or (N, {', '.join(map(str, shape))}), got {array.shape}")


def gather(inputs: list[str], shape: tuple, text: bool, image_settings=None, value_max: float | None = None) -> tuple[list[str], np.ndarray]:
    """(a label per example, the examples): text models read lines of files or the argument itself.
    `value_max`: the largest value the run's source gave; image files (0-255) are scaled to it."""
    labels, examples = [], []
    for item in inputs:
        path = Path(item)
        if text:
            if path.is_file():
                lines = [line.rstrip("\n") for line in path.read_text(errors="replace").splitlines() if line.strip()]
                labels += [f"{item}:{n}" for n in range(1, len(lines) + 1)]
                examples += lines
            else:
                labels.append(item if len(item) <= 40 else item[:37] + "...")
                examples.append(item)
            continue
        if not path.is_file():
            raise ConfigError(f"{item}: no such file")
        if path.suffix.lower() in (".npy", ".npz"):
            batch = read_array(path, shape)
            labels += [item] if len(batch) == 1 else [f"{item}[{i}]" for i in range(len(batch))]
            examples += list(batch)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            labels.append(item)
            image = read_image(path, shape, image_settings)
            examples.append(image * (value_max / 255.0) if value_max and value_max != 255.0 else image)
        else:
            raise ConfigError(f"{item}: expected an image ({', '.join(IMAGE_SUFFIXES)}) or a .npy/.npz array")
    if not examples:
        raise ConfigError("no inputs to predict")
    return labels, np.array(examples, dtype=object if text else np.float32)


def head_activation(model) -> str | None:
    from .models.finetune import leaf_layers

    head = next((layer for layer in leaf_layers(model) if layer.name == "head"), None)
    activation = getattr(head, "activation", None)
    return getattr(activation, "__name__", None)


def predict(run_dir: Path, inputs: list[str], checkpoint: str = "best", top_k: int = 1) -> list[dict]:
    config, model, _ = load_run_model(run_dir, checkpoint)  # before TensorFlow starts: the run's kernel settings
    import tensorflow as tf

    from .runs import RunFolder, read_json_if_any

    statistics = read_json_if_any(RunFolder(run_dir).inputs)
    warnings: dict[str, list[str]] = {}

    if len(model.inputs) > 1 or config.data.table is not None:  # a table: raw rows, one input per column
        from .data.table_rows import image_inputs, missing_images, rows_from

        labels, columns = rows_from(inputs, {t.name: str(t.dtype) for t in model.inputs})
        missing_images(labels, columns, image_inputs(model))
        batch = {name: tf.constant(values) for name, values in columns.items()}
        from .data.statistics import row_warnings

        unknown = _unknown_word_shares(model, columns, statistics)
        warnings = {label: row_warnings(label, {name: values[i] for name, values in columns.items()}, statistics, {name: shares[i] for name, shares in unknown.items()}) for i, label in enumerate(labels)}
    else:
        spec = model.inputs[0]
        text = spec.dtype == "string"
        image_settings = config.data.image if config.data.source == "image_folder" else None
        labels, examples = gather(inputs, tuple(spec.shape[1:]), text, image_settings, statistics.get("value_max"))
        batch = tf.constant(examples.astype(str)) if text else examples
        warnings = _domain_warnings(model, labels, examples, text, statistics)
    averaged = tta.wrap(model, config.data.tta)  # the same views as the run's test evaluation
    results = Answers.of_run(run_dir, config, model, top_k)(averaged.predict(batch, verbose=0, batch_size=256))
    return [{"input": label, **({"warnings": warnings[label]} if warnings.get(label) else {}), **result} for label, result in zip(labels, results)]


class Answers:
    """A run's raw model outputs -> one answer per example: `answers` for a model of one output;
    for several outputs (summary.json's `outputs`), {"outputs": {name: that output's answer}}."""

    def __init__(self, activation: str | None, class_names: list[str] | None, outputs: list[dict] | None = None, top_k: int = 1):
        self.activation, self.class_names, self.outputs, self.top_k = activation, class_names, outputs, top_k

    @classmethod
    def of_run(cls, run_dir: Path, config, model, top_k: int = 1) -> "Answers":
        summary = run_summary(run_dir)
        return cls(head_activation(model), summary.get("class_names") or config.data.class_names, summary.get("outputs"), top_k)

    def describe(self) -> dict:
        """What the answers hold, for a server's status."""
        if self.outputs is not None:
            return {"outputs": [{k: v for k, v in output.items() if k in ("name", "column", "type", "values")} for output in self.outputs]}
        return {"activation": self.activation}

    def __call__(self, raw) -> list[dict]:
        from .models.parts import OUTPUT_TYPES

        if self.outputs is None:
            return answers(np.asarray(raw, dtype=np.float64), self.activation, self.class_names, self.top_k)
        per_output = {}
        for output in self.outputs:
            kind, values = output["type"], output.get("values")
            activation = OUTPUT_TYPES[kind][1]
            scores = np.asarray(raw[output["name"]], dtype=np.float64)
            per_output[output["name"]] = labels_above(scores, values) if kind == "multi_label" else answers(scores, activation, values, self.top_k)
        return [{"outputs": {name: found[i] for name, found in per_output.items()}} for i in range(len(next(iter(per_output.values()))))]


def labels_above(scores: np.ndarray, labels: list[str], threshold: float = 0.5) -> list[dict]:
    """Several labels per example: those scored at `threshold` or above, most likely first."""
    found = []
    for row in scores:
        order = [int(i) for i in np.argsort(-row) if row[i] >= threshold]
        found.append({"labels": [labels[i] for i in order], "probabilities": [float(row[i]) for i in order]})
    return found


def answers(outputs: np.ndarray, activation: str | None, class_names: list[str] | None, top_k: int = 1) -> list[dict]:
    """The model's outputs as answers: class, name and probability (and the top k), or values."""
    results = []
    for output in outputs:
        result = {}
        if activation == "softmax":
            order = np.argsort(-output)[:top_k]
            ranked = [{"class": int(i), **({"name": class_names[i]} if class_names else {}), "probability": float(output[i])} for i in order]
            result.update(ranked[0])
            if top_k > 1:
                result["top_k"] = ranked
        elif activation == "sigmoid":
            p = float(output.reshape(-1)[0])
            cls = int(p >= 0.5)
            result.update({"class": cls, **({"name": class_names[cls]} if class_names else {}), "probability": p if cls else 1 - p})
        else:
            result["values"] = output.reshape(-1).tolist() if output.ndim else [float(output)]
        results.append(result)
    return results


def _unknown_word_shares(model, columns: dict, statistics: dict) -> dict[str, list[float]]:
    """A table's text columns: per row, the share of its words the column's vocabulary (the model's
    own `<input>_words` layer) does not know."""
    from .data.statistics import unknown_shares

    shares = {}
    for name, column in (statistics.get("texts") or {}).items():
        texts = np.asarray(columns.get(column["input"], [])).reshape(-1)
        if texts.size:  # a missing text (no tokens) is missing, not unknown
            shares[name] = unknown_shares(model.get_layer(f"{column['input']}_words"), texts, empty=0.0)
    return shares


def _domain_warnings(model, labels: list[str], examples: np.ndarray, text: bool, statistics: dict) -> dict[str, list[str]]:
    """label -> why that input is unlike the training inputs (nothing when it is like them)."""
    from .data.statistics import domain_warnings, text_warning, unknown_shares

    if not statistics:
        return {}
    if not text:
        return {label: domain_warnings(label, np.asarray(x), statistics) for label, x in zip(labels, examples)}
    from .models.finetune import leaf_layers

    vectorizer = next((layer for layer in leaf_layers(model) if type(layer).__name__ == "TextVectorization"), None)
    if vectorizer is None:
        return {}
    shares = unknown_shares(vectorizer, examples, empty=1.0)  # a text of no known tokens: all unknown
    return {label: text_warning(label, share, statistics) for label, share in zip(labels, shares)}
