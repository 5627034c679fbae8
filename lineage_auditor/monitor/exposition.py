"""The folded state as Prometheus metrics (prometheus_client's text format).

Names and units follow Prometheus's conventions: ``_total`` counters, ``_seconds``
histograms, ``_timestamp_seconds`` gauges, all prefixed ``lineage_audit_``. What is not in
the events (the specs' deadlines, the open findings of the last audit, the local spool, the
teams' budgets) comes in :class:`Extras`, so the exposition stays one pure function of what
it is given; ``/metrics`` and ``metrics --textfile`` both call :func:`render`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from lineage_auditor.governance.costs import BudgetStatus
from lineage_auditor.monitor.fold import Histogram, Labels, MonitorState

PREFIX = "lineage_audit"
RUN = ("pipeline", "team", "step")


@dataclass(frozen=True)
class Deadline:
    """A spec's schedule facts the alert rules compare runs against."""

    pipeline: str
    team: str
    deadline_s: float | None  # latest success after the nominal time (the spec's sla.deadline)
    max_duration_s: float | None
    schedule_interval_s: float | None  # seconds between two scheduled runs (None: unscheduled)


@dataclass
class Extras:
    """What the metrics need beyond the events."""

    deadlines: list[Deadline] = field(default_factory=list)
    findings: dict[tuple[str, str], int] = field(default_factory=dict)  # (severity, check) -> open findings
    ai_findings: dict[tuple[str, str], int] = field(default_factory=dict)  # (dataset, severity) -> open
    audit_time: float | None = None
    spool: tuple[int, int] | None = None  # (pending, rejected) of the local spool
    budgets: list[BudgetStatus] = field(default_factory=list)  # the policy's budgets with this month's spending
    events_stored: int | None = None


class StateCollector(Collector):
    """Yields the metric families of one state and its extras (a fresh one per exposition)."""

    def __init__(self, state: MonitorState, extras: Extras) -> None:
        self.state = state
        self.extras = extras

    def collect(self) -> Iterator[Metric]:
        yield from _run_metrics(self.state)
        yield from _extra_metrics(self.extras, self.state)


def _run_metrics(state: MonitorState) -> Iterator[Metric]:
    runs = CounterMetricFamily(f"{PREFIX}_runs", "Finished runs of pipelines and steps by final state.",
                               labels=[*RUN, "state"])
    for (labels, run_state), n in sorted(state.runs_total.items()):
        runs.add_metric([*labels, run_state], n)
    yield runs
    yield _histograms(f"{PREFIX}_run_duration_seconds", "Duration of pipeline runs (START to final event).",
                      state.run_duration, ("pipeline", "team"))
    yield _histograms(f"{PREFIX}_step_duration_seconds", "Duration of step runs (START to final event).",
                      state.step_duration, RUN)
    yield _histograms(f"{PREFIX}_task_latency_seconds", "Nominal (scheduled) start time to the run's START.",
                      state.latency, RUN)
    for name, doc, table in (
        ("rows_written", "Rows written by completed and failed runs (outputStatistics.rowCount).", state.rows_written),
        ("bytes_written", "Bytes written (outputStatistics.size).", state.bytes_written),
        ("retries", "Retries reported by runs: a step's re-attempts and its source's retried requests.", state.retries),
        ("lineage_emit_failures", "Lineage events a run's producer could not deliver when it ran (spooled for replay), "
                                  "as its final event reports them.", state.emit_failures),
    ):
        family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=list(RUN))
        for labels, value in sorted(table.items()):
            family.add_metric(list(labels), value)
        yield family
    errors = CounterMetricFamily(f"{PREFIX}_source_errors", "Failed source steps (extract, gate) by kind of error.",
                                 labels=[*RUN, "kind"])
    for (labels, kind), n in sorted(state.source_errors.items()):
        errors.add_metric([*labels, kind], n)
    yield errors
    success = GaugeMetricFamily(f"{PREFIX}_last_success_timestamp_seconds",
                                "Event time of the latest COMPLETE of each pipeline and step.", labels=list(RUN))
    for labels, moment in sorted(state.last_success.items()):
        success.add_metric(list(labels), moment)
    yield success
    cost = CounterMetricFamily(f"{PREFIX}_cost", "Cost of runs from their cost facet, in the facet's currency.",
                               labels=[*RUN, "currency"])
    for (labels, currency), amount in sorted(state.cost.items()):
        cost.add_metric([*labels, currency], amount)
    yield cost
    failed = GaugeMetricFamily(f"{PREFIX}_last_run_failed", "1 when a pipeline's latest run ended in FAIL or ABORT.",
                               labels=["pipeline", "team"])
    last_run = GaugeMetricFamily(f"{PREFIX}_last_run_timestamp_seconds", "Event time of a pipeline's latest final event.",
                                 labels=["pipeline", "team"])
    for name, status in sorted(state.pipelines.items()):
        if status.last_state:
            failed.add_metric([name, status.team], 1.0 if status.last_state in ("FAIL", "ABORT") else 0.0)
        if status.last_run_at is not None:
            last_run.add_metric([name, status.team], status.last_run_at.timestamp())
    yield from (failed, last_run)
    events = CounterMetricFamily(f"{PREFIX}_events_folded", "Run events folded into these metrics.")
    events.add_metric([], state.events)
    yield events


