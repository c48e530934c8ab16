"""One registry pattern for every name in a config that picks an implementation: models,
optimizers, schedules, losses, metrics and data sources.

An entry is registered once under its name, and that name lives nowhere else: the config's union
types and `Literal`s, the lists in the reference's descriptions and the error for an unknown name
are derived from the registry. A config section tagged by `type` is its own entry and names what it
builds (`builds = "module:attribute"`, imported only when built, so configs load without
TensorFlow). No TensorFlow here.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Literal, TypeVar, Union

T = TypeVar("T")


def did_you_mean(name: str, choices) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def load_attribute(reference: str):
    """The object a `module:attribute` reference names (imported now)."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Named:
    """A registered name with what it builds and the facts the rest of dlopt asks about it
    (a metric's task and direction, a loss's label format, a source's description)."""

    name: str
    builds: str  # "module:attribute", imported when built
    description: str = ""
    facts: dict = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["facts"][key]
        except KeyError:
            raise AttributeError(key) from None

    def build(self, *args, **kwargs):
        return load_attribute(self.builds)(*args, **kwargs)


class Registry(Generic[T]):
    """Maps names to entries. Registering a name twice is an error, so plugins cannot shadow."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(entry: T) -> T:
            if name in self._items and self._items[name] is not entry:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = entry
            return entry

        return decorator

    def add(self, name: str, builds: str, description: str = "", **facts) -> Named:
        """A plain name (a loss, a metric, a data source) and what it builds."""
        return self.register(name)(Named(name, builds, description, facts))

    def section(self, cls: type) -> type:
        """Class decorator: a config section registered under the tag of its `type` field."""
        (tag,) = typing.get_args(cls.model_fields["type"].annotation)
        self.register(tag)(cls)
        return cls

    def get(self, name: str) -> T:
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} '{name}'{did_you_mean(name, self._items)}; known: {', '.join(self._items)}")
        return self._items[name]

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names in registration order (the order the docs list them in)."""
        return [n for n in self._items if fnmatch.fnmatch(n, pattern)]

    def entries(self) -> list[T]:
        return list(self._items.values())

    def where(self, **facts) -> list[str]:
        """Names whose facts match, e.g. METRICS.where(task="regression")."""
        return [n for n, e in self._items.items() if all(getattr(e, k, None) == v for k, v in facts.items())]

    def listed(self, names=None) -> str:
        """"`a`, `b`, `c`": the names as the reference's descriptions list them."""
        return ", ".join(f"`{n}`" for n in (self._items if names is None else names))

    def literal(self, *extra: str):
        """A `Literal` of the registered names (plus `extra`, e.g. `auto`), for a config field."""
        return Literal[tuple(extra) + tuple(self._items)]

    def union(self):
        """The registered sections as a union discriminated by `type`, for a config field."""
        from pydantic import Field

        members = tuple(self._items.values())
        return typing.Annotated[Union[members], Field(discriminator="type")]

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self._items  # a config may hold anything here

    def __iter__(self):
        return iter(self._items)
