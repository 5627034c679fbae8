"""The local runner: a spec's steps in dependency order, with retries, lineage and checks.

One OpenLineage parent run for the pipeline and a child run per step (the same facets the
reference pipelines emit: schema, column lineage from the plan, row counts, SQL, ownership,
data-quality assertions). Writes are atomic and a rerun of the same day leaves the same rows:
``CREATE TABLE ... AS`` and ``replace`` build a new table and swap it in, ``upsert`` deletes
the incoming keys and inserts in one transaction, ``append`` is the one mode that adds.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time as day_time, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import sqlglot
from sqlglot import expressions as exp

from lineage_auditor.errors import ConfigError, LineageAuditError, PipelineError
from lineage_auditor.model import ColumnRef, DatasetLineage, DatasetRef, InputField, OutputField
from lineage_auditor.retry import Deadline, GaveUp, Retryable, RetryPolicy, retry_call
from lineage_auditor.governance import COST_FACET, RUN_BY_FACET, Identity, resolve_identity
from pipelines.dsl.connectors import ConnectorResult, DatasetIO
from pipelines.dsl.cost import StepCost, measure_step
from pipelines.dsl.governance import Governance, judge_run, run_by_facet
from pipelines.dsl.listing import JOB_NAMESPACE
from pipelines.dsl.loader import LoadedSpec
from lineage_auditor.durations import display_duration
from lineage_auditor.times import iso
from pipelines.dsl import snapshots
from pipelines.dsl.model import (
    Check,
    CheckSeverity,
    FileFormat,
    LoadMode,
    OnSourceFailure,
    Pipeline,
    Retries,
    RetryOn,
    Step,
    StepKind,
)
from pipelines.dsl.plan import PRODUCERS, Plan, StepPlan, copied_lineage, plan_spec
from pipelines.dsl.source_quality import source_facets
from pipelines.runtime.events import DEGRADED_FACET, JobSpec, RunContext
from pipelines.runtime.naming import file_dataset, http_dataset, public_url
from pipelines.runtime.run import Environment, RunSummary, quiet, summarize
from pipelines.runtime.targets import Target, quote

R = TypeVar("R")
STEP_DEADLINE = 24 * 3600.0  # a step without a timeout still ends its retries within a day


class CheckFailed(PipelineError):
    """A data-quality check with severity error found failing rows."""


@dataclass
class StepContext:
    """What a ``python`` step's function receives: the run's day and params, and the warehouse."""

    day: date
    params: Mapping[str, Any]
    target: Target
    step: StepPlan

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self.target.query(sql)

    def execute(self, sql: str) -> None:
        with self.target.connect() as conn:
            conn.execute(sql)


@dataclass
class _Outcome:
    rows: dict[str, int] = field(default_factory=dict)
    assertions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rejected: int = 0  # records dead-lettered
    connector: Any = None  # a named connector's ConnectorResult: the datasets it read and wrote
    dead_letter: str | None = None  # the file the rejected records went to


def run_spec(loaded: LoadedSpec, day: date, *, params: Mapping[str, str] | None = None, target: str | None = None,
             lineage: str | None = None, home: str | Path | None = None, offline: bool = False,
             env: Environment | None = None, progress: Callable[[str], None] = quiet,
             sleep: Callable[[float], None] = time.sleep, governance: Governance | None = None,
             identity: Identity | None = None) -> RunSummary:
    """Run one spec for one day; the summary says how it went (a failed step fails the run).

    ``offline``: connectors replay recorded responses instead of calling live sources. ``env``:
    an open environment to run in (several specs sharing one warehouse and one emitter, as the
    demo does); otherwise one is opened for ``target``, ``lineage`` and ``home``. ``governance``
    is the policy in force (None: nothing is enforced), ``identity`` who runs it (default:
    :func:`resolve_identity`); a run the policy denies fails before any step, its FAIL event
    saying why.
    """
    if env is None:
        with Environment.open(target or loaded.pipeline.target or None, lineage=lineage, home=home) as opened:
            return run_spec(loaded, day, params=params, offline=offline, env=opened, progress=progress, sleep=sleep,
                            governance=governance, identity=identity)
    spec = loaded.pipeline
    gov, who = governance or Governance(None, "none given"), identity or resolve_identity()
    plan = plan_spec(loaded, day, params, namespace=env.target.namespace)
    plan.offline = offline
    parent = RunContext(env.events, pipeline_job(loaded), nominal=nominal_window(day))
    verdict = judge_run(loaded, plan, gov, who, naming=env.target.dataset)
    parent.add_run_facet(RUN_BY_FACET, run_by_facet(loaded, who, gov, verdict))  # its steps' runs inherit it
    first_event = len(env.events.events)
    results: list[StepResult] = []
    try:
        with parent:
            verdict.enforce()
            for step_plan in plan.steps:
                progress(f"{spec.id}: {step_plan.id} [{step_plan.kind.value}]")
                step = prepare_step(loaded, plan, step_plan.id, env, pricing=gov.pricing(env.target.dialect))
                results.append(_run_step(step, parent, sleep))
    except LineageAuditError:
        pass  # the FAIL events carry it; the summary reports it
    dead_letters = [r.dead_letter for r in results if r.dead_letter]
    return summarize(parent, env, first_event=first_event, degraded=parent.has_run_facet(DEGRADED_FACET),
                     counts=_counts(plan, results), dead_letter_file=", ".join(dead_letters) or None)


def _counts(plan: Plan, results: list["StepResult"]) -> dict[str, int]:
    """Rows the run published (written to tables no step of it builds on; checks only look) and
    records it set aside."""
    read = {table.lower() for step in plan.steps if step.kind in PRODUCERS for table in step.reads}
    published = sum(rows for result in results for table, rows in result.rows.items() if table.lower() not in read)
    return {"rows_loaded": published, "dead_letters": sum(r.rejected for r in results)}


def nominal_window(day: date) -> tuple[datetime, datetime]:
    """The day a run is for, as its OpenLineage nominal start and end (UTC midnight to midnight)."""
    start = datetime.combine(day, day_time(0), tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def pipeline_job(loaded: LoadedSpec) -> JobSpec:
    """The job of the pipeline as a whole, named by the spec's id: the parent of its steps' jobs."""
    spec = loaded.pipeline
    return _job(loaded, spec.id, spec.description or f"pipeline {spec.id}", "JOB")


def _job(loaded: LoadedSpec, name: str, description: str, job_type: str, sql: str | None = None,
         dialect: str | None = None, code_file: Path | None = None) -> JobSpec:
    spec = loaded.pipeline
    return JobSpec(namespace=JOB_NAMESPACE, name=name, description=description,
                   owners=[(o.name, o.type) for o in spec.owners] or [(f"team:{spec.team}", "MAINTAINER")],
                   code_file=str(code_file or loaded.path), job_type=job_type, sql=sql, sql_dialect=dialect)


def _step_job(loaded: LoadedSpec, step: Step, step_plan: StepPlan, target: Target) -> JobSpec:
    """A step's job: a SQL step records its SQL as it runs on ``target`` (transpiled from the
    spec's dialect) and its SQL file as the code; other steps point at the spec."""
    name, description = f"{loaded.pipeline.id}.{step.id}", f"{step.kind.value} step {step.id}"
    if step.sql is None or not step_plan.sql:
        return _job(loaded, name, description, "TASK")
    try:
        sql = ";\n".join(sqlglot.transpile(step_plan.sql, read=step.sql.dialect, write=target.dialect, comments=False))
    except sqlglot.errors.SqlglotError:
        sql, dialect = step_plan.sql, step.sql.dialect  # recorded as written; running it reports the error
    else:
        dialect = target.dialect
    code = (loaded.path.parent / step.sql.file) if step.sql.file else None
    return _job(loaded, name, description, "QUERY", sql, dialect, code)


