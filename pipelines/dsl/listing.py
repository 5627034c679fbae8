"""``pipelines list``: what is deployed, when it runs next, and how its last run went."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from lineage_auditor.errors import LineageAuditError, StoreNotFound
from lineage_auditor.events import Run
from lineage_auditor.times import iso
from pipelines.dsl.loader import LoadedSpec, SpecProblem, load_specs
from pipelines.dsl.schedule import parse_cron, stagger_offset, staggered, zone

JOB_NAMESPACE = "lineage-audit"  # the namespace of every spec's jobs (the runner's too)


def schedule_of(spec: LoadedSpec, now: datetime) -> tuple[str, str | None]:
    """The effective (staggered) cron of a spec and its next run, ISO UTC (None: never)."""
    pipeline = spec.pipeline
    cron = parse_cron(pipeline.schedule)
    if cron is None:
        return "none", None
    effective = staggered(cron, stagger_offset(pipeline.id, pipeline.stagger))
    shifted = parse_cron(effective)
    assert shifted is not None
    upcoming = shifted.next_after(now, zone(pipeline.timezone))
    return effective, iso(upcoming) if upcoming else None


def list_pipelines(paths: Iterable[str | Path], *, store: str | None = None,
                   now: datetime | None = None) -> tuple[list[dict[str, Any]], list[SpecProblem]]:
    """One row per valid spec (sorted by id), and the problems of the others."""
    specs, problems = load_specs(paths)
    moment = now or datetime.now(timezone.utc)
    last = _last_runs(store, {s.pipeline.id for s in specs})
    rows = []
    for spec in sorted(specs, key=lambda s: s.pipeline.id):
        try:
            effective, upcoming = schedule_of(spec, moment)
        except LineageAuditError as exc:
            problems.append(SpecProblem(str(spec.path), 0, 0, "schedule", exc.message))
            continue
        run = last.get(spec.pipeline.id)
        rows.append({
            "id": spec.pipeline.id, "team": spec.pipeline.team, "spec": str(spec.path),
            "schedule": effective, "timezone": spec.pipeline.timezone, "next_run": upcoming,
            "last_state": run.state.value if run else None,
            "last_run_at": iso(run.started_at) if run and run.started_at else None,
            "last_duration_s": run.duration_s if run else None,
        })
    return rows, problems


def _last_runs(store: str | None, ids: set[str]) -> dict[str, Run]:
    """The latest run of each pipeline job, from the lineage store (nothing when there is none yet)."""
    from collectors.sources import read_events
    from lineage_auditor.audit.view import LatestRuns

    latest = LatestRuns()
    try:
        for event in read_events(store):
            if event.job.namespace == JOB_NAMESPACE and event.job.name in ids:
                latest.add(event)
    except StoreNotFound:
        return {}
    runs: dict[str, Run] = {}
    for event in latest.events():
        run = runs.setdefault(event.job.name, Run(event.run_id, event.job))
        run.add(event)
    return runs


def last_completed_day(store: str | None, pipeline_id: str) -> date | None:
    """The latest day (nominal start, UTC) a run of the pipeline completed, from the lineage store
    (None when there is none, or lineage goes somewhere it cannot be read back from)."""
    from collectors.sources import read_events, store_config
    from collectors.store.address import READABLE
    from lineage_auditor.events import RunState
    from lineage_auditor.times import try_parse_time

    last: date | None = None
    try:
        if store_config(store)["type"] not in READABLE:
            return None
        for event in read_events(store):
            if (event.event_type is RunState.COMPLETE and event.job.namespace == JOB_NAMESPACE
                    and event.job.name == pipeline_id):
                nominal = try_parse_time((event.run_facets.get("nominalTime") or {}).get("nominalStartTime"))
                if nominal is not None and (last is None or nominal.date() > last):
                    last = nominal.date()
    except StoreNotFound:
        return None
    return last


def days_to_run(spec: LoadedSpec, *, store: str | None, today: date, limit: int = 366) -> list[date]:
    """The days ``pipelines run`` takes when none is given: yesterday, and with ``catchup: true`` every
    day after the last completed run before it too (at most ``limit`` days, oldest first)."""
    yesterday = today - timedelta(days=1)
    if not spec.pipeline.catchup:
        return [yesterday]
    last = last_completed_day(store, spec.pipeline.id)
    if last is None or last >= yesterday:
        return [yesterday]
    first = max(last + timedelta(days=1), yesterday - timedelta(days=limit - 1))
    return [first + timedelta(days=n) for n in range((yesterday - first).days + 1)]
