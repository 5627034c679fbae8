"""pydantic models read from YAML files: every problem at its ``file:line:column``, like a compiler.

The pipeline spec and the governance policy are both YAML validated by pydantic models that
are their one definition. This module turns pydantic's errors into :class:`Problem` lines
pointing at the YAML node each is about (found with :func:`lineage_auditor.textfiles.position`),
with a "did you mean" for an unknown key or a misspelt choice, so both files read the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, PlainSerializer, WithJsonSchema

from lineage_auditor.durations import parse_duration
from lineage_auditor.errors import ConfigError
from lineage_auditor.textfiles import position

#: A duration in a YAML model, in the one duration grammar (lineage_auditor.durations): 90s, 1d 12h.
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda d: f"{int(d.total_seconds())}s", return_type=str),
    WithJsonSchema({"type": ["string", "number"], "description": "a duration: 90s, 30m, 1.5h, 1d 12h, 2w, or seconds"}),
]

#: A message of the file's own for an error (spec-specific wording), or None for the generic one.
Wording = Callable[[Mapping[str, Any], tuple[Any, ...]], "str | None"]


@dataclass(frozen=True)
class Problem:
    """One problem of a file: where it is, the key path and what is wrong."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class Problems(ConfigError):
    """A file with problems; ``problems`` lists all of them, the message shows the first."""

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0]
        more = len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        text = f"{first.path}: {first.message}" if first.path else first.message
        super().__init__(text + suffix, file=first.file, line=first.line, column=first.column)
        self.problems = problems


def problem_at(err: Mapping[str, Any], *, model: type[BaseModel], root: yaml.Node | None, file: str,
               aliases: Mapping[str, str] | None = None, wording: Wording | None = None) -> Problem:
    """One pydantic error of ``model`` as a :class:`Problem` at its YAML node in ``file``.

    ``aliases`` maps field names to the keys written in the file (``from_`` -> ``from``);
    ``wording`` may phrase an error in the file's own terms before the generic message.
    """
    loc = document_loc(tuple(err["loc"]), aliases or {})
    line, column = position(root, loc, at_key=err["type"] == "extra_forbidden")
    message = (wording(err, loc) if wording else None) or error_message(err, loc, model)
    return Problem(file, line, column, dotted(loc), message)


def header_wording(err: Mapping[str, Any], loc: tuple[Any, ...], *, kind: str, what: str, api_version: str) -> str | None:
    """The wording for a wrong ``apiVersion`` or ``kind`` at the top of a versioned file."""
    if err["type"] != "string_pattern_mismatch" or not loc or loc[-1] not in ("apiVersion", "kind"):
        return None
    if loc[-1] == "apiVersion":
        return f"{err.get('input')!r} is not a supported apiVersion ({api_version})"
    return f"{err.get('input')!r}: this file is not {what} (kind: {kind})"


def document_loc(loc: tuple[Any, ...], aliases: Mapping[str, str]) -> tuple[Any, ...]:
    """Pydantic's location with field names written as the file writes them."""
    return tuple(aliases.get(part, part) if isinstance(part, str) else part for part in loc)


def dotted(loc: tuple[Any, ...]) -> str:
    """``steps[2].load.mode`` from ``("steps", 2, "load", "mode")``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def error_message(err: Mapping[str, Any], loc: tuple[Any, ...], model: type[BaseModel]) -> str:
    """The generic wording: unknown keys and bad choices get a "did you mean"."""
    kind = err["type"]
    if kind == "extra_forbidden":
        return unknown_key(loc, model)
    if kind == "missing":
        return "missing (required)"
    if kind == "enum":
        return bad_choice(err)
    if kind == "too_short":
        least = (err.get("ctx") or {}).get("min_length", 1)
        return f"needs at least {least} item{'s' if least != 1 else ''}"
    return str(err["msg"]).removeprefix("Value error, ")


def bad_choice(err: Mapping[str, Any]) -> str:
    value = err.get("input")
    expected = str((err.get("ctx") or {}).get("expected", ""))
    choices = [c.strip().strip("'") for c in expected.replace(" or ", ", ").split(",") if c.strip()]
    return f"{value!r} is not one of {', '.join(choices)}" + did_you_mean(str(value), choices)


def did_you_mean(value: str, choices: list[str], *, otherwise: str = "") -> str:
    """`` (did you mean 'x'?)`` for the closest choice, else ``otherwise``."""
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else otherwise


def unknown_key(loc: tuple[Any, ...], model: type[BaseModel]) -> str:
    key = str(loc[-1])
    allowed = allowed_keys(model, loc[:-1])
    otherwise = f" (allowed: {', '.join(allowed)})" if allowed else ""
    return f"unknown key {key!r}" + did_you_mean(key, allowed, otherwise=otherwise)


def allowed_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the model at ``loc`` (inside ``root``) accepts, aliases as written in files."""
    model: Any = root
    keyed = False  # the next part is a key of a mapping (a param's name), not a field
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        if keyed:
            keyed = False
            continue
        field = _fields(model).get(str(part))
        model = _model_of(field.annotation) if field is not None else None
        keyed = field is not None and getattr(field.annotation, "__origin__", None) is dict
    return sorted(_fields(model)) if model is not None else []


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``X | None``, ``list[X]``, ``dict[str, X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return None
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None
