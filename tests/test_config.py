"""Config loading and validation: no TensorFlow involved."""

from __future__ import annotations

import subprocess
import sys
import re
import textwrap

import pytest

from dlopt.config import dump_config, load_config
from dlopt.config.schema import CnnConfig, CustomModelConfig, MlpConfig
from dlopt.errors import ConfigError

BASE = """\
name: demo
data:
  source: idx
  path: {path}
model:
  type: cnn
  blocks:
    - {{filters: 8}}
    - {{filters: 16}}
optimizer: {{type: adam, learning_rate: 1e-3}}
"""


@pytest.fixture
def cfg(tmp_path):
    def write(text=None, name="c.yaml", **fmt):
        path = tmp_path / name
        path.write_text(text if text is not None else BASE.format(path=tmp_path))
        return path

    return write


def error_of(path, overrides=()):
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


def test_defaults_fill_every_section(cfg):
    config = load_config(cfg())
    assert config.seed == 42
    assert config.optimizer.learning_rate == 1e-3  # `1e-3` reads as a float, not a string
    assert config.schedule.type == "constant"
    assert config.train.epochs == 10 and config.train.loss == "auto"
    assert config.checkpoint.monitor == "val_loss"
    assert config.data.batch_size == 128
    assert [b.filters for b in config.model.blocks] == [8, 16]
    assert config.model.blocks[0].kernel_size == 3


def test_wrong_value_names_file_line_and_key_path(cfg):
    path = cfg(BASE.format(path="/x").replace("{filters: 16}", "{filters: -3}"))
    assert error_of(path) == f"{path}:9: model.blocks[1].filters: expected greater than 0, got -3"


def test_unknown_key_suggests_the_close_one(cfg):
    path = cfg(BASE.format(path="/x") + "train:\n  epocs: 3\n")
    assert error_of(path) == f"{path}:12: train.epocs: unknown key 'epocs' (did you mean 'epochs'?)"


def test_unknown_registry_names_suggest(cfg):
    path = cfg()
    assert "model.type: unknown model 'cnnn' (did you mean 'cnn'?)" in error_of(path, ["model.type=cnnn"])
    message = error_of(path, ["optimizer.type=adamm"])
    assert "optimizer.type: unknown type 'adamm' (did you mean 'adam'?)" in message
    assert "sgd, adagrad, rmsprop, adam, adamw" in message
    assert "did you mean 'relu'" in error_of(path, ["model.activation=rleu"])


def test_wrong_type_is_an_error(cfg):
    message = error_of(cfg(), ["train.epochs=ten"])
    assert message.startswith("--set train.epochs=ten: train.epochs: expected a valid integer")
    assert "got 'ten'" in message


def test_missing_required_section(cfg):
    path = cfg("name: x\nmodel: {type: mlp}\n")
    assert error_of(path) == f"{path}:1: data: required key is missing"


def test_source_specific_requirements(cfg):
    assert "data.name: required when data.source is 'tfds'" in error_of(cfg(), ["data.source=tfds"])


def test_set_overrides_numbers_lists_and_list_items(cfg):
    config = load_config(
        cfg(), ["optimizer.learning_rate=3e-4", "model.dense=[32, 16]", "model.blocks.1.filters=64", "data.batch_size=full"]
    )
    assert config.optimizer.learning_rate == 3e-4
    assert config.model.dense == [32, 16]
    assert config.model.blocks[1].filters == 64
    assert config.data.batch_size == "full"


def test_set_into_a_missing_list_item_is_an_error(cfg):
    assert "no such list item" in error_of(cfg(), ["model.blocks.5.filters=3"])
    assert "expected KEY=VALUE" in error_of(cfg(), ["model.blocks"])


def test_changing_type_drops_the_old_types_keys(cfg, capsys):
    # --set of a whole section replaces it; --set of the type alone drops the keys the new type lacks
    assert isinstance(load_config(cfg(), ["model={type: mlp}"]).model, MlpConfig)
    capsys.readouterr()
    config = load_config(cfg(), ["model.type=mlp", "model.dropout=0.2"])
    assert isinstance(config.model, MlpConfig) and config.model.dropout == 0.2
    assert capsys.readouterr().err == "note: model.blocks dropped: the new type does not take it\n"
    # keys given on the command line are never dropped: a mistake there is still an error
    assert "model.blocks: unknown key 'blocks'" in error_of(cfg(), ["model.type=mlp", "model.blocks=[{filters: 4}]"])
    schedule = load_config(cfg(), ["schedule={type: step, step_size: 2}", "schedule.type=cosine"])
    assert schedule.schedule.type == "cosine"
    base = cfg(BASE.format(path="/x"), name="base.yaml")
    child = cfg("extends: base.yaml\nmodel: {type: mlp, layers: [8]}\n", name="child.yaml")
    assert load_config(child).model.layers == [8]
    assert isinstance(load_config(base).model, CnnConfig)


