"""Check 7: coverage of ownership, documentation and column lineage.

An AI dataset needs an owner (config or ``ownership`` facet of its producer), a description
(config, dataset ``documentation`` or its schema's column descriptions) and column lineage
for its columns; every job upstream of it needs an owner and a description.
"""

from __future__ import annotations

from lineage_auditor.audit.context import AuditContext
from lineage_auditor.audit.findings import LOW, MEDIUM, Finding, make_finding
from lineage_auditor.model import DatasetRef

CHECK = "coverage"


def run(ctx: AuditContext) -> list[Finding]:
    findings: list[Finding] = []
    for dataset, target in sorted(ctx.targets.items()):
        info = ctx.graph.info(dataset) if dataset in ctx.graph else {}
        producers = ctx.graph.producers(dataset) if dataset in ctx.graph else []
        owned = bool(target.owner or info.get("owners") or any(ctx.graph.info(j).get("owners") for j in producers))
        described = bool(target.description or target.purpose or info.get("description"))
        if not owned:
            findings.append(_missing(dataset.name, "owner", "AI dataset has no owner",
                                     "Set owner in lineage-audit.yml or emit an ownership facet from the producing job."))
        if not described:
            findings.append(_missing(dataset.name, "description", "AI dataset has no description or purpose",
                                     "Describe the dataset (purpose in lineage-audit.yml or a documentation facet)."))
        findings.extend(_column_lineage(ctx, dataset))
    for job in ctx.jobs_in_scope():
        info = ctx.graph.info(job)
        if not info.get("owners"):
            findings.append(_missing(str(job), "owner", "upstream job has no owner",
                                     "Emit an ownership job facet naming the team on call for this job.", severity=LOW))
        if not info.get("description"):
            findings.append(_missing(str(job), "description", "upstream job has no description",
                                     "Emit a documentation job facet saying what the job does.", severity=LOW))
    return findings


def _column_lineage(ctx: AuditContext, dataset: DatasetRef) -> list[Finding]:
    columns = ctx.current_columns(dataset)
    if not ctx.graph.producers(dataset):
        return [_missing(dataset.name, "lineage", "AI dataset has no producing job in the lineage store",
                         "Emit OpenLineage events from the job that writes it.")]
    bare = [c.field for c in columns if not ctx.graph.column_upstream(c, depth=1)]
    if not bare:
        return []
    return [make_finding(
        CHECK, MEDIUM, dataset.name, f"{len(bare)} of {len(columns)} columns have no column lineage", key="columns",
        evidence={"dataset": str(dataset), "columns": bare},
        remediation="Emit a columnLineage facet (for SQL jobs, the SQL engine derives it).",
    )]


def _missing(subject: str, what: str, title: str, remediation: str, *, severity: str = MEDIUM) -> Finding:
    return make_finding(CHECK, severity, subject, title, key=what, evidence={"missing": what}, remediation=remediation)
