"""Errors dlopt reports to the user as one line, with the exit code each one means."""


class DloptError(Exception):
    """An error with a one-line message meant for the user."""

    exit_code = 1


class ConfigError(DloptError):
    """The config (or a command-line option) is wrong: exit code 2, nothing is run."""

    exit_code = 2


class RunFailed(DloptError):
    """The run started but could not finish (data, model or numeric failure): exit code 1."""

    exit_code = 1