def test_extends_merges_and_reports_the_right_file(cfg, tmp_path):
    cfg(BASE.format(path=tmp_path), name="base.yaml")
    child = cfg("extends: base.yaml\nname: child\ntrain: {epochs: 3}\n", name="child.yaml")
    config = load_config(child)
    assert (config.name, config.train.epochs, config.model.blocks[1].filters) == ("child", 3, 16)
    bad_base = cfg(BASE.format(path="/x").replace("{filters: 16}", "{filters: 0}"), name="base.yaml")
    assert error_of(child).startswith(f"{bad_base}:9: model.blocks[1].filters")


def test_circular_extends(cfg):
    cfg("extends: b.yaml\n", name="a.yaml")
    b = cfg("extends: a.yaml\n", name="b.yaml")
    assert "extends: circular" in error_of(b)


def test_python_tags_are_refused(cfg):
    path = cfg("name: !!python/object/apply:os.system ['echo pwned']\n")
    message = error_of(path)
    assert message.startswith(f"{path}:1:") and "not allowed" in message


def test_duplicate_keys_and_bad_yaml(cfg):
    assert "duplicate key" in error_of(cfg("name: a\nname: b\n"))
    assert "invalid YAML" in error_of(cfg("name: [unclosed\n"))
    assert "config file not found" in error_of(cfg().with_name("missing.yaml"))


def test_custom_model_needs_a_module_and_keeps_its_keys(cfg):
    config = load_config(cfg(), ["model={type: wide, module: mine.py, width: 7}"])
    assert isinstance(config.model, CustomModelConfig)
    assert config.model.model_extra == {"width": 7}


def test_run_names_cannot_escape_the_runs_folder(cfg):
    assert "name: expected letters" in error_of(cfg(), ["name=../x"])
    assert "name: expected letters" in error_of(cfg(), ["name=a/b"])


def test_step_schedule_is_checked(cfg):
    assert "schedule.boundaries: expected a non-empty increasing list" in error_of(cfg(), ["schedule={type: step, boundaries: [5, 2]}"])
    assert "schedule.values: expected 3 values" in error_of(cfg(), ["schedule={type: step, boundaries: [2, 5], values: [0.1]}"])


def test_resolved_config_round_trips(cfg, tmp_path):
    config = load_config(cfg(), ["schedule={type: cosine, warmup_epochs: 1}", "train.metrics=[accuracy, macro_f1]"])
    saved = tmp_path / "saved.yaml"
    saved.write_text(dump_config(config))
    assert load_config(saved) == config


def test_validate_prints_resolved_config_and_exit_codes(cfg, cli):
    code, out, _ = cli("validate", cfg(), "--set", "train.epochs=3")
    assert code == 0 and "epochs: 3" in out and "learning_rate: 0.001" in out
    code, out, err = cli("validate", cfg(), "--set", "train.epocs=3")
    assert code == 2 and out == ""
    assert err.strip() == "error: --set train.epocs=3: train.epocs: unknown key 'epocs' (did you mean 'epochs'?)"


