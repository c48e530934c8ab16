"""The `--resume` state on disk: which epochs it holds, whether it loads, and what to do when it
does not (continue from checkpoints/last.keras, with a warning); which runs may be resumed."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

from ..errors import ConfigError
from .files import read_json, write_json, write_text_atomic
from .folder import RunFolder, check_writable
from .metrics_csv import read_metrics
from .record import pid_alive

FINISHED = ("completed", "pruned")  # ended on purpose: --resume trains them further, with more epochs


def backup_epoch(run_dir: Path) -> int:
    """Epochs finished in the saved `--resume` state (0: none saved, start from the beginning)."""
    try:
        return int(read_json(RunFolder(run_dir).backup_metadata)["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def _weights_readable(path: Path) -> bool:
    """Whether an HDF5 weights file opens and every array in it reads."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(lambda name, item: item[()] if isinstance(item, h5py.Dataset) else None)
        return True
    except Exception:  # a damaged file raises OSError, KeyError, RuntimeError, ... depending on where
        return False


def remove_stale_temporaries(run_dir: Path) -> None:
    """Half-written temporary files a killed process left (`.<name>.<pid>.tmp...`, `.<pid>.tmp...`)."""
    for folder in RunFolder(run_dir).writable_folders():
        if folder.is_dir():
            for path in folder.glob(".*tmp*"):
                if path.is_file() and not pid_alive(_temporary_pid(path.name)):
                    path.unlink(missing_ok=True)


def _temporary_pid(name: str):
    """The process id in a temporary file's name (None when it has none: then it is stale too)."""
    found = re.search(r"\.(\d+)\.(?:tmp|from_last)", name)
    return int(found.group(1)) if found else None


def completed_epochs(run_dir: Path) -> int:
    metrics = RunFolder(run_dir).metrics
    return len(read_metrics(metrics)) if metrics.exists() else 0


def state_from_last_checkpoint(run_dir: Path) -> bool:
    """Make checkpoints/last.keras (weights and optimizer state after the last completed epoch) the
    resume state; False if it is missing or does not load."""
    import zipfile

    run = RunFolder(run_dir)
    weights = run.backup_weights
    weights.parent.mkdir(parents=True, exist_ok=True)
    extracted = weights.with_name(f".{os.getpid()}.from_last.weights.h5")
    try:
        with zipfile.ZipFile(run.checkpoint("last")) as archive, archive.open("model.weights.h5") as source, open(extracted, "wb") as target:
            target.write(source.read())
        usable = _weights_readable(extracted)
    except (OSError, KeyError, zipfile.BadZipFile):
        usable = False
    epochs = completed_epochs(run_dir)
    if not usable or epochs == 0:
        extracted.unlink(missing_ok=True)
        return False
    os.replace(extracted, weights)
    write_text_atomic(run.backup_metadata, json.dumps({"epoch": epochs, "batch": 0}))
    return True


def continue_completed(run_dir: Path, config_text: str) -> int:
    """A completed run trained further: its summary and test analysis are kept under the number of
    epochs they describe, the config saved with its new `train.epochs`, the state taken from
    last.keras. Returns the epochs already trained."""
    run = RunFolder(run_dir)
    done = completed_epochs(run_dir)
    if not state_from_last_checkpoint(run_dir):
        raise ConfigError(f"--resume {run_dir}: checkpoints/last.keras does not load; the run is left as it was")
    for path in (run.summary, run.eval_file("test")):
        if path.exists():
            os.replace(path, path.with_name(f"{path.stem}.{done}-epochs.json"))
    write_text_atomic(run.config, config_text)
    from ..manifest import config_hash

    record = read_json(run.record)
    if record.get("manifest"):
        record["manifest"].update(config_sha256=config_hash(config_text), config=config_text)
        write_json(run.record, record)
    return done


def repair_resume_state(run_dir: Path) -> list[str]:
    """Before --resume, every file of the resume state is checked. Damaged weights or epoch record:
    the newest state that loads, checkpoints/last.keras (weights and optimizer of its last completed
    epoch), takes their place; damaged counters or early stopping's best weights: they start
    afresh. Returns the warnings to show, each naming the file and what was lost. When no state
    loads, a ConfigError naming the file (the run is left as it was, to resume once fixed)."""
    run = RunFolder(run_dir)
    remove_stale_temporaries(run_dir)
    warnings = []
    damaged = _damaged_weights_or_epoch(run)
    if damaged is not None:
        last = run.checkpoint("last")
        if not state_from_last_checkpoint(run_dir):
            raise ConfigError(f"--resume {run_dir}: {damaged} is damaged and {last} cannot replace it (missing or damaged too); the run is left as it was")
        warnings.append(f"warning: {damaged} is damaged; continuing from {last.name} (the state after epoch {completed_epochs(run_dir)})")
    if run.callback_states.exists() and not _readable_callback_states(run.callback_states):
        run.callback_states.unlink()
        warnings.append(f"warning: {run.callback_states} is damaged; early stopping's and the plateau schedule's counters and the random states start afresh (weights and epoch kept)")
    if run.early_stopping_best.exists() and not _readable_arrays(run.early_stopping_best):
        run.early_stopping_best.unlink()
        warnings.append(f"warning: {run.early_stopping_best} is damaged; early stopping's best weights so far are lost (it keeps the weights it ends with)")
    return warnings


