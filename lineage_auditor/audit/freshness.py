"""Check 5: freshness and volume of AI datasets.

Freshness: the last successful run writing the dataset must be younger than ``max_age``
(set it from the schedule plus slack, e.g. a daily job: 26h); a latest run that failed is
reported too. Volume: the row count of the latest run (``outputStatistics``) must lie in
``[min_rows, max_rows]`` and, with ``tolerance``, within that fraction of the median of the
runs before it.
"""

from __future__ import annotations

import statistics

from lineage_auditor.audit.config import AIDataset
from lineage_auditor.audit.context import AuditContext
from lineage_auditor.audit.findings import HIGH, MEDIUM, Finding, make_finding
from lineage_auditor.durations import display_duration
from lineage_auditor.times import iso
from lineage_auditor.model import DatasetRef

CHECK = "freshness"


def run(ctx: AuditContext) -> list[Finding]:
    findings: list[Finding] = []
    for dataset, target in sorted(ctx.targets.items()):
        findings.extend(check_dataset(ctx, dataset, target))
    return findings


def check_dataset(ctx: AuditContext, dataset: DatasetRef, target: AIDataset) -> list[Finding]:
    runs = ctx.view.runs_writing(dataset)
    findings: list[Finding] = []
    if target.freshness is not None:
        ok = [r for r in runs if r.state == "COMPLETE"]
        last = ok[-1] if ok else None
        ended = last.ended_at if last else None
        age = (ctx.now - ended).total_seconds() if ended else None
        if age is None or age > target.freshness.max_age:
            findings.append(make_finding(
                CHECK, HIGH, dataset.name,
                "no successful run on record" if last is None else f"stale: last successful run {display_duration(age)} ago",
                key="stale",
                evidence={"dataset": str(dataset), "last_success_run": last.run_id if last else None,
                          "last_success_at": iso(last.ended_at) if last and last.ended_at else None,
                          "age_s": round(age, 1) if age is not None else None, "max_age_s": target.freshness.max_age},
                remediation="Check the producing job's schedule and its latest runs; models are training or scoring on old data.",
            ))
    if runs and runs[-1].state in ("FAIL", "ABORT"):
        findings.append(make_finding(
            CHECK, MEDIUM, dataset.name, f"latest run {runs[-1].state.value.lower()}ed", key="failed",
            evidence={"dataset": str(dataset), "run_id": runs[-1].run_id, "job": str(runs[-1].job), "error": runs[-1].error},
            remediation="Fix and re-run the job; the dataset still holds the previous version.",
        ))
    if target.volume is not None:
        findings.extend(_volume(dataset, target, [r for r in runs if dataset in r.row_counts and r.state == "COMPLETE"]))
    return findings


def _volume(dataset: DatasetRef, target: AIDataset, runs: list) -> list[Finding]:
    volume = target.volume
    if not runs or volume is None:
        return []
    latest = runs[-1]
    rows = latest.row_counts[dataset]
    evidence = {"dataset": str(dataset), "run_id": latest.run_id, "rows": rows,
                "min_rows": volume.min_rows, "max_rows": volume.max_rows}
    problems = []
    if volume.min_rows is not None and rows < volume.min_rows:
        problems.append(f"{rows} rows, fewer than {volume.min_rows}")
    if volume.max_rows is not None and rows > volume.max_rows:
        problems.append(f"{rows} rows, more than {volume.max_rows}")
    earlier = [r.row_counts[dataset] for r in runs[:-1]]
    if volume.tolerance is not None and earlier:
        median = statistics.median(earlier)
        evidence.update(median_of_earlier_runs=median, tolerance=volume.tolerance)
        if median and abs(rows - median) / median > volume.tolerance:
            problems.append(f"{rows} rows, {abs(rows - median) / median:.0%} off the median {median:g} of earlier runs")
    if not problems:
        return []
    return [make_finding(
        CHECK, MEDIUM, dataset.name, "row count outside the expected band: " + "; ".join(problems), key="volume",
        evidence=evidence, remediation="Look for a dropped partition, a duplicated load or a join fan-out upstream.",
    )]