def _histograms(name: str, doc: str, table: dict[Labels, Histogram], label_names: tuple[str, ...]) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=list(label_names))
    for labels, hist in sorted(table.items()):
        family.add_metric(list(labels[: len(label_names)]), hist.cumulative(), hist.total)
    return family


def _extra_metrics(extras: Extras, state: MonitorState) -> Iterator[Metric]:
    deadline = GaugeMetricFamily(f"{PREFIX}_pipeline_deadline_seconds",
                                 "A spec's sla.deadline: latest success after the nominal time.", labels=["pipeline", "team"])
    interval = GaugeMetricFamily(f"{PREFIX}_pipeline_schedule_interval_seconds",
                                 "Seconds between two scheduled runs of a spec.", labels=["pipeline", "team"])
    max_duration = GaugeMetricFamily(f"{PREFIX}_pipeline_max_duration_seconds", "A spec's sla.max_duration.",
                                     labels=["pipeline", "team"])
    for d in sorted(extras.deadlines, key=lambda d: d.pipeline):
        if d.deadline_s is not None:
            deadline.add_metric([d.pipeline, d.team], d.deadline_s)
        if d.schedule_interval_s is not None:
            interval.add_metric([d.pipeline, d.team], d.schedule_interval_s)
        if d.max_duration_s is not None:
            max_duration.add_metric([d.pipeline, d.team], d.max_duration_s)
    yield from (deadline, interval, max_duration)
    findings = GaugeMetricFamily(f"{PREFIX}_findings_open", "Findings of the latest audit by severity and check.",
                                 labels=["severity", "check"])
    for (severity, check), n in sorted(extras.findings.items()):
        findings.add_metric([severity, check], n)
    yield findings
    ai = GaugeMetricFamily(f"{PREFIX}_ai_dataset_findings_open", "Findings of the latest audit per AI dataset.",
                           labels=["dataset", "severity"])
    for (dataset, severity), n in sorted(extras.ai_findings.items()):
        ai.add_metric([dataset, severity], n)
    yield ai
    if extras.audit_time is not None:
        audited = GaugeMetricFamily(f"{PREFIX}_audit_timestamp_seconds", "When the open findings were computed.")
        audited.add_metric([], extras.audit_time)
        yield audited
    if extras.spool is not None:
        pending = GaugeMetricFamily(f"{PREFIX}_spool_depth", "Events waiting in the local spool (lineage emit failures not yet replayed).")
        pending.add_metric([], extras.spool[0])
        rejected = GaugeMetricFamily(f"{PREFIX}_spool_rejected", "Events the lineage target refused, set aside in the spool.")
        rejected.add_metric([], extras.spool[1])
        yield from (pending, rejected)
    yield from _budget_metrics(extras.budgets)
    if extras.events_stored is not None:
        stored = GaugeMetricFamily(f"{PREFIX}_events_stored", "Events in the lineage store.")
        stored.add_metric([], extras.events_stored)
        yield stored


def _budget_metrics(budgets: list[BudgetStatus]) -> Iterator[Metric]:
    amount = GaugeMetricFamily(f"{PREFIX}_budget_monthly", "A team's monthly budget (the governance policy's budgets).",
                               labels=["team", "currency"])
    spent = GaugeMetricFamily(f"{PREFIX}_budget_spent", "What a team's runs cost this calendar month (UTC) so far.",
                              labels=["team", "currency"])
    warn = GaugeMetricFamily(f"{PREFIX}_budget_warn_ratio", "A team's warn_at (fraction of the budget).", labels=["team"])
    fail = GaugeMetricFamily(f"{PREFIX}_budget_fail_ratio", "A team's fail_at (fraction of the budget).", labels=["team"])
    for b in sorted(budgets, key=lambda b: b.team):
        amount.add_metric([b.team, b.currency], b.budget)
        spent.add_metric([b.team, b.currency], b.spent)
        warn.add_metric([b.team], b.warn_at)
        fail.add_metric([b.team], b.fail_at)
    yield from (amount, spent, warn, fail)


def render(state: MonitorState, extras: Extras) -> bytes:
    """The text exposition of ``state`` and ``extras``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(state, extras))
    return generate_latest(registry)


def write_textfile(path: str | Path, state: MonitorState, extras: Extras) -> None:
    """Write the exposition for node_exporter's textfile collector (atomically: temp file, rename)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(state, extras))
    write_to_textfile(str(path), registry)
