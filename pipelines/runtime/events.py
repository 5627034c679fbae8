"""The one place pipeline runs become OpenLineage RunEvents.

A :class:`RunContext` is one run of one job. Entering it emits START; leaving it emits
COMPLETE, or FAIL with an ``errorMessage`` facet when an exception escapes (the exception is
re-raised: lineage never swallows a pipeline's error, and an emit failure never causes one).
A pipeline run is the parent; each step is a child run carrying the ``parent`` facet.

Every event carries: a UUIDv7 run id, ``nominalTime``, ``processing_engine``, and the job
facets ``jobType``, ``sourceCodeLocation``, ``ownership``, ``documentation`` (and ``sql``
for SQL steps). Outputs carry ``schema``, ``columnLineage`` (only in an event that has the
schema too) and ``outputStatistics``;
inputs carry ``dataQualityMetrics`` and ``dataQualityAssertions``.

Events pass :func:`lineage_auditor.scrub.scrub` and an exact-match scrub of the run's known
secrets (DSN password, API token) before they leave, so neither can reach a store.
"""

from __future__ import annotations

import logging
import platform
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Protocol

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    RunFacet,
    set_producer,
    documentation_job,
    error_message_run,
    job_type_job,
    nominal_time_run,
    output_statistics_output_dataset,
    ownership_job,
    parent_run,
    processing_engine_run,
    schema_dataset,
    source_code_location_job,
    sql_job,
)
from openlineage.client.serde import Serde
from openlineage.client.uuid import generate_new_uuid

from lineage_auditor.governance import COST_FACET, RUN_BY_FACET
from lineage_auditor.scrub import REDACTED, scrub
from lineage_auditor.facets import PRODUCER, column_lineage_facet
from lineage_auditor.times import iso
from lineage_auditor.model import DatasetLineage, DatasetRef
from pipelines.runtime.codeloc import package_version, source_code_location

log = logging.getLogger(__name__)
set_producer(PRODUCER)  # facets built here name this product as their producer

INTEGRATION = "LINEAGE_AUDIT"
#: Run facets of our own (not in the OpenLineage spec), by key.
DEGRADED_FACET = "lineageAudit_degraded"
STATS_FACET = "lineageAudit_stats"
CUSTOM_FACETS = (DEGRADED_FACET, STATS_FACET, RUN_BY_FACET, COST_FACET)
#: Run facets a step's run takes from its pipeline's run (a step runs as its pipeline runs).
INHERITED_FACETS = (RUN_BY_FACET,)
#: Where their JSON schemas live (``pipelines/runtime/facets/`` in the repository).
FACET_SCHEMAS = f"{PRODUCER}/blob/main/pipelines/runtime/facets"


class Emitter(Protocol):
    """What the runtime needs from the emission layer: ``emit`` that never raises."""

    def emit(self, event: Any) -> bool: ...


@attr.define
class DegradedRunFacet(RunFacet):
    """The run finished on incomplete or stale input.

    Either a source stayed down and its last snapshot was used (the snapshot fields say how
    old), or some pages could not be read and the previous rows for them were kept
    (``skippedPages``).
    """

    reason: str
    source: str
    snapshotTakenAt: str | None = attr.field(default=None)  # noqa: N815
    snapshotAgeSeconds: float | None = attr.field(default=None)  # noqa: N815
    maxStalenessSeconds: float | None = attr.field(default=None)  # noqa: N815
    skippedPages: list[int] | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return f"{FACET_SCHEMAS}/DegradedRunFacet.json#/$defs/DegradedRunFacet"


@attr.define
class RunStatsRunFacet(RunFacet):
    """Counts a pipeline step wants on record: rows read, loaded, quarantined, dead-lettered."""

    counts: dict[str, int]

    @staticmethod
    def _get_schema() -> str:
        return f"{FACET_SCHEMAS}/RunStatsRunFacet.json#/$defs/RunStatsRunFacet"


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class JobSpec:
    """What a job is, independent of any run: the source of its job facets."""

    namespace: str
    name: str
    description: str
    owners: Sequence[tuple[str, str]]
    code_file: str
    job_type: str = "TASK"
    sql: str | None = None
    sql_dialect: str | None = None

    def facets(self) -> dict[str, Any]:
        facets: dict[str, Any] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration=INTEGRATION, jobType=self.job_type
            ),
            "documentation": documentation_job.DocumentationJobFacet(
                description=self.description, contentType="text/plain"
            ),
            "ownership": ownership_job.OwnershipJobFacet(
                owners=[ownership_job.Owner(name=name, type=kind) for name, kind in self.owners]
            ),
            "sourceCodeLocation": source_code_location_job.SourceCodeLocationJobFacet(
                **source_code_location(self.code_file)  # type: ignore[arg-type]  # the facet's fields are all str
            ),
        }
        if self.sql:
            facets["sql"] = sql_job.SQLJobFacet(query=self.sql, dialect=self.sql_dialect)
        return facets


