"""Everything one audit reads, handed to every check.

Checks never talk to a store: they get a :class:`LineageGraph` and an :class:`AuditView`
built from events, the validated config, the AI datasets in scope (already resolved to
graph datasets), the saved baseline and a way to read rows for data drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from lineage_auditor.audit.config import AIDataset, AuditConfig
from lineage_auditor.audit.view import AuditView
from lineage_auditor.governance import Policy
from lineage_auditor.governance.costs import CostRecord
from lineage_auditor.graph import LineageGraph
from lineage_auditor.model import DatasetRef

# (AI dataset config, "reference" | "current", baseline) -> rows as a pandas DataFrame, or None
DataLoader = Callable[[AIDataset, str, "dict[str, Any] | None"], Any]


@dataclass
class AuditContext:
    graph: LineageGraph
    view: AuditView
    config: AuditConfig
    targets: dict[DatasetRef, AIDataset]
    baseline: dict[str, Any] | None = None
    load_rows: DataLoader | None = None
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    policy: Policy | None = None  # the governance policy in force (the governance check)
    cost_records: list[CostRecord] = field(default_factory=list)  # step costs this month (budgets)
    # what checks computed besides findings (drift tables, ...), for reports
    details: dict[str, Any] = field(default_factory=dict)

    def upstream_of_targets(self) -> list[DatasetRef]:
        """The AI datasets and every dataset upstream of them, in a stable order."""
        seen: dict[DatasetRef, None] = {}
        for target in sorted(self.targets):
            seen[target] = None
            for up in self.graph.upstream(target):
                seen[up] = None
        return list(seen)

    def current_columns(self, dataset: DatasetRef) -> list[Any]:
        """The dataset's columns as its latest schema version lists them.

        The graph keeps column nodes a newer run no longer writes; the latest schema (from
        the events) says which still exist. Without a schema, every graph column counts.
        """
        columns = self.graph.columns(dataset)
        versions = self.view.dataset_versions(dataset)
        if not versions:
            return columns
        names = {f.name for f in versions[-1].fields}
        return [c for c in columns if c.field in names]

    def jobs_in_scope(self) -> list[Any]:
        """Jobs writing the AI datasets or anything upstream of them (every job without targets)."""
        if not self.targets:
            return self.graph.jobs()
        jobs = {j for d in self.upstream_of_targets() for j in self.graph.producers(d)}
        return sorted(jobs)
