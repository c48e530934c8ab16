"""A run folder and every file in it, named in one place (`RunFolder`); claiming a new folder, and
finding the one a command line names (a path, a unique prefix, `latest`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..console import say
from ..errors import ConfigError


@dataclass(frozen=True)
class RunFolder:
    """The files of one run, as the run-directory contract names them (docs/running.md)."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def name(self) -> str:
        return self.path.name

    def __str__(self) -> str:
        return str(self.path)

    def __fspath__(self) -> str:
        return str(self.path)

    # what the run is and how it went
    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def record(self) -> Path:
        return self.path / "run.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def inputs(self) -> Path:
        """The training inputs' statistics, which `predict` compares its inputs with."""
        return self.path / "inputs.json"

    # saved models
    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, which: str) -> Path:
        """`best` or `last`: checkpoints/<which>.keras."""
        return self.checkpoints / f"{which}.keras"

    @property
    def export(self) -> Path:
        return self.path / "export"

    def exported(self, fmt: str) -> Path:
        """`dlopt export`'s default path for `keras`, `saved_model` or `tflite`."""
        return self.export / {"keras": "model.keras", "saved_model": "saved_model", "tflite": "model.tflite"}[fmt]

    # the state `--resume` continues from
    @property
    def backup(self) -> Path:
        return self.path / "backup"

    @property
    def backup_weights(self) -> Path:
        return self.backup / "latest.weights.h5"

    @property
    def backup_metadata(self) -> Path:
        return self.backup / "training_metadata.json"

    @property
    def callback_states(self) -> Path:
        return self.backup / "callback_states.json"

    @property
    def early_stopping_best(self) -> Path:
        return self.backup / "early_stopping_best.npz"

    # logs, pictures and evaluations
    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def curves(self) -> Path:
        return self.plots / "curves.png"

    @property
    def eval(self) -> Path:
        return self.path / "eval"

    def eval_file(self, split: str) -> Path:
        return self.eval / f"{split}.json"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    @property
    def reserve(self) -> Path:
        """Room held for the final status while the run goes (deleted when it ends)."""
        return self.path / ".reserve"

    def writable_folders(self) -> tuple[Path, ...]:
        """The folders a run writes files into (where a killed write may leave a temporary file)."""
        return (self.path, self.backup, self.checkpoints, self.eval)


def create(runs_dir: Path, name: str) -> RunFolder:
    """Claim a new `runs_dir/<name>-<timestamp>[-N]` folder; never reuse an existing one."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 100_000):
        candidate = runs_dir / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            candidate.mkdir()  # atomic: exactly one process wins each name
            return RunFolder(candidate)
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a run folder for {name} in {runs_dir}")


def auto_name(name: str, sets) -> str:
    """`--name auto`: the config's name and its --set overrides, made safe for a folder name:
    cnn_mnist-optimizer.learning_rate=3e-4."""
    parts = [name] + [re.sub(r"[^A-Za-z0-9_.=+-]+", "_", option.replace(" ", "")).strip("_") for option in sets]
    return "-".join(part for part in parts if part)[:200]


def is_run(path: Path) -> bool:
    folder = RunFolder(path)
    return folder.record.exists() or folder.config.exists()


def find_run(reference: str, runs_dir: Path = Path("runs"), for_writing: bool = True) -> Path:
    """`_find_run`, refusing (`for_writing`: for every command that writes into the run) a run
    folder that is a symbolic link, lies outside the folder that holds it, or holds a link out of
    itself: dlopt never writes through a link."""
    found = _find_run(reference, runs_dir)
    if for_writing:
        check_writable(found, reference)
    return found


def check_writable(folder: Path, reference: str) -> None:
    folder = Path(folder)
    if folder.is_symlink() or not folder.resolve().is_relative_to(folder.absolute().parent.resolve()):
        raise ConfigError(f"{reference}: {folder} is a symbolic link to {folder.resolve()}; dlopt writes only into run folders that are not links (name the real folder)")
    escaping = links_out_of(folder)
    if escaping:
        raise ConfigError(f"{reference}: {escaping[0]} is a symbolic link out of the run folder; dlopt writes only inside it (remove the link)")


def _find_run(reference: str, runs_dir: Path = Path("runs")) -> Path:
    """The run folder a command line names: a path, `latest` (the newest run in `runs_dir`), or a
    unique prefix of a run folder's name (`runs/quick`, or `quick` for `runs/quick-...`), or a
    config's name (`runs/cnn_digits`: the newest run of that config, said on stderr)."""
    path = Path(reference)
    if path.is_dir() and reference != "latest":
        if not is_run(path):
            raise ConfigError(f"{reference}: not a dlopt run folder (no config.yaml)")
        return path
    if reference in ("latest", str(runs_dir / "latest")):
        # never a link: `latest` is a run dlopt made here
        found = [p for p in runs_dir.iterdir() if p.is_dir() and not p.is_symlink() and is_run(p)] if runs_dir.is_dir() else []
        if not found:
            raise ConfigError(f"latest: no runs in {runs_dir}/")
        return max(found, key=lambda p: (p.stat().st_mtime_ns, p.name))
    folder, prefix = (path.parent, path.name) if path.parent != Path(".") else (runs_dir, reference)
    candidates = sorted(p for p in folder.iterdir() if p.name.startswith(prefix) and p.is_dir() and is_run(p)) if folder.is_dir() else []
    if len(candidates) == 1:
        return candidates[0]
    of_config = [p for p in candidates if (_RUN_NAME.match(p.name) or {"name": None})["name"] == prefix]
    if of_config:  # a config's name: its newest run, as `latest` is the newest of all
        newest = max(of_config, key=lambda p: p.name)
        say(f"{reference}: the newest of {len(of_config)} {prefix} runs, {newest.name}")
        return newest
    if not candidates:
        from ..registry import did_you_mean

        known = [p.name for p in folder.iterdir() if p.is_dir() and is_run(p)] if folder.is_dir() else []
        configs = {m["name"] for m in map(_RUN_NAME.match, known) if m}
        hint = did_you_mean(prefix, sorted(configs)) or did_you_mean(prefix, known)
        raise ConfigError(f"{reference}: no run folder of that name or prefix in {folder}/{hint}")
    listed = ", ".join(p.name for p in candidates[:6]) + (f", ... ({len(candidates)} in all)" if len(candidates) > 6 else "")
    raise ConfigError(f"{reference}: {len(candidates)} runs start with '{prefix}': {listed}; give more of the name, or `latest`")


def links_out_of(folder: Path) -> list[Path]:
    """Symbolic links inside `folder` that lead out of it: writing through one would write elsewhere."""
    root = Path(folder).resolve()
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                found.append(path)
    return found


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


def completed_run_of(runs_dir: Path, config_text: str) -> dict | None:
    """summary.json of a completed run in `runs_dir` whose resolved config is `config_text`
    (its hash as run.json's manifest records it), the newest if several."""
    from ..manifest import config_hash
    from .files import read_json_if_any

    wanted = config_hash(config_text)
    if not runs_dir.is_dir():
        return None
    for path in sorted(runs_dir.iterdir(), key=lambda p: p.name, reverse=True):
        folder = RunFolder(path)
        record = read_json_if_any(folder.record)
        if record.get("status") == "completed" and (record.get("manifest") or {}).get("config_sha256") == wanted:
            summary = read_json_if_any(folder.summary)
            if summary:
                return {**summary, "run_dir": str(path)}
    return None
