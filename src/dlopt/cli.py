"""The `dlopt` command line: parse, call, print. TensorFlow is imported inside commands only."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path

import click

from . import console
from .runs.folder import RunFolder
from .errors import EXIT_INTERRUPTED, EXIT_RUN_FAILED, DloptError, Interrupted, UsageError, status_of
from .tta import VIEWS as TTA_VIEWS

PROGRESS = click.Choice(["auto", "bar", "lines", "none"])


def reports_errors(command):
    """One line on stderr and the error's exit code instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DloptError as exc:
            # stopping a run on purpose is not an error: its message says how to go on
            lines = str(exc).splitlines() or [""]
            console.say("\n".join(lines if isinstance(exc, Interrupted) else [f"error: {line}" for line in lines]))
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            console.say("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # a bug or an unforeseen failure: still one line, never a traceback
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            console.say(f"error: {type(exc).__name__}: {first}")
            sys.exit(EXIT_RUN_FAILED)

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
            overrides.append((f"{key}={value}", f"--{key.rsplit('.', 1)[-1]} {value}"))
    return overrides


def _run(reference: str, for_writing: bool = True) -> Path:
    """A run named on the command line: its folder, a unique prefix of its name, a config's name,
    or `latest`; one the command writes into must be no symbolic link and hold none out of it."""
    from .runs import find_run

    return find_run(reference, for_writing=for_writing)


def _runs_named(references, for_writing: bool = True) -> list[Path]:
    """Runs named on the command line, a folder of runs (RUNS_DIR, a study's) standing for each run in it."""
    from .runs import is_run

    folders = []
    for reference in references:
        path = Path(reference)
        if path.is_dir() and not is_run(path):
            folders += sorted(p for p in path.iterdir() if p.is_dir() and RunFolder(p).record.exists())
        else:
            folders.append(_run(reference, for_writing=for_writing))
    if not folders:
        raise UsageError(f"no run folders in {' '.join(references)}")
    return folders


@contextlib.contextmanager
def _json_on_failure(as_json: bool, run_dir=None):
    """With --json, a failure still prints one object, so a shell loop collecting results sees it."""
    try:
        yield
    except DloptError as exc:
        if as_json:
            click.echo(json.dumps({"run_dir": getattr(exc, "run_dir", None) or run_dir, "status": status_of(exc), "error": str(exc)}))
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
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own log lines too (as does DLOPT_DEBUG=1).")
def main(verbose):
    """Train Keras models from YAML experiment configs; every run lands in one folder under runs/."""
    if not verbose:
        from .runtime import quiet_native_logs

        quiet_native_logs()


@main.command()
@click.argument("config_file", type=click.Path(dir_okay=False))
@config_options
@reports_errors
def validate(config_file, sets, module):
    """Check CONFIG_FILE and print the resolved config (defaults filled in). No TensorFlow needed."""
    from .config import dump_config, load_config

    click.echo(dump_config(load_config(config_file, _overrides(sets, module)), only_applicable=True), nl=False)


@main.command()
@click.argument("config_file", required=False, type=click.Path(dir_okay=False))
@config_options
@click.option("--name", help="Run name (sets the config's `name`); `auto`: the config's name and the --set overrides, e.g. cnn_mnist-optimizer.learning_rate=3e-4.")
@click.option("--seed", type=int, help="Random seed (sets the config's `seed`).")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False), help="Folder that holds run folders.")
@click.option("--skip-if-done", is_flag=True, help="If RUNS_DIR holds a completed run of the same resolved config, print its result and exit 0 (for re-running shell loops).")
@click.option("--resume", "resume", metavar="RUN", help="Continue an interrupted or killed run from its last saved state (a run folder, a unique prefix of its name, or `latest`).")
@click.option("--progress", type=PROGRESS, default=None, help="Progress display (default: the config's train.progress).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the run folder, status and metrics.")
@reports_errors
def train(config_file, sets, module, name, seed, runs_dir, skip_if_done, resume, progress, as_json):
    """Train the model CONFIG_FILE describes; write everything under RUNS_DIR/<name>-<time>/.

    \b
    Examples:
      dlopt train configs/cnn_mnist.yaml
      dlopt train configs/cnn_mnist.yaml --set optimizer.learning_rate=3e-4 --set train.epochs=5
      for lr in 3e-3 1e-3; do dlopt train cfg.yaml --set optimizer.learning_rate=$lr --json; done
      for lr in 3e-3 1e-3; do dlopt train cfg.yaml --set optimizer.learning_rate=$lr --name auto --skip-if-done; done
      dlopt train --resume runs/cnn_mnist-20260101-120000
      dlopt train --resume runs/cnn_mnist-20260101-120000 --set train.epochs=30   # a completed run, further
    """
    from .config import load_config

    if resume:
        more_epochs = [s for s in sets if s.replace(" ", "").startswith("train.epochs=")]
        if config_file or len(more_epochs) != len(sets) or module or name or seed is not None:
            raise UsageError("--resume continues a run with its saved config; give no CONFIG_FILE, --module, --name or --seed, and no --set but train.epochs=N (a completed run, trained further)")
        from .runs import check_config_unchanged, check_resumable

        resume = _run(resume, for_writing=False)  # check_resumable refuses links, naming --resume
        requested = more_epochs[-1].split("=", 1)[1].strip() if more_epochs else None
        if requested is not None and not requested.isdigit():
            load_config(RunFolder(resume).config, more_epochs)  # names the mistake in the value
        check_resumable(resume, int(requested) if requested is not None else None)  # before the config: what the run's state allows
        check_config_unchanged(resume)  # the saved state fits the config the run started with
        config = load_config(RunFolder(resume).config, more_epochs)
    elif not config_file:
        raise UsageError("give a CONFIG_FILE to train, or --resume RUN")
    else:
        config = load_config(config_file, _overrides(sets, module, name=None if name == "auto" else name, seed=seed))
        if name == "auto":
            from .runs import auto_name

            config.name = auto_name(config.name, sets)
    from .analysis import tables
    from .train import train as run_training

    done = None
    if skip_if_done and not resume:
        from .config import dump_config
        from .runs import completed_run_of

        done = completed_run_of(Path(runs_dir), dump_config(config))
    if done is not None:
        summary = done
        if not as_json:
            console.say(f"already done: {summary['run_dir']} (the same resolved config, completed); not trained again")
    else:
        from .tracking.tracker import MlflowTracker

        with _json_on_failure(as_json):
            tracker = MlflowTracker.for_config(config, resume)  # an unreachable server: a warning, or no run at all
            summary = run_training(config, Path(runs_dir), command_line(), progress or config.train.progress, resume=resume, tracker=tracker)
    if as_json:
        keys = ("run_dir", "status", "best", "final", "test", "forecast", "epochs_run", "train_seconds", "cpu_seconds", "worker")
        click.echo(json.dumps({k: summary[k] for k in keys if k in summary}))
    elif summary.get("worker"):  # a multi-worker run's other workers: the chief reports and writes
        click.echo(f"{summary['worker']}: training completed; the chief wrote the run folder")
    else:
        console.stdout.print(tables.results_table(summary))
        for table in tables.analysis_tables(_read_analysis(summary), "test"):
            console.stdout.print(table)
        if summary.get("forecast"):
            console.stdout.print(tables.forecast_table(summary["forecast"]))
        console.result(tables.results_footer(summary))


