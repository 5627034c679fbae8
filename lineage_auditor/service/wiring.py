"""Composition root of monitoring: a store, the specs, the audit and the spool, wired together.

Like the CLI modules, this module may import every package (tests/test_import_graph.py lists
it among the composition roots): ``serve``, ``metrics --textfile`` and ``status`` all build
one :class:`Monitor` and ask it for metrics or the status table, so they agree by
construction.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from collectors.store import IndexedStore, open_indexed
from collectors.store.follow import StoreFollower
from lineage_auditor.errors import LineageAuditError
from lineage_auditor.monitor.alerts import Snapshot
from lineage_auditor.monitor.exposition import Deadline, Extras, render
from lineage_auditor.monitor.notify import Alerting
from lineage_auditor.governance import Policy
from lineage_auditor.governance.tags import TagIndex, config_rules
from lineage_auditor.governance.costs import BudgetStatus, price_facet
from lineage_auditor.monitor.fold import MonitorState, PipelineStatus, Pricer, sparkline
from lineage_auditor.times import iso


@dataclass
class SpecInfo:
    """What the status screen and the deadline metrics need from a spec."""

    pipeline: str
    team: str
    schedule: str
    timezone: str
    next_run: str | None
    deadline_s: float | None
    max_duration_s: float | None
    interval_s: float | None


def load_spec_infos(paths: Iterable[str | Path], now: datetime | None = None) -> tuple[list[SpecInfo], list[str]]:
    """The specs under ``paths`` (files or folders) and the problems of those that do not load."""
    from pipelines.dsl.listing import schedule_of
    from pipelines.dsl.loader import load_specs
    from pipelines.dsl.schedule import parse_cron, zone

    moment = now or datetime.now(timezone.utc)
    specs, problems = load_specs(paths)
    messages = [str(p) for p in problems]
    infos = []
    for spec in specs:
        pipeline = spec.pipeline
        try:
            effective, upcoming = schedule_of(spec, moment)
        except LineageAuditError as exc:
            messages.append(f"{spec.path}: {exc.message}")
            continue
        interval = None
        cron = parse_cron(effective) if effective != "none" else None
        if cron is not None and upcoming:
            first = cron.next_after(moment, zone(pipeline.timezone))
            second = cron.next_after(first, zone(pipeline.timezone)) if first else None
            interval = (second - first).total_seconds() if first and second else None
        sla = pipeline.sla
        infos.append(SpecInfo(
            pipeline.id, pipeline.team, effective, pipeline.timezone, upcoming,
            sla.deadline.total_seconds() if sla and sla.deadline else None,
            sla.max_duration.total_seconds() if sla and sla.max_duration else None,
            interval,
        ))
    return sorted(infos, key=lambda i: i.pipeline), messages


@dataclass
class AuditFindings:
    """Open findings of the latest audit: counts for the metrics, the findings for the pages."""

    by_check: dict[tuple[str, str], int] = field(default_factory=dict)
    by_dataset: dict[tuple[str, str], int] = field(default_factory=dict)
    findings: list[Any] = field(default_factory=list)
    at: float | None = None
    error: str = ""


class Monitor:
    """A store followed incrementally, plus what the metrics need beyond the events."""

    def __init__(self, store: IndexedStore, *, specs: Iterable[str | Path] = (), audit_config: str | None = None,
                 spool: Path | None = None, audit_every_s: float = 60.0, policy: Policy | None = None) -> None:
        self.store = store
        self.policy = policy
        self.follower = StoreFollower(store, MonitorState(price=_pricer(policy)))
        self.spec_paths = list(specs)
        self.specs, self.spec_problems = load_spec_infos(self.spec_paths) if self.spec_paths else ([], [])
        self.audit_config = audit_config
        self.spool = spool
        self.audit_every_s = audit_every_s
        self.audit = AuditFindings()
        self._audited_events = -1
        self._audit_lock = threading.Lock()

    @classmethod
    def open(cls, address: str, **kwargs: Any) -> "Monitor":
        return cls(open_indexed(address), **kwargs)

    def close(self) -> None:
        self.store.close()

    # -------------------------------------------------------------------------- metrics

    def refresh(self) -> int:
        return self.follower.refresh()

    def extras(self, now: datetime | None = None) -> Extras:
        infos = {i.pipeline: i for i in self.specs}
        deadlines = [Deadline(i.pipeline, i.team, i.deadline_s, i.max_duration_s, i.interval_s) for i in infos.values()]
        return Extras(deadlines=deadlines, findings=dict(self.audit.by_check), ai_findings=dict(self.audit.by_dataset),
                      audit_time=self.audit.at, spool=self._spool_depth(), budgets=self.budgets(now),
                      events_stored=self.follower.state.events)

    def budgets(self, now: datetime | None = None) -> list[BudgetStatus]:
        """Each budget of the policy with its team's cost this month (UTC) so far, from the folded events."""
        if self.policy is None:
            return []
        moment = now or datetime.now(timezone.utc)
        state = self.follower.state
        return [BudgetStatus.of(b, state.team_cost(b.team, b.currency, moment), moment.date())
                for b in self.policy.document.budgets]

    def metrics(self) -> bytes:
        """The text exposition after folding what arrived since the last call."""
        self.refresh()
        return render(self.follower.state, self.extras())

    # -------------------------------------------------------------------------- alerts

    def alerting(self, console: Callable[[str], None]) -> Alerting | None:
        """The policy's ``alerts:`` (None without): files in ``$LINEAGE_AUDIT_HOME/alerts`` unless it places them."""
        if self.policy is None or self.policy.document.alerts is None:
            return None
        from collectors.store.address import lineage_home

        return Alerting(self.policy.document.alerts, folder=lineage_home() / "alerts", base=Path(self.policy.file).parent,
                        console=console)

    def alert_snapshot(self, now: datetime | None = None) -> Snapshot:
        """What the alert conditions look at, from the same status, budgets and findings the metrics show."""
        rows = self.status_rows(now=now)
        spool = self._spool_depth()
        return Snapshot(
            failed=[(r["pipeline"], r["team"], r["last_error"] or "") for r in rows if r["last_state"] in ("FAIL", "ABORT")],
            missed=[(r["pipeline"], r["team"]) for r in rows if r["deadline"] == "missed"],
            spool=spool[0] if spool else None, budgets=self.budgets(now),
            ai_high={dataset: n for (dataset, severity), n in self.audit.by_dataset.items() if severity == "high"},
            instance=socket.gethostname())

    def _spool_depth(self) -> tuple[int, int] | None:
        if self.spool is None:
            return None
        from collectors.emit.spool import Spool

        spool = Spool(self.spool)
        return len(spool.pending()), len(spool.rejected())

    def tag_index(self, graph: Any) -> TagIndex:
        """Where the tags are: the audit config's ``tags:`` rules and the ``tags`` facets in ``graph``."""
        from lineage_auditor.audit.config import load_config

        rules: list[Any] = []
        if self.audit_config:
            try:
                rules = config_rules(load_config(str(self.audit_config)))
            except LineageAuditError:
                rules = []  # the audit reports the broken config; the store's tags still apply
        return TagIndex.from_rules(rules).observe(graph)

    # -------------------------------------------------------------------------- audit

    def audit_due(self) -> bool:
        return bool(self.audit_config) and self.follower.state.events != self._audited_events and (
            self.audit.at is None or time.time() - self.audit.at >= self.audit_every_s)

    def run_audit(self) -> AuditFindings:
        """Audit the AI datasets of the audit config over the store (what `lineage-audit audit` does)."""
        from lineage_auditor.audit.config import load_config
        from lineage_auditor.audit.runner import load_scoped, run_audit

        with self._audit_lock:
            events = self.follower.state.events
            found = AuditFindings(at=time.time())
            try:
                config = load_config(str(self.audit_config))
                graph, view, _ = load_scoped(self.store, config)
                result = run_audit(graph, view, config)
            except LineageAuditError as exc:
                found.error = str(exc)
                self.audit = found
                return found
            targets = {str(t.name) for t in result.datasets}
            for f in result.findings:
                key = (f.severity.value, f.check)
                found.by_check[key] = found.by_check.get(key, 0) + 1
                dataset = next((t for t in targets if f.subject == t or f.subject.startswith(t + ".")), None)
                if dataset:
                    found.by_dataset[(dataset, f.severity.value)] = found.by_dataset.get((dataset, f.severity.value), 0) + 1
            found.findings = list(result.findings)
            self.audit = found
            self._audited_events = events
            return found

    # -------------------------------------------------------------------------- status

    def status_rows(self, *, team: str | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
        """One row per pipeline (specs and pipelines seen in the store), for the screen and JSON."""
        self.refresh()
        moment = now or datetime.now(timezone.utc)
        state = self.follower.state
        infos = {i.pipeline: i for i in self.specs}
        names = sorted(set(infos) | set(state.pipelines))
        findings: dict[str, int] = {}
        for f in self.audit.findings:
            findings[f.subject.split(".")[0]] = findings.get(f.subject.split(".")[0], 0) + 1
        rows = []
        for name in names:
            info = infos.get(name)
            status = state.pipelines.get(name) or PipelineStatus(name)
            row_team = (info.team if info else "") or status.team
            if team and row_team != team:
                continue
            durations = [d for _, d in status.durations]
            rows.append({
                "pipeline": name, "team": row_team,
                "schedule": info.schedule if info else None, "next_run": info.next_run if info else None,
                "last_state": status.last_state or None,
                "last_run_at": iso(status.last_run_at) if status.last_run_at else None,
                "last_success_at": iso(status.last_success) if status.last_success else None,
                "last_error": status.last_error or None,
                "durations_s": durations, "sparkline": sparkline(durations),
                "deadline": _deadline_status(info, status, moment),
                "open_findings": self._findings_for(name),
                "cost_month": round(state.month_cost(name, moment), 6),
                "runs": status.runs, "failures": status.failures,
            })
        return rows

    def _findings_for(self, pipeline: str) -> int:
        """Open findings about datasets a pipeline wrote (0 when no audit config is given)."""
        written = self.follower.state.outputs.get(pipeline, set())
        return sum(1 for f in self.audit.findings if any(f.subject == d or f.subject.startswith(d + ".") for d in written))


def _pricer(policy: Policy | None) -> Pricer | None:
    """Prices cost facets recorded without an amount with the policy's cost model (as ``costs`` does)."""
    if policy is None or policy.document.cost_model is None:
        return None

    def price(facet: Any) -> tuple[float, str]:
        priced = price_facet(policy, facet)
        return priced if priced is not None else (0.0, "")

    return price


def _deadline_status(info: SpecInfo | None, status: PipelineStatus, now: datetime) -> str:
    """``ok``, ``missed`` (no success within the deadline of the latest scheduled run) or ``-``."""
    if info is None or info.deadline_s is None or info.interval_s is None or not info.next_run:
        return "-"
    from lineage_auditor.times import parse_time

    last_due = parse_time(info.next_run).timestamp() - info.interval_s
    if now.timestamp() < last_due + info.deadline_s:
        return "ok"
    if status.last_success is not None and status.last_success.timestamp() >= last_due:
        return "ok"
    return "missed"
