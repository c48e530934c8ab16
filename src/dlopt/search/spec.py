"""A config file's `search:` section checked like the rest of the config, before any trial runs:
each searched key must be a key of the config schema, and each end of its range (each choice) a
value that key accepts (the section's types: config/search.py). No Optuna here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..config.load import KeyPath, line_order, apply_overrides, describe_error, format_path, read_with_overrides, validate
from ..config.schema import Config
from ..config.search import Choices, FloatRange, IntRange, Param, SearchConfig, choice_label  # noqa: F401  (the section's types, importable from here)
from ..errors import ConfigError


def range_ends(param) -> list[tuple[str, Any]]:
    """The values that bound a range: a key accepts the whole range when it accepts these."""
    if isinstance(param, Choices):
        return [(f"choices[{i}]", choice) for i, choice in enumerate(param.choices)]
    return [("low", param.low), ("high", param.high)]


def override(key: str, value) -> str:
    """`--set`-style text that gives `key` this value (JSON is YAML)."""
    return f"{key}={json.dumps(value)}"


class Search:
    """A config file's base config data and its validated search section."""

    def __init__(self, path: Path, data: dict, lines: dict, spec: SearchConfig):
        self.path, self.data, self.lines, self.spec = path, data, lines, spec
        self.base = validate(data, lines, str(path))

    def metric(self) -> str:
        return self.spec.metric or self.base.checkpoint.monitor

    def direction(self) -> str:
        from ..objectives import monitor_mode

        if self.spec.direction != "auto":
            return self.spec.direction
        return "maximize" if monitor_mode(self.metric()) == "max" else "minimize"

    def config_with(self, values: dict[str, Any], label: str) -> Config:
        """The base config with sampled values set, as a trial trains it."""
        from ..config.load import config_from

        data, lines = apply_overrides(self.data, self.lines, [(override(key, value), f"{label}: {key}") for key, value in values.items()])
        return config_from(data, lines, self.path)


def load_search(path: str | Path, overrides=()) -> Search:
    """Read a config with a `search:` section; every mistake in it is an exit-2 error naming file
    and line, found before any trial runs."""
    path = Path(path)
    data, lines, raw = read_with_overrides(path, overrides)
    if raw is None:
        raise ConfigError(f"{path}: no search: section; add one naming the keys to search, e.g.\n  search:\n    params:\n      optimizer.learning_rate: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}")
    where = lines.get(("search",), str(path))
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: search: expected a mapping (params, trials, sampler, ...), got {type(raw).__name__}")
    validate(data, lines, str(path))  # the base config first: its keys are what the search sets
    try:
        spec, problems = validate(raw, lines, str(path), SearchConfig, ("search",)), []
        params = spec.params
    except ConfigError as exc:  # still check the keys of the ranges that are right in themselves
        spec, problems, params = None, str(exc).splitlines(), _valid_params(raw)
    problems += [problem for key, param in params.items() for problem in _key_problems(path, data, lines, key, param)]
    if problems:
        raise ConfigError("\n".join(sorted(dict.fromkeys(problems), key=line_order)))
    return Search(path, data, lines, spec)


def _valid_params(raw: dict) -> dict:
    """The search ranges that validate on their own (the section as a whole did not)."""
    from pydantic import TypeAdapter

    adapter, valid = TypeAdapter(Param), {}
    for key, value in (raw.get("params") or {}).items() if isinstance(raw.get("params"), dict) else ():
        try:
            valid[key] = adapter.validate_python(value)
        except ValidationError:
            pass
    return valid


def _key_problems(source: Path, data: dict, lines: dict, key: str, param) -> list[str]:
    """Why `key` cannot take the ends of its range, as error lines (none when it can)."""
    path: KeyPath = ("search", "params", key)
    where = lines.get(path, str(source))
    for end, value in range_ends(param):
        try:
            data_set, _ = apply_overrides(data, lines, [(override(key, value), f"{where}: {format_path(path)}")])
            Config.model_validate(data_set)
        except ConfigError as exc:
            return [str(exc)]
        except ValidationError as exc:
            reasons = [describe_error(error)[0] for error in exc.errors(include_url=False)]
            unknown = next((r for r in reasons if r.startswith("unknown key")), None)
            if unknown:
                return [f"{where}: {format_path(path)}: {key} is not a config key: {unknown}"]
            return [f"{where}: {format_path(path)}: {end} {json.dumps(value)} is not accepted by {key}: {reasons[0]}"]
    return []
