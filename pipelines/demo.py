"""The end-to-end demo: the reference pipelines' specs, offline, into DuckDB, lineage recorded.

Runs the three shipped specs through the DSL runner like any analyst's pipeline: weather
against the local Open-Meteo replay for every recorded day, users-orders against the bundled
mock users API and the sample orders CSV, then the churn model's feature table from their
outputs, all into one DuckDB warehouse and one emitter. Returns the run summaries and every
event emitted, so the caller can print a summary and draw the lineage graph.

It also leaves the demo's audit config, ``lineage-audit.yml``, in the working directory (never
over an existing one), pointing at the warehouse it built: ``lineage-audit audit`` and
``report`` read it by default, so a new user's next command audits the churn feature table
instead of checking nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datetime import datetime, timezone

from pipelines.dsl.runner import run_spec
from pipelines.reference import recorded_days, reference_spec, users_api
from pipelines.runtime.run import Environment, Progress, RunSummary, quiet

WAREHOUSE = "warehouse.duckdb"
GRAPH = "lineage.html"
AUDIT_CONFIG = Path(__file__).resolve().parent / "features" / "lineage-audit.yml"
AUDIT_CONFIG_NAME = "lineage-audit.yml"  # the name ``audit`` looks for (lineage_auditor.audit.config)
# How the shipped config names the warehouse (``make demo``'s out/demo); replaced by the real one.
CONFIG_WAREHOUSE = "duckdb:out/demo/warehouse.duckdb"


@dataclass
class DemoResult:
    """What the demo did: runs, the events they emitted, and where things were written."""

    runs: list[RunSummary]
    events: list[dict[str, Any]]
    warehouse: Path
    store: str
    graph: Path | None = None
    notes: list[str] = field(default_factory=list)
    config: Path | None = None
    config_written: bool = False

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)

    def totals(self) -> dict[str, int]:
        datasets = {d for r in self.runs for d in (*r.inputs, *r.outputs)}
        return {
            "runs": len(self.runs),
            "steps": sum(len(r.steps) for r in self.runs),
            "failed": sum(1 for r in self.runs if not r.ok),
            "rows_loaded": sum(_rows(r) for r in self.runs),
            "datasets": len(datasets),
            "columns_with_lineage": _lineage_columns(self.events),
            "events": len(self.events),
            "events_undelivered": sum(r.events_undelivered for r in self.runs),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "totals": self.totals(), "warehouse": str(self.warehouse), "store": self.store,
            "graph": str(self.graph) if self.graph else None, "notes": self.notes,
            "audit_config": {"path": str(self.config) if self.config else None, "written": self.config_written},
            "runs": [r.to_dict() for r in self.runs],
        }


CHURN_TABLE = "features.churn_features"


def _rows(run: RunSummary) -> int:
    return int(run.counts.get("rows_loaded", 0))


def _lineage_columns(events: list[dict[str, Any]]) -> int:
    """Distinct output columns that carry column lineage, over all events."""
    seen = set()
    for event in events:
        for ds in event.get("outputs") or []:
            for column in (((ds.get("facets") or {}).get("columnLineage") or {}).get("fields") or {}):
                seen.add((ds["namespace"], ds["name"], column))
    return len(seen)


def run_demo(
    out: Path,
    *,
    lineage: str | None = "embedded",
    home: str | Path | None = None,
    progress: Progress = quiet,
    write_graph: Callable[[list[dict[str, Any]], Path], Path] | None = None,
    config_dir: Path | None = None,
) -> DemoResult:
    """Run both pipelines offline into ``out/warehouse.duckdb``; draw the graph with ``write_graph``.

    With ``config_dir``, the demo's audit config is written there unless one exists.
    """
    out.mkdir(parents=True, exist_ok=True)
    today = datetime.now(timezone.utc).date()
    runs: list[RunSummary] = []
    with Environment.open(f"duckdb:{(out / WAREHOUSE).resolve()}", lineage=lineage, home=home) as env:
        weather = reference_spec("weather")
        for day in recorded_days():
            progress(f"weather {day.isoformat()} (recorded Open-Meteo responses)")
            runs.append(run_spec(weather, day, offline=True, env=env))
        progress("users-orders (mock users API, sample orders CSV)")
        with users_api() as api:
            runs.append(run_spec(reference_spec("users_orders"), today, params=api.params(), env=env))
        progress("churn features (the AI dataset)")
        runs.append(run_spec(reference_spec("churn_features"), today, env=env))
        events = list(env.events.events)
        store = _describe(env.emitter)
    result = DemoResult(runs, events, (out / WAREHOUSE).resolve(), store)
    if write_graph is not None:
        progress("lineage graph")
        result.graph = write_graph(events, out / GRAPH)
    else:
        result.notes.append("HTML lineage graph not written (no graph writer available)")
    if config_dir is not None:
        result.config, result.config_written = write_audit_config(config_dir, result.warehouse)
    return result


def write_audit_config(folder: Path, warehouse: Path) -> tuple[Path, bool]:
    """The demo's audit config as ``folder/lineage-audit.yml``, naming ``warehouse``; never overwrites.

    Returns the path and whether it was written. The warehouse is written relative to
    ``folder`` when it lies inside it (the config then keeps working if the folder moves).
    """
    target = folder / AUDIT_CONFIG_NAME
    text = AUDIT_CONFIG.read_text(encoding="utf-8")
    if CONFIG_WAREHOUSE not in text:
        raise RuntimeError(f"{AUDIT_CONFIG} no longer names {CONFIG_WAREHOUSE}")  # caught by the test suite
    try:
        shown = warehouse.resolve().relative_to(folder.resolve())
    except ValueError:
        shown = warehouse.resolve()
    try:
        with target.open("x", encoding="utf-8") as handle:  # exclusive: an existing config is never replaced
            handle.write(text.replace(CONFIG_WAREHOUSE, f"duckdb:{shown}"))
    except FileExistsError:
        return target, False
    return target, True


def _describe(emitter: Any) -> str:
    """Where the events went, as the emitter's transport describes itself."""
    transport = getattr(emitter, "transport", None)
    describe = getattr(transport, "describe", None)
    return str(describe()) if callable(describe) else "none"
