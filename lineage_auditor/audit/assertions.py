"""Check 8: data-quality assertions that failed on an AI dataset or anything upstream of it.

Pipelines report their checks as OpenLineage ``dataQualityAssertions`` (a spec's ``check``
steps do; so do Great Expectations, dbt tests and Airflow's SQL check operators through
their integrations). The latest run that checked a dataset decides: a failed assertion on
an AI dataset is HIGH (the model reads rows that broke a rule), upstream of one MEDIUM.

Only datasets some job writes count. A reader's assertions about a raw source (an orders
file with rows it dead-lettered) say what was refused at the door, not what a table holds.
"""

from __future__ import annotations

from lineage_auditor.audit.context import AuditContext
from lineage_auditor.audit.findings import HIGH, MEDIUM, Finding, make_finding
from lineage_auditor.times import iso

CHECK = "assertions"


def run(ctx: AuditContext) -> list[Finding]:
    findings: list[Finding] = []
    targets = set(ctx.targets)
    for dataset in ctx.upstream_of_targets():
        if not ctx.graph.producers(dataset):
            continue
        for result in ctx.view.assertions(dataset):
            if result.success:
                continue
            subject = f"{dataset.name}.{result.column}" if result.column else dataset.name
            findings.append(make_finding(
                CHECK, HIGH if dataset in targets else MEDIUM, subject,
                f"data-quality assertion {result.assertion} failed"
                + ("" if dataset in targets else f" upstream of an AI dataset ({dataset.name})"),
                key=f"{dataset}:{result.assertion}:{result.column or ''}",
                evidence={"dataset": str(dataset), "assertion": result.assertion, "column": result.column,
                          "run_id": result.run_id, "job": str(result.job), "checked_at": iso(result.time)},
                remediation="Look at the failing rows in the producing job's check, fix the data or the rule, "
                            "and re-run before the model trains on it.",
            ))
    return findings