@dataclass
class StepResult:
    """What one step read and wrote, with every facet, ready for whoever reports it.

    The local runner puts it on the step's :class:`RunContext`; the Airflow operator returns it
    to the OpenLineage provider. ``run_facets`` are the step run's own (``lineageAudit_degraded``
    when it ran on a snapshot). A failed error-severity check is kept in ``check_failure`` and
    raised by :meth:`raise_for_checks` after the result is reported, so the FAIL event still
    carries the assertions.
    """

    inputs: list[DatasetIO] = field(default_factory=list)
    outputs: list[DatasetIO] = field(default_factory=list)
    run_facets: dict[str, Any] = field(default_factory=dict)
    check_failure: CheckFailed | None = None
    rows: dict[str, int] = field(default_factory=dict)  # rows written, per table
    rejected: int = 0  # records set aside (dead-lettered or quarantined)
    dead_letter: str | None = None  # the file they went to

    def report(self, run: RunContext) -> None:
        """Record the result on a run: its COMPLETE (or FAIL) event carries all of it."""
        for io in self.inputs:
            run.add_input(io.ref, schema=io.schema, metrics=io.metrics, assertions=io.assertions)
        for io in self.outputs:
            run.add_output(io.ref, schema=io.schema, lineage=io.lineage, rows=io.rows)
        for key, facet in self.run_facets.items():
            run.add_run_facet(key, facet)

    def raise_for_checks(self) -> None:
        if self.check_failure is not None:
            raise self.check_failure