def _read_analysis(summary: dict) -> dict:
    """The test split's analysis that training wrote beside summary.json (empty if none)."""
    from .runs import read_json_if_any

    return read_json_if_any(Path(summary["run_dir"]) / summary["analysis_file"]) if summary.get("analysis_file") else {}


@main.command()
@click.argument("config_file", type=click.Path(dir_okay=False))
@config_options
@click.option("--study", "study_name", metavar="NAME", help="Study name, and its folder under RUNS_DIR [default: <config name>-tune]. The same name continues (or joins) the study.")
@click.option("--storage", metavar="URL", help="Optuna storage shared by workers: postgresql://user:pw@host/db, mysql://..., sqlite:///FILE or journal:FILE [default: RUNS_DIR/<study>/study.db].")
@click.option("--trials", type=click.IntRange(min=1), help="Trials of the whole study (sets search.trials).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds after which this worker starts no new trial (sets search.timeout).")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False), help="Folder that holds the study folder.")
@click.option("--progress", type=PROGRESS, default=None, help="Each trial's progress display (default: the config's train.progress).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: best trial, counts, best.yaml, plots.")
@reports_errors
def tune(config_file, sets, module, study_name, storage, trials, timeout, runs_dir, progress, as_json):
    """Search the config's `search:` ranges with Optuna; every trial is a run folder in the study's folder.

    Start the same command in several terminals, or on several machines with one --storage, and
    they work on one study together; run it again to continue the study.

    \b
    Examples:
      dlopt tune configs/tune_digits.yaml
      dlopt tune configs/tune_digits.yaml --trials 40          # continue up to 40 trials
      dlopt tune cfg.yaml --storage postgresql://me:pw@db-host/studies --study lr-search
      dlopt compare runs/cnn_digits-tune                       # the trials, sampled keys as columns
      dlopt train runs/cnn_digits-tune/best.yaml
    """
    from .search.spec import load_search
    from .search.study import tune as run_tune

    search = load_search(config_file, _overrides(sets, module, **{"search.trials": trials, "search.timeout": timeout}))
    with _json_on_failure(as_json):
        result = run_tune(search, Path(runs_dir), command_line(), study_name, storage, progress or search.base.train.progress)
    if as_json:
        click.echo(json.dumps(result))
        return

    counts = ", ".join(f"{n} {state}" for state, n in result["trials"].items())
    console.result(f"study {result['study']}: {counts}")
    best = result["best"]
    if best:
        from .search.trial import describe

        console.result(console.wrapped(f"best: trial {best['trial']}, {result['metric']} {best['value']:.4f} ({describe(best['params'])})"))
        console.result(f"  run: {best['run_dir']}\n  train it: dlopt train {result['best_yaml']}")
    console.result(f"  all trials: dlopt compare {result['study_dir']}")
    for plot in result["plots"]:
        console.result(f"  plot: {plot}")


