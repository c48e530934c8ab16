"""The runner: from a validated config to a finished run directory, top to bottom.

config -> run folder (new, or an interrupted one to resume) -> data -> model -> optimizer ->
fit (callbacks write into the run) -> test evaluation -> summary.json, plots, run.json `completed`.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import data as data_module
from . import console, cost, distribute, lifecycle, models, runs, runtime
from .config import Config
from .errors import ConfigError, RunFailed
from .analysis.curves import plot_curves
from .evaluate import evaluate_split
from .objectives import monitor_mode
from .registry import did_you_mean
from .runs import RunFolder


def preflight(config: Config) -> None:
    """Everything checkable before a run folder exists; a run that cannot start leaves nothing."""
    data_module.preflight(config)
    models.check_model_type(config.model)
    distribute.check(config.distribute)
    from .models import backbone, finetune

    if config.model.init_from:
        finetune.pretrained_path(config.model.init_from)
    if config.model.type == "backbone":
        backbone.application(config.model.name)


def _check_monitors(config: Config, data, trial=None) -> None:
    """A misspelt monitor would silently never save a best checkpoint: refuse it up front."""
    known = data.objective.logged()
    watched = {"checkpoint.monitor": config.checkpoint.monitor}
    if trial is not None:
        watched["search.metric"] = trial.metric
    if config.train.early_stopping:
        watched["train.early_stopping.monitor"] = config.train.early_stopping.monitor
    if config.schedule.type == "plateau":
        watched["schedule.monitor"] = config.schedule.monitor
    for key, name in watched.items():
        if name not in known:
            raise ConfigError(f"{key}: '{name}' is not logged{did_you_mean(name, known)}; logged: {', '.join(sorted(known))}")


def _jit_compile(setting):
    """XLA: `auto` leaves it off on CPU, where it is several times slower for small convnets."""
    if setting != "auto":
        return setting
    import tensorflow as tf

    return "auto" if tf.config.list_physical_devices("GPU") else False


def _precision_policy(setting: str) -> str:
    """`auto`: mixed_float16 where GPUs run it fast (tensor cores, compute capability 7.0+), else float32."""
    if setting != "auto":
        return "float32" if setting == "none" else setting
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)) for gpu in gpus]
    return "mixed_float16" if gpus and all(c >= (7, 0) for c in capabilities) else "float32"


def _compile(config: Config, model, data, optimizer) -> None:
    # mixed_float16 gets Keras' LossScaleOptimizer from compile (auto_scale_loss)
    model.compile(
        optimizer=optimizer,
        loss=data.objective.loss(),
        loss_weights=data.objective.loss_weights(),  # several outputs: the loss is their weighted sum
        metrics=data.objective.metrics(),
        steps_per_execution=config.train.steps_per_execution,
        jit_compile=_jit_compile(config.train.jit_compile),
    )


def _lr_multipliers(config: Config, model, facts: dict) -> dict[str, float]:
    """Learning-rate multipliers of the loaded (pretrained) layers' trainable variables."""
    from .models import finetune

    loaded = facts.get("init_from", {}).get("loaded", [])
    return finetune.pretrained_lr_multipliers(model, loaded, config.model.pretrained_lr_multiplier)


def _enter_second_phase(config: Config, model, data, placement, facts: dict) -> None:
    """Two-phase fine-tuning, phase two: unfreeze, and a fresh optimizer whose schedule runs over
    the remaining epochs at `unfreeze_lr_multiplier` x the learning rate."""
    from .models import finetune
    from .optim import build_optimizer

    second = config.model_copy(deep=True)
    second.optimizer.learning_rate = config.optimizer.learning_rate * config.model.unfreeze_lr_multiplier
    second.train.epochs = config.train.epochs - config.model.unfreeze_at_epoch
    with placement.strategy.scope():
        finetune.unfreeze(model, facts.get("frozen_layers", []))
        # the unfrozen pretrained layers now have trainable variables: their multipliers apply too
        _compile(config, model, data, build_optimizer(second, data.steps_per_epoch, _lr_multipliers(config, model, facts)))
        model.optimizer.build(model.trainable_variables)  # so the backup holds this phase's optimizer state


