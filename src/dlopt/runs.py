"""The run directory: unique creation, atomic writes, and run.json's status record.

Parallel launches never share a folder: each run claims its own with an atomic mkdir. Files other
processes read (run.json, summary.json, metrics.csv, eval/*.json) are written to a temporary name
in the same folder and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import re
import os
import platform
import shutil
import socket
import time
from datetime import datetime
from pathlib import Path

from . import __version__


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file and rename it into place; a failed write (a full disk) leaves the
    old file as it was and no temporary file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def create(runs_dir: Path, name: str) -> Path:
    """Claim a new `runs_dir/<name>-<timestamp>[-N]` folder; never reuse an existing one."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 100_000):
        candidate = runs_dir / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            candidate.mkdir()  # atomic: exactly one process wins each name
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a run folder for {name} in {runs_dir}")


def auto_name(name: str, sets) -> str:
    """`--name auto`: the config's name and its --set overrides, made safe for a folder name:
    cnn_mnist-optimizer.learning_rate=3e-4."""
    parts = [name] + [re.sub(r"[^A-Za-z0-9_.=+-]+", "_", option.replace(" ", "")).strip("_") for option in sets]
    return "-".join(part for part in parts if part)[:200]


def completed_run_of(runs_dir: Path, config_text: str) -> dict | None:
    """summary.json of a completed run in `runs_dir` whose resolved config is `config_text`
    (its hash as run.json's manifest records it), the newest if several."""
    from .manifest import config_hash

    wanted = config_hash(config_text)
    if not runs_dir.is_dir():
        return None
    for folder in sorted(runs_dir.iterdir(), key=lambda p: p.name, reverse=True):
        record = read_json_if_any(folder / "run.json")
        if record.get("status") == "completed" and (record.get("manifest") or {}).get("config_sha256") == wanted:
            summary = read_json_if_any(folder / "summary.json")
            if summary:
                return {**summary, "run_dir": str(folder)}
    return None


def remove(path: Path) -> None:
    """Delete a folder (or a file) if it is there."""
    if Path(path).is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        Path(path).unlink(missing_ok=True)


def versions() -> dict:
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__, "dlopt": __version__}


