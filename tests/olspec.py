"""Validate OpenLineage events against the published JSON schemas (core spec + every facet).

Use from any test:

    from tests.olspec import validate_event
    validate_event(event)            # AssertionError listing every problem

The schemas are read from ``$LINEAGE_AUDIT_OL_SPEC`` (default ``<repo>/../shared/openlineage-spec``).
When they are missing the calling test fails with a clear message; it never skips.

What is checked:
- the event against the core ``OpenLineage.json`` definition of its kind (RunEvent,
  DatasetEvent, JobEvent), formats included (uuid, date-time, uri);
- every facet against its own schema, chosen by where it sits (run, job, dataset, input or
  output facet) and its key, as declared by each facet schema's ``properties``; so
  ``dataQualityMetrics`` under ``inputFacets`` is checked as the input facet, and a facet
  key the spec does not define there is an error unless listed in ``custom_facets``;
- that a facet's ``_schemaURL`` names the schema file of the facet its key stands for.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

SPEC_ENV = "LINEAGE_AUDIT_OL_SPEC"
REPO = Path(__file__).resolve().parent.parent
FACET_KINDS = ("RunFacet", "JobFacet", "DatasetFacet", "InputDatasetFacet", "OutputDatasetFacet")
_BASE_REF = re.compile(r"OpenLineage\.json#/\$defs/(\w+)$")
_SCHEMA_FILE = re.compile(r"/([A-Za-z0-9]+)\.json(?:#|$)")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE)
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]*$")


def _fail(message: str) -> None:
    try:
        import pytest
    except ImportError:  # pragma: no cover - outside pytest
        raise RuntimeError(message) from None
    pytest.fail(message, pytrace=False)


def spec_dir() -> Path:
    """The folder holding OpenLineage.json and facets/; fails the test when it is missing."""
    path = Path(os.environ.get(SPEC_ENV) or REPO.parent / "shared" / "openlineage-spec")
    if not (path / "OpenLineage.json").is_file() or not (path / "facets").is_dir():
        _fail(
            f"OpenLineage JSON schemas not found at {path} (need OpenLineage.json and facets/). "
            f"Set {SPEC_ENV} to the folder holding the official OpenLineage spec schemas."
        )
    return path


def _format_checker() -> FormatChecker:
    """uuid from jsonschema; date-time and uri checked here so no optional package is needed."""
    checker = FormatChecker(formats=("uuid",))

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not _DATE_TIME.match(value):
            return False
        head = value[:19]
        datetime.fromisoformat(head)
        return True

    @checker.checks("uri")
    def _uri(value: object) -> bool:
        return not isinstance(value, str) or bool(_URI.match(value))

    return checker


@dataclass(frozen=True)
class _FacetSchema:
    key: str
    kind: str
    file: str
    validator: Draft202012Validator


@dataclass(frozen=True)
class _Spec:
    core_id: str
    registry: Registry
    events: dict[str, Draft202012Validator]
    facets: dict[tuple[str, str], _FacetSchema]


def _facet_kind(definition: dict[str, Any]) -> str | None:
    for part in definition.get("allOf", []):
        match = _BASE_REF.search(str(part.get("$ref", "")))
        if match and match.group(1) in FACET_KINDS:
            return match.group(1)
    return None


@lru_cache(maxsize=4)
def _load(path: str) -> _Spec:
    folder = Path(path)
    core = json.loads((folder / "OpenLineage.json").read_text(encoding="utf-8"))
    facet_docs = [
        (p.stem, json.loads(p.read_text(encoding="utf-8"))) for p in sorted((folder / "facets").glob("*.json"))
    ]
    registry: Registry = Registry().with_resources(
        [(core["$id"], Resource.from_contents(core))] + [(doc["$id"], Resource.from_contents(doc)) for _, doc in facet_docs]
    )
    checker = _format_checker()

    def validator(ref: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": ref}, registry=registry, format_checker=checker)

    events = {kind: validator(f"{core['$id']}#/$defs/{kind}") for kind in ("RunEvent", "DatasetEvent", "JobEvent")}
    facets: dict[tuple[str, str], _FacetSchema] = {}
    for stem, doc in facet_docs:
        for key, prop in (doc.get("properties") or {}).items():
            ref = str(prop.get("$ref", ""))
            definition = doc.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {})
            kind = _facet_kind(definition)
            if kind:
                facets[(kind, key)] = _FacetSchema(key, kind, stem, validator(f"{doc['$id']}{ref}"))
    return _Spec(core["$id"], registry, events, facets)


def _where(base: str, error: ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return (f"{base}{path}" if base else path.lstrip(".")) or "<event>"


def _leaf(error: ValidationError) -> ValidationError:
    """The specific failure under an anyOf/oneOf, not "is not valid under any of the given schemas"."""
    while error.context:
        error = best_match(error.context)
    return error


def _schema_errors(validator: Draft202012Validator, value: Any, base: str) -> list[str]:
    errors = [_leaf(e) for e in validator.iter_errors(value)]
    lines = []
    for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
        lines.append(f"{_where(base, error)}: {message}")
    return lines


def _facet_sites(event: dict[str, Any]) -> Iterable[tuple[str, str, Any]]:
    """(facet kind, location, facets dict) for every facet container in an event."""
    run, job = event.get("run"), event.get("job")
    if isinstance(run, dict):
        yield "RunFacet", "run.facets", run.get("facets")
    if isinstance(job, dict):
        yield "JobFacet", "job.facets", job.get("facets")
    for role, extra in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        for i, dataset in enumerate(event.get(role) or []):
            if isinstance(dataset, dict):
                yield "DatasetFacet", f"{role}[{i}].facets", dataset.get("facets")
                kind = "InputDatasetFacet" if role == "inputs" else "OutputDatasetFacet"
                yield kind, f"{role}[{i}].{extra}", dataset.get(extra)
    if isinstance(event.get("dataset"), dict):
        yield "DatasetFacet", "dataset.facets", event["dataset"].get("facets")


def _facet_errors(spec: _Spec, event: dict[str, Any], custom: frozenset[str]) -> list[str]:
    errors: list[str] = []
    for kind, location, facets in _facet_sites(event):
        if not isinstance(facets, dict):
            continue
        for key, facet in facets.items():
            where = f"{location}.{key}"
            if isinstance(facet, dict) and facet.get("_deleted") is True:
                continue
            schema = spec.facets.get((kind, key))
            if schema is None:
                if key not in custom:
                    known = sorted(k for (c, k) in spec.facets if c == kind)
                    errors.append(f"{where}: no {kind} named {key!r} in the spec (known: {', '.join(known)})")
                continue
            errors += _schema_errors(schema.validator, facet, where)
            url = facet.get("_schemaURL") if isinstance(facet, dict) else None
            named = _SCHEMA_FILE.search(str(url or ""))
            if named and named.group(1) != schema.file and "OpenLineage" != named.group(1):
                errors.append(f"{where}: _schemaURL names {named.group(1)}.json but key {key!r} is {schema.file}.json")
    return errors


def _as_dict(event: Any) -> dict[str, Any]:
    if isinstance(event, dict):
        return event
    from openlineage.client.serde import Serde

    return Serde.to_dict(event)


def event_errors(event: Any, *, custom_facets: Iterable[str] = ()) -> list[str]:
    """Every way ``event`` departs from the spec, as ``location: message`` lines (empty = valid)."""
    spec = _load(str(spec_dir()))
    data = _as_dict(event)
    kind = "RunEvent" if "run" in data else "DatasetEvent" if "dataset" in data else "JobEvent"
    errors = _schema_errors(spec.events[kind], data, "")
    return errors + _facet_errors(spec, data, frozenset(custom_facets))


def validate_event(event: Any, *, custom_facets: Iterable[str] = ()) -> None:
    """Raise AssertionError naming every problem when ``event`` does not follow the spec."""
    errors = event_errors(event, custom_facets=custom_facets)
    if errors:
        data = _as_dict(event)
        name = f"{data.get('eventType', '')} {((data.get('job') or {}).get('name') or '')}".strip()
        raise AssertionError(f"OpenLineage event {name or '?'} is not valid:\n  " + "\n  ".join(errors))


def validate_events(events: Iterable[Any], *, custom_facets: Iterable[str] = ()) -> int:
    """Validate many events; returns how many were checked (so a test can assert it saw some)."""
    count = 0
    for event in events:
        validate_event(event, custom_facets=custom_facets)
        count += 1
    return count


def assert_lineage_has_schema(events: list[dict[str, Any]]) -> None:
    """Every output with column lineage names each lineage field in its schema, START included
    (Marquez drops lineage for a field its dataset's schema lacks)."""
    for event in events:
        for output in event["outputs"]:
            lineage = output["facets"].get("columnLineage")
            if lineage:
                names = {f["name"] for f in (output["facets"].get("schema") or {}).get("fields") or []}
                missing = set(lineage["fields"]) - names
                assert not missing, f"{event['eventType']} {event['job']['name']}: {sorted(missing)} not in the schema"


FACETS_DIR = REPO / "pipelines" / "runtime" / "facets"


def validate_own_facet(facet: dict[str, Any], name: str) -> None:
    """Check one of our run facets against its published JSON schema (which builds on the OpenLineage core)."""
    core = json.loads((spec_dir() / "OpenLineage.json").read_text(encoding="utf-8"))
    own = json.loads((FACETS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    assert facet["_schemaURL"] == f"{own['$id']}#/$defs/{name}"
    registry = Registry().with_resources([(core["$id"], Resource.from_contents(core)), (own["$id"], Resource.from_contents(own))])
    Draft202012Validator({"$ref": facet["_schemaURL"]}, registry=registry, format_checker=FormatChecker()).validate(facet)