def _fit_in_phases(config: Config, model, data, placement, fit: dict, epochs_done: int, backup, facts: dict) -> None:
    """One fit() — or two-phase fine-tuning: `unfreeze_at_epoch` epochs with `freeze` applied (the
    head), then every layer at a lower rate. A resumed run continues in the phase it stopped in."""
    switch = config.model.unfreeze_at_epoch
    train = data.pipelines["train"]
    if not switch:
        model.fit(train, epochs=config.train.epochs, **fit)
        return
    if epochs_done < switch:
        model.fit(train, epochs=switch, **fit)
        if model.stop_training:  # early stopping ended the run in phase one
            return
        _enter_second_phase(config, model, data, placement, facts)
        backup.save_now()  # --resume from here continues in phase two
        console.say(f"epoch {switch}: frozen layers unfrozen (batch norm stays frozen), learning rate x {config.model.unfreeze_lr_multiplier}")
    else:
        _enter_second_phase(config, model, data, placement, facts)  # the backup then restores phase two's state
    model.fit(train, epochs=config.train.epochs, initial_epoch=switch, **fit)


def _build_model(config: Config, data, placement) -> tuple[object, dict]:
    """The model, fine-tuning applied, compiled under the strategy: (model, facts for summary.json)."""
    import keras

    from .models import finetune
    from .optim import build_optimizer

    policy = _precision_policy(config.train.mixed_precision)
    previous_policy = keras.mixed_precision.global_policy()
    facts: dict = {"mixed_precision": policy}
    with placement.strategy.scope():  # variables are created once per replica
        keras.mixed_precision.set_global_policy(policy)  # layers take the policy when they are made
        try:
            model = models.build(config, data)
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)
        if config.model.init_from:
            facts["init_from"] = finetune.load_pretrained(model, finetune.pretrained_path(config.model.init_from))
        frozen = finetune.freeze(model, config.model.freeze)
        if frozen:
            facts["frozen_layers"] = frozen
        _compile(config, model, data, build_optimizer(config, data.steps_per_epoch, _lr_multipliers(config, model, facts)))
    facts["jit_compile"] = model.jit_compile
    facts["onednn"] = runtime.onednn_enabled()
    facts["optimizer_class"] = type(model.optimizer).__name__  # LossScaleOptimizer under mixed_float16
    return model, facts


def finetune_line(facts: dict) -> str:
    loaded = facts["init_from"]
    fresh = ", ".join(item["layer"] for item in loaded["reinitialised"]) or "none"
    frozen = len(facts.get("frozen_layers", []))
    return f"init_from {loaded['source']}: {len(loaded['loaded'])} layers loaded, re-initialised (shape changed): {fresh}; {frozen} layers frozen"


def best_epoch(rows: list[dict], monitor: str, mode: str, judged=None) -> dict:
    """The best row by `monitor`, among the epochs `judged` (from 1) accepts, if given."""
    values = [(row["epoch"], row[monitor]) for row in rows if monitor in row and math.isfinite(row[monitor]) and (judged is None or judged(row["epoch"]))]
    if not values:
        return {"epoch": None, "monitor": monitor, "value": None}
    epoch, value = (max if monitor_mode(monitor, mode) == "max" else min)(values, key=lambda item: item[1])
    return {"epoch": epoch, "monitor": monitor, "value": value}


def judged_epochs(config: Config):
    """Which epochs the best checkpoint weighs (a test of the epoch from 1), or None: every one."""
    return getattr(config.model, "judged_epoch", None)


