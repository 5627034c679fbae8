"""Reading spec files like a compiler: every problem at once, each at its file:line:column.

A spec is YAML validated against :class:`pipelines.dsl.model.Pipeline`. Pydantic's errors are
mapped back to the YAML node they are about (the defaults file an ``extends:`` names, when
the value came from there), unknown keys and misspelt choices get a "did you mean", and one
broken spec never stops the others from loading (:func:`load_specs`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lineage_auditor.errors import ConfigError, LineageAuditError
from lineage_auditor.textfiles import position, read_yaml
from lineage_auditor.yamlmodels import Problem, Problems, document_loc, header_wording, problem_at
from pipelines.dsl.model import API_VERSION, KIND, Pipeline

SPEC_SUFFIXES = (".yml", ".yaml")


#: One problem of a spec: where it is, the key path and what is wrong.
SpecProblem = Problem


class SpecErrors(Problems):
    """A spec with problems; ``problems`` lists all of them, the message shows the first."""


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

ALIASES = {"from_": "from", "api_version": "apiVersion"}


def _problem(err: Mapping[str, Any], sources: list[_Source]) -> SpecProblem:
    loc = document_loc(tuple(err["loc"]), ALIASES)
    source = sources[0]
    if loc and len(sources) > 1 and str(loc[0]) not in source.data and str(loc[0]) in sources[1].data:
        source = sources[1]  # the value came from the defaults file
    return problem_at(err, model=Pipeline, root=source.root, file=str(source.file), aliases=ALIASES, wording=_wording)


def _wording(err: Mapping[str, Any], loc: tuple[Any, ...]) -> str | None:
    """A spec's own phrasing of pattern errors (apiVersion, kind, table names, ids)."""
    header = header_wording(err, loc, kind=KIND, what="a Pipeline spec", api_version=API_VERSION)
    if header or err["type"] != "string_pattern_mismatch" or not loc:
        return header
    value = err.get("input")
    if "schema.table" in str((err.get("ctx") or {}).get("pattern", "")):
        return f"{value!r} is not a table name (schema.table)"
    if loc[-1] in ("id", "from") or "depends_on" in loc:
        return f"{value!r} is not a valid id (lower-case letters, digits and _, starting with a letter)"
    return None
