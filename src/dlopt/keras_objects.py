"""`import dlopt` is all a script needs to load a dlopt model with `keras.models.load_model`.

A saved model can hold dlopt's own objects (the transformer's layers, the tabular layers, the
backbone's preprocessing, the warm-up schedule and the fine-tuning optimizers), which Keras finds
only once registered. Registering means importing Keras, which `dlopt --help`, `validate` and
`compare` must not pay for; so `import dlopt` registers them as soon as Keras itself is imported,
whichever comes first.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys


def register() -> None:
    """Import the modules whose import registers dlopt's saveable objects with Keras."""
    from . import models, optim  # noqa: F401  (optim registers the schedule and the optimizers)

    models.register_builtins()


class _AfterKerasLoads(importlib.abc.MetaPathFinder):
    """Finds `keras` as usual, and registers dlopt's objects once Keras has finished loading."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)  # once: the real finders locate Keras
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def load_then_register(module):
            load(module)
            register()

        spec.loader.exec_module = load_then_register
        return spec


def register_when_keras_loads() -> None:
    if "keras" in sys.modules:
        register()
    elif not any(isinstance(finder, _AfterKerasLoads) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasLoads())