@main.command(name="eval")
@click.argument("run_dir", metavar="RUN")
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
    from .analysis import tables
    from .evaluate import evaluate as run_eval

    with _json_on_failure(as_json, run_dir):
        run_dir = _run(run_dir)
        if no_tta and views:
            raise UsageError("--no-tta and --tta: give one of them")
        result = run_eval(run_dir, split, checkpoint, [] if no_tta else list(views) or None)
    if as_json:
        click.echo(json.dumps(result))
    else:
        from rich.table import Table

        single_view = result.get("metrics_single_view")
        console.result(f"{run_dir} · {split} ({result['examples']} examples) · {checkpoint}.keras")
        table = Table()
        table.add_column("metric")
        table.add_column(f"tta: image + {' + '.join(result['tta'])}" if single_view else "value", justify="right")
        if single_view:
            table.add_column("1 view", justify="right")
        for key, value in result["metrics"].items():
            table.add_row(key, f"{value:.4f}", *([f"{single_view[key]:.4f}"] if single_view else []))
        console.stdout.print(table)
        if result.get("forecast"):
            console.stdout.print(tables.forecast_table(result["forecast"]))
        shown = tables.analysis_tables(result, split)
        for table in shown:
            console.stdout.print(table)
        if not shown and result.get("class_names"):
            console.result(console.wrapped(f"{len(result['class_names'])} classes: {', '.join(result['class_names'])}"))
        if result.get("plots"):
            console.result(console.wrapped(f"plots: {', '.join(str(RunFolder(run_dir).plots / name) for name in result['plots'])}"))


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--sort", "sort_by", metavar="COLUMN", help="Sort by a column, e.g. val_accuracy, test_accuracy, train_seconds, cpu_seconds.")
@click.option("--asc/--desc", "ascending", default=None, help="Sort order (default: best first: accuracies descending, losses ascending).")
@click.option("--status", "statuses", multiple=True, type=click.Choice(["completed", "pruned", "running", "failed", "interrupted", "died"]), help="Only runs with this status (repeatable).")
@click.option("--config-hash", metavar="PREFIX", help="Only runs whose resolved config has this hash (run.json's manifest.config_sha256, or its start).")
@click.option("--all", "all_columns", is_flag=True, help="Every column: all differing settings, final train/val metrics, single-view test metrics.")
@click.option("--columns", "chosen", metavar="A,B,...", help="These columns, in this order (names as in --csv, e.g. name,optimizer.learning_rate,test_accuracy).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of runs (every column).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (every column).")
@reports_errors
def compare(paths, sort_by, ascending, statuses, config_hash, all_columns, chosen, as_json, as_csv):
    """Table of runs: status, the settings that differ, best and test metrics, time. No TensorFlow needed.

    PATHS are run folders or folders of runs (default: runs/). The table fits the terminal: a few
    columns chosen for reading; --all, --columns, --csv and --json give the rest.

    \b
    Examples:
      dlopt compare
      dlopt compare runs/ --sort val_accuracy --columns name,optimizer.learning_rate,test_accuracy
      dlopt compare runs/ --status completed --csv > results.csv
    """
    import os

    from . import compare as compare_runs

    descending = None if ascending is None else not ascending
    columns, rows, differing = compare_runs.table([Path(p) for p in paths or ["runs"]], sort_by, tuple(statuses), descending, config_hash)
    if as_json:
        click.echo(json.dumps(rows))
        return
    if as_csv:
        click.echo(compare_runs.to_csv(columns, rows), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    stdout = console.stdout
    from .runs import shared_config_name

    if not stdout.is_terminal:  # piped: COLUMNS if set, else wide enough for every cell (no folding)
        stdout = Console(highlight=False, width=int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else 10_000)
    if chosen:
        shown = [c.strip() for c in chosen.split(",") if c.strip()]
        known = ["name", *columns]
        unknown = [c for c in shown if c not in known]
        if unknown:
            from .registry import did_you_mean

            raise UsageError(f"--columns: no column '{unknown[0]}'{did_you_mean(unknown[0], known)}; columns: {', '.join(known)}")
    elif all_columns:
        shown = ["name", *columns[1:]]
    else:
        shown = compare_runs.default_columns(columns, differing, rows, stdout.width)
    hidden = len(differing) - len([c for c in shown if c in differing])
    note = f" ({hidden} more differing setting{'s' if hidden > 1 else ''}: --all or --columns)" if hidden > 0 else ""
    shared = shared_config_name([row["run"] for row in rows]) if len(rows) > 1 else None
    title = f"{len(rows)} runs{f' of {shared}' if shared else ''}{note}"
    table = Table()
    for column in shown:
        setting = column in differing
        table.add_column(
            compare_runs.header(column, shown),
            justify="left" if column in ("name", "run", "status") or setting else "right",
            overflow="ellipsis",
            no_wrap=True,
            max_width=compare_runs.KEY_WIDTH if setting and not (chosen or all_columns) else None,
            # a cut name could no longer tell runs apart
            min_width=max((len(str(row.get(column, ""))) for row in rows), default=0) if column in ("name", "run") else None,
        )
    for row in rows:
        table.add_row(*(compare_runs.format_cell(c, row.get(c)) for c in shown))
    if stdout.width == 10_000 or all_columns:  # every column at its full width; the terminal may fold lines
        stdout = Console(highlight=False, width=max(len(title), stdout.measure(table, options=stdout.options.update_width(10_000)).maximum))
    stdout.print(title)
    stdout.print(table)


@main.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False), help="PNG file to write; a bare file name goes into the runs' folder, RUNS_DIR/plots/NAME [default: RUN/plots/curves.png for one run, RUNS_DIR/plots/curves-<time>.png for several, RUN/plots/feature_maps-<layer>-<input>.png].")
@click.option("--force", is_flag=True, help="Replace the -o file if it exists (otherwise it is never overwritten).")
@click.option("--feature-maps", is_flag=True, help="Instead of curves: a grid of one convolution layer's activations for --input.")
@click.option("--input", "image", type=click.Path(dir_okay=False, exists=True), help="--feature-maps: the image (or .npy array) to run through the model.")
@click.option("--layer", help="--feature-maps: the convolution layer (default: the first).")
@click.option("--checkpoint", default="best", show_default=True, type=click.Choice(["best", "last"]), help="--feature-maps: which saved model.")
@reports_errors
def plot(runs, output, force, feature_maps, image, layer, checkpoint):
    """Curves (loss, metrics, learning rate per epoch) of one RUN, or several overlaid; or feature maps.

    RUN is a run folder, a unique prefix of its name, or `latest`.

    \b
    Examples:
      dlopt plot latest
      dlopt plot runs/lr3e-3 runs/lr1e-3 -o lr.png        # runs/plots/lr.png
      dlopt plot runs/cnn --feature-maps --input shoe.png --layer block1_conv0
    """
    from datetime import datetime

    folders = [_run(run) for run in runs]
    if output and Path(output).parent == Path("."):  # a bare name: beside the runs' other plots, not wherever the shell is
        output = str(folders[0].parent / "plots" / output)
    if output and Path(output).exists() and not force:
        raise UsageError(f"-o: {output} already exists; dlopt never overwrites files: choose another path, or add --force")
    if feature_maps:
        if len(folders) != 1 or not image:
            raise UsageError("--feature-maps takes exactly one RUN and an --input image")
        from .feature_maps import plot_feature_maps

        result = plot_feature_maps(folders[0], image, layer, Path(output) if output else None, checkpoint)
        click.echo(result["output"])
        return
    if image or layer:
        raise UsageError("--input and --layer go with --feature-maps")
    from .analysis.curves import plot_runs

    if output is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        output = RunFolder(folders[0]).curves if len(folders) == 1 else folders[0].parent / "plots" / f"curves-{stamp}.png"
    plot_runs(folders, Path(output))
    click.echo(output)


