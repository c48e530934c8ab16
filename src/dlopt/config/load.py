"""Read a config: YAML (safe loader only) -> `extends:` -> `--set` overrides -> validate -> Config.

Every value remembers where it came from (file and line, or the `--set` option that wrote it), so
an error reads like `configs/x.yaml:14: model.blocks[1].filters: expected a positive integer, got -3`.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from ..registry import did_you_mean
from .schema import Config
from .schema_base import sections_in

KeyPath = tuple  # of str (mapping keys) and int (list indices)


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` as a float (YAML 1.1 wants `1.0e-3`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def format_path(path: Iterable) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_yaml(text: str, source: str) -> tuple[Any, dict[KeyPath, str]]:
    """Parse YAML text; return the data and a map from key path to 'source:line'."""
    try:
        loader = _Loader(text)  # its reader refuses characters YAML does not allow, here
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise ConfigError(f"{source}:{line}: character {exc.position}: {exc.reason} (U+{exc.character if isinstance(exc.character, int) else ord(exc.character):04X}); a config is a YAML text file") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, {}
        if _expanded_size(node) > MAX_VALUES:  # aliases are references until constructed: count first
            raise ConfigError(f"{source}: the YAML expands to more than {MAX_VALUES:,} values (anchors and aliases): a config needs far fewer")
        data = loader.construct_document(node)
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ConfigError(
            f"{source}:{line}: {exc.problem} — YAML tags that construct objects are not allowed in a config"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    lines: dict[KeyPath, str] = {(): f"{source}:{node.start_mark.line + 1}"}
    _collect_lines(node, (), source, lines)
    return data, lines


MAX_VALUES = 100_000  # a config has a few hundred; a "billion laughs" of aliases has billions


def _expanded_size(node, sizes: dict | None = None) -> int:
    """Values in the document once every alias is expanded (each shared node counted once per use)."""
    sizes = {} if sizes is None else sizes
    if id(node) in sizes:
        return sizes[id(node)]
    sizes[id(node)] = MAX_VALUES + 1  # a node that contains itself expands without end
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(item, sizes) for item in node.value)
    else:
        size = 1
    sizes[id(node)] = min(size, MAX_VALUES + 1)
    return sizes[id(node)]


def _collect_lines(node, path: KeyPath, source: str, lines: dict, duplicates: list | None = None) -> None:
    """Key path -> 'source:line' for every value; a ConfigError listing every duplicate key."""
    top = duplicates is None
    duplicates = [] if top else duplicates
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                duplicates.append(f"{source}:{key_node.start_mark.line + 1}: {format_path(path + (key,))}: duplicate key (first at line {seen[key]})")
            seen.setdefault(key, key_node.start_mark.line + 1)
            lines[path + (key,)] = f"{source}:{key_node.start_mark.line + 1}"
            _collect_lines(value_node, path + (key,), source, lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[path + (index,)] = f"{source}:{item.start_mark.line + 1}"
            _collect_lines(item, path + (index,), source, lines, duplicates)
    if top and duplicates:
        raise ConfigError("\n".join(duplicates))


def _text_of(raw: bytes, source: str) -> str:
    """A config file's text: UTF-8 without NUL bytes, or a config error naming the byte offset."""
    nul = raw.find(b"\0")
    if nul >= 0:
        raise ConfigError(f"{source}: byte {nul}: a NUL byte; a config is a YAML text file (UTF-8), this looks like a binary file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{source}:{line}: byte {exc.start}: not UTF-8 text (0x{raw[exc.start]:02x}); save the config as UTF-8") from None


def _close_file(path: Path) -> str:
    """' (did you mean 'configs/cnn_digits.yaml'?)' for a misspelt config file name."""
    import difflib

    if not path.parent.is_dir():
        return ""
    names = [p.name for p in path.parent.iterdir() if p.suffix in (".yaml", ".yml")]
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    return f" (did you mean '{path.parent / close[0]}'?)" if close else ""


