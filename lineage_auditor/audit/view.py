"""What the checks need besides the graph: dataset versions, runs, row counts, quality metrics.

Derived from OpenLineage RunEvents only, so every store (embedded, Marquez, files) gives the
checks the same answers: whatever can list its events can be audited.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lineage_auditor.graph import JobRef, LineageGraph
from lineage_auditor.model import DatasetRef, dataset_ref

FINAL_STATES = ("COMPLETE", "FAIL", "ABORT")


@dataclass
class DatasetVersion:
    """One schema of a dataset, and the run that first wrote it."""

    version: int
    fields: list[dict[str, Any]]
    run_id: str
    job: JobRef | None
    created_at: str
    lifecycle: dict[str, Any] | None = None  # lifecycleStateChange facet of that event
    schema_hash: str = ""


@dataclass
class RunRecord:
    """One run as its events told it."""

    run_id: str
    job: JobRef
    state: str = ""
    started_at: str = ""
    ended_at: str = ""
    error: str = ""
    inputs: list[DatasetRef] = field(default_factory=list)
    outputs: list[DatasetRef] = field(default_factory=list)
    row_counts: dict[DatasetRef, int] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        start, end = parse_time(self.started_at), parse_time(self.ended_at)
        return (end - start).total_seconds() if start and end else None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "job": str(self.job), "state": self.state,
            "started_at": self.started_at, "ended_at": self.ended_at, "duration_s": self.duration_s,
            "error": self.error, "outputs": [str(d) for d in self.outputs],
            "row_counts": {str(d): n for d, n in self.row_counts.items()},
        }


@dataclass
class QualitySample:
    """Quality metrics of a dataset seen in one event (``dataQualityMetrics`` or ``outputStatistics``)."""

    run_id: str
    time: str
    row_count: int | None
    null_rates: dict[str, float]


class AuditView:
    """Versions, runs and quality of every dataset, built from events in time order."""

    def __init__(self) -> None:
        self._versions: dict[DatasetRef, list[DatasetVersion]] = {}
        self._runs: dict[str, RunRecord] = {}
        self._quality: dict[DatasetRef, list[QualitySample]] = {}
        self._last_key: dict[DatasetRef, tuple[Any, ...]] = {}
        self._last_fields: dict[DatasetRef, Any] = {}

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> "AuditView":
        view = cls()
        for event in sorted(events, key=lambda e: str(e.get("eventTime") or "")):
            view.add_event(event)
        return view

    def add_event(self, event: Mapping[str, Any]) -> None:
        job_json = event.get("job") or {}
        job = JobRef(str(job_json.get("namespace", "")), str(job_json.get("name", "")))
        run_json = event.get("run") or {}
        run_id = str(run_json.get("runId", ""))
        when = str(event.get("eventTime") or "")
        state = str(event.get("eventType") or "")
        run = self._runs.setdefault(run_id, RunRecord(run_id, job, started_at=when))
        run.state = state or run.state
        if state == "START" or not run.started_at:
            run.started_at = when
        if state in FINAL_STATES:
            run.ended_at = when
        error = ((run_json.get("facets") or {}).get("errorMessage") or {}).get("message")
        if error:
            run.error = str(error)
        for ds_json in event.get("inputs") or []:
            ref = _ref(ds_json)
            if ref not in run.inputs:
                run.inputs.append(ref)
            self._add_quality(ref, run_id, when, ds_json.get("inputFacets") or {})
        for ds_json in event.get("outputs") or []:
            ref = _ref(ds_json)
            if ref not in run.outputs:
                run.outputs.append(ref)
            facets = ds_json.get("facets") or {}
            self._add_version(ref, facets, run_id, job, when)
            stats = (ds_json.get("outputFacets") or {}).get("outputStatistics") or {}
            if stats.get("rowCount") is not None:
                run.row_counts[ref] = int(stats["rowCount"])
                if state in FINAL_STATES:
                    self._quality.setdefault(ref, []).append(QualitySample(run_id, when, int(stats["rowCount"]), {}))

    # ------------------------------------------------------------------ queries

    def dataset_versions(self, dataset: DatasetRef) -> list[DatasetVersion]:
        """Schema versions of a dataset, oldest first."""
        return list(self._versions.get(dataset, []))

    def runs(self, job: JobRef | None = None) -> list[RunRecord]:
        """Runs (oldest first), of one job or all."""
        found = [r for r in self._runs.values() if job is None or r.job == job]
        return sorted(found, key=lambda r: (r.started_at, r.run_id))

    def runs_writing(self, dataset: DatasetRef) -> list[RunRecord]:
        """Runs that wrote ``dataset``, oldest first."""
        return [r for r in self.runs() if dataset in r.outputs]

    def quality(self, dataset: DatasetRef) -> list[QualitySample]:
        """Row counts and null rates seen for ``dataset``, oldest first."""
        return list(self._quality.get(dataset, []))

    # ------------------------------------------------------------------ internals

    def _add_version(self, ref: DatasetRef, facets: Mapping[str, Any], run_id: str, job: JobRef, when: str) -> None:
        fields = (facets.get("schema") or {}).get("fields")
        if not fields:
            return
        versions = self._versions.setdefault(ref, [])
        if versions and self._last_fields.get(ref) == fields:
            return  # the common case: a run writing the schema it wrote before (compared in C)
        self._last_fields[ref] = fields
        key = tuple((f.get("name"), f.get("type")) for f in fields)
        if versions and self._last_key.get(ref) == key:
            return  # only descriptions or tags changed: the same version
        self._last_key[ref] = key
        clean = [{k: f.get(k) for k in ("name", "type", "description") if f.get(k) is not None} for f in fields]
        digest = hashlib.sha1(json.dumps(key).encode("utf-8")).hexdigest()[:12]
        versions.append(DatasetVersion(
            version=len(versions) + 1, fields=clean, run_id=run_id, job=job, created_at=when,
            lifecycle=facets.get("lifecycleStateChange"), schema_hash=digest,
        ))

    def _add_quality(self, ref: DatasetRef, run_id: str, when: str, facets: Mapping[str, Any]) -> None:
        metrics = facets.get("dataQualityMetrics")
        if not isinstance(metrics, Mapping):
            return
        rows = metrics.get("rowCount")
        null_rates = {}
        for column, m in (metrics.get("columnMetrics") or {}).items():
            nulls, count = m.get("nullCount"), m.get("count")
            total = rows if rows else ((nulls or 0) + (count or 0))
            if nulls is not None and total:
                null_rates[column] = float(nulls) / float(total)
        self._quality.setdefault(ref, []).append(
            QualitySample(run_id, when, int(rows) if rows is not None else None, null_rates)
        )


def _ref(data: Mapping[str, Any]) -> DatasetRef:
    return dataset_ref(str(data.get("namespace", "")), str(data.get("name", "")))


def parse_time(text: str) -> datetime | None:
    """An OpenLineage event time (RFC 3339) as an aware datetime, or None."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class LatestRuns:
    """Keeps, while events stream past in time order, only each job's latest run.

    The graph needs just those events; holding every event of a large store in memory costs
    far more than reading them (a 50,000-event store is gigabytes of Python dicts).
    """

    def __init__(self) -> None:
        self._current: dict[tuple[str, str], str] = {}
        self._events: dict[str, list[Mapping[str, Any]]] = {}
        self._first: dict[str, str] = {}

    def add(self, event: Mapping[str, Any]) -> None:
        run_id = str((event.get("run") or {}).get("runId", ""))
        job_json = event.get("job") or {}
        job = (str(job_json.get("namespace", "")), str(job_json.get("name", "")))
        when = str(event.get("eventTime") or "")
        current = self._current.get(job)
        if current == run_id:
            self._events[run_id].append(event)
            return
        if run_id in self._first:  # a late event of a run already replaced
            return
        self._first[run_id] = when
        if current is None or (when, run_id) > (self._first[current], current):
            if current is not None:
                self._events.pop(current, None)
            self._current[job] = run_id
            self._events[run_id] = [event]

    def events(self) -> list[Mapping[str, Any]]:
        return sorted((e for run in self._events.values() for e in run), key=lambda e: str(e.get("eventTime") or ""))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while reading a store.

    Reading allocates millions of small acyclic objects, and repeated full collections over
    the growing heap cost more than the reading itself (2.5x on a 5,000-event store). What
    was built is then frozen out of later collections: the checks would rescan it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def load_lineage(events: Iterable[Mapping[str, Any]]) -> tuple[LineageGraph, "AuditView", int]:
    """One pass over a store's events (oldest first): the graph, the view and the count."""
    with gc_paused():
        view = AuditView()
        latest = LatestRuns()
        count = 0
        for event in events:
            view.add_event(event)
            latest.add(event)
            count += 1
        return LineageGraph.from_events(latest.events()), view, count
