"""OpenLineage run events as typed, validated objects: the one event model.

Every reader of lineage (the graph, the audit view, the embedded store's index, the pipeline
summary, the reports) gets events through :func:`from_openlineage`, so time order, run state,
schema identity and "latest run" are decided once. Like a compiler's AST, the objects are
frozen and upstream of everything; facets stay the producer's JSON (OpenLineage facets are
open-ended), but the shapes we read are checked here, at the door, and an event that does not
have them is refused with the path of the bad value (``outputs[0].facets.schema.fields``).

``MODEL_VERSION`` changes when the meaning of a field here changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import Any

from lineage_auditor.errors import EventError
from lineage_auditor.facets import lineage_from_facet
from lineage_auditor.model import DatasetLineage, DatasetRef, JobRef, dataset_ref
from lineage_auditor.times import iso, parse_time, time_key

MODEL_VERSION = 1
MAX_FIELD_DEPTH = 64  # nested schema fields deeper than this are refused, not recursed into

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class RunState(StrEnum):
    """OpenLineage's ``eventType`` vocabulary."""

    START = "START"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    ABORT = "ABORT"
    FAIL = "FAIL"
    OTHER = "OTHER"

    @property
    def final(self) -> bool:
        """A run in this state has ended."""
        return self in _FINAL

    @property
    def rank(self) -> int:
        """Order of events of one run that share a timestamp: start, progress, end."""
        return _RANK[self]


_FINAL = frozenset({RunState.COMPLETE, RunState.ABORT, RunState.FAIL})
_RANK = {RunState.START: 0, RunState.RUNNING: 1, RunState.OTHER: 2,
         RunState.COMPLETE: 3, RunState.ABORT: 3, RunState.FAIL: 3}