class RunRecord:
    """run.json: status (running|completed|failed|interrupted), times, command, seed, versions, host."""

    def __init__(self, run_dir: Path, seed: int, command: list[str]):
        self.path = run_dir / "run.json"
        self.started = time.time()
        self.data = {
            "status": "running",
            "run_dir": str(run_dir),
            "started": datetime.now().astimezone().isoformat(timespec="seconds"),
            "finished": None,
            "duration_seconds": None,
            "command": " ".join(command),
            "seed": seed,
            "versions": versions(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "error": None,
        }
        self.save()

    @classmethod
    def resume(cls, run_dir: Path, command: list[str]) -> "RunRecord":
        """Mark an interrupted run `running` again, keeping its history in `resumed`."""
        record = cls.__new__(cls)
        record.path = run_dir / "run.json"
        record.started = time.time()
        record.data = read_json(record.path)
        record.data.setdefault("resumed", []).append(
            {"at": datetime.now().astimezone().isoformat(timespec="seconds"), "command": " ".join(command), "previous_status": record.data.get("status")}
        )
        record.data.update(status="running", pid=os.getpid(), host=socket.gethostname(), error=None, finished=None)
        record.save()
        return record

    def save(self) -> None:
        write_json(self.path, self.data)

    def finish(self, status: str, error: str | None = None) -> None:
        self.data.update(
            status=status,
            error=error,
            finished=datetime.now().astimezone().isoformat(timespec="seconds"),
            duration_seconds=round(time.time() - self.started, 3),
        )
        self.save()


def read_json(path: Path):
    with open(path) as handle:
        return json.load(handle)


def read_json_if_any(path: Path) -> dict:
    """A run file that may be missing or half-read (a run still going): {} then."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def backup_epoch(run_dir: Path) -> int:
    """Epochs finished in the saved `--resume` state (0: none saved, start from the beginning)."""
    try:
        return int(read_json(run_dir / "backup" / "training_metadata.json")["epoch"])
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
    for folder in (run_dir, run_dir / "backup", run_dir / "checkpoints", run_dir / "eval"):
        if folder.is_dir():
            for path in folder.glob(".*tmp*"):
                if path.is_file() and not pid_alive(_temporary_pid(path.name)):
                    path.unlink(missing_ok=True)


def _temporary_pid(name: str):
    """The process id in a temporary file's name (None when it has none: then it is stale too)."""
    found = re.search(r"\.(\d+)\.(?:tmp|from_last)", name)
    return int(found.group(1)) if found else None


def completed_epochs(run_dir: Path) -> int:
    from .report import read_metrics

    return len(read_metrics(run_dir / "metrics.csv")) if (run_dir / "metrics.csv").exists() else 0


def state_from_last_checkpoint(run_dir: Path) -> bool:
    """Make checkpoints/last.keras (weights and optimizer state after the last completed epoch) the
    resume state; False if it is missing or does not load."""
    import zipfile

    weights = run_dir / "backup" / "latest.weights.h5"
    weights.parent.mkdir(parents=True, exist_ok=True)
    extracted = weights.with_name(f".{os.getpid()}.from_last.weights.h5")
    try:
        with zipfile.ZipFile(run_dir / "checkpoints" / "last.keras") as archive, archive.open("model.weights.h5") as source, open(extracted, "wb") as target:
            target.write(source.read())
        usable = _weights_readable(extracted)
    except (OSError, KeyError, zipfile.BadZipFile):
        usable = False
    epochs = completed_epochs(run_dir)
    if not usable or epochs == 0:
        extracted.unlink(missing_ok=True)
        return False
    os.replace(extracted, weights)
    write_text_atomic(run_dir / "backup" / "training_metadata.json", json.dumps({"epoch": epochs, "batch": 0}))
    return True


def continue_completed(run_dir: Path, config_text: str) -> int:
    """A completed run trained further: its summary and test analysis are kept under the number of
    epochs they describe, the config saved with its new `train.epochs`, the state taken from
    last.keras. Returns the epochs already trained."""
    from .errors import ConfigError

    done = completed_epochs(run_dir)
    if not state_from_last_checkpoint(run_dir):
        raise ConfigError(f"--resume {run_dir}: checkpoints/last.keras does not load; the run is left as it was")
    for name in ("summary.json", "eval/test.json"):
        if (run_dir / name).exists():
            os.replace(run_dir / name, run_dir / name.replace(".json", f".{done}-epochs.json"))
    write_text_atomic(run_dir / "config.yaml", config_text)
    return done


def repair_resume_state(run_dir: Path) -> str | None:
    """Before --resume: a damaged resume state is replaced by the newest state that loads,
    checkpoints/last.keras (weights and optimizer of its last completed epoch); returns the warning
    to show. When nothing loads, a ConfigError naming the file (the run stays resumable)."""
    from .errors import ConfigError

    remove_stale_temporaries(run_dir)
    weights = run_dir / "backup" / "latest.weights.h5"
    if not weights.exists() or _weights_readable(weights):
        return None
    last = run_dir / "checkpoints" / "last.keras"
    if not state_from_last_checkpoint(run_dir):
        raise ConfigError(f"--resume {run_dir}: {weights} is damaged and {last} cannot replace it (missing or damaged too); the run is left as it was")
    return f"warning: {weights} is damaged; continuing from {last.name} (the state after epoch {completed_epochs(run_dir)})"


def rows_to_resume(run_dir: Path) -> list[dict]:
    """metrics.csv rows of the epochs the saved state includes; later ones will be trained again."""
    from .report import read_metrics

    path = run_dir / "metrics.csv"
    rows = read_metrics(path) if path.exists() else []
    done = backup_epoch(run_dir)
    return [row for row in rows if row["epoch"] <= done]


FINISHED = ("completed", "pruned")  # ended on purpose: --resume trains them further, with more epochs


def check_resumable(run_dir: Path, epochs: int | None = None) -> None:
    """Config error unless `run_dir` is a run that stopped before completing, or a completed run
    to train further (`epochs`: its new total, more than it ran)."""
    from .errors import ConfigError

    if not (run_dir / "run.json").exists() or not (run_dir / "config.yaml").exists():
        raise ConfigError(f"--resume {run_dir}: not a dlopt run folder (no run.json / config.yaml)")
    escaping = links_out_of(run_dir)
    if escaping:
        raise ConfigError(f"--resume {run_dir}: {escaping[0]} is a symbolic link out of the run folder; dlopt writes only inside it (remove the link)")
    record = read_json(run_dir / "run.json")
    status = record.get("status")
    if status in FINISHED:
        done = completed_epochs(run_dir)
        if epochs is None:
            raise ConfigError(f"--resume {run_dir}: the run already {'completed' if status == 'completed' else 'ended (pruned by its search)'} ({done} epochs); to train it further: --set train.epochs=N with N > {done}")
        if epochs <= done:
            raise ConfigError(f"--resume {run_dir}: --set train.epochs={epochs}: the run already trained {done} epochs; give more")
        if not (run_dir / "checkpoints" / "last.keras").exists():
            raise ConfigError(f"--resume {run_dir}: no checkpoints/last.keras to continue from")
    if status == "running" and record.get("host") == socket.gethostname() and pid_alive(record.get("pid")):
        raise ConfigError(f"--resume {run_dir}: the run is still running (pid {record.get('pid')})")
    if status not in FINISHED and epochs is not None:
        raise ConfigError(f"--resume {run_dir}: --set train.epochs is for training a completed run further; this one ({status}) resumes with its saved config")


def links_out_of(folder: Path) -> list[Path]:
    """Symbolic links inside `folder` that lead out of it: writing through one would write elsewhere."""
    root = folder.resolve()
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                found.append(path)
    return found


def pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, ValueError, TypeError):
        return False


