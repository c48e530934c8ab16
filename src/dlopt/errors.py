"""Every error dlopt reports to the user as one line, and the exit code each one means.

Exit codes: 0 done, 1 the run failed, 2 a usage or config error (nothing was created),
130 interrupted (the run is marked `interrupted` and can be resumed).
"""

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C (128 + SIGINT)


class DloptError(Exception):
    """An error with a one-line message meant for the user."""

    exit_code = EXIT_RUN_FAILED


class ConfigError(DloptError):
    """The config (or a command-line option) is wrong: exit code 2, nothing is run."""

    exit_code = EXIT_CONFIG


class UsageError(ConfigError):
    """A wrong combination of command-line arguments: exit code 2."""


class RunFailed(DloptError):
    """The run started but could not finish (data, model or numeric failure): exit code 1."""

    exit_code = EXIT_RUN_FAILED


class StorageError(DloptError):
    """A search's study storage cannot be reached (a server down, a driver missing): exit code 1."""

    exit_code = EXIT_RUN_FAILED


class Interrupted(DloptError):
    """Ctrl-C or SIGTERM stopped the run at a safe point, its state saved: exit code 130. Its
    message says how to go on, so it is shown without `error:`."""

    exit_code = EXIT_INTERRUPTED


def status_of(error: DloptError) -> str:
    """The word `--json` prints for an error: interrupted, config_error or failed."""
    return {EXIT_INTERRUPTED: "interrupted", EXIT_CONFIG: "config_error"}.get(error.exit_code, "failed")


class TrackingError(DloptError):
    """An experiment tracker (MLflow) cannot be reached where the config says that must stop the
    run (`tracking.mlflow.on_unreachable: error`), or for `dlopt mlflow-sync`: exit code 1."""

    exit_code = EXIT_RUN_FAILED
