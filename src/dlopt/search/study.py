"""A search worker: open (or join, or continue) the study, run trials until the study has its
trials, and keep the study folder's best.yaml and plots up to date.

Start the same command in several terminals, or on several machines with one `--storage`, and
the workers share one study: Optuna's storage hands each its next trial.
"""

from __future__ import annotations

import signal
import time
import warnings
from pathlib import Path

from .. import console, runs
from ..config import dump_config
from ..errors import ConfigError, RunFailed
from .spec import Choices, IntRange, Search, choice_label
from .storage import default_url, open_storage, shown
from .trial import TrialRun, describe, sample, shown_value, values_of


def tune(search: Search, runs_dir: Path, command: list[str], study_name: str | None = None, storage_url: str | None = None, progress: str = "lines") -> dict:
    """Run trials of the study as this worker; return the study's summary (best trial, counts)."""
    import optuna

    from ..config.schema import NAME_PATTERN

    name = study_name or f"{search.base.name}-tune"
    if not NAME_PATTERN.match(name) or ".." in name:
        raise ConfigError(f"--study {name!r}: expected letters, digits, '_', '-', '.', '=' or '+' (it names a folder)")
    study_dir = runs_dir / name
    study_dir.mkdir(parents=True, exist_ok=True)
    url = storage_url or default_url(study_dir)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # dlopt prints one line per trial itself, never a traceback
    with _optuna_warnings_as_lines():
        storage = open_storage(url, search.spec.heartbeat_seconds, search.spec.retries)
    study = optuna.create_study(study_name=name, storage=storage, direction=search.direction(), load_if_exists=True, sampler=_sampler(search, storage, name), pruner=_pruner(search))
    _check_same_search(study, search, name)
    from ..tracking.study import StudyRun

    tracked = StudyRun.open(search, study)  # trials are its child runs in MLflow

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    remaining = search.spec.trials - len(study.get_trials(deepcopy=False, states=states))
    console.say(f"study {name} ({shown(url)}): {len(study.trials)} trials so far; {search.direction()} {search.metric()}")

    def objective(trial) -> float:
        try:
            return _run_trial(trial, search, name, url, study_dir, command, progress, tracked)
        except RunFailed as exc:  # NaN, a full disk, values that do not go together: the study goes on
            trial.set_user_attr("error", str(exc).splitlines()[0])
            raise

    def after_trial(study, frozen) -> None:
        _report_trial(frozen, search)
        _write_best(study, search, study_dir)

    callbacks = [optuna.study.MaxTrialsCallback(search.spec.trials, states=states), after_trial]
    previous = signal.signal(signal.SIGTERM, _interrupt)  # between trials too, SIGTERM stops like Ctrl-C
    started = time.perf_counter()
    try:
        if remaining > 0:
            with _optuna_warnings_as_lines():
                study.optimize(objective, n_trials=remaining, timeout=search.spec.timeout, catch=(RunFailed,), callbacks=callbacks)
        else:
            console.say(f"the study already has {search.spec.trials} finished trials; raise search.trials (or --trials) to run more")
    finally:
        signal.signal(signal.SIGTERM, previous)
    _write_best(study, search, study_dir)
    plots = write_plots(study, study_dir)
    result = summary(study, search, study_dir, url, plots, time.perf_counter() - started)
    if tracked is not None:
        tracked.ended(result, study_dir)
    return result


def _run_trial(trial, search: Search, study_name: str, url: str, study_dir: Path, command: list[str], progress: str, tracked=None) -> float:
    """Sample the trial's values and train them as a run in the study's folder; its value."""
    import keras
    import optuna

    from ..train import train

    values = sample(trial, search)
    try:
        config = search.config_with(values, f"search trial {trial.number}")
    except ConfigError as exc:  # each value is in range, but together they make no valid config
        raise RunFailed(f"the sampled values do not make a valid config: {str(exc).splitlines()[0]}") from None
    # a retry of a trial whose worker died carries that trial's attributes: its number and run
    retry_of = trial.user_attrs.get("trial")
    resume = _resumable(trial.user_attrs.get("run_dir")) if retry_of is not None else None
    again = "" if retry_of is None else f" (trial {retry_of} again{f', resuming {resume}' if resume else ''})"
    console.say(f"trial {trial.number}: {describe(values)}{again}")
    keras.backend.clear_session(free_memory=False)  # Keras forgets the previous trial; Python frees it when it collects (gc.collect here costs 0.3-1 s)
    run = TrialRun(trial, study_name, shown(url), search, values, retry_of)
    tracker = None
    if tracked is not None:
        from ..tracking.tracker import MlflowTracker

        tracker = MlflowTracker.for_config(config, resume, parent_run_id=tracked.run_id)
    summary = train(config, study_dir, command, progress, resume=resume, trial=run, tracker=tracker)
    if run.pruned:
        raise optuna.TrialPruned(run.pruned)
    return run.value(summary)


def _resumable(run_dir: str | None) -> Path | None:
    """The run folder of a trial whose worker died, when it is here and can continue from its state."""
    if not run_dir or not Path(run_dir).is_dir():
        return None
    try:
        runs.check_resumable(Path(run_dir))
    except ConfigError:
        return None
    return Path(run_dir)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _sampler(search: Search, storage, name: str):
    import optuna

    spec = search.spec
    seed = spec.seed
    if seed is not None:  # a continued study must not sample its first trials again
        try:
            seed += len(optuna.load_study(study_name=name, storage=storage).trials)
        except KeyError:
            pass
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(grid(search), seed=seed)
    if spec.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    # constant_liar: workers running side by side do not all sample near the same point
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def grid(search: Search) -> dict:
    """Every value of every key, for the grid sampler."""
    space = {}
    for key, param in search.spec.params.items():
        if isinstance(param, Choices):
            space[key] = [choice_label(c) for c in param.choices]
        elif isinstance(param, IntRange):
            space[key] = list(range(param.low, param.high + 1, param.step))
        else:
            count = round((param.high - param.low) / param.step)
            space[key] = [param.low + i * param.step for i in range(count + 1)]
    return space


