"""Costs from the lineage store: by team, pipeline, dataset or day; budgets; what an AI dataset costs.

Every step run carries a ``lineageAudit_cost`` facet (its process time, what the warehouse
read, and the money by the policy's cost model); a run recorded without a cost model is
priced with the policy in force now (``priced_now``). Teams come from the ``lineageAudit_runBy``
facet (else a ``team:NAME`` owner of the job), pipelines from the run's root job, days from
when the run reported its cost (event time, UTC: the day the money was spent, also for a backfill).

Cost along lineage (:func:`lineage_cost`): what an AI dataset costs to produce is the cost of
every step that wrote it or anything upstream of it, each step counted once however many
paths lead through it; a step shared by two AI datasets counts fully in each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from lineage_auditor.events import RunEvent
from lineage_auditor.governance import COST_FACET, RUN_BY_FACET
from lineage_auditor.governance.model import Budget
from lineage_auditor.governance.policy import Policy
from lineage_auditor.governance.pricing import price
from lineage_auditor.model import DatasetRef, JobRef

UNKNOWN = "(unknown)"


class GroupBy(StrEnum):
    TEAM = "team"
    PIPELINE = "pipeline"
    DATASET = "dataset"
    DAY = "day"


class BudgetState(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CostRecord:
    """One step run's cost, with who it is charged to."""

    run_id: str
    job: JobRef
    pipeline: str
    team: str
    user: str
    day: date
    outputs: tuple[DatasetRef, ...]
    inputs: tuple[DatasetRef, ...]
    engine: str
    cpu_seconds: float
    wall_seconds: float
    rows_read: int
    bytes_read: int
    rows_written: int
    amount: float | None
    currency: str | None
    priced_now: bool = False


def cost_records(events: Iterable[RunEvent], policy: Policy | None = None) -> list[CostRecord]:
    """One record per run that reported a cost (its last report wins), oldest first."""
    runs: dict[str, list[RunEvent]] = {}
    for event in events:
        runs.setdefault(event.run_id, []).append(event)
    records = []
    for run_id, run in runs.items():
        run.sort(key=lambda e: e.order)
        costed = [e for e in run if isinstance(e.run_facets.get(COST_FACET), Mapping)]
        if costed:
            records.append(_record(run_id, run, costed[-1], policy))
    return sorted(records, key=lambda r: (r.day, r.pipeline, r.job.name))


def _record(run_id: str, run: list[RunEvent], event: RunEvent, policy: Policy | None) -> CostRecord:
    facet = event.run_facets[COST_FACET]
    facets: dict[str, Any] = {}
    for e in run:
        facets.update(e.run_facets)
    found = facets.get(RUN_BY_FACET)
    by: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    amount, currency, priced_now = _number(facet.get("amount")), facet.get("currency"), False
    engine = str(facet.get("engine") or "")
    if amount is None and policy is not None:
        priced = price_facet(policy, facet)
        if priced is not None:
            (amount, currency), priced_now = priced, True
    outputs = tuple(dict.fromkeys(ds.ref for e in run for ds in e.outputs))
    inputs = tuple(dict.fromkeys(ds.ref for e in run for ds in e.inputs))
    return CostRecord(
        run_id=run_id, job=event.job, pipeline=_pipeline(facets, event.job), team=str(by.get("team") or _owner_team(event)),
        user=str(by.get("runBy") or ""), day=_day(facets, event), outputs=outputs, inputs=inputs, engine=engine,
        cpu_seconds=_number(facet.get("cpuSeconds")) or 0.0, wall_seconds=_number(facet.get("wallSeconds")) or 0.0,
        rows_read=int(_number(facet.get("rowsRead")) or 0), bytes_read=int(_number(facet.get("bytesRead")) or 0),
        rows_written=int(_number(facet.get("rowsWritten")) or 0), amount=amount,
        currency=str(currency) if currency else None, priced_now=priced_now)


def price_facet(policy: Policy, facet: Mapping[str, Any]) -> tuple[float, str] | None:
    """(amount, currency) of a cost facet recorded without an amount, by the policy's cost model
    now (for its ``engine``); None when the policy has no cost model."""
    rates = policy.rates(str(facet.get("engine") or ""))
    if rates is None or policy.currency is None:
        return None
    amount = price(rates, cpu_seconds=_number(facet.get("cpuSeconds")) or 0.0,
                   bytes_scanned=int(_number(facet.get("bytesRead")) or 0),
                   warehouse_seconds=_number(facet.get("warehouseSeconds")))["total"]
    return amount, policy.currency


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _pipeline(facets: Mapping[str, Any], job: JobRef) -> str:
    parent = facets.get("parent")
    if isinstance(parent, Mapping):
        root = (parent.get("root") or {}).get("job") or parent.get("job") or {}
        if isinstance(root, Mapping) and root.get("name"):
            return str(root["name"])
    return job.name


def _owner_team(event: RunEvent) -> str:
    owners = (event.job_facets.get("ownership") or {}).get("owners") or []
    for owner in owners:
        name = str(owner.get("name", "")) if isinstance(owner, Mapping) else ""
        if name.startswith("team:"):
            return name[5:]
    return UNKNOWN


def _day(facets: Mapping[str, Any], event: RunEvent) -> date:
    """The day the money was spent: when the run reported its cost, UTC. Not its nominal day: a
    backfill of June's data run in December is December's spend, as budgets are monthly spend."""
    return event.time.astimezone(timezone.utc).date()


# ---------------------------------------------------------------------- totals