def _merge(base: dict, override: dict) -> dict:
    """Deep-merge mappings; the override wins, and lists are replaced, not concatenated."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            # a different `type:` means a different section: do not inherit the old type's keys
            if value.get("type", merged[key].get("type")) != merged[key].get("type"):
                merged[key] = copy.deepcopy(value)
            else:
                merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_file(path: Path, _chain: tuple = ()) -> tuple[dict, dict]:
    """Read one config file and whatever it `extends:`, merged."""
    source = str(path)
    if path.resolve() in _chain:
        raise ConfigError(f"{source}: extends: circular ({' -> '.join(str(p) for p in _chain + (path,))})")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file not found{_close_file(path)}") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: a folder, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config: {exc.strerror}") from None
    data, lines = parse_yaml(_text_of(raw, source), source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: expected a mapping of sections (name, data, model, ...), got {type(data).__name__}")
    parent = data.pop("extends", None)
    if parent is None:
        return data, lines
    if not isinstance(parent, str):
        raise ConfigError(f"{lines[('extends',)]}: extends: expected a file path, got {parent!r}")
    base_data, base_lines = read_file((path.parent / parent), _chain + (path.resolve(),))
    lines = {**base_lines, **lines}
    return _merge(base_data, data), lines


def apply_override(data: dict, lines: dict, option: str, source: str | None = None) -> None:
    """Apply one `--set a.b[.0].c=value`; the value is parsed as YAML (numbers, lists, ...).

    `source` names the option in errors when it is not `--set` (e.g. `--name x`).
    """
    key, sep, raw = option.partition("=")
    source = source or f"--set {option}"
    if not sep or not key.strip():
        raise ConfigError(f"{source}: expected KEY=VALUE, such as optimizer.learning_rate=3e-4")
    try:
        value, _ = parse_yaml(raw, source)
    except ConfigError as exc:
        raise ConfigError(f"{source}: value is not valid YAML") from exc
    if raw.strip() == "":
        value = None
    parts: list = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
    node = data
    for depth, part in enumerate(parts[:-1]):
        here = parts[: depth + 1]
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                raise ConfigError(f"{source}: {format_path(here)}: no such list item (the list has {len(node)})")
            node = node[part]
        else:
            if not isinstance(node.get(part), (dict, list)):
                node[part] = _default_section(part) if depth == 0 else {}
            node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last >= len(node):
            raise ConfigError(f"{source}: {format_path(parts)}: no such list item (the list has {len(node)})")
    retyped = last == "type" and isinstance(node, dict) and node.get("type") != value
    node[last] = value
    lines[tuple(parts)] = source
    for sub in [p for p in lines if p[: len(parts)] == tuple(parts) and len(p) > len(parts)]:
        lines[sub] = source
    return tuple(parts[:-1]) if retyped else None


def _default_section(name) -> dict:
    """A top-level section the file leaves out, as `--set` starts it: its default's `type` (so
    `--set optimizer.learning_rate=0.01` sets the rate of the default optimizer), else empty."""
    field = Config.model_fields.get(name)
    default = field.default_factory() if field is not None and field.default_factory is not None else None
    return {"type": default.type} if hasattr(default, "type") and isinstance(default.type, str) else {}


def _drop_old_type_keys(data: dict, lines: dict, retyped: set) -> list[str]:
    """After `--set model.type=mlp`: the keys of the section's old type that the new type does not
    take (from the file, not from --set) are dropped, so a loop can sweep over model families."""
    dropped = []
    while True:
        try:
            Config.model_validate(data)
            return dropped
        except ValidationError as exc:
            unknown = [
                _clean_path(e["loc"], data) + (e["ctx"]["key"],)
                for e in exc.errors(include_url=False)
                if e["type"] == "dlopt_field" and e["ctx"]["message"].startswith("unknown key")
            ]
            droppable = [p for p in unknown if p[:-1] in retyped and not str(lines.get(p, "")).startswith("--")]
            if not droppable:
                return dropped
            for path in droppable:
                node = data
                for part in path[:-1]:
                    node = node[part]
                node.pop(path[-1], None)
                dropped.append(format_path(path))


def _clean_path(loc: tuple, data: Any) -> KeyPath:
    """Drop pydantic's union tags from an error location, keeping real keys and indices."""
    path: list = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and "type" in node:
            continue  # the tag of a discriminated union (model type, optimizer type, ...)
        elif node is not None and not isinstance(node, (dict, list)):
            continue  # a union member's name (`constrained-int`, `literal['full']`) past the value itself
        else:
            path.append(part)
            node = None
    return tuple(path)


def describe_error(error: dict) -> tuple[str, tuple]:
    """One error's message (what was expected, what was received) and any extra path element."""
    kind, ctx, received = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "dlopt_field":
        return ctx["message"], (ctx["key"],)
    if kind == "missing":
        return "required key is missing", ()
    if kind == "union_tag_invalid":
        tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        return f"unknown type {received.get('type')!r}{did_you_mean(received.get('type'), tags)}; expected one of: {', '.join(tags)}", ("type",)
    if kind == "union_tag_not_found":
        return "a 'type' key is required", ()
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"expected one of {', '.join(choices)}, got {received!r}{did_you_mean(received, choices)}", ()
    message = error["msg"]
    message = re.sub(r"^(Value error, |Assertion failed, )", "", message)
    message = re.sub(r"^Input should be ", "expected ", message)
    if "got " not in message:
        message += f", got {received!r}"
    if kind in ("int_type", "float_type") and isinstance(received, bool):
        message += " (true and false are not numbers)"
    elif kind in ("int_type", "float_type") and isinstance(received, str) and _is_number(received):
        message += " (a number in quotes is text: remove the quotes)"
    return message, ()


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _where(path: KeyPath, lines: dict, fallback: str) -> str:
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return fallback