def _pruner(search: Search):
    import optuna

    spec = search.spec
    first_prunable_epoch = spec.pruner_warmup_epochs + 1  # epochs are reported as steps 1, 2, ...
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.pruner_startup_trials, n_warmup_steps=first_prunable_epoch)
    if spec.pruner == "hyperband":
        # with train.min_steps the epochs depend on the data: Optuna takes them from the first finished trial
        epochs = "auto" if search.base.train.min_steps else search.base.train.epochs
        return optuna.pruners.HyperbandPruner(min_resource=first_prunable_epoch, max_resource=epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _check_same_search(study, search: Search, name: str) -> None:
    """Continuing a study with other ranges would mix two searches in one: refuse."""
    from ..manifest import config_hash

    signature = config_hash(repr(sorted(search.spec.params.items())) + search.metric())
    recorded = study.user_attrs.get("dlopt_search")
    if recorded is None:
        study.set_user_attr("dlopt_search", signature)
    elif recorded != signature:
        raise ConfigError(f"{search.path}: search: the study '{name}' was started with other search.params or metric; use another --study name")


def _report_trial(frozen, search: Search) -> None:
    state = {"COMPLETE": "completed", "FAIL": "failed"}.get(frozen.state.name, frozen.state.name.lower())
    values = describe(values_of(frozen.params, search))
    seconds = (frozen.datetime_complete - frozen.datetime_start).total_seconds() if frozen.datetime_complete and frozen.datetime_start else 0
    if frozen.value is not None:
        result = f"{search.metric()} {frozen.value:.4f}"
    elif frozen.state.name == "PRUNED":
        last = max(frozen.intermediate_values) if frozen.intermediate_values else 0
        result = f"pruned after epoch {last}"
    else:
        result = frozen.user_attrs.get("error", state)
    console.say(f"trial {frozen.number} {state} in {seconds:.0f}s: {result} ({values})")


def _best_trial(study):
    try:
        return study.best_trial
    except ValueError:  # no completed trial yet
        return None


def _write_best(study, search: Search, study_dir: Path) -> None:
    """best.yaml: the base config with the best trial's values, trained as is by `dlopt train`."""
    best = _best_trial(study)
    if best is None:
        return
    values = values_of(best.params, search)
    config = search.config_with(values, f"best trial {best.number}")
    # its own name: its runs are `<name>-best-<time>`, told apart from the base config's runs
    config = config.model_copy(update={"name": f"{search.base.name}-best"})
    header = (
        f"# The best trial of study {study.study_name} so far: trial {best.number}, {search.metric()} {best.value:.6g}\n"
        f"# its run: {best.user_attrs.get('run_dir', '?')}\n"
        + "".join(f"# {key}: {shown_value(value)}\n" for key, value in values.items())
        + f"# dlopt train {study_dir / 'best.yaml'}\n"
    )
    runs.write_text_atomic(study_dir / "best.yaml", header + dump_config(config))


def write_plots(study, study_dir: Path) -> list[str]:
    """Optimisation history, parameter importances and per-epoch values (Optuna's matplotlib plots)."""
    import optuna

    finished = [t for t in study.get_trials(deepcopy=False) if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    complete = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    wanted = {"optimization_history": optuna_plots.plot_optimization_history, "intermediate_values": optuna_plots.plot_intermediate_values}
    if len(complete) >= 2 and len(complete[0].params) >= 1:
        wanted["param_importances"] = optuna_plots.plot_param_importances
    written = []
    (study_dir / "plots").mkdir(exist_ok=True)
    for plot_name, draw in wanted.items():
        try:
            with warnings.catch_warnings():  # e.g. "importances will be equal": the plot says as much
                warnings.simplefilter("ignore")
                axes = draw(study)
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            target = study_dir / "plots" / f"{plot_name}.png"
            tmp = target.with_name(f".{target.name}.tmp.png")
            figure.savefig(tmp, dpi=100)
            tmp.replace(target)
            written.append(str(target))
        except (ValueError, RuntimeError) as exc:  # e.g. importances of values that never varied
            console.say(f"note: plot {plot_name} not drawn: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        finally:
            plt.close("all")
    return written


class _optuna_warnings_as_lines:
    """Optuna's experimental-feature warnings (heartbeat, some plots) are for Optuna's developers,
    not dlopt's users."""

    def __enter__(self):
        self.catcher = warnings.catch_warnings()
        self.catcher.__enter__()
        import optuna

        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    def __exit__(self, *exc):
        return self.catcher.__exit__(*exc)


def summary(study, search: Search, study_dir: Path, url: str, plots: list[str], seconds: float) -> dict:
    """The study as `dlopt tune --json` prints it."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    best = _best_trial(study)
    return {
        "study": study.study_name,
        "study_dir": str(study_dir),
        "storage": shown(url),
        "metric": search.metric(),
        "direction": search.direction(),
        "trials": counts,
        "best": None if best is None else {"trial": best.number, "value": best.value, "params": values_of(best.params, search), "run_dir": best.user_attrs.get("run_dir")},
        "best_yaml": str(study_dir / "best.yaml") if best is not None else None,
        "plots": plots,
        "worker_seconds": round(seconds, 3),
    }
