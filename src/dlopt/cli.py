"""The `dlopt` command line: parse, call, print. TensorFlow is imported inside commands only."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import click

from .errors import DloptError

PROGRESS = click.Choice(["auto", "bar", "lines", "none"])


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ start-up chatter is noise on stderr; errors still show
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")


def reports_errors(command):
    """One line on stderr and the error's exit code instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DloptError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(130)

    return wrapper


def config_options(command):
    """--set and --module, shared by every command that reads a config."""
    command = click.option("--module", "module", metavar="FILE_OR_MODULE", help="Python file or module that registers your own model builders (sets model.module).")(command)
    command = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. --set optimizer.learning_rate=3e-4 (repeatable; values are YAML).")(command)
    return command


def _overrides(sets, module=None, **named) -> list:
    overrides = list(sets)
    if module:
        overrides.append((f"model.module={module}", f"--module {module}"))
    for key, value in named.items():
        if value is not None:
            overrides.append((f"{key}={value}", f"--{key} {value}"))
    return overrides


class DloptGroup(click.Group):
    """Remembers the arguments it was called with, for run.json's `command`."""

    invoked_args: list[str] = []

    def main(self, args=None, *rest, **kwargs):
        DloptGroup.invoked_args = list(sys.argv[1:] if args is None else args)
        return super().main(args, *rest, **kwargs)


def command_line() -> list[str]:
    return ["dlopt"] + DloptGroup.invoked_args


@click.group(cls=DloptGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dlopt")
def main():
    """Train Keras models from YAML experiment configs; every run lands in one folder under runs/."""


@main.command()
@click.argument("config_file", type=click.Path(dir_okay=False))
@config_options
@reports_errors
def validate(config_file, sets, module):
    """Check CONFIG_FILE and print the resolved config (defaults filled in). No TensorFlow needed."""
    from .config import dump_config, load_config

    click.echo(dump_config(load_config(config_file, _overrides(sets, module))), nl=False)


@main.command()
@click.argument("config_file", type=click.Path(dir_okay=False))
@config_options
@click.option("--name", help="Run name (sets the config's `name`).")
@click.option("--seed", type=int, help="Random seed (sets the config's `seed`).")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False), help="Folder that holds run folders.")
@click.option("--progress", type=PROGRESS, default=None, help="Progress display (default: the config's train.progress).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the run folder, status and metrics.")
@reports_errors
def train(config_file, sets, module, name, seed, runs_dir, progress, as_json):
    """Train the model CONFIG_FILE describes; write everything under RUNS_DIR/<name>-<time>/.

    \b
    Examples:
      dlopt train configs/cnn_mnist.yaml
      dlopt train configs/cnn_mnist.yaml --set optimizer.learning_rate=3e-4 --set train.epochs=5
      for lr in 3e-3 1e-3; do dlopt train cfg.yaml --set optimizer.learning_rate=$lr --json; done
    """
    from .config import load_config

    config = load_config(config_file, _overrides(sets, module, name=name, seed=seed))
    _quiet_tensorflow()
    from . import report
    from .train import train as run_training

    summary = run_training(config, Path(runs_dir), command_line(), progress or config.train.progress)
    if as_json:
        keys = ("run_dir", "status", "best", "final", "test", "epochs_run", "train_seconds")
        click.echo(json.dumps({k: summary[k] for k in keys}))
    else:
        report.stdout.print(report.results_table(summary))
        report.stdout.print(report.results_footer(summary), soft_wrap=True)


@main.command(name="eval")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]), help="Which split to evaluate.")
@click.option("--checkpoint", default="best", show_default=True, type=click.Choice(["best", "last"]), help="Which saved model to load.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@reports_errors
def evaluate(run_dir, split, checkpoint, as_json):
    """Re-evaluate a finished run's saved model; writes RUN_DIR/eval/<split>.json.

    \b
    Example:
      dlopt eval runs/cnn_mnist-20260101-120000 --split test --checkpoint last
    """
    _quiet_tensorflow()
    from . import report
    from .evaluate import evaluate as run_eval

    result = run_eval(Path(run_dir), split, checkpoint)
    if as_json:
        click.echo(json.dumps(result))
    else:
        from rich.table import Table

        table = Table(title=f"{run_dir} · {split} ({result['examples']} examples) · {checkpoint}.keras", title_justify="left")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in result["metrics"].items():
            table.add_row(key, f"{value:.4f}")
        report.stdout.print(table)


if __name__ == "__main__":
    main()