@dataclass
class CostRow:
    """The cost of one group (a team, pipeline, dataset or day) in a window."""

    key: str
    runs: int = 0
    amount: float = 0.0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    rows_read: int = 0
    bytes_read: int = 0
    rows_written: int = 0
    by_day: dict[str, float] = field(default_factory=dict)

    def add(self, record: CostRecord, share: float = 1.0) -> None:
        self.runs += 1
        money = (record.amount or 0.0) * share
        self.amount += money
        self.cpu_seconds += record.cpu_seconds * share
        self.wall_seconds += record.wall_seconds * share
        self.rows_read += round(record.rows_read * share)
        self.bytes_read += round(record.bytes_read * share)
        self.rows_written += round(record.rows_written * share)
        day = record.day.isoformat()
        self.by_day[day] = self.by_day.get(day, 0.0) + money

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "runs": self.runs, "amount": round(self.amount, 9), "cpu_seconds": round(self.cpu_seconds, 6),
                "wall_seconds": round(self.wall_seconds, 6), "rows_read": self.rows_read, "bytes_read": self.bytes_read,
                "rows_written": self.rows_written, "by_day": {d: round(v, 9) for d, v in sorted(self.by_day.items())}}


def in_window(records: Iterable[CostRecord], first: date | None, last: date | None) -> list[CostRecord]:
    return [r for r in records if (first is None or r.day >= first) and (last is None or r.day <= last)]


def totals(records: Iterable[CostRecord], by: GroupBy) -> list[CostRow]:
    """One row per group, most expensive first; a dataset gets an even share of each step writing it
    (a step writing nothing, a check, is charged to what it read)."""
    rows: dict[str, CostRow] = {}
    for record in records:
        for key, share in _keys(record, by):
            rows.setdefault(key, CostRow(key)).add(record, share)
    return sorted(rows.values(), key=lambda r: (-r.amount, r.key))


def _keys(record: CostRecord, by: GroupBy) -> list[tuple[str, float]]:
    if by is GroupBy.TEAM:
        return [(record.team, 1.0)]
    if by is GroupBy.PIPELINE:
        return [(record.pipeline, 1.0)]
    if by is GroupBy.DAY:
        return [(record.day.isoformat(), 1.0)]
    datasets = record.outputs or record.inputs
    if not datasets:
        return [(UNKNOWN, 1.0)]
    return [(str(d), 1.0 / len(datasets)) for d in datasets]


# ---------------------------------------------------------------------- budgets


@dataclass(frozen=True)
class BudgetStatus:
    team: str
    month: str
    spent: float
    budget: float
    currency: str
    warn_at: float
    fail_at: float
    projected: float

    @property
    def share(self) -> float:
        return self.spent / self.budget if self.budget else 0.0

    @property
    def state(self) -> BudgetState:
        if self.share >= self.fail_at:
            return BudgetState.FAIL
        return BudgetState.WARN if self.share >= self.warn_at else BudgetState.OK

    @classmethod
    def of(cls, budget: Budget, spent: float, today: date) -> "BudgetStatus":
        """A budget's status with ``spent`` this month by ``today``, projected to the month's end in a straight line."""
        first = today.replace(day=1)
        days_in_month = ((first + timedelta(days=32)).replace(day=1) - first).days
        return cls(budget.team, first.strftime("%Y-%m"), spent, budget.monthly, budget.currency, budget.warn_at,
                   budget.fail_at, spent / today.day * days_in_month)

    def to_json(self) -> dict[str, Any]:
        return {"team": self.team, "month": self.month, "spent": round(self.spent, 9), "budget": self.budget,
                "currency": self.currency, "share": round(self.share, 6), "warn_at": self.warn_at, "fail_at": self.fail_at,
                "projected": round(self.projected, 9), "state": self.state.value}


def budget_status(records: Iterable[CostRecord], policy: Policy, today: date) -> list[BudgetStatus]:
    """Each budgeted team's spending this calendar month (UTC) so far, with a straight-line projection."""
    first = today.replace(day=1)
    month = [r for r in records if first <= r.day <= today]
    out = []
    for budget in policy.document.budgets:
        spent = sum(r.amount or 0.0 for r in month if r.team == budget.team and (r.currency in (None, budget.currency)))
        out.append(BudgetStatus.of(budget, spent, today))
    return out


# ---------------------------------------------------------------------- cost along lineage


@dataclass
class LineageCost:
    """What a dataset costs to produce: every step writing it or anything upstream of it."""

    dataset: DatasetRef
    total: float
    per_day: dict[str, float]
    steps: list[CostRow]
    upstream: int

    @property
    def average_per_day(self) -> float:
        return self.total / len(self.per_day) if self.per_day else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"dataset": str(self.dataset), "total": round(self.total, 9), "average_per_day": round(self.average_per_day, 9),
                "per_day": {d: round(v, 9) for d, v in sorted(self.per_day.items())}, "upstream_datasets": self.upstream,
                "steps": [s.to_json() for s in self.steps]}


def lineage_cost(records: Iterable[CostRecord], graph: Any, dataset: DatasetRef) -> LineageCost:
    """The cost of producing ``dataset``: runs of every job that wrote it or a dataset upstream of it."""
    upstream = [dataset, *graph.upstream(dataset)]
    jobs = {job for d in upstream for job in graph.producers(d)}
    steps: dict[str, CostRow] = {}
    per_day: dict[str, float] = {}
    for record in records:
        if record.job in jobs:
            steps.setdefault(record.job.name, CostRow(record.job.name)).add(record)
            day = record.day.isoformat()
            per_day[day] = per_day.get(day, 0.0) + (record.amount or 0.0)
    ranked = sorted(steps.values(), key=lambda r: (-r.amount, r.key))
    return LineageCost(dataset, sum(r.amount for r in ranked), per_day, ranked, len(upstream) - 1)