@dataclass
class StepRun:
    """One step of a planned spec, ready to run on its own (the unit an Airflow task runs).

    ``inputs`` are the tables the step reads, with their schemas as they are before it runs
    (what a START event says); :meth:`execute` runs the step and returns what it did.
    ``plan.steps`` must hold the step's plan with ``run_id`` set to the OpenLineage run the
    step runs as (connectors stamp rows with it). ``pricing`` is the cost model's rates and
    currency for the target; ``run_facets`` go into every result (``lineageAudit_runBy``
    where no parent run carries it).
    """

    loaded: LoadedSpec
    plan: Plan
    step: Step
    step_plan: StepPlan
    env: Environment
    job: JobSpec
    inputs: list[DatasetIO]
    pricing: tuple[Any, str | None] = (None, None)
    run_facets: dict[str, Any] = field(default_factory=dict)
    cost: StepCost | None = None  # what the last execute cost (its facet, also when it failed)

    def execute(self, *, retry: bool = True, last_attempt: bool = True,
                sleep: Callable[[float], None] = time.sleep) -> StepResult:
        """Run the step: with the spec's retries (``retry``) or once (an orchestrator retries it).

        An extract whose source failed falls back to its last snapshot (``on_source_failure:
        use_last_snapshot``) only on the ``last_attempt``. Raises the step's error when it fails.
        What it cost is measured around it: the ``lineageAudit_cost`` facet is in the result's
        run facets, and in ``cost.facet`` when the step fails.
        """
        with measure_step(None, self.env.target, *self.pricing) as self.cost:
            result = self._attempts(retry, last_attempt, sleep)
            extract = self.step.kind is StepKind.EXTRACT
            self.cost.wrote(result.rows, read=sum(result.rows.values()) + result.rejected if extract else None)
        result.run_facets.update({**self.run_facets, COST_FACET: self.cost.facet})
        return result

    def _attempts(self, retry: bool, last_attempt: bool, sleep: Callable[[float], None]) -> StepResult:
        step, spec = self.step, self.loaded.pipeline
        policy, deadline = _retry_policy(step, spec, retry=retry)
        timeout = step.timeout or spec.timeout

        def attempt() -> _Outcome:
            try:
                try:
                    with self.env.target.time_limit(deadline.remaining() if timeout else None):
                        return _execute(step, self.step_plan, self.plan, self.env)
                except PipelineError as exc:
                    if timeout and deadline.expired():  # the warehouse stopped the statement at the limit
                        raise TimeoutError(f"step {step.id}: stopped at its timeout of {display_duration(timeout.total_seconds())} "
                                           f"({exc.message})") from None
                    raise
            except (PipelineError, TimeoutError) as exc:
                if self.retryable(exc):
                    raise Retryable(str(exc)) from exc
                if isinstance(exc, TimeoutError):
                    raise PipelineError(str(exc)) from None  # ours to report, not a crash
                raise

        try:
            try:
                outcome = retry_call(attempt, policy=policy, deadline=deadline, sleep=sleep)
            except GaveUp as exc:
                if policy.max_attempts == 1:  # no retries asked for: the failure as it is
                    raise PipelineError(exc.last.reason) from None
                raise PipelineError(f"step {step.id}: {exc.why}: {exc.last.reason}") from None
        except PipelineError as exc:
            if (not last_attempt or step.kind is not StepKind.EXTRACT
                    or spec.on_source_failure is not OnSourceFailure.USE_LAST_SNAPSHOT):
                raise
            return self._last_snapshot(exc)
        if step.kind is StepKind.EXTRACT:
            snapshots.record(self.env.home, spec.id, step.id, self.step_plan.writes)
        return self._result(outcome)

    def retryable(self, exc: BaseException) -> bool:
        """Whether the spec's retries (``retries.on``) cover this failure of the step."""
        if not isinstance(exc, (PipelineError, TimeoutError)):
            return False  # a bug in a step's code fails the same way again
        return _retryable(exc, self.step.retries or self.loaded.pipeline.retries)

    def _result(self, outcome: _Outcome) -> StepResult:
        result = StepResult(inputs=list(self.inputs), rows=dict(outcome.rows), rejected=outcome.rejected,
                            dead_letter=outcome.dead_letter)
        if outcome.connector is not None:  # a connector knows what it read and wrote
            result.inputs.extend(outcome.connector.inputs)
            result.outputs.extend(outcome.connector.outputs)
            return result
        target = self.env.target
        lineage = {d.dataset.name.lower(): _in_target(d, target) for d in self.step_plan.lineage}
        for table in self.step_plan.writes:
            result.outputs.append(DatasetIO(target.dataset(table), schema=_schema(target, table),
                                            lineage=lineage.get(table.lower()), rows=outcome.rows.get(table)))
        for table, assertions in outcome.assertions.items():
            result.inputs.append(DatasetIO(target.dataset(table), assertions=_assertions_facet(assertions)))
        failed = [a for items in outcome.assertions.values() for a in items if not a["success"] and a["severity"] == "error"]
        if failed:
            result.check_failure = CheckFailed(
                f"step {self.step.id}: {len(failed)} check{'s' if len(failed) > 1 else ''} failed: "
                + "; ".join(a["description"] for a in failed))
        return result

    def _last_snapshot(self, failure: PipelineError) -> StepResult:
        """The source stayed down: go on with the tables its last good extract left, if young enough.

        The run is marked degraded (the ``lineageAudit_degraded`` facet says how old the
        snapshot is); without a snapshot younger than ``max_staleness`` the step fails as it would.
        """
        from pipelines.runtime.events import DegradedRunFacet

        spec, step, env = self.loaded.pipeline, self.step, self.env
        assert spec.max_staleness is not None
        taken = snapshots.taken_at(env.home, spec.id, step.id)
        limit = spec.max_staleness.total_seconds()
        age = (datetime.now(timezone.utc) - taken).total_seconds() if taken else None
        present = all(env.target.table_exists(t) for t in self.step_plan.writes)
        if taken is None or age is None or age > limit or not present:
            why = ("no earlier snapshot" if taken is None else "its tables are gone" if not present
                   else f"the last snapshot is {display_duration(age or 0)} old")
            raise PipelineError(f"{failure.message}; {why} (max_staleness {display_duration(limit)})") from None
        facet = DegradedRunFacet(reason=f"source failed, using the snapshot of {iso(taken)}: {failure.message}",
                                 source=step.id, snapshotTakenAt=iso(taken), snapshotAgeSeconds=round(age, 1),
                                 maxStalenessSeconds=limit)
        outputs = [DatasetIO(env.target.dataset(t), schema=_schema(env.target, t)) for t in self.step_plan.writes]
        return StepResult(inputs=list(self.inputs), outputs=outputs, run_facets={DEGRADED_FACET: facet})