class EventLog:
    """Sends events through an emitter, keeps a copy of each, and counts failed deliveries.

    ``secrets`` are exact values (a DSN password, an API token) replaced by ``***`` wherever
    they appear, on top of the pattern-based :func:`scrub`.
    """

    def __init__(self, emitter: Emitter | None, *, secrets: Sequence[str] = ()) -> None:
        self.emitter = emitter
        self.events: list[dict[str, Any]] = []
        self.outcomes: list[bool] = []  # per event: acknowledged by the target (else spooled or lost)
        self.delivered = 0
        self.failed = 0
        self._secrets = {s for s in secrets if s and len(s) >= 3}

    def add_secret(self, value: str | None) -> None:
        if value and len(value) >= 3:
            self._secrets.add(value)

    def redact(self, value: Any) -> Any:
        """``value`` (JSON-like) with every known secret and secret-shaped string removed."""
        cleaned = scrub(value)
        return _replace_secrets(cleaned, sorted(self._secrets, key=len, reverse=True)) if self._secrets else cleaned

    def emit(self, event: RunEvent) -> dict[str, Any]:
        payload = self.redact(Serde.to_dict(event))
        self.events.append(payload)
        if self.emitter is None:
            self.outcomes.append(True)
            return payload
        try:
            ok = bool(self.emitter.emit(payload))
        except Exception as exc:  # the emitter promises not to raise; a pipeline must not die if it does
            log.warning("lineage emit failed: %s", self.redact(str(exc)))
            ok = False
        self.outcomes.append(ok)
        if ok:
            self.delivered += 1
        else:
            self.failed += 1
        return payload

    def undelivered_since(self, first: int) -> int:
        """Events from index ``first`` on that the target did not acknowledge."""
        return sum(1 for ok in self.outcomes[first:] if not ok)


def _replace_secrets(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: _replace_secrets(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_secrets(v, secrets) for v in value]
    return value


@dataclass
class _Input:
    ref: DatasetRef
    facets: dict[str, Any] = field(default_factory=dict)
    input_facets: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Output:
    ref: DatasetRef
    facets: dict[str, Any] = field(default_factory=dict)
    output_facets: dict[str, Any] = field(default_factory=dict)


def schema_facet(fields: Sequence[tuple[str, ...]]) -> schema_dataset.SchemaDatasetFacet:
    """A ``schema`` facet from ``(name, type[, description])`` tuples."""
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(
                name=f[0], type=f[1], description=(f[2] if len(f) > 2 and f[2] else None)
            )
            for f in fields
        ]
    )


