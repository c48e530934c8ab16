"""The README stays true: its config reference is the schema's, its commands are CI's."""

from pathlib import Path

from dlopt.config import load_config
from dlopt.config.reference import reference

ROOT = Path(__file__).resolve().parent.parent


def test_readme_config_reference_matches_the_schema():
    assert reference() in (ROOT / "README.md").read_text(), "run: python -m dlopt.config.reference --update README.md"


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -e '.[test]' && python -m pytest -q" in readme
    assert "pip install -q -e '.[test]'" in ci and "python3 -m pytest -q" in ci


def test_every_shipped_config_validates():
    configs = sorted((ROOT / "configs").glob("*.yaml"))
    assert {p.name for p in configs} >= {"cnn_mnist.yaml", "mlp_mnist.yaml", "cnn_fashion_mnist.yaml", "cnn_fashion_mnist_local.yaml"}
    for path in configs:
        load_config(path)
    local = load_config(ROOT / "configs" / "cnn_fashion_mnist_local.yaml")
    assert (local.data.source, local.data.path) == ("idx", "/usr/share/datasets/fashion-mnist")
