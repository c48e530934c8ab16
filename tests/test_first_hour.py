"""What a newcomer sees in the first hour: quiet output, a compare table that fits the terminal,
progress lines that fit 80 columns, class names, runs named by prefix or `latest`, every config
mistake listed before a run folder exists, plots that never overwrite, plain words on interrupts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import fake_run, quadrant_idx_folder, tiny_cnn_config, write_config
from dlopt import console, runs
from dlopt.analysis.curves import curves_figure
from dlopt.callbacks.progress import epoch_line, progress_callback
from dlopt.errors import ConfigError
from dlopt.runtime import NATIVE_NOISE

DLOPT = [sys.executable, "-m", "dlopt.cli"]
CLASS_NAMES = ["top-left", "top-right", "bottom-left", "bottom-right"]


def quiet_env() -> dict:
    """The environment of a user's shell: no TF_CPP_MIN_LOG_LEVEL (the test session sets one)."""
    return {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "DLOPT_DEBUG")}


@pytest.fixture(scope="module")
def named_run(tmp_path_factory):
    """A tiny CNN trained in a subprocess as a user would start it, with data.class_names."""
    tmp = tmp_path_factory.mktemp("first_hour")
    folder = quadrant_idx_folder(tmp / "idx")
    config = tiny_cnn_config(folder, train={"epochs": 2, "progress": "auto"})
    config["data"]["class_names"] = CLASS_NAMES
    config["name"] = "quadrants"
    path = write_config(tmp / "quadrants.yaml", config)
    result = subprocess.run([*DLOPT, "train", str(path)], cwd=tmp, env=quiet_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (run,) = (tmp / "runs").iterdir()
    return tmp, run, result


# ------------------------------------------------------------------------------ 2. quiet output


def test_training_prints_only_dlopt_lines_each_under_80_columns(named_run):
    _, run, result = named_run
    lines = result.stderr.splitlines()
    assert lines, "training shows its epochs"
    assert not [line for line in lines if NATIVE_NOISE.search(line)], result.stderr
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/2", "2/2"], result.stderr
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "loss" in epoch_lines[0] and "val_acc" in epoch_lines[0] and "/s" in epoch_lines[0]


def test_eval_prints_nothing_before_its_own_output(named_run):
    tmp, run, _ = named_run
    result = subprocess.run([*DLOPT, "eval", "latest"], cwd=tmp, env=quiet_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[0].startswith(f"runs/{run.name} · test (80 examples) · best.keras")
    verbose = subprocess.run([*DLOPT, "--verbose", "eval", "latest"], cwd=tmp, env=quiet_env(), capture_output=True, text=True, timeout=300)
    assert verbose.returncode == 0 and NATIVE_NOISE.search(verbose.stderr), "--verbose shows TensorFlow's own lines"


def test_keras_warnings_are_one_line_once_in_dlopt_words(capsys):
    from dlopt.runtime import _warning_line

    message = "Layer 'crop' (of type Cropping1D) was passed an input with a mask attached to it. However, this layer does not support masking"
    for _ in range(2):
        _warning_line(UserWarning(message + "\nand a second line"), UserWarning, "layer.py", 1)
    err = capsys.readouterr().err
    assert err.splitlines() == ["warning: layer 'crop' (Cropping1D) drops the padding mask: layers after it treat padding as text (pool with model.pooling, or use layers that support masking, before it)"]


# -------------------------------------------------------------------------- 3. progress display


def test_epoch_line_always_shows_time_and_throughput_and_the_learning_rate_while_it_fits():
    logs = {"loss": 0.123456, "accuracy": 0.987654, "top_k_accuracy": 0.99, "val_loss": 0.234567, "val_accuracy": 0.912345, "learning_rate": 0.00123, "epoch_seconds": 1234.5, "samples_per_second": 123456.0}
    line = epoch_line(100, 100, logs)
    assert line == "epoch 100/100 loss 0.123 val_loss 0.235 acc 0.988 val_acc 0.912 1,234s 123k/s"  # fewer digits, narrower gaps: still every field
    short = epoch_line(1, 9, {"loss": 0.5, "accuracy": 0.5, "learning_rate": 0.001, "epoch_seconds": 1.0, "samples_per_second": 10.0})
    assert short == "epoch 1/9  loss 0.5  acc 0.5  1.0s 10/s  lr 0.001"
    # every epoch line has the time and throughput, whatever the numbers' widths, within 80 columns
    lines = [epoch_line(e, 20, {**logs, "epoch_seconds": s, "samples_per_second": r}) for e, s, r in ((1, 2.1, 704.0), (2, 0.3, 5123.0), (20, 150.0, 12.0), (3, 12.3, 45678.0))]
    assert all(re.search(r" [\d,.]+s [\d,.]+k?/s$", line) and len(line) <= 80 for line in lines), lines
    assert console.plural(1, "epoch") == "1 epoch" and console.plural(3, "epoch") == "3 epochs"


def test_progress_bar_shows_running_loss_metric_and_throughput():
    bar = progress_callback("bar", epochs=2, steps_per_epoch=10, batch_size=32)
    bar.REFRESH = 0.0
    bar.on_epoch_begin(0)
    bar.on_train_batch_end(4, {"loss": 0.75, "accuracy": 0.5})
    task = bar.bar.tasks[0]
    assert task.description == "epoch 1/2" and task.completed == 5 and task.total == 10
    status = task.fields["status"]
    assert re.fullmatch(r"loss 0\.75  acc 0\.5  [\d,.]+k?/s", status), status
    assert [type(c).__name__ for c in bar.bar.columns][3:5] == ["TextColumn", "TimeRemainingColumn"]  # labelled
    assert bar.bar.columns[3].text_format == "eta"
    bar.on_epoch_end(0, {"loss": 0.7})
    assert not bar.bar.live.is_started and not console._live  # erased before the epoch's line


# ------------------------------------------------------------------------------ 4. class names


def test_class_names_reach_predict_eval_and_the_summary(named_run, cli):
    import numpy as np

    from conftest import quadrant_images

    _, run, _ = named_run
    assert json.loads((run / "summary.json").read_text())["class_names"] == CLASS_NAMES
    x, y = quadrant_images(4, seed=5)
    np.save(run.parent.parent / "four.npy", x[..., None].astype(np.float32))
    code, out, err = cli("predict", run, run.parent.parent / "four.npy", "--json")
    assert code == 0, err
    results = json.loads(out)
    assert all(r["name"] == CLASS_NAMES[r["class"]] for r in results)
    code, out, _ = cli("predict", run, run.parent.parent / "four.npy")
    assert code == 0 and any(name in out for name in CLASS_NAMES)
    code, out, _ = cli("eval", run, "--json")
    assert json.loads(out)["class_names"] == CLASS_NAMES
    code, out, _ = cli("eval", run)
    per_class = out.split("per class", 1)[1]
    assert all(name in per_class for name in CLASS_NAMES)


def test_class_names_must_match_the_classes(tmp_path, cli):
    folder = quadrant_idx_folder(tmp_path / "idx")
    config = tiny_cnn_config(folder)
    config["data"]["class_names"] = ["a", "b"]
    code, _, err = cli("train", write_config(tmp_path / "c.yaml", config), "--runs-dir", tmp_path / "runs")
    assert code == 2 and "data.class_names: 2 names for 4 classes" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# -------------------------------------------------------------------------- 5. naming runs


def test_runs_are_found_by_prefix_or_latest(tmp_path):
    older = fake_run(tmp_path, "cnn_mnist-20261101-090000", 1e-3)
    newer = fake_run(tmp_path, "cnn_mnist-20261102-090000", 1e-3)
    other = fake_run(tmp_path, "mlp_penguins-20261101-090000", 1e-3)
    os.utime(older, (1, 1))
    os.utime(other, (2, 2))
    assert runs.find_run("mlp", tmp_path) == other
    assert runs.find_run(str(tmp_path / "mlp"), tmp_path) == other
    assert runs.find_run("cnn_mnist-20261102", tmp_path) == newer
    assert runs.find_run(str(older), tmp_path) == older
    assert runs.find_run("latest", tmp_path) == newer
    with pytest.raises(ConfigError, match=r"^cnn: 2 runs start with 'cnn': cnn_mnist-20261101-090000, cnn_mnist-20261102-090000; give more of the name, or `latest`$"):
        runs.find_run("cnn", tmp_path)
    # a config's whole name: its newest run (the README tour's `dlopt eval runs/cnn_digits` after the set-up run)
    assert runs.find_run("cnn_mnist", tmp_path) == newer
    assert runs.find_run(str(tmp_path / "cnn_mnist"), tmp_path) == newer
    best = fake_run(tmp_path, "cnn_mnist-best-20261103-090000", 1e-3)
    assert runs.find_run("cnn_mnist", tmp_path) == newer and runs.find_run("cnn_mnist-best", tmp_path) == best
    with pytest.raises(ConfigError, match="^resnet: no run folder of that name or prefix in"):
        runs.find_run("resnet", tmp_path)
    with pytest.raises(ConfigError, match=r"^cnn_mnst: no run folder of that name or prefix in .*/ \(did you mean 'cnn_mnist'\?\)$"):
        runs.find_run("cnn_mnst", tmp_path)
    with pytest.raises(ConfigError, match="latest: no runs in"):
        runs.find_run("latest", tmp_path / "empty")


def test_eval_by_prefix_from_the_command_line(named_run):
    tmp, run, _ = named_run
    result = subprocess.run([*DLOPT, "eval", "runs/quad", "--json"], cwd=tmp, env=quiet_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["metrics"]["accuracy"] >= 0


# --------------------------------------------------------------------- 1. compare fits 80 columns


def many_runs(folder: Path) -> list[Path]:
    """Nine runs of one config as a sweep leaves them: long timestamped names, a dozen settings that
    differ, one interrupted mid-way."""
    made = []
    for i in range(9):
        run = fake_run(folder, f"cnn_fashion_mnist_local-20261124-1{i:02d}000", 10.0 ** -(i % 4 + 1), status="interrupted" if i == 4 else "completed", val_accuracy=0.8 + i / 100)
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["model"] = {"type": "cnn", "dropout": 0.1 * (i % 3), "blocks": [{"filters": 8 * (i + 1)}], "dense": [16 * (i + 1)]}
        config["schedule"] = {"type": ["constant", "cosine", "step"][i % 3], "warmup_epochs": i % 2}
        config["data"] = {"batch_size": 32 * (1 + i % 2), "augment": [{"type": "random_flip"}] if i % 2 else []}
        config["train"].update({"label_smoothing": 0.05 * (i % 2), "weight_decay": 1e-4 * i})
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        made.append(run)
    return made


def test_compare_fits_80_columns_with_short_names(tmp_path, cli, monkeypatch):
    many_runs(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli("compare", tmp_path)
    assert code == 0, err
    lines = out.rstrip("\n").splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert len(lines) <= 9 + 8, out  # one line per run, a title and a two-line heading
    assert lines[0].startswith("9 runs of cnn_fashion_mnist_local (8 more differing settings: --all or")
    # names as short as they can be while telling the runs apart: the time of day
    assert [line.split()[1] for line in lines if "completed" in line or "interrupted" in line] == [f"1{i:02d}000" for i in range(9)]
    interrupted = next(line for line in lines if "interrupted" in line)
    assert "0.84" in interrupted  # its best validation accuracy, read from metrics.csv
    for header in ("name", "status", "weight_decay", "best", "val_acc", "test", "time"):  # weight_decay: the setting that follows the accuracy
        assert header in out
    code, wide, _ = cli("compare", tmp_path, "--all")
    assert "label_smoothing" in wide and "weight_decay" in wide
    code, chosen, _ = cli("compare", tmp_path, "--columns", "name,train.weight_decay,test_accuracy")
    assert code == 0 and "weight_decay" in chosen and "learning_rate" not in chosen
    code, _, err = cli("compare", tmp_path, "--columns", "name,test_acc")
    assert code == 2 and "no column 'test_acc' (did you mean 'test_accuracy'?)" in err


def test_compare_shows_the_settings_that_explain_the_results_first(tmp_path, cli, monkeypatch):
    """Twelve runs: one with a clipnorm the rest do not set (explains nothing), epochs 20 against 3
    (explains most of the accuracy): the narrow table shows epochs, not clipnorm."""
    for i in range(12):
        epochs = 20 if i % 2 else 3
        run = fake_run(tmp_path, f"digits-20261124-1{i:02d}000", 1e-3 * (1 + i % 3), val_accuracy=(0.95 if epochs == 20 else 0.7) + 0.005 * (i % 3), epochs=epochs)
        config = yaml.safe_load((run / "config.yaml").read_text())
        if i == 5:
            config["optimizer"]["clipnorm"] = 1.0
        config["model"] = {"type": "cnn", "dense": [64 + i]}  # a value of its own in every run: shown only where room is left
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli("compare", tmp_path)
    assert code == 0, err
    heading = "\n".join(out.splitlines()[1:4])
    assert "epochs" in heading and "clipnorm" not in heading, out
    assert heading.index("epochs") < heading.index("learning_rate"), out  # the one that explains most comes first
    code, wide, _ = cli("compare", tmp_path, "--all")
    assert all(len(line) > 80 for line in wide.splitlines()[2:4]), wide  # every column at full width, not folded to 80
    assert "clipnorm" in wide


# ------------------------------------------------------ 6. mistakes found before a run exists


def test_every_config_mistake_is_listed_with_its_line(tmp_path, cli):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\n"
        "data: {source: idx, path: /nowhere, batch_size: -4}\n"
        "model:\n"
        "  type: cnn\n"
        "  blocks: [{filters: 0}]\n"
        "optimizer: {type: adam, learning_rate: fast}\n"
    )
    code, out, err = cli("train", path, "--runs-dir", tmp_path / "runs")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 3, err
    assert all(line.startswith(f"error: {path}:") for line in lines), err
    assert any(":2: data.batch_size:" in line for line in lines)
    assert any(":5: model.blocks[0].filters:" in line for line in lines)
    assert any(":6: optimizer.learning_rate:" in line for line in lines)
    assert not (tmp_path / "runs").exists()


def test_validate_prints_only_the_settings_that_apply(tmp_path, cli):
    folder = quadrant_idx_folder(tmp_path / "idx")
    code, out, err = cli("validate", write_config(tmp_path / "c.yaml", tiny_cnn_config(folder)))
    assert code == 0, err
    assert "path:" in out and "batch_size:" in out
    for key in ("text:", "vocab_size", "table:", "timeseries:", "manual_dir", "skip_bad_files"):
        assert key not in out, key


# -------------------------------------------------------------------------------- 8. plots


def test_plot_curves_integer_epochs_two_colours_and_a_legend_outside(tmp_path):
    rows = [{"epoch": e, "loss": 1 / e, "val_loss": 1.1 / e, "accuracy": e / 10, "val_accuracy": e / 11, "learning_rate": 1e-3} for e in range(1, 4)]
    fig = curves_figure({"run": rows}, "cnn-20261124-100000", {"run": 2})
    assert fig._suptitle.get_text() == "cnn-20261124-100000"
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy", "learning rate"]
    for ax in fig.axes:
        assert all(float(t).is_integer() for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1])
    colours = {line.get_color() for line in fig.axes[0].lines if line.get_linestyle() != ":"}
    assert len(colours) == 2  # train and validation
    several = curves_figure({"a": rows, "b": rows}, "2 runs")
    assert [ax.get_title() for ax in several.axes] == ["loss", "accuracy", "learning rate"]
    (legend,) = several.legends
    assert [t.get_text() for t in legend.get_texts()][:2] == ["a", "b"]
    several.canvas.draw()
    box = legend.get_window_extent(several.canvas.get_renderer())
    right_edge = max(ax.get_window_extent().x1 for ax in several.axes)
    assert box.x0 >= right_edge  # beside the panels, not over them
    assert box.x0 - right_edge < 0.5 * several.dpi  # and close to them, not at the figure's far edge


def test_plot_defaults_into_the_run_and_never_overwrites(tmp_path, cli):
    a, b = fake_run(tmp_path, "a-20261124-100000", 1e-3), fake_run(tmp_path, "a-20261124-110000", 1e-2)
    code, out, err = cli("plot", a)
    assert code == 0, err and out.strip() == str(a / "plots" / "curves.png")
    assert (a / "plots" / "curves.png").exists()
    code, out, err = cli("plot", a, b)
    assert code == 0, err
    (made,) = (tmp_path / "plots").glob("curves-*.png")
    assert out.strip() == str(made)
    target = tmp_path / "mine.png"
    target.write_bytes(b"the user's own file")
    code, _, err = cli("plot", a, "-o", target)
    assert code == 2 and "already exists" in err and "--force" in err
    assert target.read_bytes() == b"the user's own file"
    code, _, err = cli("plot", a, "-o", target, "--force")
    assert code == 0 and target.read_bytes()[:4] == b"\x89PNG"
    # a bare file name: beside the runs' other plots, not in whatever folder the shell is in
    code, out, err = cli("plot", a, b, "-o", "lr.png")
    assert code == 0, err
    assert out.strip() == str(tmp_path / "plots" / "lr.png") and (tmp_path / "plots" / "lr.png").read_bytes()[:4] == b"\x89PNG"
    assert not Path("lr.png").exists()


def test_mistakes_titles_stay_clear_of_the_images_above():
    import numpy as np

    from dlopt.analysis import plots

    rng = np.random.default_rng(0)
    found = [{"input": rng.random((28, 28, 1)), "truth": i % 3, "predicted": (i + 1) % 3, "probability": 0.99} for i in range(8)]
    fig = plots.mistakes(found, ["T-shirt/top", "Sneaker", "Ankle boot"], "test")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = fig.axes
    for upper, lower in zip(axes[:4], axes[4:]):  # each image of the first row and the one below it
        title = lower.title.get_window_extent(renderer)
        assert title.y1 <= upper.get_window_extent(renderer).y0, (title, upper.get_window_extent(renderer))


def test_a_long_test_evaluation_shows_progress_and_a_short_one_nothing(capsys):
    from dlopt.callbacks.progress import TestProgress

    quick = TestProgress("test: scoring 10,000 examples", 79, "lines")
    quick.on_test_begin()
    for batch in range(79):
        quick.on_test_batch_end(batch)
    quick.on_test_end()
    assert capsys.readouterr().err == ""  # done within 10 seconds: silent
    slow = TestProgress("test: scoring 10,000 examples", 79, "lines")
    slow.FIRST = 0.0
    slow.on_test_begin()
    slow.on_test_batch_end(39)
    slow.on_predict_batch_end(40)  # the analysis' prediction pass is shown the same way
    assert re.fullmatch(r"test: scoring 10,000 examples: 40/79 batches in \d+s\n", capsys.readouterr().err)
    bar = TestProgress("test", 79, "bar")
    bar.on_test_begin()
    bar.on_test_batch_end(9)
    assert bar.bar.tasks[0].completed == 10 and bar.bar.columns[3].text_format == "eta"
    bar.on_test_end()
    assert not console._live


def test_a_message_after_a_progress_bar_starts_on_a_line_of_its_own():
    """Ctrl-C's `interrupted; resume with ...` used to land on the bar's line: anything said ends
    the bar first (erasing it), then prints."""
    bar = progress_callback("bar", epochs=2, steps_per_epoch=10, batch_size=32)
    bar.on_epoch_begin(0)
    bar.on_train_batch_end(0, {"loss": 1.0})
    assert bar.bar.live.is_started
    console.say("interrupted; resume with: dlopt train --resume runs/x")
    assert not bar.bar.live.is_started and not console._live
