"""Reading spec files like a compiler: every problem at once, each at its file:line:column.

A spec is YAML validated against :class:`pipelines.dsl.model.Pipeline`. Pydantic's errors are
mapped back to the YAML node they are about (the defaults file an ``extends:`` names, when
the value came from there), unknown keys and misspelt choices get a "did you mean", and one
broken spec never stops the others from loading (:func:`load_specs`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from lineage_auditor.errors import ConfigError, LineageAuditError
from lineage_auditor.textfiles import position, read_yaml
from pipelines.dsl.model import Pipeline

SPEC_SUFFIXES = (".yml", ".yaml")


@dataclass(frozen=True)
class SpecProblem:
    """One problem of a spec: where it is, the key path and what is wrong."""

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


class SpecErrors(ConfigError):
    """A spec with problems; ``problems`` lists all of them, the message shows the first."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        first = problems[0]
        more = len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        text = f"{first.path}: {first.message}" if first.path else first.message
        super().__init__(text + suffix, file=first.file, line=first.line, column=first.column)
        self.problems = problems


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with the file it came from (relative paths in it resolve there)."""

    pipeline: Pipeline
    path: Path
    root: yaml.Node


@dataclass(frozen=True)
class _Source:
    file: Path
    data: Mapping[str, Any]
    root: yaml.Node


def load_spec(path: str | Path) -> LoadedSpec:
    """Read and validate one spec; :class:`SpecErrors` lists every problem found."""
    path = Path(path)
    own = _read(path)
    sources = [own]
    data: dict[str, Any] = dict(own.data)
    extends = data.get("extends")
    if isinstance(extends, str) and extends:
        base = _read((path.parent / extends), referrer=(own, "extends"))
        sources.append(base)
        data = {**base.data, **data}
    try:
        pipeline = Pipeline.model_validate(data)
    except ValidationError as exc:
        raise SpecErrors([_problem(err, sources) for err in exc.errors()]) from None
    return LoadedSpec(pipeline, path, own.root)


def load_specs(paths: Iterable[str | Path]) -> tuple[list[LoadedSpec], list[SpecProblem]]:
    """Every spec under ``paths`` (files or folders): the valid ones and all problems of the rest."""
    specs: list[LoadedSpec] = []
    problems: list[SpecProblem] = []
    for file in spec_files(paths):
        try:
            specs.append(load_spec(file))
        except SpecErrors as exc:
            problems.extend(exc.problems)
        except LineageAuditError as exc:
            problems.append(SpecProblem(exc.file or str(file), exc.line, exc.column, "", exc.message))
    return specs, problems


def spec_files(paths: Iterable[str | Path]) -> list[Path]:
    """Spec files named or inside the named folders (sorted; defaults files are not specs)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in SPEC_SUFFIXES and _is_spec(p)))
        elif path.exists():
            found.append(path)
        else:
            raise ConfigError("no such spec file or folder", file=str(path))
    return found


def _is_spec(path: Path) -> bool:
    """A file is a spec when it says ``kind: Pipeline`` (defaults files and others are skipped)."""
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return True  # reading it again reports the problem
    return any(line.strip().replace('"', "").replace("'", "") == "kind: Pipeline" for line in head.splitlines())


# ---------------------------------------------------------------------- YAML


def _read(path: Path, referrer: tuple[_Source, str] | None = None) -> _Source:
    """One spec or defaults file through the one reader of user files (UTF-8, nesting and alias limits)."""
    if referrer and not path.exists():
        source, key = referrer
        line, column = position(source.root, (key,))
        raise ConfigError(f"{key}: no such file {path.name}", file=str(source.file), line=line, column=column)
    if not path.exists():
        raise ConfigError("no such spec file", file=str(path))
    data, root = read_yaml(path, what="spec")
    if root is None or not isinstance(data, dict):
        raise ConfigError("a spec is a mapping of settings (apiVersion, kind, id, steps, ...)", file=str(path), line=1, column=1)
    return _Source(path, data, root)


# ---------------------------------------------------------------------- pydantic errors


def _problem(err: Mapping[str, Any], sources: list[_Source]) -> SpecProblem:
    loc = _document_loc(tuple(err["loc"]))
    source = sources[0]
    if loc and len(sources) > 1 and str(loc[0]) not in source.data and str(loc[0]) in sources[1].data:
        source = sources[1]  # the value came from the defaults file
    kind = err["type"]
    line, column = position(source.root, loc, at_key=kind == "extra_forbidden")
    return SpecProblem(str(source.file), line, column, _dotted(loc), _message(err, loc))


def _document_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pydantic's location without the names of models it adds (aliases mapped back)."""
    out: list[Any] = []
    for part in loc:
        if part == "from_":
            part = "from"
        if part == "api_version":
            part = "apiVersion"
        out.append(part)
    return tuple(out)


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(err: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind == "missing":
        return "missing (required)"
    if kind == "enum":
        return _bad_choice(err)
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "apiVersion":
        return f"{err.get('input')!r} is not a supported apiVersion (lineage-audit/v1)"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "kind":
        return f"{err.get('input')!r}: this file is not a Pipeline spec (kind: Pipeline)"
    if kind == "string_pattern_mismatch" and "schema.table" in str((err.get("ctx") or {}).get("pattern", "")):
        return f"{err.get('input')!r} is not a table name (schema.table)"
    if kind == "string_pattern_mismatch" and loc and (loc[-1] in ("id", "from") or "depends_on" in loc):
        return f"{err.get('input')!r} is not a valid id (lower-case letters, digits and _, starting with a letter)"
    if kind == "too_short":
        least = (err.get("ctx") or {}).get("min_length", 1)
        return f"needs at least {least} item{'s' if least != 1 else ''}"
    return msg


def _bad_choice(err: Mapping[str, Any]) -> str:
    value = err.get("input")
    expected = str((err.get("ctx") or {}).get("expected", ""))
    choices = [c.strip().strip("'") for c in expected.replace(" or ", ", ").split(",") if c.strip()]
    text = f"{value!r} is not one of {', '.join(choices)}"
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
    return text + (f" (did you mean {close[0]!r}?)" if close else "")


def _unknown_key(loc: tuple[Any, ...]) -> str:
    key = str(loc[-1])
    allowed = _allowed_keys(loc[:-1])
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else (f" (allowed: {', '.join(allowed)})" if allowed else "")
    return f"unknown key {key!r}{hint}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the model at ``loc`` accepts (aliases as written in specs)."""
    model: Any = Pipeline
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