def prepare_step(loaded: LoadedSpec, plan: Plan, step_id: str, env: Environment, *,
                 pricing: tuple[Any, str | None] = (None, None), run_facets: dict[str, Any] | None = None) -> StepRun:
    """Step ``step_id`` of ``plan`` ready to run in ``env``: its job and the tables it reads
    (``pricing`` and ``run_facets``: see :class:`StepRun`)."""
    step = next((s for s in loaded.pipeline.steps if s.id == step_id), None)
    step_plan = next((s for s in plan.steps if s.id == step_id), None)
    if step is None or step_plan is None:
        raise ConfigError(f"pipeline {loaded.pipeline.id} has no step {step_id!r}", file=str(loaded.path))
    job = _step_job(loaded, step, step_plan, env.target)
    inputs = [DatasetIO(env.target.dataset(t), schema=_schema(env.target, t)) for t in step_plan.reads]
    return StepRun(loaded, plan, step, step_plan, env, job, inputs, pricing, dict(run_facets or {}))


def _run_step(step: StepRun, parent: RunContext, sleep: Callable[[float], None]) -> StepResult:
    """One step as a child run of the pipeline's: START with its inputs, COMPLETE or FAIL with the rest."""
    with parent.child(step.job) as run:
        step.step_plan.run_id = run.run_id
        StepResult(inputs=step.inputs).report(run)
        try:
            result = step.execute(sleep=sleep)
        finally:
            if step.cost is not None and step.cost.facet is not None:
                run.add_run_facet(COST_FACET, step.cost.facet)  # a step that failed has cost something too
        result.report(run)
        if DEGRADED_FACET in result.run_facets:
            parent.add_run_facet(DEGRADED_FACET, result.run_facets[DEGRADED_FACET])
        result.raise_for_checks()
        return result


def _in_target(lineage: DatasetLineage, target: Target) -> DatasetLineage:
    """Planned lineage (tables by their SQL names) with every dataset named as the target names it,
    so a step's inputs are the very datasets the steps before it reported as outputs."""

    def column(ref: ColumnRef) -> ColumnRef:
        return ColumnRef(target.dataset(ref.dataset.name), ref.field)

    def inputs(fields: list[InputField]) -> list[InputField]:
        return [InputField(column(f.column), list(f.transformations)) for f in fields]

    return DatasetLineage(
        target.dataset(lineage.dataset.name),
        [OutputField(f.name, f.position, inputs(f.inputs), f.type) for f in lineage.fields],
        inputs(lineage.dataset_inputs),
    )