def test_help_and_validate_do_not_import_tensorflow(cfg):
    script = textwrap.dedent(
        f"""
        import sys
        from dlopt.cli import main
        for args in (["--help"], ["train", "--help"], ["eval", "--help"], ["validate", {str(cfg())!r}]):
            try:
                main(args)
            except SystemExit as exit:
                assert exit.code in (0, None), exit.code
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "TensorFlow was imported"
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------- config files and values that must not slip by


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"name: x\ndata: {source: idx, path: /x}\x00\n", r": byte 37: a NUL byte; a config is a YAML text file"),
        (b"name: caf\xe9\nmodel: {type: cnn}\n", r":1: byte 9: not UTF-8 text \(0xe9\); save the config as UTF-8"),
        (b"name: bell\x07\n", r":1: character 10: special characters are not allowed \(U\+0007\)"),
        (bytes(range(256)), r": byte 0: a NUL byte"),
    ],
)
def test_a_binary_or_non_utf8_config_is_one_line_naming_file_and_byte(tmp_path, content, expected):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    result = subprocess.run([sys.executable, "-m", "dlopt.cli", "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert re.match(rf"^error: {re.escape(str(path))}{expected}", line), line


def test_booleans_are_no_numbers_and_quoted_numbers_are_text(cfg):
    base = BASE.format(path="/x")
    message = error_of(cfg(base + "train: {epochs: true}\n"))
    assert message.endswith("train.epochs: expected a valid integer, got True (true and false are not numbers)"), message
    message = error_of(cfg(base.replace("learning_rate: 1e-3", "learning_rate: '1e-3'")))
    assert message.endswith("optimizer.learning_rate: expected a valid number, got '1e-3' (a number in quotes is text: remove the quotes)"), message
    message = error_of(cfg(base.replace("path: /x", "path: /x\n  batch_size: \"32\"")))
    assert "data.batch_size: " in message and "(a number in quotes is text: remove the quotes)" in message, message


def test_a_name_too_long_for_a_folder_is_a_config_error(cfg):
    message = error_of(cfg(), [("name=" + "a" * 300, "--name " + "a" * 300)])
    assert message.endswith("name: expected at most 200 characters (a run folder's name adds its time to it, and a file system allows 255), got 300"), message


def test_one_key_of_a_section_the_file_leaves_out_can_be_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {source: idx, path: /x}\nmodel: {type: mlp}\n")  # no optimizer, no schedule
    config = load_config(path, ["optimizer.learning_rate=0.01", "schedule.warmup_epochs=2"])
    assert (config.optimizer.type, config.optimizer.learning_rate) == ("adam", 0.01)
    assert (config.schedule.type, config.schedule.warmup_epochs) == ("constant", 2)
    from dlopt.search.spec import load_search

    path.write_text(path.read_text() + "search: {params: {optimizer.learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}}}\n")
    assert load_search(path).config_with({"optimizer.learning_rate": 3e-3}, "trial 0").optimizer.learning_rate == 3e-3


def test_every_duplicate_key_is_listed_and_errors_come_in_line_order(cfg):
    path = cfg("name: a\nseed: 1\nname: b\nseed: 2\ndata: {source: idx, path: /x}\nmodel: {type: cnn}\n")
    assert error_of(path).splitlines() == [f"{path}:3: name: duplicate key (first at line 1)", f"{path}:4: seed: duplicate key (first at line 2)"]
    path = cfg(BASE.format(path="/x").replace("{filters: 16}", "{filters: -3}") + "train: {epochs: 0}\nseed: x\n")
    lines = error_of(path).splitlines()
    numbers = [int(line.split(":")[1]) for line in lines]
    assert numbers == sorted(numbers) and len(lines) == 3, lines


def test_a_misspelt_config_file_gets_a_did_you_mean(cfg):
    path = cfg(name="cnn_digits.yaml")
    message = error_of(path.with_name("cnn_digit.yaml"))
    assert message == f"{path.with_name('cnn_digit.yaml')}: config file not found (did you mean '{path}'?)"


def test_a_typo_hides_none_of_the_other_mistakes(cfg):
    path = cfg(
        "name: x\n"
        "trian: {epochs: 3}\n"
        "data: {source: idx, path: /x, batch_sise: 3, batch_size: -1}\n"
        "model: {type: cnn, blocks: [{filters: 0, kernal_size: 3}]}\n"
        "optimizer: {type: adam, learning_rate: -1, beta1: 0.9}\n"
    )
    assert error_of(path).splitlines() == [
        f"{path}:2: trian: unknown key 'trian' (did you mean 'train'?)",
        f"{path}:3: data.batch_sise: unknown key 'batch_sise' (did you mean 'batch_size'?)",
        f"{path}:3: data.batch_size: expected greater than 0, got -1",
        f"{path}:4: model.blocks[0].kernal_size: unknown key 'kernal_size' (did you mean 'kernel_size'?)",
        f"{path}:4: model.blocks[0].filters: expected greater than 0, got 0",
        f"{path}:5: optimizer.beta1: unknown key 'beta1' (did you mean 'beta_1'?)",
        f"{path}:5: optimizer.learning_rate: expected greater than 0, got -1",
    ]


def test_an_unknown_type_hides_none_of_its_sections_other_mistakes(cfg):
    path = cfg("data: {source: idx, path: /x}\nmodel: {type: mlp}\noptimizer: {type: adamm, learning_rate: -1}\n")
    assert error_of(path).splitlines() == [
        f"{path}:3: optimizer.type: unknown type 'adamm' (did you mean 'adam'?); expected one of: sgd, adagrad, rmsprop, adam, adamw",
        f"{path}:3: optimizer.learning_rate: expected greater than 0, got -1",
    ]


def test_every_mistake_of_a_search_section_at_once(cfg):
    from dlopt.search.spec import load_search

    path = cfg(
        "data: {source: sklearn, name: iris}\nmodel: {type: mlp}\nsearch:\n  trials: 0\n  params:\n"
        "    optimizer.learning_rate: {type: float, low: 0.1, high: 0.01}\n"
        "    model.dropoutt: {type: float, low: 0.0, high: 0.5}\n"
        "    model.layers: {type: categorical, choices: [[8], [-3]]}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_search(path)
    lines = str(info.value).splitlines()
    assert [line.split(":")[1] for line in lines] == ["4", "6", "7", "8"], lines
    assert "model.dropoutt is not a config key" in lines[2] and "choices[1] [-3] is not accepted by model.layers" in lines[3]