def _callbacks(config: Config, run_dir: Path, data, progress: str, earlier_rows: list[dict], stopper, cpu_clock, restore_dir: Path | None = None, trial=None, tracker=None) -> tuple[list, object, object, object]:
    import keras

    from .callbacks.averaging import AveragedWeightsIn, AveragedWeightsOut
    from .callbacks.metrics import EpochStats, MetricsCSV
    from .callbacks.progress import progress_callback
    from .callbacks.regularization import regularization_callbacks
    from .callbacks.resume import Backup, BackupAtEpochEnd, CallbackStates, DataEpoch
    from .callbacks.saving import AtomicCheckpoint
    from .callbacks.stopping import StopOnNaN
    from .optim import schedule_callbacks

    run, restore = RunFolder(run_dir), RunFolder(restore_dir or run_dir)
    monitor = config.checkpoint.monitor
    mode = monitor_mode(monitor, config.checkpoint.mode)
    # a resumed run must not replace best.keras with anything worse than its earlier best
    judged = judged_epochs(config)
    threshold = best_epoch(earlier_rows, monitor, mode, judged)["value"]
    # a non-chief worker resuming restores the chief's state (restore_dir) and saves into its scratch;
    # strict determinism keeps the state of epoch ends only, from which a resumed run repeats exactly
    every_steps = None if config.train.deterministic == "strict" else config.checkpoint.backup_every_steps
    backup = Backup(restore.backup, every_steps, save_dir=run.backup)
    metrics_csv = MetricsCSV(run.metrics, earlier_rows)
    stats = EpochStats(data.counts["train"], cpu_clock)
    averaged_in = [AveragedWeightsIn()] if config.optimizer.ema_momentum is not None else []
    callbacks = [
        backup,  # first: it restores weights, optimizer state and the epoch before anything runs
        DataEpoch(data.epoch),  # the training order of each epoch is drawn from its number
        stats,  # before the writers: they see its learning_rate and timing
        *schedule_callbacks(config, data.steps_per_epoch),
        *regularization_callbacks(config, monitor, mode, earlier_rows),  # before the checkpoints: an epoch trains and is judged at its C
        StopOnNaN(),
        *averaged_in,  # from here to AveragedWeightsOut the model holds the averaged weights
        AtomicCheckpoint(run.checkpoint("best"), monitor=monitor, mode=mode, save_best_only=True, initial_value_threshold=threshold, judged=judged),
        AtomicCheckpoint(run.checkpoint("last")),
        keras.callbacks.TensorBoard(run.tensorboard, histogram_freq=0, write_graph=False, profile_batch=0),
    ]
    stop = config.train.early_stopping
    if stop:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=stop.monitor, patience=stop.patience, min_delta=stop.min_delta, mode=monitor_mode(stop.monitor, stop.mode), restore_best_weights=stop.restore_best_weights
            )
        )
    # after early stopping and the plateau schedule: their counters go into the resume state
    states = CallbackStates(run, callbacks, restore, data.random_states, resumed=bool(earlier_rows), fresh_at_epoch=config.model.unfreeze_at_epoch)
    callbacks.append(states)
    callbacks += [AveragedWeightsOut(swap) for swap in averaged_in]  # the resume state holds the raw weights
    callbacks += [metrics_csv, progress_callback(progress, config.train.epochs, data.steps_per_epoch, data.batch_size)]
    callbacks.append(BackupAtEpochEnd(backup))  # the epoch is in the resume state only once its row is written
    if trial is not None:  # a search's trial reports each epoch, after its row is written, and may be pruned
        callbacks.append(trial.callback())
    if tracker is not None:  # the epoch's row, once written, to the tracker
        callbacks.append(tracker.callback(lambda: metrics_csv.rows[-1]))
    # the stopper goes last: an interrupt lands after this epoch's backup, checkpoints and rows
    callbacks.append(stopper)
    return callbacks, metrics_csv, backup, stats


