"""The runner: from a validated config to a finished run directory, top to bottom.

config -> run folder (new, or an interrupted one to resume) -> data -> model -> optimizer ->
fit (callbacks write into the run) -> test evaluation -> summary.json, plots, run.json `completed`.
"""

from __future__ import annotations

import errno
import math
import resource
import signal
import time
import traceback
from pathlib import Path

from . import data as data_module
from . import cost, distribute, models, report, runs, runtime, tta
from .config import Config, dump_config
from .errors import ConfigError, DloptError, RunFailed
from .objectives import build_loss, build_metrics, monitor_mode, resolve_metrics
from .registry import did_you_mean


class Interrupted(DloptError):
    exit_code = 130


def _with_run(error: DloptError, run_dir: Path) -> DloptError:
    error.run_dir = str(run_dir)  # for `--json`: which run the error belongs to
    return error


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
    names = ["loss"] + resolve_metrics(config.train, data.task)
    known = set(names) | {f"val_{n}" for n in names} | {"learning_rate"}
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
        loss=build_loss(config.train, data.task, data.label_format),
        metrics=build_metrics(config.train, data.task, data.label_format, data.series),
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
        report.stderr.print(f"epoch {switch}: frozen layers unfrozen (batch norm stays frozen), learning rate x {config.model.unfreeze_lr_multiplier}", soft_wrap=True)
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


def best_epoch(rows: list[dict], monitor: str, mode: str) -> dict:
    values = [(row["epoch"], row[monitor]) for row in rows if monitor in row and math.isfinite(row[monitor])]
    if not values:
        return {"epoch": None, "monitor": monitor, "value": None}
    epoch, value = (max if monitor_mode(monitor, mode) == "max" else min)(values, key=lambda item: item[1])
    return {"epoch": epoch, "monitor": monitor, "value": value}


def _callbacks(config: Config, run_dir: Path, data, progress: str, earlier_rows: list[dict], stopper, restore_dir: Path | None = None, trial=None) -> tuple[list, object, object, object]:
    import keras

    from .callbacks import AtomicCheckpoint, Backup, EpochStats, MetricsCSV, StopOnNaN
    from .optim import schedule_callbacks

    ckpt = run_dir / "checkpoints"
    monitor = config.checkpoint.monitor
    mode = monitor_mode(monitor, config.checkpoint.mode)
    # a resumed run must not replace best.keras with anything worse than its earlier best
    threshold = best_epoch(earlier_rows, monitor, mode)["value"]
    # a non-chief worker resuming restores the chief's state (restore_dir) and saves into its scratch
    backup = Backup((restore_dir or run_dir) / "backup", config.checkpoint.backup_every_steps, save_dir=run_dir / "backup")
    metrics_csv = MetricsCSV(run_dir / "metrics.csv", earlier_rows)
    stats = EpochStats(data.counts["train"])
    callbacks = [
        backup,  # first: it restores weights, optimizer state and the epoch before anything runs
        stats,  # before the writers: they see its learning_rate and timing
        *schedule_callbacks(config, data.steps_per_epoch),
        StopOnNaN(),
        AtomicCheckpoint(ckpt / "best.keras", monitor=monitor, mode=mode, save_best_only=True, initial_value_threshold=threshold),
        AtomicCheckpoint(ckpt / "last.keras"),
        keras.callbacks.TensorBoard(run_dir / "tensorboard", histogram_freq=0, write_graph=False, profile_batch=0),
    ]
    stop = config.train.early_stopping
    if stop:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=stop.monitor, patience=stop.patience, min_delta=stop.min_delta, mode=monitor_mode(stop.monitor, stop.mode), restore_best_weights=stop.restore_best_weights
            )
        )
    callbacks += [metrics_csv, report.progress_callback(progress, config.train.epochs, data.steps_per_epoch, data.batch_size)]
    if trial is not None:  # a search's trial reports each epoch, after its row is written, and may be pruned
        callbacks.append(trial.callback())
    # the stopper goes last: an interrupt lands after this epoch's backup, checkpoints and rows
    callbacks.append(stopper)
    return callbacks, metrics_csv, backup, stats


def _disk_full(exc: BaseException) -> bool:
    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in str(exc)


def _finish(record, status: str, message: str) -> str:
    """Record the run's end in run.json; when even that cannot be written (a full disk), the text
    to add to the message on stderr, which then carries the only record."""
    try:
        record.finish(status, message)
        return ""
    except OSError as exc:
        return f" (run.json could not be updated: {exc.strerror or exc}; it still says 'running')"


