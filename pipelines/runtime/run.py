"""What every pipeline run needs around it: where to write, where lineage goes, what to report.

:class:`Environment` wires a run to a warehouse :class:`~pipelines.runtime.targets.Target`
and a lineage emitter (``--lineage`` option > OpenLineage env/config > embedded store).
:class:`RunSummary` is what a run reports back to the CLI and the demo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from collectors.emit.config import emitter_from_config, lineage_home
from lineage_auditor.events import RunState, run_events
from lineage_auditor.times import iso
from pipelines.runtime.events import EventLog, RunContext
from pipelines.runtime.targets import Target, parse_target

WAREHOUSE_FILE = "warehouse.duckdb"
Progress = Callable[[str], None]


def quiet(_: str) -> None:
    """A progress callback that shows nothing."""
    return None


@dataclass
class Environment:
    """A run's surroundings: local state folder, warehouse, and the event log feeding the emitter."""

    home: Path
    target: Target
    events: EventLog
    emitter: Any = None
    lineage: str | None = None  # the lineage address the run reports to (None: the configured one)

    @classmethod
    def open(cls, target: str | None, *, lineage: str | None = None, home: str | Path | None = None,
             secrets: tuple[str, ...] = (), emit: bool = True) -> "Environment":
        """The environment around a warehouse URL (None: the local DuckDB file in the lineage home).

        ``emit=False`` keeps events in memory only: for a caller whose orchestrator reports the
        lineage (an Airflow task); ``lineage`` still names the store read (freshness gates).
        """
        state = lineage_home(home)
        warehouse = parse_target(target, default_path=state / WAREHOUSE_FILE)
        emitter = emitter_from_config(lineage, home=state) if emit else None
        events = EventLog(emitter, secrets=(*warehouse.secrets(), *secrets))
        return cls(state, warehouse, events, emitter, lineage)

    def close(self) -> None:
        if self.emitter is not None and hasattr(self.emitter, "close"):
            self.emitter.close()

    def __enter__(self) -> "Environment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class StepSummary:
    job: str
    run_id: str
    state: str
    duration_s: float
    error: str | None = None


@dataclass
class RunSummary:
    """One pipeline run as the CLI prints it (``--format json`` gives :meth:`to_dict`)."""

    pipeline: str
    run_id: str
    state: str
    nominal_start: str | None
    nominal_end: str | None
    target: str
    duration_s: float = 0.0
    degraded: bool = False
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    columns_with_lineage: int = 0
    steps: list[StepSummary] = field(default_factory=list)
    dead_letter_file: str | None = None
    events_emitted: int = 0
    events_undelivered: int = 0

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETE"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(run: RunContext, env: Environment, *, first_event: int, **extra: Any) -> RunSummary:
    """The summary of a finished pipeline run from its context and the events it emitted."""
    raw_events = env.events.events[first_event:]
    inputs: dict[str, None] = {}
    outputs: dict[str, None] = {}
    lineage_columns: set[tuple[str, str, str]] = set()
    started: dict[str, datetime] = {}
    steps = []
    for event in run_events(raw_events):
        if event.event_type is RunState.START:
            started[event.run_id] = event.time
        if event.event_type not in (RunState.COMPLETE, RunState.FAIL):
            continue
        for ds in event.inputs:
            inputs[str(ds.ref)] = None
        for ds in event.outputs:
            outputs[str(ds.ref)] = None
            for column in (ds.facets.get("columnLineage") or {}).get("fields", {}):
                lineage_columns.add((ds.ref.namespace, ds.ref.name, column))
        if event.run_id != run.run_id:
            begun = started.get(event.run_id)
            took = (event.time - begun).total_seconds() if begun else 0.0
            steps.append(StepSummary(
                job=event.job.name, run_id=event.run_id, state=event.event_type.value,
                duration_s=round(took, 3), error=event.error_message,
            ))
    start, end = run.nominal or (None, None)
    return RunSummary(
        pipeline=run.job.name, run_id=run.run_id, state=run.state,
        nominal_start=iso(start) if start else None, nominal_end=iso(end) if end else None,
        target=env.target.describe(), duration_s=round(run.duration_s, 3), error=run.error,
        inputs=list(inputs), outputs=list(outputs),
        columns_with_lineage=len(lineage_columns), steps=steps,
        events_emitted=len(raw_events), events_undelivered=env.events.undelivered_since(first_event),
        **extra,
    )
