"""What a caller may not see on a page: restricted columns and the SQL of the jobs touching them.

The policy says which tags are restricted and who may read them (a read grant or an approval);
the tag index says which columns carry them (the audit config's ``tags:`` rules and the
store's ``tags`` facets, as the governance check and ``pipelines validate`` read them). A
column the caller may not read is listed by name only, and the SQL of every job that reads
or writes its dataset is withheld, in the writers table and in the graph view's job panel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lineage_auditor.governance.tags import TagIndex
from lineage_auditor.graph import LineageGraph
from lineage_auditor.model import ColumnRef, DatasetRef, JobRef
from lineage_auditor.service.access import Access, Caller


@dataclass
class Withheld:
    """Columns the caller may not read (with the reason) and the jobs whose SQL is withheld."""

    columns: dict[ColumnRef, str] = field(default_factory=dict)
    datasets: dict[DatasetRef, str] = field(default_factory=dict)
    jobs: set[JobRef] = field(default_factory=set)

    def column(self, column: ColumnRef) -> str:
        """Why ``column`` is withheld ("" when it is not): its own tags or its dataset's."""
        return self.columns.get(column) or self.datasets.get(column.dataset, "")


def withheld(graph: LineageGraph, access: Access, caller: Caller, tags: TagIndex) -> Withheld:
    """What of ``graph`` ``caller`` may not see."""
    out = Withheld()
    if access.policy is None:
        return out
    for dataset in graph.datasets():
        reason = access.read_refusal(caller, dataset, None, tags.dataset_tags(dataset))
        if reason:
            out.datasets[dataset] = reason
        for column in graph.columns(dataset):
            reason = access.read_refusal(caller, dataset, column.field, tags.column_tags(dataset, column.field))
            if reason:
                out.columns[column] = reason
    closed = set(out.datasets) | {c.dataset for c in out.columns}
    out.jobs = {job for job in graph.jobs() if closed & {*graph.job_inputs(job), *graph.job_outputs(job)}}
    return out


__all__ = ["Withheld", "withheld"]