def train(config: Config, runs_dir: Path, command: list[str], progress: str = "auto", resume: Path | None = None, trial=None) -> dict:
    """Run one training (or resume one); return summary.json's content. Raises DloptError on failure.

    `trial`: a search's trial (dlopt.search.trial.TrialRun): names the run folder, adds its study,
    number and sampled values to run.json, and may prune the run after an epoch."""
    runtime.before_tensorflow(config.train)
    import keras

    preflight(config)
    runtime.set_threads(config.train.threads)  # before TensorFlow runs its first op
    placement = distribute.place(config.distribute)
    if not placement.is_chief:  # a multi-worker run's other workers train alongside, writing to scratch
        return _train_as_worker(config, runs_dir, command, placement, resume)
    if resume is None:
        run_dir = runs.create(runs_dir, trial.run_name if trial else config.name)
        config_text = dump_config(config)
        runs.write_text_atomic(run_dir / "config.yaml", config_text)
        record = runs.RunRecord(run_dir, config.seed, command)
        from .manifest import manifest

        record.data["manifest"] = manifest(config, config_text, command)
        if trial is not None:
            record.data["search"] = trial.started(run_dir)
        record.save()
        earlier_rows = []
    else:
        run_dir = resume
        if runs.read_json(run_dir / "run.json").get("status") in runs.FINISHED:  # trained further: more epochs
            done = runs.continue_completed(run_dir, dump_config(config))
            report.stderr.print(f"continuing {run_dir} from epoch {done} (checkpoints/last.keras) to {config.train.epochs}; the schedule runs over the new total", soft_wrap=True)
        repaired = runs.repair_resume_state(run_dir)  # before anything is marked: a state that cannot load leaves the run as it was
        if repaired:
            report.stderr.print(repaired, soft_wrap=True)
        record = runs.RunRecord.resume(run_dir, command)
        if trial is not None:  # a search's trial run again, from where its worker died
            record.data["search"] = trial.started(run_dir)
            record.save()
        earlier_rows = runs.rows_to_resume(run_dir)
    return _train_in(config, run_dir, record, earlier_rows, placement, progress, resumed=resume is not None, trial=trial)


class _ScratchRecord:
    """A non-chief worker's stand-in for run.json: the chief alone records the run."""

    def __init__(self):
        self.data: dict = {}

    def finish(self, status: str, error: str | None = None) -> None:
        pass


def _train_as_worker(config: Config, runs_dir: Path, command: list[str], placement, resume: Path | None) -> dict:
    """Train as a non-chief worker: same steps as the chief, files into a scratch folder removed at the end.

    On --resume, each worker restores the chief's saved state (the run folder must be on a shared filesystem)."""
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix=f"dlopt-{placement.task.replace(':', '')}-"))
    try:
        earlier_rows = runs.rows_to_resume(resume) if resume else []
        summary = _train_in(config, scratch, _ScratchRecord(), earlier_rows, placement, "none", resumed=resume is not None, restore_dir=resume)
    finally:
        runs.remove(scratch)
    return {**summary, "run_dir": None, "worker": placement.task}