@main.command(name="report")
@click.argument("run_dir", metavar="RUN")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="HTML file to write [default: RUN/report.html].")
@click.option("--force", is_flag=True, help="Replace the -o file if it exists.")
@reports_errors
def html_report(run_dir, output, force):
    """One self-contained HTML page of a run: results, per-class report, every plot, the config.

    \b
    Examples:
      dlopt report latest
      dlopt report runs/cnn -o cnn.html
    """
    from .analysis.html import write_report

    run_dir = _run(run_dir)
    if output and Path(output).exists() and not force:
        raise UsageError(f"-o: {output} already exists; dlopt never overwrites files: choose another path, or add --force")
    click.echo(write_report(run_dir, Path(output) if output else RunFolder(run_dir).report))


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
    from . import data, models
    from .describe import describe

    data.preflight(config)  # a missing path or an unknown dataset: one line, as for train
    models.check_model_type(config.model)
    result = describe(config)
    if as_json:
        click.echo(json.dumps(result))
        return
    from rich.table import Table

    stdout = console.stdout

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
@click.argument("run_dir", metavar="RUN")
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
    from .export import export as run_export

    click.echo(run_export(_run(run_dir), fmt, Path(output) if output else None, checkpoint))


@main.command()
@click.argument("run_dir", metavar="RUN")
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
    from .predict import predict as run_predict

    run_dir = _run(run_dir, for_writing=False)  # predict only reads the run
    results = run_predict(run_dir, list(inputs), checkpoint, top_k)
    for result in results:  # an input unlike anything the model was trained on: said, never silent
        for warning in result.get("warnings", []):
            console.warn(warning)
    if as_json:
        click.echo(json.dumps(results))
        return
    from rich.table import Table

    stdout = console.stdout

    stdout.print(f"{run_dir} · {checkpoint}.keras", soft_wrap=True)
    table = Table()
    if "outputs" in results[0]:  # several outputs: a column each
        stdout.print(_outputs_table(results))
        return
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


