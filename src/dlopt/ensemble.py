"""`dlopt ensemble RUN...`: several finished runs of one task as one model that averages their
predictions (class probabilities, or values), written as an ordinary run folder: config.yaml (the
first member's data), checkpoints/best.keras (every member inside one model), eval/test.json and
summary.json, so `eval`, `report`, `predict`, `export` and `serve` take it like any run.

Members must have been trained on the same data (run.json's data fingerprint), with the same
classes and the same inputs; anything else is refused in one line before a folder is made.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import console, runs
from .config import dump_config
from .errors import ConfigError
from .runs import RunFolder
from .saved_models import load_run_model, run_summary


class Member:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        record = runs.read_json_if_any(RunFolder(run_dir).record)
        if record.get("status") != "completed":
            raise ConfigError(f"{run_dir}: only completed runs can be members (this one is {record.get('status', 'not a run')})")
        self.config, self.model, _ = load_run_model(run_dir)
        self.summary = run_summary(run_dir)
        self.data = (record.get("manifest") or {}).get("data")
        self.inputs = {t.name: (tuple(t.shape[1:]), str(t.dtype)) for t in self.model.inputs}
        self.outputs = tuple(self.model.outputs[0].shape[1:])


def best_runs(run_dirs: list[Path], top: int) -> list[Path]:
    """The `top` completed runs by their best epoch's monitored value (a search's trials, say)."""
    from .objectives import monitor_mode

    scored, monitors = [], set()
    for run_dir in run_dirs:
        best = run_summary(run_dir).get("best") or {}
        if runs.read_json_if_any(RunFolder(run_dir).record).get("status") == "completed" and best.get("value") is not None:
            sign = -1 if monitor_mode(best["monitor"], "auto") == "max" else 1
            scored.append((sign * best["value"], str(run_dir)))
            monitors.add(best["monitor"])
    if len(monitors) > 1:
        raise ConfigError("--top: the runs watch different metrics (summary.json's best.monitor), so they cannot be ranked together")
    return [Path(d) for _, d in sorted(scored)[:top]]


def check_members(members: list[Member]) -> None:
    """One line naming the first member that differs from the first, and how."""
    if len(members) < 2:
        raise ConfigError("dlopt ensemble: give at least two runs")
    first = members[0]
    several = next((m for m in members if m.summary.get("outputs")), None)
    if several is not None:
        raise ConfigError(f"dlopt ensemble: {several.run_dir} predicts several outputs (data.table.outputs); ensembles average one output's answers")
    for member in members[1:]:
        what = None
        if member.data != first.data:
            what = "data (run.json's manifest.data differs)"
        elif member.summary.get("class_names") != first.summary.get("class_names"):
            what = f"classes ({member.summary.get('class_names')} against {first.summary.get('class_names')})"
        elif member.inputs != first.inputs:
            what = f"inputs ({member.inputs} against {first.inputs})"
        elif member.outputs != first.outputs:
            what = f"outputs (shape {list(member.outputs)} against {list(first.outputs)})"
        if what:
            raise ConfigError(f"dlopt ensemble: {member.run_dir} was trained on other {what} than {first.run_dir}; members must share data, classes and inputs")


REGULARIZERS = ("kernel_regularizer", "bias_regularizer", "embeddings_regularizer", "recurrent_regularizer", "depthwise_regularizer", "pointwise_regularizer", "activity_regularizer")


def without_penalties(model) -> None:
    """An ensemble is never trained: its loss is the data's alone, not the data's plus every
    member's weight penalty (three L2 penalties added 0.3 to a text ensemble's test loss)."""
    from .models.finetune import leaf_layers

    for layer in leaf_layers(model):
        for attribute in REGULARIZERS:
            if getattr(layer, attribute, None) is not None:
                setattr(layer, attribute, None)  # what the saved config holds
    for variable in model.weights:
        if getattr(variable, "regularizer", None) is not None:
            variable.regularizer = None  # what this process computes


def averaged_model(members: list[Member], name: str):
    """One Keras model: the raw inputs into every member, their outputs averaged."""
    import keras

    first = members[0].model
    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in first.inputs]
    by_name = {t.name: t for t in inputs}
    outputs = []
    for i, member in enumerate(members):
        model = member.model
        model.name = f"member{i}"  # nested models need names of their own
        without_penalties(model)
        fed = [by_name[t.name] for t in model.inputs]
        outputs.append(model(fed[0] if len(fed) == 1 else fed))
    averaged = keras.layers.Average(name="average")(outputs)
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, averaged, name=name)


def ensemble(run_dirs: list[Path], runs_dir: Path, name: str | None, command: list[str]) -> dict:
    """Build, save and evaluate the ensemble; its summary.json."""
    from .evaluate import evaluate

    members = [Member(run_dir) for run_dir in run_dirs]
    check_members(members)
    config = members[0].config.model_copy(update={"name": name or f"{members[0].config.name}-ensemble"})
    folder = runs.create(runs_dir, config.name)
    try:
        runs.write_text_atomic(folder.config, dump_config(config))
        record = runs.RunRecord(folder.path, config.seed, command)
        record.data["ensemble"] = {"members": [str(m.run_dir) for m in members]}
        record.save()
        from . import models

        model = averaged_model(members, models.model_name(config.name))
        folder.checkpoints.mkdir(parents=True, exist_ok=True)
        model.save(folder.checkpoint("best"))
        statistics = RunFolder(members[0].run_dir).inputs  # what predict compares its inputs with: the members' training data
        if statistics.exists():
            shutil.copy2(statistics, folder.inputs)
        tested = evaluate(folder.path, "test")
        member_tests = [m.summary.get("test") or {} for m in members]
        summary = {
            "name": config.name,
            "run_dir": str(folder.path),
            "status": "completed",
            "ensemble": [str(m.run_dir) for m in members],
            "test": tested["metrics"],
            **({"test_single_view": tested["metrics_single_view"], "tta": tested["tta"]} if tested.get("metrics_single_view") else {}),  # as a run's summary has them
            **({"forecast": tested["forecast"]} if tested.get("forecast") else {}),  # a forecast against the naive ones
            "members_test": member_tests,
            **({"class_names": tested["class_names"]} if tested.get("class_names") else {}),
            "parameters": int(model.count_params()),
            "test_checkpoint": "best",
            "analysis_file": str(folder.eval_file("test").relative_to(folder.path)),
        }
        runs.write_json(folder.summary, summary)
        record.finish("completed")
    except BaseException:
        runs.remove(folder.path)  # never a half-written ensemble left looking like a run
        raise
    console.say(f"ensemble of {len(members)} runs: {folder.path}")
    return summary