def validate(data: dict, lines: dict, source: str, schema=Config, prefix: KeyPath = ()):
    """The typed config (or the `schema` section found at `prefix`), or one ConfigError listing
    every mistake, a line each with its file:line. Unknown keys are found first, in every section,
    and left out of the validation, so a typo hides none of the other mistakes."""
    unknown: list[tuple[KeyPath, str]] = []
    untyped: list[tuple[KeyPath, type, dict]] = []
    known_only = _without_unknown_keys(data, schema, (), unknown, untyped)
    found = [f"{_where(prefix + path, lines, source)}: {format_path(prefix + path)}: {message}" for path, message in unknown]
    try:
        config = schema.model_validate(known_only)
    except ValidationError as exc:
        found += error_lines(exc, known_only, lines, source, prefix)
    for path, base, value in untyped:  # an unknown `type:` hides none of the keys every type shares
        try:
            base.model_validate(value)
        except ValidationError as exc:
            found += error_lines(exc, value, lines, source, prefix + path)
    if found:
        raise ConfigError("\n".join(sorted(dict.fromkeys(found), key=line_order))) from None
    return config


def _section_for(annotation, value: dict):
    """The one Section class that reads `value`: the only one allowed, or the union member whose
    `type` tag the value names (None when no single one does)."""
    import typing

    members, _ = sections_in(annotation)
    if len(members) == 1:
        return members[0]
    tagged = [cls for cls in members if "type" in cls.model_fields and value.get("type") in (typing.get_args(cls.model_fields["type"].annotation) or ())]
    return tagged[0] if len(tagged) == 1 else None


def _shared_base(annotation):
    """The section class every member of a `type`-tagged union derives from (OptimizerBase, ...)."""
    from .schema_base import Section

    members, _ = sections_in(annotation)
    if len(members) < 2:
        return None
    shared = set.intersection(*(set(cls.__mro__) for cls in members))
    bases = [cls for cls in shared if isinstance(cls, type) and issubclass(cls, Section) and cls is not Section]
    return max(bases, key=lambda cls: len(cls.__mro__)) if bases else None


def _without_unknown_keys(data, schema, path: KeyPath, unknown: list, untyped: list | None = None) -> Any:
    """`data` without the keys `schema` does not take (recorded in `unknown` with a did-you-mean),
    down through every section, list of sections and `type`-tagged union it holds."""
    if not isinstance(data, dict) or schema.model_config.get("extra") != "forbid":
        return data
    known = schema.model_fields
    kept = {}
    for key, value in data.items():
        if key not in known:
            hint = did_you_mean(key, known) or f" (expected one of: {', '.join(sorted(known))})"
            unknown.append((path + (key,), f"unknown key '{key}'{hint}"))
            continue
        annotation = known[key].annotation
        if isinstance(value, dict):
            section = _section_for(annotation, value)
            base = None if section else _shared_base(annotation)
            if base is not None and untyped is not None:  # its type unknown: what every type takes is still checked
                untyped.append((path + (key,), base, {k: v for k, v in value.items() if k in base.model_fields}))
            value = _without_unknown_keys(value, section, path + (key,), unknown, untyped) if section else value
        elif isinstance(value, list) and sections_in(annotation)[1]:  # a list of sections (augment ops, conv blocks)
            sections = [_section_for(annotation, item) if isinstance(item, dict) else None for item in value]
            value = [_without_unknown_keys(item, section, path + (key, i), unknown, untyped) if section else item for i, (item, section) in enumerate(zip(value, sections))]
        kept[key] = value
    return kept


def error_lines(exc: ValidationError, data: Any, lines: dict, source: str, prefix: KeyPath = ()) -> list[str]:
    """One 'file:line: key.path: what was expected' per mistake."""
    found: dict[tuple, str] = {}
    for error in exc.errors(include_url=False):
        message, extra = describe_error(error)
        path = prefix + _clean_path(error["loc"], data) + extra
        # a value that fits no member of a union: the first member's complaint is enough
        found.setdefault(path, f"{_where(path, lines, source)}: {format_path(path)}: {message}")
    return sorted(found.values(), key=line_order)


def line_order(line: str) -> tuple:
    """Errors as the file reads: by file, then line number; --set options after the file's."""
    where = re.match(r"^(.*?):(\d+): ", line)
    return (0, where[1], int(where[2])) if where else (1, line, 0)