def _outputs_table(results: list[dict]):
    """`dlopt predict` of several outputs: per input, each output's class (probability), labels or value."""
    from rich.table import Table

    def shown(answer: dict) -> str:
        if "labels" in answer:
            return ", ".join(f"{label} ({p:.2f})" for label, p in zip(answer["labels"], answer["probabilities"])) or "(none)"
        if "values" in answer:
            return ", ".join(f"{v:.4g}" for v in answer["values"])
        return f"{answer.get('name', answer['class'])} ({answer['probability']:.3f})"

    table = Table()
    names = list(results[0]["outputs"])
    for column in ("input", *names):
        table.add_column(column)
    for result in results:
        table.add_row(result["input"], *(shown(result["outputs"][name]) for name in names))
    return table


@main.command()
@click.argument("run_dir", metavar="RUN")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(0, 65535), help="Port (TF Serving's REST port by default).")
@click.option("--checkpoint", default="best", show_default=True, type=click.Choice(["best", "last"]), help="Which saved model to serve.")
@click.option("--max-batch-size", default=32, show_default=True, type=click.IntRange(min=1), help="Most examples in one model call (concurrent requests are gathered).")
@click.option("--max-wait-ms", default=5.0, show_default=True, type=click.FloatRange(min=0), help="How long a request waits for others to join its batch.")
@click.option("--max-request-bytes", default=10 << 20, show_default=True, type=click.IntRange(min=1), help="Larger request bodies are answered 413.")
@reports_errors
def serve(run_dir, host, port, checkpoint, max_batch_size, max_wait_ms, max_request_bytes):
    """Serve a run's model over HTTP in TensorFlow Serving's REST shape, until Ctrl-C.

    \b
    Examples:
      dlopt serve latest
      curl -d '{"instances": [[...]]}' localhost:8501/v1/models/cnn_digits:predict
      curl localhost:8501/v1/models/cnn_digits          # status, signature, class names
    """
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise UsageError("dlopt serve needs Starlette and uvicorn: pip install 'dlopt[serve]'") from None
    from .serve.app import make_app

    app, name = make_app(_run(run_dir, for_writing=False), checkpoint, max_batch_size, max_wait_ms, max_request_bytes)
    console.say(f"serving {name} on http://{host}:{port}/v1/models/{name} (POST :predict; GET for its signature; /healthz)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@main.command(name="ensemble")
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("--top", type=click.IntRange(min=2), help="Only the best K completed runs (by their best epoch's monitored value), e.g. of a study's folder.")
@click.option("--name", help="The ensemble run's name [default: <first member's name>-ensemble].")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False), help="Folder the ensemble's run folder goes into.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: the run folder, test metrics, the members'.")
@reports_errors
def ensemble(runs, top, name, runs_dir, as_json):
    """Average the predictions of several runs of one task; writes an ordinary run folder.

    \b
    Examples:
      dlopt ensemble runs/cnn_fashion_mnist_local-2026*
      dlopt ensemble runs/cnn_digits-tune --top 3
    """
    from .ensemble import best_runs
    from .ensemble import ensemble as make_ensemble

    folders = _runs_named(runs, for_writing=False)
    if top:
        folders = best_runs(folders, top)
    summary = make_ensemble(folders, Path(runs_dir), name, command_line())
    if as_json:
        click.echo(json.dumps({k: summary[k] for k in ("run_dir", "status", "test", "members_test", "ensemble")}))
        return
    from rich.table import Table

    table = Table(title=f"{summary['name']}: test", title_justify="left")
    table.add_column("metric")
    for column in ("ensemble", *(f"member {i + 1}" for i in range(len(summary["ensemble"])))):
        table.add_column(column, justify="right")
    for key, value in summary["test"].items():
        table.add_row(key, f"{value:.4f}", *(f"{test[key]:.4f}" if key in test else "-" for test in summary["members_test"]))
    console.stdout.print(table)
    for i, member in enumerate(summary["ensemble"]):
        console.result(f"member {i + 1}: {member}")
    console.result(f"run folder: {summary['run_dir']}")


