"""Run folders: each run's files named in one place (`RunFolder`), claimed atomically so parallel
launches never share one, written whole (temporary name, then rename), its status in run.json,
metrics.csv, and the state `--resume` continues from.

  folder.py       RunFolder, creating a folder, finding the one a command line names
  files.py        atomic writes and tolerant reads
  record.py       run.json
  metrics_csv.py  metrics.csv, written and read
  resume.py       the resume state: checks, repair, which runs may resume
"""

from .files import read_json, read_json_if_any, remove, write_json, write_text_atomic
from .folder import RunFolder, auto_name, check_writable, completed_run_of, create, find_run, is_run, links_out_of, shared_config_name, short_names
from .metrics_csv import read_metrics
from .record import RunRecord, pid_alive, versions
from .resume import (
    FINISHED,
    backup_epoch,
    check_config_unchanged,
    check_resumable,
    completed_epochs,
    continue_completed,
    remove_stale_temporaries,
    repair_resume_state,
    rows_to_resume,
    state_from_last_checkpoint,
)