def read_with_overrides(path: str | Path, overrides: Iterable = ()) -> tuple[dict, dict, Any]:
    """The file (and its `extends:` chain) with `--set` overrides applied, not yet validated:
    (config data, key path -> 'source:line', the `search:` section or None).

    An override is 'key=value', or ('key=value', 'label for errors') for options like `--name`;
    `search.*` overrides go to the search section, which `dlopt tune` reads and training ignores.
    """
    data, lines = read_file(Path(path))
    search = data.pop("search", None)
    data, lines = apply_overrides(data, lines, [o for o in overrides if not _option(o)[0].lstrip().startswith("search.")])
    for option in overrides:
        option, label = _option(option)
        if option.lstrip().startswith("search."):
            holder = {"search": search if isinstance(search, dict) else {}}
            apply_override(holder, lines, option, label)
            search = holder["search"]
    return data, lines, search


def _option(option) -> tuple[str, str | None]:
    return (option, None) if isinstance(option, str) else option


def apply_overrides(data: dict, lines: dict, overrides: Iterable) -> tuple[dict, dict]:
    """Copies of `data` and `lines` with the overrides applied (a changed `type:` drops the old
    type's keys)."""
    data, lines = copy.deepcopy(data), dict(lines)
    retyped = set()
    for option in overrides:
        section = apply_override(data, lines, *_option(option))
        if section is not None:
            retyped.add(section)
    if retyped:
        dropped = _drop_old_type_keys(data, lines, retyped)
        if dropped:
            print(f"note: {', '.join(dropped)} dropped: the new type does not take {'it' if len(dropped) == 1 else 'them'}", file=sys.stderr)
    return data, lines


def config_from(data: dict, lines: dict, path: str | Path) -> Config:
    """The validated config of data read from `path` (relative data paths resolved beside it)."""
    path = Path(path)
    config = validate(data, lines, str(path))
    _resolve_paths(config, path.parent, _where(("data", "package"), lines, str(path)))
    return config


def load_config(path: str | Path, overrides: Iterable = ()) -> Config:
    """The validated config from a YAML file, its `extends:` chain and `--set` overrides."""
    data, lines, _ = read_with_overrides(path, overrides)
    return config_from(data, lines, path)


def package_folder(package: str, where: str) -> Path:
    """The folder of an installed Python package, found without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{where}: data.package: no installed Python package '{package}' (install it: pip install {package})")
    return Path(list(spec.submodule_search_locations)[0])


def _resolve_paths(config: Config, base: Path, package_line: str) -> None:
    """Relative data paths and model modules are relative to the config file's folder, or to the
    installed package named by `data.package`."""
    data = config.data
    if data.package and data.path and not Path(data.path).is_absolute():
        data.path = str(package_folder(data.package, package_line) / data.path)
    for key in ("path", "data_dir", "manual_dir"):
        value = getattr(data, key)
        if value and not Path(value).expanduser().is_absolute():
            beside_config = (base / value).resolve()
            from_cwd = Path(value).resolve()
            use = from_cwd if (from_cwd.exists() and not beside_config.exists()) else beside_config
            setattr(data, key, str(use))
    module = config.model.module
    if module and module.endswith(".py") and not Path(module).is_absolute():
        candidate = (base / module).resolve()
        config.model.module = str(candidate if candidate.exists() else Path(module).resolve())


def _type_first(value):
    if isinstance(value, dict):
        ordered = {"type": value["type"]} if "type" in value else {}
        ordered.update((k, _type_first(v)) for k, v in value.items() if k != "type")
        return ordered
    if isinstance(value, list):
        return [_type_first(v) for v in value]
    return value


def dump_config(config: Config, only_applicable: bool = False) -> str:
    """The resolved config as YAML (`type:` first in each section): what a run saves and `validate`
    prints. `only_applicable` leaves out the data settings of other sources (text settings of an
    image config, ...)."""
    dumped = _type_first(config.model_dump(mode="json"))
    if only_applicable:
        _drop_inapplicable(dumped["data"])
    return yaml.safe_dump(dumped, sort_keys=False, default_flow_style=None, width=100)


def _drop_inapplicable(data: dict) -> None:
    source = data["source"]
    text = source in ("tfds", "text_folder") or (source == "csv" and data["table"] is None and data["timeseries"] is None)
    keep = {
        "name": source in ("tfds", "sklearn"),
        "path": source not in ("tfds", "sklearn"),
        "package": data["package"] is not None,
        "data_dir": source == "tfds",
        "manual_dir": source == "tfds",
        "text": text,
        "image": source == "image_folder",
        "skip_bad_files": source == "image_folder",
        "table": data["table"] is not None,
        "timeseries": data["timeseries"] is not None,
        "tta": bool(data["tta"]),
    }
    for key, applies in keep.items():
        if not applies:
            data.pop(key, None)
