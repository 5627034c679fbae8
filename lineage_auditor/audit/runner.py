"""Run the enabled checks for the AI datasets in scope and collect their findings.

    >>> result = run_audit(graph, view, config)            # every AI dataset in the config
    >>> result = run_audit(graph, view, config, dataset="features.churn_features")
    >>> result.failed("high")

A check that crashes becomes a finding naming the error (the other checks still run): an
audit that silently skips a check would report a clean bill of health it never earned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from lineage_auditor.audit import (
    assertions,
    coverage,
    data_drift,
    freshness,
    governance,
    lineage_drift,
    pii,
    reported_vs_rebuilt,
    schema_drift,
)
from lineage_auditor.audit.config import AIDataset, AuditConfig
from lineage_auditor.audit.context import AuditContext, DataLoader
from lineage_auditor.audit.findings import HIGH, SEVERITIES, Finding, make_finding, max_severity, sort_findings
from lineage_auditor.audit.names import find_datasets, resolve_dataset
from lineage_auditor.audit.view import AuditView, gc_paused
from lineage_auditor.errors import EventError, LineageAuditError
from lineage_auditor.events import run_events
from lineage_auditor.governance import Policy
from lineage_auditor.governance.costs import CostRecord
from lineage_auditor.graph import LineageGraph
from lineage_auditor.model import DatasetRef

CHECKS: dict[str, Callable[[AuditContext], list[Finding]]] = {
    "reported_vs_rebuilt": reported_vs_rebuilt.run,
    "schema_drift": schema_drift.run,
    "lineage_drift": lineage_drift.run,
    "data_drift": data_drift.run,
    "freshness": freshness.run,
    "pii": pii.run,
    "coverage": coverage.run,
    "assertions": assertions.run,
    "governance": governance.run,
}
REPORT_FORMAT_VERSION = 1


@dataclass
class AuditResult:
    findings: list[Finding]
    datasets: list[DatasetRef]
    checks: list[str]
    details: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    started_at: str = ""
    skipped_events: int = 0  # events of the store that were not valid OpenLineage

    def failed(self, level: str) -> bool:
        """True when any finding reaches ``level`` (low, medium or high)."""
        return any(f.reaches(level) for f in self.findings)

    def counts(self) -> dict[str, int]:
        return {s.value: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "lineage-audit-findings",
            "version": REPORT_FORMAT_VERSION,
            "started_at": self.started_at,
            "datasets": [str(d) for d in self.datasets],
            "checks": self.checks,
            "skipped_events": self.skipped_events,
            "summary": {"findings": len(self.findings), "by_severity": self.counts(),
                        "max_severity": max_severity(self.findings)},
            "findings": [f.to_json() for f in self.findings],
        }


def resolve_targets(graph: LineageGraph, config: AuditConfig, dataset: str | None = None) -> dict[DatasetRef, AIDataset]:
    """AI datasets in scope, matched to graph datasets (``dataset`` narrows to one).

    A ``--dataset`` not declared in the config is still audited, with default settings.
    """
    datasets = graph.datasets()
    if dataset:
        ref = resolve_dataset(datasets, dataset)
        declared = next((a for a in config.ai_datasets if ref in find_datasets(datasets, a.name)), None)
        return {ref: declared or AIDataset(name=dataset)}
    targets: dict[DatasetRef, AIDataset] = {}
    for item in config.ai_datasets:
        found = find_datasets(datasets, item.name)
        if len(found) > 1:
            raise LineageAuditError(
                f"ai_datasets: {item.name!r} names {len(found)} datasets; write namespace/name", file=config.source_file)
        for ref in found:
            targets[ref] = item
    return targets


class ScopedSource(Protocol):
    """A store that can answer the two questions an audit asks (the embedded store can)."""

    def count(self) -> int: ...

    def latest_run_events(self) -> Iterable[Mapping[str, Any]]: ...

    def run_events_touching(self, datasets: Iterable[tuple[str, str]]) -> Iterable[Mapping[str, Any]]: ...


def load_scoped(
    source: ScopedSource, config: AuditConfig, dataset: str | None = None,
    on_skip: Callable[[EventError], None] | None = None,
) -> tuple[LineageGraph, AuditView, int]:
    """Graph and view from only what the checks read.

    The graph is each job's latest run; the view covers the runs that touched the AI
    datasets in scope or anything upstream of them, which is all that run history, schema
    versions, freshness, volume and quality are asked about. Events that are not valid
    OpenLineage (a store written by another tool) go to ``on_skip``.
    """
    with gc_paused():
        graph = LineageGraph.from_events(run_events(source.latest_run_events(), on_skip), on_skip)
        try:
            targets = resolve_targets(graph, config, dataset)
        except LineageAuditError:
            scope = set(graph.datasets())  # the checks report the unknown dataset as usual
        else:
            scope = set(targets)
            for target in targets:
                scope.update(graph.upstream(target))
        touching = source.run_events_touching((d.namespace, d.name) for d in scope)
        view = AuditView.from_events(run_events(touching, on_skip))
        return graph, view, source.count()


def run_audit(
    graph: LineageGraph,
    view: AuditView,
    config: AuditConfig,
    *,
    dataset: str | None = None,
    baseline: dict[str, Any] | None = None,
    load_rows: DataLoader | None = None,
    checks: list[str] | None = None,
    now: datetime | None = None,
    policy: Policy | None = None,
    costs: list[CostRecord] | None = None,
) -> AuditResult:
    """Run ``checks`` (default: those enabled in the config) and return sorted findings.

    ``policy`` is the governance policy the ``governance`` check holds the store to, ``costs``
    the step costs its budgets are measured with.
    """
    targets = resolve_targets(graph, config, dataset)
    ctx = AuditContext(graph, view, config, targets, baseline=baseline, load_rows=load_rows, policy=policy,
                       cost_records=list(costs or []))
    if now is not None:
        ctx.now = now
    names = checks or config.checks.enabled()
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise LineageAuditError(f"unknown check(s): {', '.join(unknown)} (known: {', '.join(CHECKS)})")
    findings: list[Finding] = []
    missing = [a.name for a in config.ai_datasets if not dataset and not find_datasets(graph.datasets(), a.name)]
    for name in missing:
        findings.append(make_finding(
            "coverage", HIGH, name, "AI dataset is not in the lineage store", key="absent",
            evidence={"dataset": name}, remediation="Run the pipeline that builds it, or fix the name in lineage-audit.yml.",
        ))
    timings = {}
    for name in names:
        began = time.perf_counter()
        try:
            findings.extend(CHECKS[name](ctx))
        except LineageAuditError:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            findings.append(make_finding(
                name, HIGH, name, f"check {name} failed to run", key="crash",
                evidence={"error": f"{type(exc).__name__}: {exc}"},
                remediation="This is a bug or unexpected input; the check's verdict is unknown.",
            ))
        timings[name] = round(time.perf_counter() - began, 4)
    return AuditResult(
        sort_findings(_unique(findings)), sorted(targets), names, ctx.details, timings,
        ctx.now.isoformat().replace("+00:00", "Z"),
    )


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: dict[str, Finding] = {}
    for f in findings:
        seen.setdefault(f.id, f)
    return list(seen.values())
