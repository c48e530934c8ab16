"""The `dlopt` command line: parse, call, print. TensorFlow is imported inside commands only."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from pathlib import Path

import click

from .errors import ConfigError, DloptError
from .tta import VIEWS as TTA_VIEWS


class UsageError(ConfigError):
    """Wrong combination of command-line arguments: exit code 2."""

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
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # a bug or an unforeseen failure: still one line, never a traceback
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            click.echo(f"error: {type(exc).__name__}: {first}", err=True)
            sys.exit(1)

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


@contextlib.contextmanager
def _json_on_failure(as_json: bool, run_dir=None):
    """With --json, a failure still prints one object, so a shell loop collecting results sees it."""
    try:
        yield
    except DloptError as exc:
        if as_json:
            status = {130: "interrupted", 2: "config_error"}.get(exc.exit_code, "failed")
            click.echo(json.dumps({"run_dir": getattr(exc, "run_dir", None) or run_dir, "status": status, "error": str(exc)}))
        raise


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
@click.argument("config_file", required=False, type=click.Path(dir_okay=False))
@config_options
@click.option("--name", help="Run name (sets the config's `name`).")
@click.option("--seed", type=int, help="Random seed (sets the config's `seed`).")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False), help="Folder that holds run folders.")
@click.option("--resume", "resume", type=click.Path(file_okay=False, exists=True), metavar="RUN", help="Continue an interrupted or killed run from its last saved state.")
@click.option("--progress", type=PROGRESS, default=None, help="Progress display (default: the config's train.progress).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the run folder, status and metrics.")
@reports_errors
def train(config_file, sets, module, name, seed, runs_dir, resume, progress, as_json):
    """Train the model CONFIG_FILE describes; write everything under RUNS_DIR/<name>-<time>/.

    \b
    Examples:
      dlopt train configs/cnn_mnist.yaml
      dlopt train configs/cnn_mnist.yaml --set optimizer.learning_rate=3e-4 --set train.epochs=5
      for lr in 3e-3 1e-3; do dlopt train cfg.yaml --set optimizer.learning_rate=$lr --json; done
      dlopt train --resume runs/cnn_mnist-20260101-120000
    """
    from .config import load_config

    if resume:
        if config_file or sets or module or name or seed is not None:
            raise UsageError("--resume continues a run with its saved config; give no CONFIG_FILE, --set, --module, --name or --seed")
        from .runs import check_resumable

        check_resumable(Path(resume))
        config = load_config(Path(resume) / "config.yaml")
    elif not config_file:
        raise UsageError("give a CONFIG_FILE to train, or --resume RUN")
    else:
        config = load_config(config_file, _overrides(sets, module, name=name, seed=seed))
    _quiet_tensorflow()
    from . import report
    from .train import train as run_training

    with _json_on_failure(as_json):
        summary = run_training(config, Path(runs_dir), command_line(), progress or config.train.progress, resume=Path(resume) if resume else None)
    if as_json:
        keys = ("run_dir", "status", "best", "final", "test", "epochs_run", "train_seconds", "worker")
        click.echo(json.dumps({k: summary[k] for k in keys if k in summary}))
    elif summary.get("worker"):  # a multi-worker run's other workers: the chief reports and writes
        click.echo(f"{summary['worker']}: training completed; the chief wrote the run folder")
    else:
        report.stdout.print(report.results_table(summary))
        if summary.get("forecast"):
            report.stdout.print(report.forecast_table(summary["forecast"]))
        report.stdout.print(report.results_footer(summary), soft_wrap=True)


@main.command(name="eval")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]), help="Which split to evaluate.")
@click.option("--checkpoint", default="best", show_default=True, type=click.Choice(["best", "last"]), help="Which saved model to load.")
@click.option("--tta", "views", multiple=True, type=click.Choice(TTA_VIEWS), help="Test-time augmentation view (repeatable); default: the run's data.tta.")
@click.option("--no-tta", is_flag=True, help="Evaluate each image once, even if the run's config sets data.tta.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@reports_errors
def evaluate(run_dir, split, checkpoint, views, no_tta, as_json):
    """Re-evaluate a finished run's saved model; writes RUN_DIR/eval/<split>.json.

    \b
    Examples:
      dlopt eval runs/cnn_mnist-20260101-120000 --split test --checkpoint last
      dlopt eval runs/cnn_fashion_mnist_local-20260101-120000 --tta horizontal_flip
    """
    _quiet_tensorflow()
    from . import report
    from .evaluate import evaluate as run_eval

    with _json_on_failure(as_json, run_dir):
        if no_tta and views:
            raise UsageError("--no-tta and --tta: give one of them")
        result = run_eval(Path(run_dir), split, checkpoint, [] if no_tta else list(views) or None)
    if as_json:
        click.echo(json.dumps(result))
    else:
        from rich.table import Table

        single_view = result.get("metrics_single_view")
        table = Table(title=f"{run_dir} · {split} ({result['examples']} examples) · {checkpoint}.keras", title_justify="left")
        table.add_column("metric")
        table.add_column(f"tta: image + {' + '.join(result['tta'])}" if single_view else "value", justify="right")
        if single_view:
            table.add_column("1 view", justify="right")
        for key, value in result["metrics"].items():
            table.add_row(key, f"{value:.4f}", *([f"{single_view[key]:.4f}"] if single_view else []))
        report.stdout.print(table)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--sort", "sort_by", metavar="COLUMN", help="Sort by a column, e.g. val_accuracy, test_accuracy, train_seconds.")
@click.option("--asc/--desc", "ascending", default=None, help="Sort order (default: best first: accuracies descending, losses ascending).")
@click.option("--status", "statuses", multiple=True, type=click.Choice(["completed", "running", "failed", "interrupted", "died"]), help="Only runs with this status (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of runs.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@reports_errors
def compare(paths, sort_by, ascending, statuses, as_json, as_csv):
    """Table of runs: status, the settings that differ, metrics, epochs, time. No TensorFlow needed.

    PATHS are run folders or folders of runs (default: runs/).

    \b
    Examples:
      dlopt compare runs/ --sort val_accuracy
      dlopt compare runs/ --status completed --csv > results.csv
    """
    from . import compare as compare_runs

    descending = None if ascending is None else not ascending
    columns, rows = compare_runs.table([Path(p) for p in paths or ["runs"]], sort_by, tuple(statuses), descending)
    if as_json:
        click.echo(json.dumps(rows))
    elif as_csv:
        click.echo(compare_runs.to_csv(columns, rows), nl=False)
    else:
        from rich.table import Table

        from .report import stdout

        table = Table(title=f"{len(rows)} runs", title_justify="left")
        for column in columns:
            table.add_column(column, justify="left" if column in ("run", "status") else "right", overflow="fold")
        for row in rows:
            table.add_row(*(compare_runs.format_value(row.get(c)) for c in columns))
        if not stdout.is_terminal:  # piped, rich assumes 80 columns and folds every cell: use the table's own width
            from rich.console import Console

            stdout = Console(highlight=False, width=stdout.measure(table, options=stdout.options.update_width(10_000)).maximum)
        stdout.print(table)


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False), help="PNG file to write [default: curves.png, or feature_maps.png].")
@click.option("--feature-maps", is_flag=True, help="Instead of curves: a grid of one convolution layer's activations for --input.")
@click.option("--input", "image", type=click.Path(dir_okay=False, exists=True), help="--feature-maps: the image (or .npy array) to run through the model.")
@click.option("--layer", help="--feature-maps: the convolution layer (default: the first).")
@click.option("--checkpoint", default="best", show_default=True, type=click.Choice(["best", "last"]), help="--feature-maps: which saved model.")
@reports_errors
def plot(runs, output, feature_maps, image, layer, checkpoint):
    """Overlay the loss and metric curves of one or more RUNS in one PNG, or draw feature maps.

    \b
    Examples:
      dlopt plot runs/lr3e-3-20260101-120000 runs/lr1e-3-20260101-120500 -o lr.png
      dlopt plot runs/cnn-20260101-120000 --feature-maps --input shoe.png --layer block1_conv0
    """
    if feature_maps:
        if len(runs) != 1 or not image:
            raise UsageError("--feature-maps takes exactly one RUN and an --input image")
        _quiet_tensorflow()
        from .feature_maps import plot_feature_maps

        result = plot_feature_maps(Path(runs[0]), image, layer, Path(output or "feature_maps.png"), checkpoint)
        click.echo(result["output"])
        return
    if image or layer:
        raise UsageError("--input and --layer go with --feature-maps")
    output = output or "curves.png"
    from .report import plot_curves, read_metrics

    curves = {}
    for run in map(Path, runs):
        if not (run / "metrics.csv").exists():
            raise ConfigError(f"{run}: no metrics.csv (not a run folder, or no epoch finished yet)")
        curves[run.name] = read_metrics(run / "metrics.csv")
    plot_curves(curves, Path(output))
    click.echo(output)


@main.command()
@click.argument("config_file", type=click.Path(dir_okay=False))
@config_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@reports_errors
def summary(config_file, sets, module, as_json):
    """Show the model CONFIG_FILE builds: layers, output shapes, parameters and FLOPs. No training.

    \b
    Example:
      dlopt summary configs/cnn_fashion_mnist_local.yaml
    """
    from .config import load_config

    config = load_config(config_file, _overrides(sets, module))
    _quiet_tensorflow()
    from . import data, models
    from .describe import describe

    data.preflight(config)  # a missing path or an unknown dataset: one line, as for train
    models.check_model_type(config.model)
    result = describe(config)
    if as_json:
        click.echo(json.dumps(result))
        return
    from rich.table import Table

    from .report import stdout

    table = Table(title=f"{result['name']}: input {tuple(result['input_shape'])}", title_justify="left")
    for column in ("layer", "type", "output shape", "parameters", "FLOPs"):
        table.add_column(column, justify="left" if column in ("layer", "type") else "right")
    for row in result["layers"]:
        shape = "" if row["output_shape"] is None else "x".join("?" if d is None else str(d) for d in row["output_shape"])
        name = row["name"] + ("" if row["trainable"] else " (frozen)")
        table.add_row(name, row["type"], shape, f"{row['parameters']:,}", f"{row['flops']:,}")
    stdout.print(table)
    flops = result["flops_per_example"]
    stdout.print(
        f"{result['parameters']:,} parameters ({result['trainable_parameters']:,} trainable), {result['weights_bytes'] / 1e6:.2f} MB of weights, "
        f"{'unknown' if flops is None else f'{flops / 1e6:,.2f} M'} FLOPs per example",
        soft_wrap=True,
    )


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--format", "fmt", default="keras", show_default=True, type=click.Choice(["keras", "saved_model", "tflite"]), help="Keras file, TensorFlow SavedModel (serving), or TFLite (mobile).")
@click.option("-o", "--output", type=click.Path(), help="Where to write [default: RUN_DIR/export/model.keras | saved_model | model.tflite]; never overwritten.")
@click.option("--checkpoint", default="best", show_default=True, type=click.Choice(["best", "last"]), help="Which saved model to export.")
@reports_errors
def export(run_dir, fmt, output, checkpoint):
    """Export a run's model for serving or devices; prints the path written.

    \b
    Examples:
      dlopt export runs/cnn-20260101-120000 --format saved_model
      dlopt export runs/cnn-20260101-120000 --format tflite -o cnn.tflite
    """
    _quiet_tensorflow()
    from .export import export as run_export

    click.echo(run_export(Path(run_dir), fmt, Path(output) if output else None, checkpoint))


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.argument("inputs", nargs=-1, required=True)
@click.option("--checkpoint", default="best", show_default=True, type=click.Choice(["best", "last"]), help="Which saved model to use.")
@click.option("--top-k", default=1, show_default=True, type=click.IntRange(min=1), help="Classes listed per input.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per input.")
@reports_errors
def predict(run_dir, inputs, checkpoint, top_k, as_json):
    """Predict with a run's model. INPUTS: image files, .npy/.npz arrays (one example or a batch),
    or for text models text files (one example per line) or quoted text.

    \b
    Examples:
      dlopt predict runs/cnn-20260101-120000 shoe.png bag.png
      dlopt predict runs/cnn-20260101-120000 batch.npy --json | jq '.[].class'
      dlopt predict runs/lstm_imdb-20260101-120000 "a wonderful film" reviews.txt
    """
    _quiet_tensorflow()
    from .predict import predict as run_predict

    results = run_predict(Path(run_dir), list(inputs), checkpoint, top_k)
    if as_json:
        click.echo(json.dumps(results))
        return
    from rich.table import Table

    from .report import stdout

    stdout.print(f"{run_dir} · {checkpoint}.keras", soft_wrap=True)
    table = Table()
    values = "values" in results[0]
    for column in ("input", "prediction") if values else ("input", "class", "probability"):
        table.add_column(column, justify="left" if column != "probability" else "right")
    for result in results:
        if values:
            table.add_row(result["input"], ", ".join(f"{v:.4g}" for v in result["values"]))
        else:
            ranked = result.get("top_k") or [result]
            label = "  ".join(f"{r.get('name', r['class'])}" for r in ranked)
            table.add_row(result["input"], label, "  ".join(f"{r['probability']:.3f}" for r in ranked))
    stdout.print(table)


if __name__ == "__main__":
    main()