def train(config: Config, runs_dir: Path, command: list[str], progress: str = "auto", resume: Path | None = None, trial=None, tracker=None) -> dict:
    """Run one training (or resume one); return summary.json's content. Raises DloptError on failure.

    `trial`: a search's trial (dlopt.search.trial.TrialRun): names the run folder, adds its study,
    number and sampled values to run.json, and may prune the run after an epoch.
    `tracker`: an experiment tracker (dlopt.tracking.tracker.MlflowTracker): told when the run
    folder exists, fed each epoch, and given the ended run to upload, however it ended."""
    runtime.before_tensorflow(config.train)
    preflight(config)
    runtime.set_threads(config.train.threads)  # before TensorFlow runs its first op
    placement = distribute.place(config.distribute)
    if not placement.is_chief:  # a multi-worker run's other workers train alongside, writing to scratch
        return _train_as_worker(config, placement, resume)
    run = lifecycle.open_run(config, runs_dir, command, resume, trial)
    if tracker is not None:
        tracker.started(run)
    try:
        with run.recorded():
            return _train_run(config, run, placement, progress, trial, tracker)
    finally:
        if tracker is not None:
            tracker.ended(run.run_dir)


def _train_as_worker(config: Config, placement, resume: Path | None) -> dict:
    """Train as a non-chief worker: same steps as the chief, files into a scratch folder removed at the end.

    On --resume, each worker restores the chief's saved state (the run folder must be on a shared filesystem)."""
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix=f"dlopt-{placement.task.replace(':', '')}-"))
    try:
        run = lifecycle.scratch_run(scratch, resume)
        with run.recorded():
            summary = _train_run(config, run, placement, "none")
    finally:
        runs.remove(scratch)
    return {**summary, "run_dir": None, "worker": placement.task}


def _train_run(config: Config, run: lifecycle.Run, placement, progress: str, trial=None, tracker=None) -> dict:
    """The steps of one run, in its folder: data, model, fit, test, summary."""
    config = _seeded(config, placement)
    data = data_module.build(config)
    if data.input_statistics is not None and isinstance(run.record, runs.RunRecord):  # not a worker's scratch: predict compares inputs with these
        runs.write_json(run.folder.inputs, data.input_statistics)
    if data.table is not None and data.table.rows_handled:  # what bad or missing values cost, on record
        run.record.data["rows_handled"] = data.table.rows_handled
        getattr(run.record, "save", lambda: None)()
    config = _with_min_steps(config, data.steps_per_epoch)
    model, model_facts = _build_model(config, data, placement)
    _check_monitors(config, data, trial)
    fitted = _fit(config, run, data, model, placement, progress, model_facts, trial, tracker)
    pruned = trial.pruned if trial is not None else None  # a pruned trial ends here: no test evaluation
    tested = Tested() if pruned else _test(config, run.run_dir, data, model, placement, progress)
    summary = summary_of(config, run.run_dir, data, model, fitted, tested, model_facts, placement, pruned)
    _write_results(run.run_dir, summary, fitted, tested, data)
    run.finish("pruned", pruned) if pruned else run.finish("completed")
    return summary


def _seeded(config: Config, placement) -> Config:
    """Seeds (and strict determinism) set before anything random is drawn; the config with the
    global batch and learning rate of the replicas that train it."""
    import keras

    keras.utils.set_random_seed(config.seed)  # Python, NumPy and TensorFlow
    if config.train.deterministic == "strict":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    return distribute.scaled(config, placement.replicas)


def _with_min_steps(config: Config, steps_per_epoch: int) -> Config:
    """The config with as many epochs as `train.min_steps` needs on this data (at least `train.epochs`).
    Resolved from the data each time, so a resumed run arrives at the same number."""
    wanted = config.train.min_steps
    epochs = max(config.train.epochs, math.ceil(wanted / steps_per_epoch)) if wanted else config.train.epochs
    if epochs == config.train.epochs:
        return config
    console.say(f"train.min_steps {wanted}: {epochs} epochs of {steps_per_epoch} steps (train.epochs {config.train.epochs})")
    return config.model_copy(update={"train": config.train.model_copy(update={"epochs": epochs})})


@dataclass
class Fitted:
    rows: list[dict]  # metrics.csv, every epoch
    train_seconds: float  # this process's fit and the earlier ones' epochs
    startup_seconds: float | None
    cpu_clock: Callable[[], float]  # the run's CPU-seconds so far, earlier processes' included


