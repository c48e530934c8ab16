"""A run's life in its folder: opened (new, or resumed), recorded `running`, and whatever ends it
turned into a status with a one-line reason: `completed`, `pruned`, `interrupted` (Ctrl-C,
SIGTERM: the state saved first) or `failed` (a NaN loss, a full disk, any error; the traceback kept
in run.json). A config error found late leaves no new folder behind.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import console, runs
from .config import dump_config
from .errors import ConfigError, DloptError, Interrupted, RunFailed
from .runs import RunFolder

RESERVE_BYTES = 256 * 1024  # room kept for run.json's last write (a few KB, with the config and traceback)


@dataclass
class Run:
    """The folder a run writes to, its run.json record, and the epochs an earlier process finished."""

    run_dir: Path
    record: object  # runs.RunRecord, or _ScratchRecord for a multi-worker run's other workers
    earlier_rows: list[dict] = field(default_factory=list)
    resumed: bool = False
    restore_dir: Path | None = None  # a non-chief worker restores the chief's saved state from here
    backup: object = None  # the resume state's callback, once fit is set up: saved on an interrupt
    keep_partial_epoch: bool = True  # False (strict determinism): an interrupt keeps the last epoch end's state

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    def reserve_room(self) -> None:
        """A small file that holds room for the final status: on a full disk it is deleted, and
        run.json still says how the run ended."""
        try:
            self.folder.reserve.write_bytes(b"\0" * RESERVE_BYTES)
        except OSError:  # already full: the status write may still fit
            self.folder.reserve.unlink(missing_ok=True)

    def finish(self, status: str, message: str | None = None) -> None:
        self.record.finish(status, message)
        self.folder.reserve.unlink(missing_ok=True)
        if status in runs.FINISHED:
            runs.remove(self.folder.backup)  # the resume state is only needed until the run ends

    @contextlib.contextmanager
    def recorded(self):
        """Ctrl-C and SIGTERM stop training at a safe point; any exception becomes the run's status."""
        from .callbacks.stopping import StopAtSafePoint

        self.stopper = StopAtSafePoint()
        previous = {sig: signal.signal(sig, self.stopper.handle_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        except ConfigError:
            if not self.resumed:
                runs.remove(self.run_dir)  # a config error found late: nothing ran, leave nothing behind
            else:
                self.record.finish("failed", "config error on resume")
            raise
        except KeyboardInterrupt:
            self._interrupted()
        except RunFailed as exc:
            not_recorded = _finish(self.record, "failed", str(exc), self.folder.reserve)
            raise _with_run(RunFailed(f"{exc}{not_recorded}") if not_recorded else exc, self.run_dir)
        except Exception as exc:  # anything else: record it, report one line, keep the traceback in run.json
            self._failed(exc)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _interrupted(self):
        if self.backup is not None and self.stopper.requested and self.keep_partial_epoch:
            try:
                self.backup.save_now()  # stopped between steps: keep the state of this moment for --resume
            except Exception:  # e.g. a second Ctrl-C mid-write: the last complete save still stands
                pass
        _finish(self.record, "interrupted", f"interrupted by Ctrl-C or SIGTERM; continue with: dlopt train --resume {self.run_dir}", self.folder.reserve)
        raise _with_run(Interrupted(f"interrupted; resume with: dlopt train --resume {self.run_dir}"), self.run_dir) from None

    def _failed(self, exc: Exception):
        if _disk_full(exc):
            from .callbacks.saving import release_failed_files

            release_failed_files()
            message = f"no space left on device writing {getattr(exc, 'filename', None) or self.run_dir}; free some space (or use another --runs-dir), then: dlopt train --resume {self.run_dir}"
        else:
            message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            self.record.data["traceback"] = traceback.format_exc()
        not_recorded = _finish(self.record, "failed", message, self.folder.reserve)
        raise _with_run(RunFailed(f"run {self.run_dir} failed: {message}{not_recorded}"), self.run_dir) from exc


def open_run(config, runs_dir: Path, command: list[str], resume: Path | None, trial=None) -> Run:
    """A new run folder with config.yaml and run.json (`running`), or an earlier run to continue:
    an interrupted or killed one from its resume state, a completed one from last.keras."""
    keep_partial_epoch = config.train.deterministic != "strict"
    if resume is None:
        run_dir = runs.create(runs_dir, trial.run_name if trial else config.name).path
        config_text = dump_config(config)
        runs.write_text_atomic(RunFolder(run_dir).config, config_text)
        record = runs.RunRecord(run_dir, config.seed, command)
        from .manifest import manifest

        record.data["manifest"] = manifest(config, config_text, command)
        if trial is not None:
            record.data["search"] = trial.started(run_dir)
        record.save()
        run = Run(run_dir, record, keep_partial_epoch=keep_partial_epoch)
        run.reserve_room()
        return run
    run_dir = resume
    if runs.read_json(RunFolder(run_dir).record).get("status") in runs.FINISHED:  # trained further: more epochs
        done = runs.continue_completed(run_dir, dump_config(config))
        console.say(f"continuing {run_dir} from epoch {done} (checkpoints/last.keras) to {config.train.epochs}; the schedule runs over the new total")
    for warning in runs.repair_resume_state(run_dir):  # before anything is marked: a state that cannot load leaves the run as it was
        console.say(warning)
    record = runs.RunRecord.resume(run_dir, command)
    if trial is not None:  # a search's trial run again, from where its worker died
        record.data["search"] = trial.started(run_dir)
        record.save()
    run = Run(run_dir, record, runs.rows_to_resume(run_dir), resumed=True, keep_partial_epoch=keep_partial_epoch)
    run.reserve_room()
    return run


class _ScratchRecord:
    """A non-chief worker's stand-in for run.json: the chief alone records the run."""

    def __init__(self):
        self.data: dict = {}

    def finish(self, status: str, error: str | None = None) -> None:
        pass


def scratch_run(scratch: Path, resume: Path | None) -> Run:
    """A multi-worker run's other worker: it trains alongside the chief into a scratch folder."""
    return Run(scratch, _ScratchRecord(), runs.rows_to_resume(resume) if resume else [], resumed=resume is not None, restore_dir=resume)


def _with_run(error: DloptError, run_dir: Path) -> DloptError:
    error.run_dir = str(run_dir)  # for `--json`: which run the error belongs to
    return error


def _disk_full(exc: BaseException) -> bool:
    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in str(exc)


def _finish(record, status: str, message: str, reserve: Path | None = None) -> str:
    """Record the run's end in run.json. On a full disk the reserve file is deleted to make room
    and the write tried again; when even that cannot be written, the text to add to the message on
    stderr, which then carries the only record."""
    try:
        try:
            record.finish(status, message)
        except OSError as exc:
            if reserve is None or not reserve.exists() or not _disk_full(exc):
                raise
            reserve.unlink()
            record.finish(status, message)
        return ""
    except OSError as exc:
        return f" (run.json could not be updated: {exc.strerror or exc}; it still says 'running')"
    finally:
        if reserve is not None:
            reserve.unlink(missing_ok=True)