def is_run(path: Path) -> bool:
    return (path / "run.json").exists() or (path / "config.yaml").exists()


def find_run(reference: str, runs_dir: Path = Path("runs")) -> Path:
    """The run folder a command line names: a path, `latest` (the newest run in `runs_dir`), or a
    unique prefix of a run folder's name (`runs/quick`, or `quick` for `runs/quick-...`)."""
    from .errors import ConfigError

    path = Path(reference)
    if path.is_dir() and reference != "latest":
        if not is_run(path):
            raise ConfigError(f"{reference}: not a dlopt run folder (no config.yaml)")
        return path
    if reference in ("latest", str(runs_dir / "latest")):
        found = [p for p in runs_dir.iterdir() if p.is_dir() and is_run(p)] if runs_dir.is_dir() else []
        if not found:
            raise ConfigError(f"latest: no runs in {runs_dir}/")
        return max(found, key=lambda p: (p.stat().st_mtime_ns, p.name))
    folder, prefix = (path.parent, path.name) if path.parent != Path(".") else (runs_dir, reference)
    candidates = sorted(p for p in folder.iterdir() if p.name.startswith(prefix) and p.is_dir() and is_run(p)) if folder.is_dir() else []
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ConfigError(f"{reference}: no run folder of that name or prefix in {folder}/")
    listed = ", ".join(p.name for p in candidates[:6]) + (f", ... ({len(candidates)} in all)" if len(candidates) > 6 else "")
    raise ConfigError(f"{reference}: {len(candidates)} runs start with '{prefix}': {listed}; give more of the name")


_RUN_NAME = re.compile(r"^(?P<name>.+)-(?P<date>\d{8})-(?P<time>\d{6})(?P<n>-\d+)?$")


def short_names(names: list[str], drop_shared: bool = False) -> list[str]:
    """Run folder names as short as they can be while still telling the runs apart: the config
    name alone, then with the time of day, then with the date too. `drop_shared`: when every run
    comes from one config, leave its name out (the caller says it once) and keep the time."""
    parts = [_RUN_NAME.match(name) for name in names]
    levels = [
        lambda m: m["name"],
        lambda m: f"{m['name']}-{m['time']}{m['n'] or ''}",
        lambda m: f"{m['name']}-{m['date'][4:]}-{m['time']}{m['n'] or ''}",
    ]
    if drop_shared and len(names) > 1 and shared_config_name(names):
        levels = [lambda m: f"{m['time']}{m['n'] or ''}", lambda m: f"{m['date'][4:]}-{m['time']}{m['n'] or ''}"]
    for level in levels:
        short = [level(m) if m else name for m, name in zip(parts, names)]
        if len(set(short)) == len(short):
            return short
    return list(names)


def shared_config_name(names: list[str]) -> str | None:
    """The config name every one of these run folders carries, if they all carry the same."""
    found = {m["name"] if m else None for m in (_RUN_NAME.match(name) for name in names)}
    return next(iter(found)) if len(found) == 1 and None not in found else None