class RunContext:
    """One run of one job; use as a context manager (START on enter, COMPLETE/FAIL on exit)."""

    def __init__(
        self,
        events: EventLog,
        job: JobSpec,
        *,
        parent: "RunContext | None" = None,
        nominal: tuple[datetime, datetime | None] | None = None,
    ) -> None:
        self.events = events
        self.job = job
        self.parent = parent
        self.nominal: tuple[datetime, datetime | None] | None = nominal if nominal is not None else (parent.nominal if parent else None)
        self.run_id = str(generate_new_uuid())
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.state: str = "NEW"
        self.error: str | None = None
        self._inputs: dict[DatasetRef, _Input] = {}
        self._outputs: dict[DatasetRef, _Output] = {}
        self._run_facets: dict[str, Any] = {}
        self._first_event = 0  # index in the event log of this run's START

    # ---------------------------------------------------------------- what the run touched

    def add_input(
        self,
        ref: DatasetRef,
        *,
        schema: Sequence[tuple[str, ...]] | None = None,
        metrics: Any = None,
        assertions: Any = None,
    ) -> None:
        """Record an input dataset with its schema and data-quality input facets."""
        entry = self._inputs.setdefault(ref, _Input(ref))
        if schema:
            entry.facets["schema"] = schema_facet(schema)
        if metrics is not None:
            entry.input_facets["dataQualityMetrics"] = metrics
        if assertions is not None:
            entry.input_facets["dataQualityAssertions"] = assertions

    def add_output(
        self,
        ref: DatasetRef,
        *,
        schema: Sequence[tuple[str, ...]] | None = None,
        lineage: DatasetLineage | None = None,
        rows: int | None = None,
    ) -> None:
        """Record an output dataset with its schema, column lineage and row count.

        Column lineage travels only in events that carry the schema too (:func:`_sendable`).
        """
        entry = self._outputs.setdefault(ref, _Output(ref))
        if schema:
            entry.facets["schema"] = schema_facet(schema)
        if lineage is not None:
            entry.facets["columnLineage"] = column_lineage_facet(lineage)
        if rows is not None:
            entry.output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=int(rows)
            )

    def add_run_facet(self, key: str, facet: RunFacet) -> None:
        """Attach a run facet (our own facets use the keys in ``CUSTOM_FACETS``)."""
        self._run_facets[key] = facet

    def has_run_facet(self, key: str) -> bool:
        return key in self._run_facets

    def child(self, job: JobSpec) -> "RunContext":
        """A step of this run: same nominal time, ``parent`` facet pointing here, the inherited facets."""
        step = RunContext(self.events, job, parent=self)
        step._run_facets.update((k, self._run_facets[k]) for k in INHERITED_FACETS if k in self._run_facets)
        return step

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> "RunContext":
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.complete()
        else:
            self.fail(exc)

    def start(self) -> None:
        self.started_at = now()
        self.state = "RUNNING"
        self._first_event = len(self.events.outcomes)  # this run's events are the log's from here on
        self._emit(RunState.START, self.started_at)

    def complete(self) -> None:
        self.ended_at = now()
        self.state = "COMPLETE"
        self._emit(RunState.COMPLETE, self.ended_at)

    def fail(self, exc: BaseException) -> None:
        self.ended_at = now()
        self.state = "FAIL"
        message = str(exc).strip() or type(exc).__name__
        self.error = self.events.redact(message)
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self._run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=self.error, programmingLanguage="python", stackTrace=stack
        )
        self._emit(RunState.FAIL, self.ended_at)

    @property
    def duration_s(self) -> float:
        if not self.started_at:
            return 0.0
        return ((self.ended_at or now()) - self.started_at).total_seconds()

    # ---------------------------------------------------------------- event assembly

    def _base_run_facets(self) -> dict[str, Any]:
        facets: dict[str, Any] = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=package_version(),
                name="lineage-audit",
                openlineageAdapterVersion=_openlineage_version(),
            ),
        }
        if self.nominal:
            start, end = self.nominal
            facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
                nominalStartTime=iso(start), nominalEndTime=iso(end) if end else None
            )
        if self.parent is not None:
            root = self.parent._root()
            facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=self.parent.run_id),
                job=parent_run.Job(namespace=self.parent.job.namespace, name=self.parent.job.name),
                root=parent_run.Root(
                    run=parent_run.RootRun(runId=root.run_id),
                    job=parent_run.RootJob(namespace=root.job.namespace, name=root.job.name),
                ),
            )
        return facets

    def _with_emit_failures(self, stats: Any) -> RunStatsRunFacet:
        """The run's stats with ``lineageEmitFailures``: its events (its steps' included) the lineage
        target did not take so far. They wait in the spool; the final event says how many there
        were, so the central store learns of emit failures that happened on the producer's host
        (if this event fails too, it is spooled and brings the count when it is replayed)."""
        counts = dict(stats.counts) if isinstance(stats, RunStatsRunFacet) else {}
        counts["lineageEmitFailures"] = self.events.undelivered_since(self._first_event)
        return RunStatsRunFacet(counts=counts)

    def _root(self) -> "RunContext":
        return self.parent._root() if self.parent is not None else self

    def datasets(self) -> tuple[list[InputDataset], list[OutputDataset]]:
        """The inputs and outputs recorded so far, as an event carries them."""
        inputs = [InputDataset(namespace=i.ref.namespace, name=i.ref.name, facets=i.facets, inputFacets=i.input_facets)
                  for i in self._inputs.values()]
        outputs = [OutputDataset(namespace=o.ref.namespace, name=o.ref.name, facets=_sendable(o.facets),
                                 outputFacets=o.output_facets)
                   for o in self._outputs.values()]
        return inputs, outputs

    @property
    def run_facets(self) -> dict[str, Any]:
        """The run facets added to this run (``errorMessage`` after a failure, our own, ...)."""
        return dict(self._run_facets)

    def _emit(self, state: RunState, moment: datetime) -> None:
        run_facets = {**self._base_run_facets(), **self._run_facets}
        if self.parent is None and state is not RunState.START:
            run_facets[STATS_FACET] = self._with_emit_failures(run_facets.get(STATS_FACET))
        inputs, outputs = self.datasets()
        event = RunEvent(
            eventType=state,
            eventTime=iso(moment),
            run=Run(runId=self.run_id, facets=run_facets),
            job=Job(namespace=self.job.namespace, name=self.job.name, facets=self.job.facets()),
            inputs=inputs,
            outputs=outputs,
            producer=PRODUCER,
        )
        self.events.emit(event)


def _sendable(facets: dict[str, Any]) -> dict[str, Any]:
    """An output's facets as an event may carry them: column lineage only with a schema.

    A SQL step's START is emitted before its table exists, so its schema is not known yet;
    column lineage without it makes a consumer such as Marquez find every lineage field
    missing from the dataset (it logs an error per column and keeps a field-less version).
    The lineage is held back until the event that has the schema (COMPLETE). A schema
    guessed from the lineage instead would differ from the warehouse's (types, at least)
    and read as a schema change inside one run.
    """
    if "columnLineage" in facets and "schema" not in facets:
        return {k: v for k, v in facets.items() if k != "columnLineage"}
    return facets


def _openlineage_version() -> str:
    try:
        return metadata.version("openlineage-python")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return platform.python_version()
