"""Where a study lives. Optuna's own storages: an SQLite file in the study folder (the default,
nothing to set up), a PostgreSQL or MySQL server that workers on several machines share, or a
journal file (`journal:PATH`) on a shared filesystem."""

from __future__ import annotations

import re
import time
from pathlib import Path

from ..errors import ConfigError, StorageError


def default_url(study_dir: Path) -> str:
    return f"sqlite:///{(study_dir / 'study.db').resolve()}"


def shown(url: str) -> str:
    """The URL with any password replaced, for messages and run.json."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


# the driver SQLAlchemy picks for a plain postgresql:// or mysql:// URL, as pip installs it
DRIVERS = {"postgresql": "'psycopg[binary]'", "mysql": "mysqlclient (or PyMySQL with a mysql+pymysql:// URL)"}


def open_storage(url: str, heartbeat_seconds: int, retries: int):
    """The Optuna storage at `url`. Database storages record a heartbeat per running trial, so the
    next worker fails (and, with `retries`, re-runs) a trial whose worker was killed."""
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len("journal:"):]).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in ("sqlite", "postgresql", "mysql"):
        raise ConfigError(f"--storage {shown(url)}: expected sqlite:///FILE, postgresql://..., mysql://... or journal:FILE")
    engine = {"connect_args": {"timeout": 60}} if scheme == "sqlite" else {"pool_pre_ping": True}
    retry = optuna.storages.RetryFailedTrialCallback(max_retry=retries, inherit_intermediate_values=True) if retries else None
    for attempt in range(4):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat_seconds, grace_period=2 * heartbeat_seconds, failed_trial_callback=retry)
        except Exception as exc:
            if attempt < 3 and _creating_tables_alongside(exc):
                time.sleep(1 + attempt)  # another worker is creating the tables of a new storage this moment
                continue
            _fail(exc, url, scheme)


def _creating_tables_alongside(exc: Exception) -> bool:
    text = str(exc)
    return any(sign in text for sign in ("duplicate key", "already exists", "UNIQUE constraint failed", "database is locked"))


def _fail(exc: Exception, url: str, scheme: str):
    """A missing driver, SQLAlchemy's OperationalError and friends: one line saying which storage, why."""
    if isinstance(exc, ModuleNotFoundError) or "Failed to import DB access module" in str(exc):
        raise StorageError(f"--storage {shown(url)}: the database driver is not installed; pip install {DRIVERS.get(scheme, 'the driver of ' + scheme)}") from None
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    raise StorageError(f"--storage {shown(url)}: cannot open the study storage: {reason[0] if reason else type(exc).__name__}") from None