def _fit(config: Config, run: lifecycle.Run, data, model, placement, progress: str, model_facts: dict, trial=None, tracker=None) -> Fitted:
    """Train, writing checkpoints, the resume state and metrics.csv as it goes; a NaN loss fails the run."""
    if placement.name == "multi_worker":
        distribute.prepare_multi_worker_fit(model, data.pipelines["train"], placement.strategy)
    from .callbacks.metrics import CpuClock

    cpu_clock = CpuClock(run.earlier_rows[-1].get("cpu_seconds", 0.0) if run.earlier_rows else 0.0)
    callbacks, metrics_csv, run.backup, stats = _callbacks(config, run.run_dir, data, progress, run.earlier_rows, run.stopper, cpu_clock, run.restore_dir, trial, tracker)
    _print_header(run, data, model, placement, model_facts)
    started = time.perf_counter()
    fit = dict(validation_data=data.pipelines.get("val"), callbacks=callbacks, shuffle=False, verbose=0)  # the pipeline shuffles
    _fit_in_phases(config, model, data, placement, fit, len(run.earlier_rows), run.backup, model_facts)
    train_seconds = time.perf_counter() - started + sum(r.get("epoch_seconds", 0) for r in run.earlier_rows)
    rows = metrics_csv.rows
    if not rows or not all(math.isfinite(row.get("loss", math.nan)) for row in rows):
        bad = next((row["epoch"] for row in rows if not math.isfinite(row.get("loss", math.nan))), len(rows) + 1)
        raise RunFailed(f"loss became NaN or infinite in epoch {bad}; {_checkpoints_kept(run, callbacks)}; lower optimizer.learning_rate or set optimizer.clipnorm")
    return Fitted(rows, train_seconds, stats.startup_seconds, cpu_clock)


def _checkpoints_kept(run: lifecycle.Run, callbacks: list) -> str:
    """What a run that met a NaN keeps: its checkpoints never hold non-finite weights."""
    from .callbacks.saving import AtomicCheckpoint

    last = next(c for c in callbacks if isinstance(c, AtomicCheckpoint) and not c.save_best_only)
    if last.saved_epoch is not None:
        return f"checkpoints/last.keras holds epoch {last.saved_epoch}, the last with finite weights, and best.keras the best before it"
    if run.folder.checkpoint("last").exists():
        return "the checkpoints keep the epochs saved before this process resumed the run"
    return "no checkpoint was written: the weights were not finite at the end of any epoch"


def _print_header(run: lifecycle.Run, data, model, placement, model_facts: dict) -> None:
    """The run's first lines: its folder, examples and parameters, classes, fine-tuning."""
    where = [f"{placement.replicas} replicas ({placement.name}, global batch {data.batch_size})"] if placement.replicas > 1 else []
    counts, *per_class = data.overview()
    console.say(f"{'resuming' if run.resumed else 'run'} {run.run_dir}")
    for line in [f"{counts}; {model.count_params():,} parameters", *where, *per_class]:
        console.say(console.wrapped(line, indent="  "))
    for warning in data.missing_classes():
        console.say(warning)
    if "init_from" in model_facts:
        console.say(finetune_line(model_facts))


@dataclass
class Tested:
    """The test split's results: metrics (and single-view ones under TTA), analysis, forecast report."""

    metrics: dict | None = None
    single_view: dict | None = None
    analysis: dict | None = None
    forecast: dict | None = None


