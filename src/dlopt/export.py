"""`dlopt export`: a run's model as a .keras file, a TensorFlow SavedModel or a TFLite flat buffer.

Each is written under a temporary name and renamed into place; an existing path is never replaced.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError, RunFailed
from .runs import RunFolder, remove
from .saved_models import load_run_model

def export(run_dir: Path, fmt: str, output: Path | None = None, checkpoint: str = "best") -> Path:
    _, model, _ = load_run_model(run_dir, checkpoint)
    output = output or RunFolder(run_dir).exported(fmt)
    if output.exists():
        raise ConfigError(f"-o: {output} already exists; dlopt never overwrites files: choose another path or remove it")
    if fmt == "keras" and output.suffix != ".keras":
        raise ConfigError(f"-o: a Keras model file must end in .keras, got {output}")
    if fmt == "tflite" and output.suffix != ".tflite":
        raise ConfigError(f"-o: a TFLite file must end in .tflite, got {output}")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.{os.getpid()}.tmp{output.suffix}")
    try:
        if fmt == "keras":
            model.save(tmp)  # loaded without its optimizer: the file holds what inference needs
        elif fmt == "saved_model":
            model.export(tmp, format="tf_saved_model", verbose=False)
        else:  # Keras' LiteRT exporter; it falls back to TensorFlow ops TFLite lacks (text vectorisation)
            model.export(tmp, format="litert", verbose=False)
        os.replace(tmp, output)
    except Exception as exc:
        raise RunFailed(f"export to {fmt} failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}") from None
    finally:
        remove(tmp)
    return output