def _train_in(config: Config, run_dir: Path, record, earlier_rows: list[dict], placement, progress: str, resumed: bool, restore_dir: Path | None = None, trial=None) -> dict:
    import keras

    resume = run_dir if resumed else None
    # Ctrl-C and SIGTERM end a run the same way: state saved, status `interrupted`, exit 130
    from .callbacks import StopAtSafePoint

    stopper = StopAtSafePoint()
    previous_handlers = {sig: signal.signal(sig, stopper.handle_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    backup = None
    try:
        keras.utils.set_random_seed(config.seed)  # Python, NumPy and TensorFlow
        if config.train.deterministic:
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        config = distribute.scaled(config, placement.replicas)  # global batch and learning rate
        data = data_module.build(config)
        model, model_facts = _build_model(config, data, placement)
        _check_monitors(config, data, trial)
        if placement.name == "multi_worker":
            distribute.prepare_multi_worker_fit(model, data.pipelines["train"], placement.strategy)
        callbacks, metrics_csv, backup, stats = _callbacks(config, run_dir, data, progress, earlier_rows, stopper, restore_dir, trial)

        verb = "resuming" if resume else "run"
        where = [f"{placement.replicas} replicas ({placement.name}, global batch {data.batch_size})"] if placement.replicas > 1 else []
        counts, *per_class = data.overview()
        report.stderr.print(f"{verb} {run_dir}", soft_wrap=True)
        for line in [f"{counts}; {model.count_params():,} parameters", *where, *per_class]:
            report.stderr.print(report.wrapped(line, indent="  "), soft_wrap=True)
        for warning in data.missing_classes():
            report.stderr.print(warning, soft_wrap=True)
        if "init_from" in model_facts:
            report.stderr.print(finetune_line(model_facts), soft_wrap=True)
        started = time.perf_counter()
        fit = dict(validation_data=data.pipelines.get("val"), callbacks=callbacks, shuffle=False, verbose=0)  # the pipeline shuffles
        _fit_in_phases(config, model, data, placement, fit, len(earlier_rows), backup, model_facts)
        train_seconds = time.perf_counter() - started + sum(r.get("epoch_seconds", 0) for r in earlier_rows)
        rows = metrics_csv.rows
        if not rows or not all(math.isfinite(row.get("loss", math.nan)) for row in rows):
            bad = next((row["epoch"] for row in rows if not math.isfinite(row.get("loss", math.nan))), len(rows) + 1)
            raise RunFailed(f"loss became NaN or infinite in epoch {bad}; lower optimizer.learning_rate or set optimizer.clipnorm")
        pruned = trial.pruned if trial is not None else None  # a pruned trial ends here: no test evaluation

        best_path = run_dir / "checkpoints" / "best.keras"
        if config.checkpoint.evaluate == "best" and best_path.exists():
            import warnings

            with warnings.catch_warnings():  # a best epoch of fine-tuning's first phase had another optimizer: only weights matter here
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                model.load_weights(best_path)
        test = test_single_view = None
        if "test" in data.pipelines and not pruned:
            with placement.strategy.scope():  # the views model shares the (possibly mirrored) layers
                test, test_single_view = tta.evaluate(
                    model,
                    data.pipelines["test"],
                    config.data.tta,
                    build_loss(config.train, data.task, data.label_format),
                    build_metrics(config.train, data.task, data.label_format, data.series),
                )

        analysis = None
        if "test" in data.pipelines and not pruned:  # per-class report, confusion matrix, mistakes, forecast plots
            from .analysis import analyse

            analysis = analyse(model, data, "test", run_dir, config.data.tta)
        forecast = None
        if data.series is not None and not pruned:  # does the model beat the naive forecasts on the same test windows?
            from .data.timeseries import forecast_report

            forecast = forecast_report(model, data.series, config.data.timeseries)
        best = best_epoch(rows, config.checkpoint.monitor, config.checkpoint.mode)
        summary = {
            "name": config.name,
            "run_dir": str(run_dir),
            "status": "pruned" if pruned else "completed",
            **({"pruned": pruned} if pruned else {}),
            "best": best,
            "best_epoch_metrics": next((row for row in rows if row["epoch"] == best["epoch"]), {}),
            "final": {k: v for k, v in rows[-1].items() if k != "epoch"},
            "test": test,
            **({"test_single_view": test_single_view, "tta": list(config.data.tta)} if test_single_view else {}),
            **({"forecast": forecast} if forecast else {}),
            **({"class_names": data.class_names} if data.class_names else {}),
            **({"class_counts": data.class_counts} if data.class_counts else {}),
            **({"table_columns": data.table.describe()} if data.table is not None else {}),
            "test_checkpoint": config.checkpoint.evaluate if best_path.exists() else "last",
            "epochs_run": len(rows),
            "examples": data.counts,
            "parameters": int(model.count_params()),
            "trainable_parameters": cost.trainable_parameters(model),
            "model_bytes": best_path.stat().st_size if best_path.exists() else None,
            "train_seconds": round(train_seconds, 3),
            "samples_per_second": sum(r["samples_per_second"] for r in rows) / len(rows),
            "startup_seconds": None if stats.startup_seconds is None else round(stats.startup_seconds, 3),
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
        report.plot_curves({run_dir.name: rows}, run_dir / "plots" / "curves.png", run_dir.name, {run_dir.name: best["epoch"]})
        if analysis is not None:
            summary["analysis_file"] = "eval/test.json"
            runs.write_json(run_dir / "eval" / "test.json", {"run_dir": str(run_dir), "split": "test", "checkpoint": summary["test_checkpoint"], "examples": data.counts["test"], **({"class_names": data.class_names} if data.class_names else {}), "metrics": test, **analysis})
        runs.write_json(run_dir / "summary.json", summary)
        record.finish("pruned", pruned) if pruned else record.finish("completed")
        runs.remove(run_dir / "backup")  # the resume state is only needed until the run completes
        return summary
    except ConfigError:
        if resume is None:
            runs.remove(run_dir)  # a config error found late: nothing ran, leave nothing behind
        else:
            record.finish("failed", "config error on resume")
        raise
    except KeyboardInterrupt:
        if backup is not None and stopper.requested:
            try:
                backup.save_now()  # stopped between steps: keep the state of this moment for --resume
            except Exception:  # e.g. a second Ctrl-C mid-write: the last complete save still stands
                pass
        _finish(record, "interrupted", "interrupted by Ctrl-C or SIGTERM; continue with: dlopt train --resume " + str(run_dir))
        raise _with_run(Interrupted(f"interrupted; resume with: dlopt train --resume {run_dir}"), run_dir) from None
    except RunFailed as exc:
        not_recorded = _finish(record, "failed", str(exc))
        raise _with_run(RunFailed(f"{exc}{not_recorded}") if not_recorded else exc, run_dir)
    except Exception as exc:  # anything else: record it, report one line, keep the traceback in run.json
        if _disk_full(exc):
            from .callbacks import release_failed_files

            release_failed_files()
            message = f"no space left on device writing {getattr(exc, 'filename', None) or run_dir}; free some space (or use another --runs-dir), then: dlopt train --resume {run_dir}"
        else:
            message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            record.data["traceback"] = traceback.format_exc()
        not_recorded = _finish(record, "failed", message)
        raise _with_run(RunFailed(f"run {run_dir} failed: {message}{not_recorded}"), run_dir) from exc
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