def _retry_policy(step: Step, spec: Pipeline, *, retry: bool = True) -> tuple[RetryPolicy, Deadline]:
    retries = step.retries or spec.retries
    timeout = (step.timeout or spec.timeout)
    seconds = timeout.total_seconds() if timeout else STEP_DEADLINE
    policy = RetryPolicy(max_attempts=retries.count + 1 if retry else 1, base_delay=retries.backoff.total_seconds(),
                         max_delay=retries.max_delay.total_seconds(), jitter=0.5 if retries.jitter else 0.0,
                         deadline=seconds)
    return policy, Deadline(seconds, name=f"step {step.id} timeout")


def _retryable(exc: BaseException, retries: Retries) -> bool:
    if isinstance(exc, CheckFailed):
        return False  # the same data fails the same check again
    kinds = set(retries.on)
    if RetryOn.ANY in kinds:
        return True
    if isinstance(exc, TimeoutError):
        return RetryOn.TIMEOUT in kinds
    return RetryOn.SOURCE in kinds


# ---------------------------------------------------------------------- step kinds


def _execute(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> _Outcome:
    handlers: dict[StepKind, Callable[[Step, StepPlan, Plan, Environment], _Outcome]] = {
        StepKind.GATE: _gate, StepKind.EXTRACT: _extract, StepKind.SQL: _sql, StepKind.PYTHON: _python,
        StepKind.LOAD: _load, StepKind.CHECK: _check,
    }
    return handlers[step.kind](step, step_plan, plan, env)


def _gate(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> _Outcome:
    gate = step.gate
    assert gate is not None
    if gate.http is not None:
        import httpx

        try:
            status = httpx.get(gate.http.url, timeout=10.0).status_code
        except httpx.HTTPError as exc:
            raise PipelineError(f"gate {step.id}: {gate.http.url} did not answer ({type(exc).__name__})") from None
        if status != gate.http.expect_status:
            raise PipelineError(f"gate {step.id}: {gate.http.url} answered {status}, expected {gate.http.expect_status}")
    elif gate.freshness is not None:
        _gate_freshness(step, gate.freshness.dataset, gate.freshness.max_staleness.total_seconds(), env)
    elif gate.sql is not None:
        rows = env.target.query(gate.sql.query)
        if not rows or not rows[0] or not rows[0][0]:
            raise PipelineError(f"gate {step.id}: the probe query returned no true value")
    return _Outcome()


def _gate_freshness(step: Step, table: str, limit: float, env: Environment) -> None:
    """The last completed run that wrote ``table`` (in this warehouse) must be younger than ``limit``."""
    from collectors.sources import read_events
    from lineage_auditor.events import RunState

    ref = env.target.dataset(table)
    last = None
    for event in read_events(env.lineage):
        if event.event_type is RunState.COMPLETE and any(o.ref == ref for o in event.outputs):
            last = event.time if last is None or event.time > last else last
    if last is None:
        raise PipelineError(f"gate {step.id}: no completed run has written {table} (upstream not ready)")
    age = (datetime.now(timezone.utc) - last).total_seconds()
    if age > limit:
        raise PipelineError(f"gate {step.id}: {table} was last written {display_duration(age)} ago "
                            f"(max_staleness {display_duration(limit)})")


def _extract(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> _Outcome:
    extract = step.extract
    assert extract is not None
    if extract.http is not None:
        return _extract_http(step, step_plan, plan, env)
    if extract.sql is not None:
        return _extract_sql(step, step_plan, plan, env)
    if extract.connector:
        from pipelines.dsl.connectors import connector

        done = connector(extract.connector).run(extract.into, extract.options, day=plan.day, target=env.target,
                                                run_id=step_plan.run_id, offline=plan.offline)
        return _Outcome(rows=done.rows, rejected=done.rejected, connector=done)
    assert extract.file is not None
    path = (plan.spec.parent / step_plan.rendered.get("path", extract.file.path)).resolve()
    if not path.is_file():
        raise PipelineError(f"step {step.id}: no such file {path}")
    if extract.file.columns and extract.file.format is not FileFormat.PARQUET:
        return _extract_rows(step, plan, env, path)
    if env.target.dialect != "duckdb":
        raise ConfigError(f"step {step.id}: a file without declared columns loads into DuckDB targets only")
    reader = {FileFormat.CSV: "read_csv", FileFormat.JSONL: "read_json", FileFormat.PARQUET: "read_parquet"}[extract.file.format]
    literal = "'" + str(path).replace("'", "''") + "'"
    if extract.file.columns and extract.file.format is not FileFormat.PARQUET:
        columns = "{" + ", ".join(f"'{c.name}': '{c.type}'" for c in extract.file.columns) + "}"
        options = f", columns = {columns}" + (", header = true" if extract.file.format is FileFormat.CSV else "")
    else:
        options = ""
    result = env.target.replace_from_sql(extract.into, f"SELECT * FROM {reader}({literal}{options})")
    return _Outcome(rows={extract.into: result.total})


def _extract_http(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> _Outcome:
    from pipelines.dsl.columns import logical_type
    from pipelines.dsl.http_extract import budget, fetch
    from pipelines.runtime.targets import Column, Table
    from pipelines.sources.dead_letter import DeadLetterWriter

    extract = step.extract
    assert extract is not None and extract.http is not None
    timeout = step.timeout or plan.pipeline.timeout
    policy = budget(timeout.total_seconds() if timeout else None)
    settings = extract.http.model_copy(update={"url": step_plan.rendered.get("url", extract.http.url)})
    fetched = fetch(settings, folder=plan.spec.parent, policy=policy)
    dead_letter = _dead_letter_path(plan, step, env) if fetched.rejected else None
    if dead_letter is not None:
        with DeadLetterWriter(dead_letter, source=f"{plan.pipeline.id}.{step.id}") as dead:
            dead.write_many(dead.record(r["reason"], r["raw"], page=r["page"], index=r["index"]) for r in fetched.rejected)
    table = Table(extract.into, tuple(Column(c.name, logical_type(c.type), c.nullable) for c in extract.http.columns))
    result = _run(env, step, lambda: env.target.replace(table, fetched.rows).total)
    namespace = step_plan.rendered.get("dataset_namespace") or None
    source = http_dataset(public_url(settings.url), namespace=namespace)
    return _copied_from(source, extract.http.columns, table, result, env, rejected=len(fetched.rejected),
                        dead_letter=dead_letter, quality=source_facets(fetched.rows, [c.key for c in extract.http.columns],
                                                                       len(fetched.rejected), fetched.rules))


def _extract_rows(step: Step, plan: Plan, env: Environment, path: Path) -> _Outcome:
    from pipelines.dsl.columns import logical_type
    from pipelines.dsl.file_extract import read_rows
    from pipelines.runtime.targets import Column, Table
    from pipelines.sources.dead_letter import DeadLetterWriter

    extract = step.extract
    assert extract is not None and extract.file is not None
    found = read_rows(extract.file, path)
    dead_letter = _dead_letter_path(plan, step, env) if found.rejected else None
    if dead_letter is not None:
        with DeadLetterWriter(dead_letter, source=f"{plan.pipeline.id}.{step.id}") as dead:
            dead.write_many(dead.record(r["reason"], r["raw"], line=r["line"]) for r in found.rejected)
    table = Table(extract.into, tuple(Column(c.name, logical_type(c.type), c.nullable) for c in extract.file.columns))
    result = _run(env, step, lambda: env.target.replace(table, found.rows).total)
    return _copied_from(file_dataset(path), extract.file.columns, table, result, env, rejected=len(found.rejected),
                        dead_letter=dead_letter, quality=source_facets(found.rows, [c.key for c in extract.file.columns],
                                                                       len(found.rejected), found.rules))


def _copied_from(source: DatasetRef, columns: Sequence[Any], table: Any, written: int, env: Environment, *,
                 rejected: int, dead_letter: Path | None, quality: tuple[Any, Any]) -> _Outcome:
    """An extract's outcome: the source it read (an API resource, a file) with what was seen of its
    quality, and the staging table it filled, each of whose columns is the source's field of the
    same name, unchanged."""
    target = env.target.dataset(table.name)
    metrics, assertions = quality
    lineage = copied_lineage(source, target, [c.name for c in columns], sources=[c.key for c in columns])
    result = ConnectorResult(
        inputs=[DatasetIO(source, schema=[(c.key, c.type, "") for c in columns], metrics=metrics, assertions=assertions)],
        outputs=[DatasetIO(target, schema=env.target.schema_fields(table), lineage=lineage,
                             rows=written)],
        rows={table.name: written})
    return _Outcome(rows=result.rows, rejected=rejected, connector=result,
                    dead_letter=str(dead_letter) if dead_letter else None)


def _extract_sql(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> _Outcome:
    """A query against a source database (or the warehouse), its rows checked like any extract."""
    from lineage_auditor.sql import analyze_sql
    from pipelines.dsl.columns import fit_record, logical_type
    from pipelines.runtime.targets import Column, Table, parse_target

    extract = step.extract
    assert extract is not None and extract.sql is not None
    settings = extract.sql
    if settings.connection == "target":
        source = env.target
    else:
        url = os.environ.get(settings.connection, "")
        if not url:
            raise ConfigError(f"step {step.id}: the environment variable {settings.connection} holding the source's "
                              "URL is not set (connection: target reads the warehouse itself)")
        source = parse_target(url, default_path=env.home / "source.duckdb")
    query = step_plan.rendered.get("query", settings.query)
    records = _run(env, step, lambda: source.records(query))
    columns = [(c.key, logical_type(c.type), c.nullable) for c in settings.columns]
    rows: list[tuple[Any, ...]] = []
    rejected: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        row, problem = fit_record(record, columns)
        if problem:
            rejected.append({"index": index, "reason": problem, "raw": {k: str(v) for k, v in record.items()}})
        else:
            rows.append(row)
    dead_letter = _dead_letter_path(plan, step, env) if rejected else None
    if dead_letter is not None:
        from pipelines.sources.dead_letter import DeadLetterWriter

        with DeadLetterWriter(dead_letter, source=f"{plan.pipeline.id}.{step.id}") as dead:
            dead.write_many(dead.record(r["reason"], r["raw"], index=r["index"]) for r in rejected)
    table = Table(extract.into, tuple(Column(c.name, logical, nullable)
                                      for c, (_, logical, nullable) in zip(settings.columns, columns)))
    written = _run(env, step, lambda: env.target.replace(table, rows).total)
    outcome = _Outcome(rows={extract.into: written}, rejected=len(rejected), dead_letter=str(dead_letter) if dead_letter else None)
    analysed = analyze_sql(query, dialect=settings.dialect)
    if analysed.statements:
        statement = analysed.statements[0]
        inputs = [DatasetIO(source.dataset(ref.name)) for ref in statement.inputs]
        lineage = _in_source(statement.outputs[0], source, env.target.dataset(extract.into)) if statement.outputs else None
        outcome.connector = ConnectorResult(inputs=inputs, outputs=[DatasetIO(
            env.target.dataset(extract.into), schema=env.target.schema_fields(table), lineage=lineage, rows=written)],
            rows=outcome.rows)
    return outcome


def _in_source(lineage: DatasetLineage, source: Target, output: Any) -> DatasetLineage:
    """A query's lineage with its inputs named as the source database names them."""
    def inputs(fields: list[InputField]) -> list[InputField]:
        return [InputField(ColumnRef(source.dataset(f.column.dataset.name), f.column.field), list(f.transformations))
                for f in fields]

    return DatasetLineage(output, [OutputField(f.name, f.position, inputs(f.inputs), f.type) for f in lineage.fields],
                          inputs(lineage.dataset_inputs))


def _dead_letter_path(plan: Plan, step: Step, env: Environment) -> Path:
    if plan.pipeline.dead_letter:
        return plan.spec.parent / plan.pipeline.dead_letter
    return env.home / "dead-letter" / f"{plan.pipeline.id}.{step.id}.jsonl"


def _sql(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> _Outcome:
    """A SQL step's statements, transpiled to the target, in one transaction: they land together
    or not at all. ``CREATE TABLE ... AS`` builds the table aside and swaps it in."""
    assert step.sql is not None
    try:
        statements = [s for s in sqlglot.parse(step_plan.sql, read=step.sql.dialect) if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise PipelineError(f"step {step.id}: {exc}") from None
    target = env.target

    def run_all() -> dict[str, int]:
        rows: dict[str, int] = {}
        with target.connect() as conn:
            for statement in statements:
                if isinstance(statement, exp.Create) and isinstance(statement.expression, exp.Query):
                    table = statement.this.find(exp.Table) if not isinstance(statement.this, exp.Table) else statement.this
                    assert table is not None
                    name = ".".join(p for p in (table.db, table.name) if p)
                    rows[name] = target.replace_from_sql(name, statement.expression.sql(dialect=target.dialect), conn).total
                else:
                    conn.execute(statement.sql(dialect=target.dialect))
        return rows

    return _Outcome(rows=_run(env, step, run_all))


def _run(env: Environment, step: Step, action: Callable[[], R]) -> R:
    """A warehouse call with the driver's errors as ours (named by step)."""
    try:
        return action()
    except LineageAuditError:
        raise
    except Exception as exc:  # the drivers' error classes differ per target
        raise PipelineError(f"step {step.id}: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}") from None


def _python(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> _Outcome:
    assert step.python is not None
    module_name, _, function_name = step.python.callable.partition(":")
    folder = str(plan.spec.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)  # a module beside the spec is found first
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"step {step.id}: cannot import {step.python.callable}: {exc}") from None
    finally:
        if added:
            sys.path.remove(folder)
    result = function(StepContext(plan.day, plan.params, env.target, step_plan))
    rows = {t: int(n) for t, n in (result or {}).items()} if isinstance(result, Mapping) else {}
    return _Outcome(rows=rows)


def _load(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> _Outcome:
    load = step.load
    assert load is not None
    source = step_plan.reads[0] if step_plan.reads else None
    if source is None:
        raise PipelineError(f"step {step.id}: step {load.from_} wrote no table to load")
    target, table = env.target, load.table
    if load.mode is LoadMode.REPLACE:
        return _Outcome(rows={table: _run(env, step, lambda: target.replace_from_sql(table, f"SELECT * FROM {quote(source)}").total)})

    def merge() -> int:
        with target.connect() as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(table.split('.')[0])}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {quote(table)} AS SELECT * FROM {quote(source)} WHERE 1 = 0")
            if load.mode is LoadMode.UPSERT:
                keys = ", ".join(quote(k) for k in load.keys)
                conn.execute(f"DELETE FROM {quote(table)} WHERE ({keys}) IN (SELECT {keys} FROM {quote(source)})")
            conn.execute(f"INSERT INTO {quote(table)} SELECT * FROM {quote(source)}")
            return int(conn.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0])

    return _Outcome(rows={table: _run(env, step, merge)})


def _check(step: Step, step_plan: StepPlan, plan: Plan, env: Environment) -> _Outcome:
    checks = step.check
    assert checks is not None
    table = checks.dataset
    results = []
    for check in checks.checks:
        failing = _run(env, step, lambda c=check: _failing_rows(env.target, table, c))  # type: ignore[misc]
        description = f"{check.kind}: {failing} failing row{'s' if failing != 1 else ''}" if failing else check.kind
        column = check.columns[0][1] if check.columns else None
        results.append({"assertion": check.kind, "success": failing == 0, "column": column,
                        "severity": check.severity.value, "description": description})
    return _Outcome(assertions={table: results})


def _failing_rows(target: Target, table: str, check: Check) -> int:
    t = quote(table)
    if check.not_null is not None:
        sql = f"SELECT count(*) FROM {t} WHERE {quote(check.not_null)} IS NULL"
    elif check.unique is not None:
        c = quote(check.unique)
        sql = f"SELECT count(*) FROM (SELECT {c} FROM {t} GROUP BY {c} HAVING count(*) > 1) AS dupes"
    elif check.accepted_values is not None:
        values = ", ".join(_literal(v) for v in check.accepted_values.values)
        sql = f"SELECT count(*) FROM {t} WHERE {quote(check.accepted_values.column)} NOT IN ({values})"
    elif check.row_count is not None:
        count = int(target.query(f"SELECT count(*) FROM {t}")[0][0])
        low, high = check.row_count.min, check.row_count.max
        return int((low is not None and count < low) or (high is not None and count > high))
    elif check.relationships is not None:
        other, _, column = check.relationships.to.rpartition(".")
        c = quote(check.relationships.column)
        sql = f"SELECT count(*) FROM {t} WHERE {c} IS NOT NULL AND {c} NOT IN (SELECT {quote(column)} FROM {quote(other)})"
    elif check.freshness is not None:
        cutoff = datetime.now(timezone.utc) - check.freshness.max_age
        newest = target.query(f"SELECT max({quote(check.freshness.column)}) FROM {t}")[0][0]
        return int(newest is None or _aware(newest) < cutoff)
    else:
        assert check.sql is not None
        sql = f"SELECT count(*) FROM ({check.sql}) AS failing"
    return int(target.query(sql)[0][0])


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.combine(value, day_time(0), tzinfo=timezone.utc)


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _assertions_facet(results: list[dict[str, Any]]) -> Any:
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dqa

    return dqa.DataQualityAssertionsDatasetFacet(assertions=[
        dqa.Assertion(assertion=r["assertion"], success=r["success"], column=r["column"]) for r in results])


def _schema(target: Target, table: str) -> list[tuple[str, str]] | None:
    try:
        columns = target.columns(table)
    except Exception:  # a table a step has not written yet has no schema to report
        return None
    return [(name, kind) for name, kind in columns] or None


__all__ = ["run_spec", "prepare_step", "pipeline_job", "nominal_window", "StepRun", "StepResult", "StepContext",
           "CheckFailed", "CheckSeverity"]