def _test(config: Config, run_dir: Path, data, model, placement, progress: str = "auto") -> Tested:
    """The test split scored with the checkpoint `checkpoint.evaluate` names: metrics, the per-class
    report and plots, and for forecasts the comparison with the naive forecasts."""
    best_path = RunFolder(run_dir).checkpoint("best")
    if config.checkpoint.evaluate == "best" and best_path.exists():
        import warnings

        with warnings.catch_warnings():  # a best epoch of fine-tuning's first phase had another optimizer: only weights matter here
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(best_path)
    tested = Tested()
    if "test" in data.pipelines:
        scored = evaluate_split(model, data, "test", run_dir, config.data.tta, progress, placement.strategy)
        tested.metrics, tested.single_view, tested.analysis = scored.metrics, scored.single_view, scored.analysis
    if data.series is not None:  # does the model beat the naive forecasts on the same test windows?
        from .data.timeseries import forecast_report

        tested.forecast = forecast_report(model, data.series, config.data.timeseries)
    return tested


def summary_of(config: Config, run_dir: Path, data, model, fitted: Fitted, tested: Tested, model_facts: dict, placement, pruned: str | None = None) -> dict:
    """summary.json: how the run ended, its best epoch, test results, data, model and cost."""
    rows = fitted.rows
    best_path = RunFolder(run_dir).checkpoint("best")
    best = best_epoch(rows, config.checkpoint.monitor, config.checkpoint.mode, judged_epochs(config))
    summary = {
        "name": config.name,
        "run_dir": str(run_dir),
        "status": "pruned" if pruned else "completed",
        **({"pruned": pruned} if pruned else {}),
        "best": best,
        "best_epoch_metrics": next((row for row in rows if row["epoch"] == best["epoch"]), {}),
        **({"best_c": config.model.c_at_epoch(best["epoch"] - 1)} if getattr(config.model, "c_path", None) and best.get("epoch") else {}),  # the path's C there
        "final": {k: v for k, v in rows[-1].items() if k != "epoch"},
        "test": tested.metrics,
        **({"test_single_view": tested.single_view, "tta": list(config.data.tta)} if tested.single_view else {}),
        **({"forecast": tested.forecast} if tested.forecast else {}),
        **({"class_names": data.class_names} if data.class_names else {}),
        **({"outputs": [output.describe() for output in data.outputs]} if data.outputs else {}),
        **({"class_counts": data.class_counts} if data.class_counts else {}),
        **({"table_columns": data.table.describe()} if data.table is not None else {}),
        **({"rows_handled": data.table.rows_handled} if data.table is not None and data.table.rows_handled else {}),
        "test_checkpoint": config.checkpoint.evaluate if best_path.exists() else "last",
        "epochs_run": len(rows),
        "examples": data.counts,
        "parameters": int(model.count_params()),
        "trainable_parameters": cost.trainable_parameters(model),
        "model_bytes": best_path.stat().st_size if best_path.exists() else None,
        "train_seconds": round(fitted.train_seconds, 3),
        "samples_per_second": sum(r["samples_per_second"] for r in rows) / len(rows),
        "startup_seconds": None if fitted.startup_seconds is None else round(fitted.startup_seconds, 3),
        "cpu_seconds": round(fitted.cpu_clock(), 1),  # user + system, start-up to the tested model
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "flops_per_example": cost.flops_per_example(model),
        **model_facts,
        "distribute": {
            "strategy": placement.name,
            "replicas": placement.replicas,
            "global_batch_size": data.batch_size,
            "learning_rate": config.optimizer.learning_rate,
        },
    }
    if tested.analysis is not None:
        summary["analysis_file"] = str(RunFolder(run_dir).eval_file("test").relative_to(run_dir))
    return summary


def _write_results(run_dir: Path, summary: dict, fitted: Fitted, tested: Tested, data) -> None:
    """The curves, the test analysis (eval/test.json) and summary.json, in the run folder."""
    run = RunFolder(run_dir)
    plot_curves({run.name: fitted.rows}, run.curves, run.name, {run.name: summary["best"]["epoch"]})
    if tested.analysis is not None:
        test_file = {"run_dir": str(run_dir), "split": "test", "checkpoint": summary["test_checkpoint"], "examples": data.counts["test"]}
        runs.write_json(run.eval_file("test"), {**test_file, **({"class_names": data.class_names} if data.class_names else {}), "metrics": tested.metrics, **tested.analysis})
    runs.write_json(run.summary, summary)
