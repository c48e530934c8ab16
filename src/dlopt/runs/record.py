"""run.json: a run's status (running|completed|failed|interrupted|pruned), times, command, seed,
versions and host."""

from __future__ import annotations

import os
import platform
import socket
import time
from datetime import datetime
from pathlib import Path

from .. import __version__
from .files import read_json, write_json
from .folder import RunFolder


def versions() -> dict:
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__, "dlopt": __version__}


class RunRecord:
    """run.json: status (running|completed|failed|interrupted), times, command, seed, versions, host."""

    def __init__(self, run_dir: Path, seed: int, command: list[str]):
        self.path = RunFolder(run_dir).record
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
        record.path = RunFolder(run_dir).record
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


def pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, ValueError, TypeError):
        return False
