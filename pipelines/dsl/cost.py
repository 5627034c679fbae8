"""What a step costs: measured around it, priced by the policy's cost model, kept in a run facet.

:func:`measure_step` wraps one step's run: wall time, the process's CPU time (``getrusage``
of this process: user + system time of all its threads, an embedded DuckDB's included; a
PostgreSQL server's own CPU is not, its execution time is ``warehouseSeconds``), and what the
warehouse reports of each statement (:mod:`pipelines.runtime.warehouse_cost`). On leaving it
adds the ``lineageAudit_cost`` facet to the run, failed runs included: a failure costs too.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lineage_auditor.governance import COST_FACET, Rates
from lineage_auditor.governance.pricing import price
from pipelines.runtime.events import RunContext
from pipelines.runtime.governance_facets import CostRunFacet
from pipelines.runtime.targets import Target
from pipelines.runtime.warehouse_cost import WarehouseUsage, meter_for


@dataclass
class StepCost:
    """What the step tells the meter besides what it measures itself: rows written, records read.

    ``facet`` is the ``lineageAudit_cost`` facet once the measured block has ended (for a
    runner that reports it itself, such as an Airflow operator's ``OperatorLineage``).
    """

    rows: dict[str, int] = field(default_factory=dict)
    records_read: int | None = None
    facet: CostRunFacet | None = None

    def wrote(self, rows: Mapping[str, int], *, read: int | None = None) -> None:
        """The tables the step wrote with their row counts; ``read``: records an extract got from its source."""
        self.rows = {table: int(count) for table, count in rows.items()}
        self.records_read = read


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def measure_step(run: RunContext | None, target: Target, rates: Rates | None = None,
                 currency: str | None = None) -> Iterator[StepCost]:
    """Measure the ``with`` block as one step on ``target``; on leaving, the facet is ``StepCost.facet``
    and is added to ``run`` (when given)."""
    step = StepCost()
    meter = meter_for(target.dialect)
    previous, target.meter = target.meter, meter
    began, cpu = time.perf_counter(), cpu_seconds()
    try:
        yield step
    finally:
        target.meter = previous
        wall, used = time.perf_counter() - began, cpu_seconds() - cpu
        step.facet = cost_facet(meter.usage, step, target, wall=wall, cpu=used, rates=rates, currency=currency)
        if run is not None:
            run.add_run_facet(COST_FACET, step.facet)


def cost_facet(usage: WarehouseUsage, step: StepCost, target: Target, *, wall: float, cpu: float,
               rates: Rates | None = None, currency: str | None = None) -> CostRunFacet:
    """The ``lineageAudit_cost`` facet from what was measured and what the step said it did."""
    measured = usage.statements > 0
    rows_read = step.records_read if step.records_read is not None else (usage.rows_scanned if measured else None)
    written = usage.bytes_written
    if written is None and step.rows:
        sizes = [_table_bytes(target, table) for table in step.rows]
        written = sum(s for s in sizes if s is not None) if any(s is not None for s in sizes) else None
    facet: dict[str, Any] = {
        "wallSeconds": round(wall, 6), "cpuSeconds": round(cpu, 6), "engine": usage.engine or target.dialect,
        "measuredBy": usage.method if measured else "none", "statements": usage.statements,
        "rowsRead": rows_read, "bytesRead": usage.bytes_scanned if measured else None,
        "rowsWritten": sum(step.rows.values()) if step.rows else None, "bytesWritten": written,
        "warehouseSeconds": round(usage.seconds, 6) if measured else None,
    }
    if rates is not None:
        parts = price(rates, cpu_seconds=cpu, bytes_scanned=facet["bytesRead"], warehouse_seconds=facet["warehouseSeconds"])
        facet.update(amount=parts.pop("total"), currency=currency, breakdown=parts)
    return CostRunFacet(**facet)


def _table_bytes(target: Target, table: str) -> int | None:
    try:
        return target.table_bytes(table)
    except Exception:  # noqa: BLE001 - a size we cannot read is an unknown size, never a failed step
        return None
