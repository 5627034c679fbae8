"""Alert conditions on the monitor's state, and their episodes: the rules of deploy/prometheus/alerts.yml without Prometheus.

For setups without Prometheus, the governance policy's ``alerts:`` routes the same
conditions to a webhook and the console (:mod:`.notify` delivers). This module is pure:

- :func:`evaluate` turns a :class:`Snapshot` (what the monitor knows now: failed pipelines,
  missed deadlines, the spool, budgets, AI-dataset findings) into the :class:`Alert` s that
  hold, named and labelled as the Prometheus rules name them, so a receiver written for
  Alertmanager reads both the same way.
- :func:`transition` compares them with what was firing (:class:`Episodes`) and says what to
  notify: an alert fires once when its condition starts (after holding for the condition's
  ``for:``) and resolves once when it ends, however often the conditions are evaluated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from lineage_auditor.governance.costs import BudgetState, BudgetStatus
from lineage_auditor.governance.model import AlertCondition
from lineage_auditor.times import iso, parse_time

#: Each condition's alert name and severity in deploy/prometheus/alerts.yml (a test holds them equal).
RULES: Mapping[AlertCondition, tuple[str, str]] = {
    AlertCondition.PIPELINE_FAILED: ("LineageAuditPipelineFailed", "page"),
    AlertCondition.DEADLINE_MISSED: ("LineageAuditDeadlineMissed", "page"),
    AlertCondition.SPOOL_BACKLOG: ("LineageAuditSpoolBacklog", "warning"),
    AlertCondition.BUDGET_WARN: ("LineageAuditBudgetWarn", "warning"),
    AlertCondition.AI_DATASET_HIGH_FINDINGS: ("LineageAuditHighFindingsOnAIDataset", "page"),
}


class Status(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Alert:
    """One condition that holds for one subject (a pipeline, a team, a dataset, a host)."""

    condition: AlertCondition
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    @property
    def team(self) -> str:
        """The team the alert is about ("" for a host's spool or an AI dataset)."""
        return self.labels.get("team", "")

    @property
    def fingerprint(self) -> str:
        """The alert's identity: its labels (not its figures, which change while it fires)."""
        text = json.dumps(sorted(self.labels.items()), separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Snapshot:
    """What the monitor knows now, for :func:`evaluate`."""

    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (pipeline, team, error)
    missed: list[tuple[str, str]] = field(default_factory=list)  # (pipeline, team) past their sla.deadline
    spool: int | None = None  # events waiting in this host's spool (None: no spool watched)
    budgets: list[BudgetStatus] = field(default_factory=list)
    ai_high: Mapping[str, int] = field(default_factory=dict)  # AI dataset -> open HIGH findings
    instance: str = ""  # this host, the spool alert's label


def _alert(condition: AlertCondition, labels: dict[str, str], summary: str, description: str = "") -> Alert:
    name, severity = RULES[condition]
    annotations = {"summary": summary, **({"description": description} if description else {})}
    return Alert(condition, {"alertname": name, **labels, "severity": severity}, annotations)


def evaluate(snapshot: Snapshot) -> list[Alert]:
    """Every alert whose condition holds in ``snapshot`` (the summaries are those of alerts.yml)."""
    alerts = [_alert(AlertCondition.PIPELINE_FAILED, {"pipeline": p, "team": t}, f"pipeline {p} (team {t}) failed",
                     f"The latest run of {p} ended in FAIL or ABORT" + (f": {error}" if error else "")
                     + "; see `lineage-audit status` or the service's pipeline page.")
              for p, t, error in snapshot.failed]
    alerts += [_alert(AlertCondition.DEADLINE_MISSED, {"pipeline": p, "team": t}, f"pipeline {p} missed its deadline",
                      f"No successful run of {p} within its sla.deadline.") for p, t in snapshot.missed]
    if snapshot.spool:
        alerts.append(_alert(AlertCondition.SPOOL_BACKLOG, {"instance": snapshot.instance},
                             f"{snapshot.spool} lineage events waiting in the spool of {snapshot.instance}",
                             "Run `lineage-audit replay` once the lineage target is reachable."))
    for b in snapshot.budgets:
        if b.state is not BudgetState.OK:
            over = f"; over its fail_at ({b.fail_at:.0%})" if b.state is BudgetState.FAIL else ""
            alerts.append(_alert(AlertCondition.BUDGET_WARN, {"team": b.team, "currency": b.currency},
                                 f"team {b.team} spent {b.share:.0%} of its monthly budget",
                                 f"{b.spent:.2f} of {b.budget:g} {b.currency} in {b.month} (warn_at {b.warn_at:.0%}{over}); "
                                 f"projected {b.projected:.2f} by the month's end."))
    for dataset, n in sorted(snapshot.ai_high.items()):
        if n:
            alerts.append(_alert(AlertCondition.AI_DATASET_HIGH_FINDINGS, {"dataset": dataset},
                                 f"{n} HIGH audit findings on AI dataset {dataset}",
                                 "See `lineage-audit audit` or the service's findings page."))
    return alerts


# ---------------------------------------------------------------------- episodes


@dataclass(frozen=True)
class Notification:
    """An alert that started (``firing``) or ended (``resolved``)."""

    status: Status
    alert: Alert
    starts_at: datetime
    ends_at: datetime | None = None


@dataclass
class Episodes:
    """Which alerts are firing since when, and which hold but wait out their ``for:`` (JSON-able)."""

    firing: dict[str, dict[str, Any]] = field(default_factory=dict)  # fingerprint -> alert and startsAt
    pending: dict[str, str] = field(default_factory=dict)  # fingerprint -> since (ISO time)

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "firing": self.firing, "pending": self.pending}

    @classmethod
    def from_json(cls, data: Any) -> "Episodes":
        """The episodes :meth:`to_json` wrote; ValueError naming the first thing that is not
        (the state file was edited or damaged), never a half-read state."""
        if not isinstance(data, Mapping):
            raise ValueError("not a JSON object")
        firing, pending = data.get("firing") or {}, data.get("pending") or {}
        if not isinstance(firing, Mapping) or not isinstance(pending, Mapping):
            raise ValueError("firing and pending must be objects")
        for fp, record in firing.items():
            if not (isinstance(record, Mapping) and isinstance(record.get("labels"), Mapping)
                    and isinstance(record.get("annotations"), Mapping) and isinstance(record.get("startsAt"), str)):
                raise ValueError(f"firing[{fp}] is not an alert record")
            AlertCondition(str(record.get("condition")))
            parse_time(record["startsAt"])
        for fp, since in pending.items():
            if not isinstance(since, str):
                raise ValueError(f"pending[{fp}] is not a time")
            parse_time(since)
        return cls({str(k): dict(v) for k, v in firing.items()}, {str(k): v for k, v in pending.items()})


def transition(episodes: Episodes, alerts: Iterable[Alert], now: datetime,
               hold: Callable[[AlertCondition], timedelta]) -> tuple[Episodes, list[Notification]]:
    """The next episodes and what to notify: new alerts fire (once they held ``hold``), gone ones resolve.

    As in Prometheus, an alert's ``startsAt`` is when it fired (after its ``for:``), and a
    condition that ends while pending never fires.
    """
    current = {a.fingerprint: a for a in alerts}
    after = Episodes()
    notes: list[Notification] = []
    for fp, alert in current.items():
        if fp in episodes.firing:
            after.firing[fp] = {**episodes.firing[fp], "annotations": dict(alert.annotations)}
            continue
        since = parse_time(episodes.pending[fp]) if fp in episodes.pending else now
        if now - since < hold(alert.condition):
            after.pending[fp] = iso(since)
            continue
        after.firing[fp] = {"condition": alert.condition.value, "labels": dict(alert.labels),
                            "annotations": dict(alert.annotations), "startsAt": iso(now)}
        notes.append(Notification(Status.FIRING, alert, now))
    for fp, record in episodes.firing.items():
        if fp not in current:
            gone = Alert(AlertCondition(record["condition"]), record["labels"], record["annotations"])
            notes.append(Notification(Status.RESOLVED, gone, parse_time(record["startsAt"]), now))
    return after, notes
