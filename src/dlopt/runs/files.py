"""Files other processes read, written whole: to a temporary name in the same folder, then renamed
into place, so a reader never sees half a file and a failed write leaves the old file as it was."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


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


def read_json(path: Path):
    with open(path) as handle:
        return json.load(handle)


def read_json_if_any(path: Path) -> dict:
    """A run file that may be missing or half-read (a run still going): {} then."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def remove(path: Path) -> None:
    """Delete a folder (or a file) if it is there."""
    if Path(path).is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        Path(path).unlink(missing_ok=True)
