"""The architecture as a test: modules import only from their own layer or the layers below
(function-local imports too), and no import cycle, so a newcomer can change one layer without the
rest moving under them. The layers are described in docs/architecture.md."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dlopt"

# bottom to top; a name is a module or a package of dlopt
LAYERS = [
    ["errors", "console"],  # one-line errors and exit codes; the one place that writes to the terminal
    ["registry", "config"],  # YAML -> validated config, and the registries naming what each key builds
    ["manifest", "runs"],  # run folders and their files; what reproduces a run (no TensorFlow)
    ["objectives", "tta", "runtime", "distribute", "optim", "data", "models", "cost", "saved_models", "keras_objects"],  # the parts of a training
    ["callbacks"],  # what runs inside fit(), by concern
    ["analysis"],  # tables, curves, per-class reports and plots
    ["evaluate", "lifecycle"],  # scoring one split; a run's status from start to end
    ["train", "predict", "export", "describe", "feature_maps", "compare", "ensemble"],  # the commands' work
    ["search", "serve", "tracking"],  # Optuna studies of many trainings; a model over HTTP; MLflow tracking
    ["cli"],  # the command line
]
LAYER_OF = {name: level for level, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    return (PACKAGE / relative).with_suffix(".py").exists() or (PACKAGE / relative / "__init__.py").exists()


def imports_of(path: Path) -> set[str]:
    """Every dlopt module `path` imports, at the top or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "dlopt"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "dlopt":
                target = node.module
            else:
                continue
            submodules = {f"{target}.{alias.name}" for alias in node.names if is_module(f"{target}.{alias.name}")}
            found |= submodules
            if len(submodules) < len(node.names):  # names defined in `target` itself
                found.add(target)
    return {module for module in found if module != name and module != "dlopt"}


def top(module: str) -> str:
    return module.split(".")[1]


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}


def test_every_module_has_a_layer():
    assert {top(module) for module in graph() if module != "dlopt"} <= set(LAYER_OF)


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [
        f"{module} (layer {LAYER_OF[top(module)]}) imports {target} (layer {LAYER_OF[top(target)]})"
        for module, targets in graph().items()
        if module != "dlopt"
        for target in targets
        if LAYER_OF[top(target)] > LAYER_OF[top(module)]
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    edges = graph()
    cycles, state = [], {}

    def visit(module, trail):
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_console_and_errors_are_leaves():
    edges = graph()
    assert edges["dlopt.console"] == set() and edges["dlopt.errors"] == set()


def test_only_two_callback_modules_reach_into_private_keras():
    reaching = set()
    for path in (PACKAGE / "callbacks").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            private = isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
            named = isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("_") and not node.value.startswith("__")
            if (private and not (isinstance(node.value, ast.Name) and node.value.id == "self" and node.attr in _OWN)) or named:
                reaching.add(path.name)
    assert reaching <= {"resume.py", "saving.py"}, reaching


# private names a callback gives its own attributes and methods (not Keras')
_OWN = {"_seed_states", "_state", "_save_best_weights", "_stop_if_requested"}
