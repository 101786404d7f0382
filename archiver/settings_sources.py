"""Where settings come from and how a bad one is told.

The sources are laid over the defaults in order: a TOML file, ``ARCHIVER_*`` variables, then
command-line options. Each value remembers its source, so a value that fails validation (the
rules of ``validation.py``, the same for every source) is reported in one line that names it:

    ARCHIVER_FETCH__RETIRES: unknown setting (did you mean ARCHIVER_FETCH__RETRIES?)
    config/archiver.toml: fetch.retries: must be ≥ 0
    --connect-to: 'a:1:b:99999': port 99999 is not in 1-65535
"""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from archiver.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
# Where one value came from: a label, and whether the dotted field path follows it (a file
# names the field inside it; a variable or an option is the field).
Origin = tuple[str, bool]
Origins = dict[tuple[str, ...], Origin]


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file; ConfigError (naming the file) when it is missing or malformed."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc


def lay_file(data: dict[str, Any], origins: Origins, path: Path) -> None:
    """Lay the TOML file at ``path`` over ``data``."""
    for section, values in read_toml(path).items():
        data[section] = values
        origins[(section,)] = (str(path), True)


def env_names(model: type[BaseModel], aliases: Mapping[str, tuple[str, str]]) -> dict[str,
                                                                                    tuple[str,
                                                                                          str]]:
    """Every variable a settings ``model`` (sections of fields) reads -> (section, field)."""
    names = dict(aliases)
    for section, info in model.model_fields.items():
        sub = _model_in(info.annotation)
        for field in sub.model_fields if sub else ():
            names[f"ARCHIVER_{section.upper()}__{field.upper()}"] = (section, field)
    return names


def lay_env(data: dict[str, Any], origins: Origins, environ: Mapping[str, str],
            names: Mapping[str, tuple[str, str]], ignored: tuple[str, ...]) -> None:
    """Lay the ``ARCHIVER_*`` variables of ``environ`` over ``data``; an unknown one is an
    error that suggests the closest known name."""
    for name in sorted(environ):
        if not name.startswith("ARCHIVER_") or name in ignored:
            continue
        if name not in names:
            raise ConfigError(f"{name}: unknown setting{_suggest(name, [*names, *ignored])}")
        section, key = names[name]
        target = data.setdefault(section, {})
        if isinstance(target, dict):  # else the file's section is wrong, and says so
            target[key] = parse_env_value(environ[name])
            origins[(section, key)] = (name, False)


def lay_options(data: dict[str, Any], origins: Origins,
                values: Mapping[tuple[str, str], tuple[str, Any]]) -> None:
    """Lay command-line options, ``(section, field) -> (option, value)``, over ``data``."""
    for (section, key), (option, value) in values.items():
        data.setdefault(section, {})[key] = value
        origins[(section, key)] = (option, False)


def parse_env_value(raw: str) -> Any:
    """A variable's value: JSON when it looks like a list, an object, a number or a boolean,
    else the string as it is."""
    text = raw.strip()
    if text[:1] in "[{" or text in ("true", "false") or _is_number(text):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return raw


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def validate(model: type[M], data: dict[str, Any], origins: Origins) -> M:
    """``data`` as a ``model``; ConfigError with one line naming the source of the first bad
    value otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # An unknown name first: it is usually why a required field looks missing.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(describe(errors[0], model, origins) + more) from exc


def describe(error: ErrorDetails, model: type[BaseModel], origins: Origins) -> str:
    """One line: the source, the field, what is wrong with it."""
    loc = tuple(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    label, dotted = _origin(loc, origins)
    if error["type"] == "extra_forbidden":
        parent = ".".join(loc[:-1]) + "." if dotted and len(loc) > 1 else ""
        fields = [parent + f for f in _fields_at(model, error["loc"][:-1])]
        message = "unknown setting" + _suggest(parent + loc[-1], fields)
    path = ".".join(loc) if dotted else ".".join(loc[len(_matched(loc, origins)):])
    line = ": ".join(part for part in (label, path, message) if part)
    return line.replace("\r", "\\r").replace("\n", "\\n")


def _matched(loc: tuple[str, ...], origins: Origins) -> tuple[str, ...]:
    for n in range(len(loc), 0, -1):
        if loc[:n] in origins:
            return loc[:n]
    return ()


def _origin(loc: tuple[str, ...], origins: Origins) -> Origin:
    """The source of the value at ``loc``; for an error about a whole section (a rule across
    its fields), every source that set something in it, the later ones first."""
    inside = [label for key, (label, _) in origins.items() if key[:len(loc)] == loc
              and len(key) > len(loc)]
    matched = _matched(loc, origins)
    if not inside:
        return origins[matched] if matched else ("", True)
    labels = [*reversed(inside), *([origins[matched][0]] if matched else [])]
    return ", ".join(dict.fromkeys(labels)), True


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the model found at ``loc`` inside ``model`` (list items included)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, int):
            continue
        info = current.model_fields.get(part)
        current = _model_in(info.annotation) if info else None
    return list(current.model_fields) if current else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class inside ``X``, ``list[X]`` or ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
