"""Pipeline health folded from run events, one event at a time: the source of every metric.

Why a fold: ``/metrics`` is scraped every few seconds and a store holds every event ever
sent. :class:`MonitorState` takes each event once (the store hands out only what arrived
since the last read, see ``events_after``) and keeps counters, histograms and a little per
run, so a scrape costs the new events, never the history. The fold is order-free: any
arrival order of the same events gives the same state, so two replicas reading one store
expose the same numbers.

Pure: no I/O, no clock. Labels follow the OpenLineage events: a run with a ``parent`` facet
is a step of the parent's job (``pipeline``), its ``step`` the job name without the
pipeline's prefix (``users_orders.load`` -> ``load``); a run without one is the pipeline
itself (``step=""``). ``team`` is the run's ``lineageAudit_runBy`` facet's team when
present, else the job's ``team:NAME`` owner.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from lineage_auditor.events import RunEvent, RunState
from lineage_auditor.times import try_parse_time

DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0)
LATENCY_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0, 172800.0)
HISTORY = 10  # durations kept per pipeline for the status screen's sparkline
GOVERNANCE_FACET = "lineageAudit_runBy"  # lineage_auditor.governance.RUN_BY_FACET: runBy, team
STATS_FACET = "lineageAudit_stats"
COST_FACET = "lineageAudit_cost"
SOURCE_STEP = re.compile(r"^(extract|gate) step\b")


class Labels(tuple[str, str, str]):
    """(pipeline, team, step) of a run."""

    __slots__ = ()

    @property
    def pipeline(self) -> str:
        return self[0]

    @property
    def team(self) -> str:
        return self[1]

    @property
    def step(self) -> str:
        return self[2]


@dataclass
class Histogram:
    """Cumulative-at-exposition bucket counts, a sum and a count (Prometheus's histogram)."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.n += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, count) pairs ending with +Inf, as exposition wants them."""
        counts = self.counts or [0] * (len(self.bounds) + 1)
        out, running = [], 0
        for bound, count in zip([*map(_le, self.bounds), "+Inf"], counts):
            running += count
            out.append((bound, running))
        return out


def _le(bound: float) -> str:
    return f"{bound:g}" if bound != int(bound) else f"{bound:.1f}"


@dataclass
class _Run:
    """What the fold remembers of one run until it can say everything about it."""

    labels: Labels | None = None
    start: datetime | None = None
    start_is_event: bool = False
    end: datetime | None = None
    end_order: tuple[str, int] = ("", -1)
    state: RunState | None = None
    nominal: datetime | None = None
    duration_seen: bool = False
    latency_seen: bool = False
    own_team: str = ""  # the team the run's own events name (runBy facet, else a team: owner)
    cost: tuple[tuple[str, int], float, str, datetime] | None = None  # latest cost report: order, amount, currency, time
    booked: tuple[tuple[str, str, str], float] | None = None  # where its cost counts in team_month_cost


@dataclass
class PipelineStatus:
    """The latest run of one pipeline and its recent durations (the status screen's row)."""

    pipeline: str
    team: str = ""
    last_state: str = ""
    last_run_at: datetime | None = None
    last_run_order: tuple[str, int] = ("", -1)
    last_error: str = ""
    last_success: datetime | None = None
    durations: deque[tuple[str, float]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    runs: int = 0
    failures: int = 0
    cost: float = 0.0


#: Prices a cost facet recorded without an amount: (amount, currency) by today's cost model.
Pricer = Callable[[Mapping[str, Any]], tuple[float, str]]


class MonitorState:
    """Counters, histograms and per-pipeline status folded from run events.

    ``price`` (optional) prices a run whose cost facet has no amount, as ``lineage-audit
    costs`` does with the policy's cost model, for the teams' month-to-date cost.
    """

    def __init__(self, price: Pricer | None = None) -> None:
        self.price = price
        self.events = 0
        self.runs_total: dict[tuple[Labels, str], int] = {}
        self.run_duration: dict[Labels, Histogram] = {}
        self.step_duration: dict[Labels, Histogram] = {}
        self.latency: dict[Labels, Histogram] = {}
        self.rows_written: dict[Labels, float] = {}
        self.bytes_written: dict[Labels, float] = {}
        self.retries: dict[Labels, float] = {}
        self.emit_failures: dict[Labels, float] = {}  # lineage events a run's producer could not deliver
        self.source_errors: dict[tuple[Labels, str], int] = {}
        self.last_success: dict[Labels, float] = {}
        self.cost: dict[tuple[Labels, str], float] = {}
        self.pipelines: dict[str, PipelineStatus] = {}
        self.steps: dict[str, set[str]] = {}  # pipeline -> its step names
        self.outputs: dict[str, set[str]] = {}  # pipeline -> names of the datasets its runs wrote
        self.monthly_cost: dict[tuple[str, str], float] = {}  # (pipeline, YYYY-MM) -> amount
        self.team_month_cost: dict[tuple[str, str, str], float] = {}  # (team, currency, YYYY-MM) -> amount
        self._runs: dict[str, _Run] = {}
        self._teams: dict[str, str] = {}  # pipeline -> team, for steps whose own events name none

    # ------------------------------------------------------------------------ folding

    def fold(self, events: Iterable[RunEvent]) -> int:
        """Take each event once (the store guarantees it); returns how many were folded."""
        n = 0
        for event in events:
            self.add(event)
            n += 1
        return n

    def add(self, event: RunEvent) -> None:
        self.events += 1
        run = self._runs.setdefault(event.run_id, _Run())
        if run.labels is None or (not run.labels.team and _team(event)):
            run.labels = self._labels(event)
        labels = run.labels
        if labels.step:
            self.steps.setdefault(labels.pipeline, set()).add(labels.step)
        self._times(run, event)
        if event.event_type.final:
            self._final(run, labels, event)
        self._observe(run, labels)
        self._book_cost(run, event)

    def _labels(self, event: RunEvent) -> Labels:
        parent = (event.run_facets.get("parent") or {}).get("job") or {}
        pipeline = str(parent.get("name") or "") or event.job.name
        step = ""
        if parent.get("name"):
            name = event.job.name
            step = name[len(pipeline) + 1:] if name.startswith(pipeline + ".") else name
        team = _team(event) or self._teams.get(pipeline, "")
        if team and not step:
            self._teams[pipeline] = team
        return Labels((pipeline, team, step))

    def _times(self, run: _Run, event: RunEvent) -> None:
        if event.event_type is RunState.START:
            if not run.start_is_event or (run.start is not None and event.time < run.start):
                run.start, run.start_is_event = event.time, True
        elif not run.start_is_event and (run.start is None or event.time < run.start):
            run.start = event.time
        if run.nominal is None:
            nominal = (event.run_facets.get("nominalTime") or {}).get("nominalStartTime")
            run.nominal = try_parse_time(nominal) if nominal else None

    def _final(self, run: _Run, labels: Labels, event: RunEvent) -> None:
        state = event.event_type.value
        key = (labels, state)
        self.runs_total[key] = self.runs_total.get(key, 0) + 1
        if event.order > run.end_order:
            run.end, run.end_order, run.state = event.time, event.order, event.event_type
        if event.event_type is RunState.COMPLETE:
            moment = event.time.timestamp()
            self.last_success[labels] = max(self.last_success.get(labels, 0.0), moment)
        if event.outputs:
            self.outputs.setdefault(labels.pipeline, set()).update(ds.ref.name for ds in event.outputs)
        rows = sum(float(ds.row_count or 0) for ds in event.outputs)
        size = sum(float((ds.output_facets.get("outputStatistics") or {}).get("size") or 0) for ds in event.outputs)
        if rows:
            self.rows_written[labels] = self.rows_written.get(labels, 0.0) + rows
        if size:
            self.bytes_written[labels] = self.bytes_written.get(labels, 0.0) + size
        counts = (event.run_facets.get(STATS_FACET) or {}).get("counts") or {}
        # a reported 0 starts the series, so Prometheus's increase() sees the first retry or failure
        if "retries" in counts:
            self.retries[labels] = self.retries.get(labels, 0.0) + _number(counts["retries"])
        if "lineageEmitFailures" in counts:
            self.emit_failures[labels] = self.emit_failures.get(labels, 0.0) + _number(counts["lineageEmitFailures"])
        if event.event_type is RunState.FAIL and _is_source(event):
            kind = error_kind(event.error_message or "")
            self.source_errors[(labels, kind)] = self.source_errors.get((labels, kind), 0) + 1
        self._cost(labels, event)
        self._status(labels, event)

    def _cost(self, labels: Labels, event: RunEvent) -> None:
        facet = event.run_facets.get(COST_FACET) or {}
        amount = _number(facet.get("amount", facet.get("total")))
        if amount:
            key = (labels, str(facet.get("currency") or ""))
            self.cost[key] = self.cost.get(key, 0.0) + amount
            status = self.pipelines.setdefault(labels.pipeline, PipelineStatus(labels.pipeline))
            status.cost += amount
            month = (labels.pipeline, event.time.strftime("%Y-%m"))
            self.monthly_cost[month] = self.monthly_cost.get(month, 0.0) + amount

    def month_cost(self, pipeline: str, now: datetime) -> float:
        """What a pipeline's runs (steps included) cost in the month of ``now``."""
        return self.monthly_cost.get((pipeline, now.strftime("%Y-%m")), 0.0)

    def _book_cost(self, run: _Run, event: RunEvent) -> None:
        """Count a run's cost for its team and month the way ``lineage-audit costs`` does.

        The run's latest cost report (by event order) is its cost; the team is the one its
        own events name (runBy facet, else a ``team:`` owner); the month is the cost report's
        event time (UTC): when the money was spent, a backfill included. A later event may change any of
        the three, so the run's cost is un-booked and booked again: any arrival order of the
        same events ends in the same sums.
        """
        run.own_team = run.own_team or _team(event)
        facet = event.run_facets.get(COST_FACET)
        if isinstance(facet, Mapping) and (run.cost is None or event.order >= run.cost[0]):
            amount, currency = _number(facet.get("amount", facet.get("total"))), str(facet.get("currency") or "")
            if "amount" not in facet and "total" not in facet and self.price is not None:
                amount, currency = self.price(facet)
            run.cost = (event.order, amount, currency, event.time)
        if run.cost is None:
            return
        _, amount, currency, moment = run.cost
        month = moment.astimezone(timezone.utc).strftime("%Y-%m")
        booking = ((run.own_team, currency, month), amount)
        if booking == run.booked:
            return
        if run.booked is not None:
            key, old = run.booked
            self.team_month_cost[key] = self.team_month_cost.get(key, 0.0) - old
        self.team_month_cost[booking[0]] = self.team_month_cost.get(booking[0], 0.0) + amount
        run.booked = booking

    def team_cost(self, team: str, currency: str, now: datetime) -> float:
        """What ``team``'s runs cost in the month of ``now`` (UTC), in ``currency`` (and in none named)."""
        month = now.astimezone(timezone.utc).strftime("%Y-%m")
        return sum(self.team_month_cost.get((team, c, month), 0.0) for c in dict.fromkeys((currency, "")))

    def _status(self, labels: Labels, event: RunEvent) -> None:
        if labels.step:
            return
        status = self.pipelines.setdefault(labels.pipeline, PipelineStatus(labels.pipeline))
        status.team = status.team or labels.team
        status.runs += 1
        if event.event_type is RunState.FAIL:
            status.failures += 1
        if event.order > status.last_run_order:
            status.last_run_order = event.order
            status.last_state = event.event_type.value
            status.last_run_at = event.time
            status.last_error = event.error_message or ""
        if event.event_type is RunState.COMPLETE and (status.last_success is None or event.time > status.last_success):
            status.last_success = event.time

    def _observe(self, run: _Run, labels: Labels) -> None:
        """Durations and latency, once each, as soon as a run's times are known (any order)."""
        if not run.duration_seen and run.end is not None and run.start_is_event and run.start is not None:
            run.duration_seen = True
            seconds = max(0.0, (run.end - run.start).total_seconds())
            table = self.step_duration if labels.step else self.run_duration
            table.setdefault(labels, Histogram(DURATION_BUCKETS)).observe(seconds)
            if not labels.step:
                status = self.pipelines.setdefault(labels.pipeline, PipelineStatus(labels.pipeline))
                status.durations.append((run.end.isoformat(), seconds))
                status.durations = deque(sorted(status.durations), maxlen=HISTORY)
        if not run.latency_seen and run.nominal is not None and run.start_is_event and run.start is not None:
            run.latency_seen = True
            seconds = max(0.0, (run.start - run.nominal).total_seconds())
            self.latency.setdefault(labels, Histogram(LATENCY_BUCKETS)).observe(seconds)


def _team(event: RunEvent) -> str:
    governance = event.run_facets.get(GOVERNANCE_FACET) or {}
    if isinstance(governance.get("team"), str) and governance["team"]:
        return str(governance["team"])
    owners = (event.job_facets.get("ownership") or {}).get("owners") or []
    for owner in owners:
        name = str(owner.get("name") or "")
        if name.startswith("team:"):
            return name[5:]
    return ""


def _is_source(event: RunEvent) -> bool:
    """A step that reads a source: the runner's extract and gate steps (its job documentation)."""
    text = str((event.job_facets.get("documentation") or {}).get("description") or "")
    return bool(SOURCE_STEP.match(text))


_KINDS = (
    ("timeout", re.compile(r"(?i)time(d)?[ -]?out|did not answer within")),
    ("rate_limited", re.compile(r"(?i)\b429\b|rate.?limit")),
    ("server_error", re.compile(r"(?i)\bHTTP 5\d\d\b|\b5\d\d (server|internal|bad gateway|service)")),
    ("client_error", re.compile(r"(?i)\bHTTP 4\d\d\b|unauthori[sz]ed|forbidden|not found")),
    ("connection", re.compile(r"(?i)connect|unreachable|refused|reset by peer|name resolution")),
    ("invalid_data", re.compile(r"(?i)dead.?letter|does not fit|invalid|schema|not valid")),
    ("stale", re.compile(r"(?i)stale|freshness|older than")),
)


def error_kind(message: str) -> str:
    """A source error's kind from its message: timeout, rate_limited, server_error, ... or other."""
    for kind, pattern in _KINDS:
        if pattern.search(message):
            return kind
    return "other"


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value)


def sparkline(values: Iterable[float]) -> str:
    """Durations as block characters, lowest to highest (one per run)."""
    data = list(values)
    if not data:
        return ""
    blocks = "▁▂▃▄▅▆▇█"
    low, high = min(data), max(data)
    span = (high - low) or 1.0
    return "".join(blocks[min(len(blocks) - 1, int((v - low) / span * (len(blocks) - 1) + 0.5))] for v in data)


def label_map(labels: Labels) -> Mapping[str, str]:
    return {"pipeline": labels.pipeline, "team": labels.team, "step": labels.step}
