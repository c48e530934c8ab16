"""What reproduces a run, recorded in run.json's `manifest`: the resolved config's hash, the
command-line overrides as given, the code's git commit, a fingerprint of the data, the versions of
the packages that matter, and the machine."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("tensorflow", "keras", "numpy", "tensorflow-datasets", "scikit-learn", "h5py", "pydantic", "pyyaml")
OPTIONS = ("--set", "--name", "--seed", "--module")
MAX_FILES = 100_000  # a data folder's listing is hashed; beyond this many files only counted


def config_hash(config_text: str) -> str:
    """sha256 of the resolved config as saved in config.yaml: equal hashes, equal settings."""
    return hashlib.sha256(config_text.encode()).hexdigest()


def overrides(command: list[str]) -> list[str]:
    """The options that changed the config file's settings, as typed."""
    found = []
    for option, value in zip(command, command[1:]):
        if option in OPTIONS:
            found.append(f"{option} {value}")
    return found


def git_state(folder: Path) -> dict | None:
    """Commit and dirty flag of the repository holding `folder` (None outside a repository)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip()), "root": git("rev-parse", "--show-toplevel").stdout.strip()}


def data_fingerprint(data) -> dict:
    """Files: their count, total size and a hash of (name, size, modification time) of each;
    TFDS and bundled sets: their name and the package version that ships them."""
    if data.source == "tfds":
        return {"source": "tfds", "name": data.name, "splits": data.splits.model_dump(), "data_dir": data.data_dir, "tensorflow-datasets": _version("tensorflow-datasets")}
    if data.source == "sklearn":
        return {"source": "sklearn", "name": data.name, "scikit-learn": _version("scikit-learn")}
    path = Path(data.path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    digest = hashlib.sha256()
    total = 0
    for file in files[:MAX_FILES]:
        stat = file.stat()
        total += stat.st_size
        digest.update(f"{file.relative_to(path) if file != path else file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return {"source": data.source, "path": str(path), "files": len(files), "bytes": total, "listing_sha256": digest.hexdigest()}


def machine() -> dict:
    import tensorflow as tf

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "gpus": [device.name for device in tf.config.list_physical_devices("GPU")],
        "system": f"{platform.system()} {platform.release()}",
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def manifest(config, config_text: str, command: list[str]) -> dict:
    return {
        "config_sha256": config_hash(config_text),
        "config": config_text,  # what --resume checks config.yaml against, naming the keys that changed
        "overrides": overrides(command),
        "git": git_state(Path.cwd()),
        "data": data_fingerprint(config.data),
        "packages": {name: _version(name) for name in PACKAGES},
        "machine": machine(),
        "deterministic": config.train.deterministic,
    }
