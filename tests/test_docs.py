"""The README and docs/ stay true: the config reference is the schema's, the commands are CI's,
the links lead somewhere, the README stays short."""

import re
from pathlib import Path

import yaml

from dlopt.config import load_config
from dlopt.config.reference import reference

ROOT = Path(__file__).resolve().parent.parent


def test_config_reference_matches_the_schema():
    assert reference() in (ROOT / "docs" / "configuration.md").read_text(), "run: python -m dlopt.config.reference --update docs/configuration.md"


def test_readme_reads_in_five_minutes_and_its_links_lead_somewhere():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)]+)\)", page.read_text()):
            if target.startswith("http"):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: link to {target}"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.M)
                slugs = {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}
                assert anchor in slugs, f"{page.name}: no heading for #{anchor} in {linked.name}"


def test_readme_config_example_is_the_shipped_first_run():
    readme = (ROOT / "README.md").read_text()
    example = readme.split("## A config", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(example) == yaml.safe_load((ROOT / "configs" / "cnn_digits.yaml").read_text())


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "```sh\npython3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' && python -m pytest -q\n```" in readme
    # CI uses a virtualenv of its own, as the README tells users to
    assert "python3 -m venv" in ci and ". .venv-ci/bin/activate" in ci
    assert "pip install -q -e '.[test]'" in ci and "python -m pytest -q" in ci


def test_readme_first_command_trains_the_bundled_digits(tmp_path, cli):
    """The README's first command needs no download: scikit-learn's digits, with a real test result."""
    import json

    readme = (ROOT / "README.md").read_text()
    assert "```sh\npython3 -m venv .venv && . .venv/bin/activate && pip install -e . && dlopt train configs/cnn_digits.yaml\n```" in readme
    code, out, err = cli("train", ROOT / "configs" / "cnn_digits.yaml", "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "completed" and result["test"]["accuracy"] > 0.85
    # batch norm's moving averages settle within the first epochs of 41 steps (0.1-0.3 with Keras' 0.99)
    import csv

    with open(Path(result["run_dir"]) / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert float(rows[2]["val_accuracy"]) > 0.8, [row["val_accuracy"] for row in rows[:3]]


def test_shipped_table_config_trains_on_the_packaged_penguins(tmp_path, cli):
    import json

    code, out, err = cli("train", ROOT / "configs" / "mlp_penguins.yaml", "--runs-dir", tmp_path / "runs", "--json", "--set", "train.epochs=8")
    assert code == 0, err
    summary = json.loads((Path(json.loads(out)["run_dir"]) / "summary.json").read_text())
    assert summary["class_names"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert summary["test"]["accuracy"] > 0.8
    assert "Adelie" in err and "per class (train/val/test)" in err


def test_every_shipped_config_validates():
    configs = sorted((ROOT / "configs").glob("*.yaml"))
    assert {p.name for p in configs} >= {"cnn_mnist.yaml", "mlp_mnist.yaml", "cnn_fashion_mnist.yaml", "cnn_fashion_mnist_local.yaml"}
    for path in configs:
        load_config(path)
    local = load_config(ROOT / "configs" / "cnn_fashion_mnist_local.yaml")
    assert (local.data.source, local.data.path) == ("idx", "/usr/share/datasets/fashion-mnist")


def test_every_page_renders_its_code_fences_balanced():
    """An unclosed fence swaps code and prose for the rest of a page: every opening fence is
    closed by a fence of the same character, at least as long, before the page ends."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        opened = None  # (line number, fence) of the block we are in
        for number, line in enumerate(page.read_text().splitlines(), 1):
            fence = re.match(r"^ {0,3}(`{3,}|~{3,})(.*)$", line)
            if not fence:
                continue
            marks, info = fence.groups()
            if opened is None:
                opened = (number, marks)
            elif marks[0] == opened[1][0] and len(marks) >= len(opened[1]) and not info.strip():
                opened = None
            else:  # ```yaml inside an open block renders as code: the fence that should close it was lost
                raise AssertionError(f"{page.name}:{number}: a fenced block opens inside the block opened at line {opened[0]}")
        assert opened is None, f"{page.name}:{opened[0]}: a code fence opened here is never closed"