@main.command(name="mlflow-sync")
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("--uri", metavar="URI", help="MLflow tracking URI [default: the run's tracking.mlflow.uri, MLFLOW_TRACKING_URI, or where the run was logged].")
@click.option("--experiment", metavar="NAME", help="Experiment for runs not logged yet [default: the run's tracking.mlflow.experiment, or its config's name].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per run.")
@reports_errors
def mlflow_sync(runs, uri, experiment, as_json):
    """Upload runs to MLflow from their folders: params, tags, every epoch, results, artifacts, model.

    A run logged before (or in part, while the server was down) is completed in its own MLflow
    run; a folder of runs (RUNS_DIR, a study's folder) uploads each run in it.

    \b
    Examples:
      dlopt mlflow-sync latest --uri http://127.0.0.1:5000
      MLFLOW_TRACKING_URI=http://127.0.0.1:5000 dlopt mlflow-sync runs/cnn_digits-tune
    """
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise UsageError("dlopt mlflow-sync needs MLflow: pip install 'dlopt[mlflow]'") from None
    from .tracking.sync import sync_run

    folders = _runs_named(runs)
    results = []
    for folder in folders:
        result = sync_run(folder, uri, experiment)
        results.append(result)
        if not as_json:
            model = f", model {result['model_uri']}" if result.get("model_uri") else ""
            console.result(f"{folder}: run {result['run_id']} in experiment {result['experiment']} ({result['uri']}): {result['epochs']} epochs, {result['artifacts']} artifacts{model}")
    if as_json:
        click.echo(json.dumps(results))


if __name__ == "__main__":
    main()