def _damaged_weights_or_epoch(run: RunFolder) -> Path | None:
    """The file of the weights-and-epoch state that does not load, if one does not."""
    if not run.backup_weights.exists():
        return None
    if not _weights_readable(run.backup_weights):
        return run.backup_weights
    try:
        metadata = read_json(run.backup_metadata)
        epoch, batch = metadata["epoch"], metadata["batch"]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (epoch, batch)):
            return run.backup_metadata
    except (OSError, ValueError, KeyError, TypeError):
        return run.backup_metadata
    return None


def _readable_callback_states(path: Path) -> bool:
    """callback_states.json: completed-epoch count -> {callbacks: [...], seeds: [...]}."""
    try:
        states = read_json(path)
        return isinstance(states, dict) and all(k.isdigit() and isinstance(v, dict) and isinstance(v.get("callbacks"), list) for k, v in states.items())
    except (OSError, ValueError):
        return False


def _readable_arrays(path: Path) -> bool:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as arrays:
            return "best_epoch" in arrays.files and all(arrays[name] is not None for name in arrays.files)
    except Exception:  # a damaged .npz raises OSError, ValueError, zipfile.BadZipFile, ... depending on where
        return False


def rows_to_resume(run_dir: Path) -> list[dict]:
    """metrics.csv rows of the epochs the saved state includes; later ones will be trained again."""
    path = RunFolder(run_dir).metrics
    rows = read_metrics(path) if path.exists() else []
    done = backup_epoch(run_dir)
    return [row for row in rows if row["epoch"] <= done]


def check_config_unchanged(run_dir: Path) -> None:
    """Config error (the run's status untouched) when config.yaml is not the config the run
    started with, as run.json's manifest records it: the saved state fits that config only."""
    from ..manifest import config_hash

    run = RunFolder(run_dir)
    recorded = read_json(run.record).get("manifest") or {}
    text = run.config.read_text()
    if not recorded.get("config_sha256") or config_hash(text) == recorded["config_sha256"]:
        return
    changed = _changed_keys(recorded.get("config"), text)
    what = f"{', '.join(changed[:6])}{' and more' if len(changed) > 6 else ''} differ" if changed else "its text differs"
    raise ConfigError(f"--resume {run_dir}: config.yaml was edited after the run started ({what}); a run resumes with the config it started with: undo the edit, or train the edited config as a new run")


def _changed_keys(before: str | None, after: str) -> list[str]:
    """Dotted keys whose values differ between two config texts (none known without the first)."""
    import yaml

    def flat(value, prefix=""):
        if isinstance(value, dict):
            return {k: v for key, sub in value.items() for k, v in flat(sub, f"{prefix}{key}.").items()}
        return {prefix[:-1]: value}

    try:
        old, new = flat(yaml.safe_load(before) or {}), flat(yaml.safe_load(after) or {})
    except (yaml.YAMLError, TypeError, AttributeError):
        return []
    changed = [key for key in sorted(old.keys() | new.keys()) if old.get(key, "<unset>") != new.get(key, "<unset>")]
    return [f"{key}: {old.get(key, '<unset>')!r} -> {new.get(key, '<unset>')!r}" for key in changed]


def check_resumable(run_dir: Path, epochs: int | None = None) -> None:
    """Config error unless `run_dir` is a run that stopped before completing, or a completed run
    to train further (`epochs`: its new total, more than it ran)."""
    run = RunFolder(run_dir)
    if not run.record.exists() or not run.config.exists():
        raise ConfigError(f"--resume {run_dir}: not a dlopt run folder (no run.json / config.yaml)")
    check_writable(run_dir, f"--resume {run_dir}")
    record = read_json(run.record)
    status = record.get("status")
    if status in FINISHED:
        done = completed_epochs(run_dir)
        if epochs is None:
            raise ConfigError(f"--resume {run_dir}: the run already {'completed' if status == 'completed' else 'ended (pruned by its search)'} ({done} epochs); to train it further: --set train.epochs=N with N > {done}")
        if epochs <= done:
            raise ConfigError(f"--resume {run_dir}: --set train.epochs={epochs}: the run already trained {done} epochs; give more")
        if not run.checkpoint("last").exists():
            raise ConfigError(f"--resume {run_dir}: no checkpoints/last.keras to continue from")
    if status == "running" and record.get("host") == socket.gethostname() and pid_alive(record.get("pid")):
        raise ConfigError(f"--resume {run_dir}: the run is still running (pid {record.get('pid')})")
    if status not in FINISHED and epochs is not None:
        raise ConfigError(f"--resume {run_dir}: --set train.epochs is for training a completed run further; this one ({status}) resumes with its saved config")