@dataclass(frozen=True, slots=True)
class SchemaField:
    """One field of a ``schema`` facet; struct fields keep their nested fields."""

    name: str
    type: str | None = None
    description: str | None = None
    fields: tuple["SchemaField", ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.type is not None:
            out["type"] = self.type
        if self.description is not None:
            out["description"] = self.description
        if self.fields:
            out["fields"] = [f.to_json() for f in self.fields]
        return out


def schema_hash(fields: Sequence[SchemaField]) -> str:
    """The identity of a schema: names, types and nested fields; descriptions do not count."""

    def shape(items: Sequence[SchemaField]) -> list[Any]:
        return [[f.name, f.type, shape(f.fields)] for f in items]

    text = json.dumps(shape(fields), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class EventDataset:
    """An input or output of a run event with its facets (dataset, input and output facets)."""

    ref: DatasetRef
    facets: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    input_facets: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    output_facets: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    where: str = ""  # its place in the event ("outputs[0]"), for errors found when read

    @cached_property
    def all_facets(self) -> Mapping[str, Any]:
        """Dataset, input and output facets in one mapping (the later kinds win a name)."""
        if not self.input_facets and not self.output_facets:
            return self.facets
        return {**self.facets, **self.input_facets, **self.output_facets}

    @cached_property
    def schema(self) -> tuple[SchemaField, ...] | None:
        """The ``schema`` facet's fields, or None when the event carries no schema."""
        raw = (self.facets.get("schema") or {}).get("fields")
        return None if raw is None else tuple(_schema_field(f) for f in raw)

    @property
    def schema_fields_json(self) -> list[Any] | None:
        """The schema facet's raw field list (cheap equality test between events)."""
        return (self.facets.get("schema") or {}).get("fields")

    def column_lineage(self) -> DatasetLineage | None:
        """The ``columnLineage`` facet as the model, or None; EventError when it is malformed.

        A reader checks the facet's content here, when it is used, not when the event is read:
        it is most of a big event's bytes and most readers use it of each job's latest run only.
        """
        facet = self.facets.get("columnLineage")
        if not facet:
            return None
        _check_column_lineage(facet, f"{self.where}.facets.columnLineage")
        return lineage_from_facet(self.ref, facet)

    @property
    def row_count(self) -> int | None:
        """Rows written, from the ``outputStatistics`` output facet."""
        count = (self.output_facets.get("outputStatistics") or {}).get("rowCount")
        return None if count is None else int(count)

    @property
    def tags(self) -> list[tuple[str, str, str | None]]:
        """``tags`` facet entries as (key, value, field or None)."""
        tags = (self.all_facets.get("tags") or {}).get("tags") or []
        return [(str(t.get("key", "")), str(t.get("value", "")), t.get("field")) for t in tags]


@dataclass(frozen=True)
class RunEvent:
    """One OpenLineage RunEvent, validated; ``raw`` is the producer's JSON as received."""

    event_type: RunState
    time: datetime
    time_key: str
    run_id: str
    job: JobRef
    run_facets: Mapping[str, Any]
    job_facets: Mapping[str, Any]
    inputs: tuple[EventDataset, ...]
    outputs: tuple[EventDataset, ...]
    producer: str
    raw: Mapping[str, Any]

    @property
    def identity(self) -> tuple[str, str, str]:
        """What makes an event unique (a re-sent event has the same): run, type, time."""
        return self.run_id, self.event_type.value, self.time_key

    @property
    def order(self) -> tuple[str, int]:
        """Sort key: time (offsets normalized), then start before end at the same instant."""
        return self.time_key, self.event_type.rank

    @property
    def error_message(self) -> str | None:
        message = (self.run_facets.get("errorMessage") or {}).get("message")
        return None if message is None else str(message)

    def datasets(self) -> Iterator[tuple[str, EventDataset]]:
        """Every dataset with its role (``input`` or ``output``)."""
        for ds in self.inputs:
            yield "input", ds
        for ds in self.outputs:
            yield "output", ds


@dataclass(slots=True)
class Run:
    """One run as its events told it: the one run type the graph, the audit view and reports share.

    ``state`` is that of the run's latest event by time (start before end at one instant),
    whatever order the events arrived in; ``started_at`` is the earliest START (the earliest
    event when no START was seen), ``ended_at`` the latest final event. The owner folds the
    run's events in with :meth:`add`.
    """

    run_id: str
    job: JobRef
    state: RunState = RunState.OTHER
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str = ""
    facets: dict[str, Any] = field(default_factory=dict)
    inputs: list[DatasetRef] = field(default_factory=list)
    outputs: list[DatasetRef] = field(default_factory=list)
    row_counts: dict[DatasetRef, int] = field(default_factory=dict)
    last_order: tuple[str, int] = ("", -1)
    start_seen: bool = field(default=False, repr=False)

    @property
    def duration_s(self) -> float | None:
        start, end = self.started_at, self.ended_at
        return (end - start).total_seconds() if start and end else None

    def add(self, event: RunEvent) -> None:
        """Fold one of the run's events in (any arrival order gives the same run)."""
        if event.order >= self.last_order and event.event_type is not RunState.OTHER:
            self.state = event.event_type
        self.last_order = max(self.last_order, event.order)
        self._add_times(event)
        if event.error_message:
            self.error = event.error_message
        if event.run_facets:
            self.facets = merge_facets(self.facets, event.run_facets)
        for ds in event.inputs:
            if ds.ref not in self.inputs:
                self.inputs.append(ds.ref)
        for ds in event.outputs:
            if ds.ref not in self.outputs:
                self.outputs.append(ds.ref)
            if ds.row_count is not None:
                self.row_counts[ds.ref] = ds.row_count

    def _add_times(self, event: RunEvent) -> None:
        if event.event_type is RunState.START:
            earlier = self.start_seen and self.started_at is not None and self.started_at < event.time
            self.started_at = self.started_at if earlier else event.time
            self.start_seen = True
        elif not self.start_seen and (self.started_at is None or event.time < self.started_at):
            self.started_at = event.time
        if event.event_type.final and (self.ended_at is None or event.time > self.ended_at):
            self.ended_at = event.time

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "job": str(self.job), "state": self.state.value,
            "started_at": iso(self.started_at) if self.started_at else "",
            "ended_at": iso(self.ended_at) if self.ended_at else "",
            "duration_s": self.duration_s,
            "error": self.error, "outputs": [str(d) for d in self.outputs],
            "row_counts": {str(d): n for d, n in self.row_counts.items()},
        }


def merge_facets(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any]:
    """Facets of a later event win key by key; earlier keys stay; ``_deleted`` removes one."""
    merged = {**(old or {}), **(new or {})}
    return {k: v for k, v in merged.items() if not (isinstance(v, Mapping) and v.get("_deleted") is True)}


def is_static_event(raw: Any) -> bool:
    """A DatasetEvent or JobEvent (no run): valid OpenLineage that lineage readers skip."""
    return isinstance(raw, dict) and "run" not in raw and (isinstance(raw.get("dataset"), dict) or (
        isinstance(raw.get("job"), dict) and "eventType" not in raw))


def from_openlineage(raw: Any, *, strict: bool = True) -> RunEvent:
    """Validate one RunEvent (JSON already decoded) and build its typed form.

    Raises :class:`EventError` naming the path of the first value with the wrong shape.
    ``strict`` (what a store checks at its door) includes the content of ``columnLineage``
    facets; readers pass ``strict=False`` and meet a malformed one in
    :meth:`EventDataset.column_lineage`.
    """
    obj = _object(raw, "event")
    time_text = obj.get("eventTime")
    if not isinstance(time_text, str) or not time_text:
        raise EventError("eventTime: missing (an OpenLineage event needs its time)")
    try:
        moment, key = parse_time(time_text), time_key(time_text)
    except ValueError:
        raise EventError(f"eventTime: not an ISO 8601 date-time: {time_text[:60]!r}") from None
    run = _object(obj.get("run"), "run")
    run_id = run.get("runId")
    if not isinstance(run_id, str) or not run_id:
        raise EventError("run.runId: missing")
    job = _object(obj.get("job"), "job")
    return RunEvent(
        event_type=_state(obj.get("eventType")),
        time=moment,
        time_key=key,
        run_id=run_id,
        job=JobRef(_text(job, "namespace", "job"), _text(job, "name", "job", required=True)),
        run_facets=_run_facets(run.get("facets")),
        job_facets=_checked_facets(job.get("facets"), "job.facets"),
        inputs=_datasets(obj.get("inputs"), "inputs", strict),
        outputs=_datasets(obj.get("outputs"), "outputs", strict),
        producer=str(obj.get("producer") or ""),
        raw=obj,
    )


def run_events(raws: Iterable[Any], on_skip: Callable[[EventError], None] | None = None) -> Iterator[RunEvent]:
    """The run events among ``raws``; static events are passed over, bad ones skipped.

    ``on_skip(error)`` hears about every event that could not be read, so a reader of a store
    written by another producer or an older version keeps going and says what it left out.
    Without it, the first bad event raises.
    """
    for raw in raws:
        if is_static_event(raw):
            continue
        try:
            yield from_openlineage(raw, strict=False)
        except EventError as exc:
            if on_skip is None:
                raise
            on_skip(exc)


def as_run_events(events: Iterable[RunEvent | Mapping[str, Any]]) -> Iterator[RunEvent]:
    """Typed events, validating any raw OpenLineage dicts among them (static events left out)."""
    for event in events:
        if isinstance(event, RunEvent):
            yield event
        elif not is_static_event(event):
            yield from_openlineage(event, strict=False)


def sort_events(events: Iterable[RunEvent]) -> list[RunEvent]:
    """Events oldest first (stable: ties keep arrival order after start-before-end)."""
    return sorted(events, key=lambda e: e.order)


# ---------------------------------------------------------------------- validation


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise EventError(f"{path}: expected an object, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    names: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}
    return "nothing" if value is None else names.get(type(value), type(value).__name__)


def _text(obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str:
    value = obj.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise EventError(f"{path}.{key}: expected a string, got {_kind(value)}")
    if required and not value:
        raise EventError(f"{path}.{key}: missing")
    return value


def _state(value: Any) -> RunState:
    if value is None or value == "":
        return RunState.OTHER
    try:
        return RunState(value)
    except ValueError:
        allowed = ", ".join(s.value for s in RunState)
        raise EventError(f"eventType: {str(value)[:40]!r} is not one of {allowed}") from None


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise EventError(f"{path}: expected a list, got {_kind(value)}")
    return value


def _datasets(value: Any, path: str, strict: bool) -> tuple[EventDataset, ...]:
    out = []
    for i, item in enumerate(_list(value, path)):
        where = f"{path}[{i}]"
        obj = _object(item, where)
        ref = dataset_ref(_text(obj, "namespace", where), _text(obj, "name", where, required=True))
        facets = _checked_facets(obj.get("facets"), f"{where}.facets")
        _check_dataset_facets(facets, f"{where}.facets", strict)
        input_facets = _facets(obj.get("inputFacets"), f"{where}.inputFacets")
        output_facets = _facets(obj.get("outputFacets"), f"{where}.outputFacets")
        _check_stats(input_facets, output_facets, where)
        out.append(EventDataset(ref, facets, input_facets, output_facets, where))
    return tuple(out)


def _facets(value: Any, path: str) -> Mapping[str, Any]:
    """A facets map: every facet an object (or null, which producers use to clear one)."""
    if value is None:
        return _EMPTY
    facets = _object(value, path)
    for name, facet in facets.items():
        if facet is not None and not isinstance(facet, dict):
            raise EventError(f"{path}.{name}: expected an object, got {_kind(facet)}")
    return facets


def _run_facets(value: Any) -> Mapping[str, Any]:
    """Run facets; ``parent`` (which job a step belongs to, read by the graph view) is checked."""
    facets = _facets(value, "run.facets")
    parent = facets.get("parent")
    if parent is not None:
        path = "run.facets.parent"
        job = _object(parent.get("job"), f"{path}.job")
        _text(job, "namespace", f"{path}.job")
        _text(job, "name", f"{path}.job", required=True)
        if parent.get("run") is not None:
            _text(_object(parent["run"], f"{path}.run"), "runId", f"{path}.run")
    return facets


# Text fields of job and dataset facets that readers show or parse (the graph, the checks,
# the reports): when present they must be strings.
_TEXT_FIELDS = {
    "documentation": ("description",),
    "sql": ("query", "dialect"),
    "lifecycleStateChange": ("lifecycleStateChange",),
}


def _checked_facets(value: Any, path: str) -> Mapping[str, Any]:
    """A job's or dataset's facets, with the fields readers use checked (owners, tags, text)."""
    facets = _facets(value, path)
    owners = facets.get("ownership")
    if owners is not None:
        for i, owner in enumerate(_list(owners.get("owners"), f"{path}.ownership.owners")):
            where = f"{path}.ownership.owners[{i}]"
            obj = _object(owner, where)
            _text(obj, "name", where)
            _text(obj, "type", where)
    tags = facets.get("tags")
    if tags is not None:
        for i, tag in enumerate(_list(tags.get("tags"), f"{path}.tags.tags")):
            where = f"{path}.tags.tags[{i}]"
            obj = _object(tag, where)
            for key in ("key", "value", "source", "field"):
                _text(obj, key, where)
    for name, keys in _TEXT_FIELDS.items():
        facet = facets.get(name)
        if facet is not None:
            for key in keys:
                _text(facet, key, f"{path}.{name}")
    return facets


def _check_dataset_facets(facets: Mapping[str, Any], path: str, strict: bool) -> None:
    schema = facets.get("schema")
    if schema is not None:
        _check_fields(schema.get("fields"), f"{path}.schema.fields", 0)
    lineage = facets.get("columnLineage")
    if lineage is not None and strict:
        _check_column_lineage(lineage, f"{path}.columnLineage")


def _check_fields(value: Any, path: str, depth: int) -> None:
    if _good_fields(value, depth):
        return
    if depth > MAX_FIELD_DEPTH:
        raise EventError(f"{path}: nested deeper than {MAX_FIELD_DEPTH} levels")
    for i, item in enumerate(_list(value, path)):
        where = f"{path}[{i}]"
        obj = _object(item, where)
        _text(obj, "name", where, required=True)
        for key in ("type", "description"):
            if obj.get(key) is not None and not isinstance(obj[key], str):
                raise EventError(f"{where}.{key}: expected a string, got {_kind(obj[key])}")
        if obj.get("fields") is not None:
            _check_fields(obj["fields"], f"{where}.fields", depth + 1)


def _good_fields(value: Any, depth: int) -> bool:
    """The fast check of schema fields (exact JSON types); a False is explained by the slow one."""
    if depth > MAX_FIELD_DEPTH or not (value is None or type(value) is list):
        return False
    for item in value or ():
        if type(item) is not dict:
            return False
        name, kind, text = item.get("name"), item.get("type"), item.get("description")
        if type(name) is not str or not name:
            return False
        if (kind is not None and type(kind) is not str) or (text is not None and type(text) is not str):
            return False
        nested = item.get("fields")
        if nested is not None and not _good_fields(nested, depth + 1):
            return False
    return True


def _check_column_lineage(facet: Mapping[str, Any], path: str) -> None:
    """Column lineage is most of a big event's bytes: a fast check first, the explaining one on failure."""
    if _good_column_lineage(facet):
        return
    fields = facet.get("fields")
    if fields is not None:
        for name, spec in _object(fields, f"{path}.fields").items():
            where = f"{path}.fields.{name}"
            _check_input_fields(_object(spec, where).get("inputFields"), f"{where}.inputFields")
    _check_input_fields(facet.get("dataset"), f"{path}.dataset")


def _good_column_lineage(facet: Mapping[str, Any]) -> bool:
    fields = facet.get("fields")
    if fields is not None:
        if type(fields) is not dict:
            return False
        for spec in fields.values():
            if type(spec) is not dict or not _good_input_fields(spec.get("inputFields")):
                return False
    return _good_input_fields(facet.get("dataset"))


def _good_input_fields(value: Any) -> bool:
    """True when every input field is well formed (exact JSON types; anything else is explained)."""
    if value is None:
        return True
    if type(value) is not list:
        return False
    for item in value:
        if type(item) is not dict:
            return False
        namespace, name, column = item.get("namespace"), item.get("name"), item.get("field")
        if not (namespace is None or type(namespace) is str) or type(name) is not str or type(column) is not str:
            return False
        if not name or not column:
            return False
        steps = item.get("transformations")
        if steps is not None and (type(steps) is not list or not all(_good_transformation(t) for t in steps)):
            return False
    return True


def _good_transformation(t: Any) -> bool:
    if type(t) is not dict:
        return False
    for key in ("type", "subtype", "description"):
        value = t.get(key)
        if value is not None and type(value) is not str:
            return False
    masking = t.get("masking")
    return masking is None or type(masking) is bool


def _check_input_fields(value: Any, path: str) -> None:
    for i, item in enumerate(_list(value, path)):
        where = f"{path}[{i}]"
        obj = _object(item, where)
        _text(obj, "namespace", where)
        _text(obj, "name", where, required=True)
        _text(obj, "field", where, required=True)
        for j, t in enumerate(_list(obj.get("transformations"), f"{where}.transformations")):
            step = f"{where}.transformations[{j}]"
            transformation = _object(t, step)
            for key in ("type", "subtype", "description"):
                _text(transformation, key, step)
            masking = transformation.get("masking")
            if masking is not None and not isinstance(masking, bool):
                raise EventError(f"{step}.masking: expected true or false, got {_kind(masking)}")


def _check_stats(input_facets: Mapping[str, Any], output_facets: Mapping[str, Any], where: str) -> None:
    stats = output_facets.get("outputStatistics")
    if stats is not None:
        _count(stats.get("rowCount"), f"{where}.outputFacets.outputStatistics.rowCount")
    assertions = input_facets.get("dataQualityAssertions")
    if assertions is not None:
        path = f"{where}.inputFacets.dataQualityAssertions.assertions"
        for i, item in enumerate(_list(assertions.get("assertions"), path)):
            obj = _object(item, f"{path}[{i}]")
            _text(obj, "assertion", f"{path}[{i}]", required=True)
            _text(obj, "column", f"{path}[{i}]")
            if not isinstance(obj.get("success"), bool):
                raise EventError(f"{path}[{i}].success: expected true or false, got {_kind(obj.get('success'))}")
    metrics = input_facets.get("dataQualityMetrics")
    if metrics is not None:
        path = f"{where}.inputFacets.dataQualityMetrics"
        _count(metrics.get("rowCount"), f"{path}.rowCount")
        columns = metrics.get("columnMetrics")
        if columns is not None:
            for name, m in _object(columns, f"{path}.columnMetrics").items():
                obj = _object(m, f"{path}.columnMetrics.{name}")
                _count(obj.get("nullCount"), f"{path}.columnMetrics.{name}.nullCount")
                _count(obj.get("count"), f"{path}.columnMetrics.{name}.count")


def _count(value: Any, path: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise EventError(f"{path}: expected a number, got {_kind(value)}")


def _schema_field(raw: Mapping[str, Any]) -> SchemaField:
    return SchemaField(
        name=str(raw["name"]),
        type=raw.get("type"),
        description=raw.get("description"),
        fields=tuple(_schema_field(f) for f in raw.get("fields") or ()),
    )
