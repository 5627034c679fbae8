"""Check 9: the governance policy against what the lineage store says happened.

The validator and the runner stop what a spec would do; this check finds what was done
anyway, by any producer (a pipeline not run through the DSL, another team's Airflow):

- a job whose latest run read a column or dataset carrying a restricted tag without an
  approval (or read grant) that covered it then: HIGH;
- a job whose latest run relied on an approval that has expired since, so the pipeline still
  depends on it: MEDIUM;
- a job that wrote a dataset its team may not write (a run of a known team), or a dataset a
  team owns written by a job of no known team: HIGH / MEDIUM;
- a team over its monthly budget: over ``warn_at`` MEDIUM, over ``fail_at`` HIGH.

A job's team and approvals come from the ``lineageAudit_runBy`` facet of its latest run (a
``team:NAME`` owner otherwise); tags from the config's rules and the store's ``tags`` facets.
Without a policy the check has nothing to hold the store to and reports nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from pydantic import ValidationError

from lineage_auditor.audit.context import AuditContext
from lineage_auditor.audit.findings import HIGH, MEDIUM, Finding, make_finding
from lineage_auditor.events import Run
from lineage_auditor.governance import RUN_BY_FACET, Approval, Policy
from lineage_auditor.governance.costs import BudgetState, BudgetStatus, budget_status
from lineage_auditor.governance.tags import TagIndex, config_rules
from lineage_auditor.model import ColumnRef, DatasetRef, JobRef

CHECK = "governance"


def run(ctx: AuditContext) -> list[Finding]:
    policy = ctx.policy
    if policy is None:
        ctx.details[CHECK] = {"policy": None}
        return []
    today = ctx.now.date()
    tags = TagIndex.from_rules(config_rules(ctx.config)).observe(ctx.graph)
    findings: list[Finding] = []
    for job in ctx.graph.jobs():
        latest = ctx.graph.latest_run(job)
        if latest is None:
            continue
        team, approvals = _who(ctx, job, latest)
        ran = (latest.started_at or ctx.now).date()
        findings += _reads(ctx, policy, tags, job, team, approvals, ran, today)
        findings += _writes(ctx, policy, job, team, ran)
    statuses = budget_status(ctx.cost_records, policy, today)
    findings += budget_findings(statuses, policy)
    ctx.details[CHECK] = {"policy": policy.file, "budgets": [s.to_json() for s in statuses]}
    return findings


def _who(ctx: AuditContext, job: JobRef, latest: Run) -> tuple[str | None, list[Approval]]:
    """The job's team and the approvals its latest run relied on."""
    facet = latest.facets.get(RUN_BY_FACET)
    team = facet.get("team") if isinstance(facet, Mapping) else None
    if not team:
        names = [str(o.get("name", "")) for o in ctx.graph.info(job).get("owners") or [] if isinstance(o, Mapping)]
        team = next((name[5:] for name in names if name.startswith("team:")), None)
    approvals = []
    for raw in (facet.get("approvals") if isinstance(facet, Mapping) else None) or []:
        try:
            approvals.append(Approval.model_validate(raw))
        except ValidationError:
            continue  # another producer's shape: it approves nothing
    return (str(team) if team else None), approvals


def _read_columns(ctx: AuditContext, job: JobRef) -> dict[DatasetRef, set[str]]:
    """Columns the job's latest lineage read (each input column of its column edges), by dataset."""
    read: dict[DatasetRef, set[str]] = {dataset: set() for dataset in ctx.graph.job_inputs(job)}
    for edge in ctx.graph.column_edges():
        if edge.job == job:
            read.setdefault(edge.source.dataset, set()).add(edge.source.field)
    return read


def _reads(ctx: AuditContext, policy: Policy, tags: TagIndex, job: JobRef, team: str | None,
           approvals: list[Approval], ran: date, today: date) -> list[Finding]:
    findings = []
    for dataset, columns in sorted(_read_columns(ctx, job).items()):
        wanted: list[tuple[str | None, list[str]]] = [(None, tags.dataset_tags(dataset))]
        wanted += [(c, tags.column_tags(dataset, c)) for c in sorted(columns)]
        for column, found in wanted:
            if not found or not policy.restricted(found):
                continue
            then = policy.can_read(team or "", dataset, column, found, approvals, today=ran)
            now = policy.can_read(team or "", dataset, column, found, approvals, today=today)
            subject = str(ColumnRef(dataset, column)) if column else str(dataset)
            if not then:
                findings.append(make_finding(
                    CHECK, HIGH, subject, f"{job.name} read {subject} without an approval", key=f"read:{job}",
                    evidence={"job": str(job), "team": team, "tags": found, "run_started": ran.isoformat(),
                              "decision": then.to_json()},
                    remediation=f"{then.fix or 'Have the reading pipeline carry an approval.'} "
                                "Until then, stop the job or mask the column upstream."))
            elif not now:
                findings.append(make_finding(
                    CHECK, MEDIUM, subject, f"{job.name} relies on an approval for {subject} that has expired",
                    key=f"expired:{job}", evidence={"job": str(job), "team": team, "tags": found, "decision": now.to_json()},
                    remediation=f"{now.fix}; its next run will be denied."))
    return findings


def _writes(ctx: AuditContext, policy: Policy, job: JobRef, team: str | None, ran: date) -> list[Finding]:
    findings = []
    for dataset in ctx.graph.job_outputs(job):
        if team is None:
            owners = policy.owners_of(dataset)
            if owners:
                findings.append(make_finding(
                    CHECK, MEDIUM, str(dataset), f"{job.name} of no known team wrote {dataset.name}, owned by team "
                                                 f"{', '.join(owners)}", key=f"write:{job}",
                    evidence={"job": str(job), "owners": owners},
                    remediation="Record the team running the job (the lineageAudit_runBy facet, or an ownership "
                                "facet naming team:NAME), or stop it writing there."))
            continue
        decision = policy.can_write(team, dataset, today=ran)
        if not decision:
            findings.append(make_finding(
                CHECK, HIGH, str(dataset), f"{job.name} (team {team}) wrote {dataset.name} outside its datasets",
                key=f"write:{job}", evidence={"job": str(job), "team": team, "decision": decision.to_json()},
                remediation=decision.fix))
    return findings


def budget_findings(statuses: list[BudgetStatus], policy: Policy) -> list[Finding]:
    """A budget over ``warn_at`` is MEDIUM, over ``fail_at`` HIGH (the rule: the budget's line)."""
    findings = []
    for status in statuses:
        if status.state is BudgetState.OK:
            continue
        severity = HIGH if status.state is BudgetState.FAIL else MEDIUM
        limit = status.fail_at if status.state is BudgetState.FAIL else status.warn_at
        rule = policy.budget_rule(status.team)
        findings.append(make_finding(
            CHECK, severity, f"team:{status.team}",
            f"team {status.team} spent {status.spent:.2f} of its {status.budget:g} {status.currency} budget for "
            f"{status.month} ({status.share:.0%}, over {limit:.0%})",
            key=f"budget:{status.month}",
            evidence={**status.to_json(), "rule": rule.to_json() if rule else None},
            remediation=f"Cut what costs most (lineage-audit costs --by pipeline) or raise the budget ({rule.where if rule else policy.file})."))
    return findings

