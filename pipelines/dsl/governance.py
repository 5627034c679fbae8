"""The governance policy applied to pipeline specs: what a plan reads and writes, who runs it.

Static, at ``pipelines validate`` and ``plan``: from the plan's column lineage, every dataset a
spec writes, every column it reads and every AI dataset it writes is checked against the
policy; a denial is a problem at the step's line naming the dataset or column, the rule that
denied it (policy ``file:line``) and the fix. At run, the runner checks again on the plan
rendered for that day and those parameters (a template may name another table), and asks
whether the person running it may run that team's pipeline.

What a step reads, column by column: a SQL step the input columns of its lineage (DIRECT and
INDIRECT), a load every column it copies, a check the columns its checks name; a table a
step reads whose columns the plan cannot tell (a python step's inputs, ``SELECT *`` over a
table of unknown columns, a custom SQL check) counts as read whole, so every tagged column
of it needs its approval.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from lineage_auditor.errors import ConfigError, LineageAuditError, PipelineError
from lineage_auditor.governance import Approval, Decision, Identity, Policy, find_policy, today_utc
from lineage_auditor.governance.policy import Subject
from lineage_auditor.governance.tags import TagIndex, config_rules
from lineage_auditor.textfiles import position, read_text
from pipelines.dsl.loader import LoadedSpec, SpecProblem
from pipelines.dsl.model import Step, StepKind
from pipelines.dsl.plan import Plan, StepPlan
from pipelines.runtime.governance_facets import RunByRunFacet

Naming = Callable[[str], Subject]  # a table as the policy sees it (its name, or the warehouse's dataset)


class GovernanceDenied(PipelineError):
    """The policy denies a run: who runs it, or what its rendered plan reads or writes."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        more = len(problems) - 1
        text = f"denied by the governance policy: {problems[0]}" + (f" (and {more} more)" if more else "")
        super().__init__(text)
        self.problems = problems


@dataclass
class Governance:
    """The policy in force and what judging a spec needs: where tags are, what day it is."""

    policy: Policy | None
    source: str = ""
    tags: TagIndex = field(default_factory=TagIndex)
    tag_sources: list[str] = field(default_factory=list)
    today: date = field(default_factory=today_utc)

    def describe(self) -> str:
        if self.policy is None:
            return f"governance: no policy ({self.source}): nothing is enforced"
        tags = f"; tags from {', '.join(self.tag_sources)}" if self.tag_sources else "; no tags known"
        return f"governance: policy {self.policy.file} ({self.source}){tags}"


def load_governance(policy: str | Path | None = None, config: str | Path | None = None, *,
                    store: str | None = None) -> Governance:
    """The policy (``--policy``, else ``governance:`` in the project config) with the tags it needs.

    Tags come from the project config's ``tags:`` and, when the policy restricts any, from the
    ``tags`` facets of the lineage store (``store``, else the config's, else the configured one).
    """
    from lineage_auditor.audit.config import DEFAULT_CONFIG, load_config

    found = find_policy(policy, config)
    gov = Governance(found.policy, found.source)
    if found.policy is None:
        return gov
    config_file = Path(config) if config else Path(DEFAULT_CONFIG)
    if config and not config_file.exists():
        raise ConfigError("no such config file", file=str(config_file))
    audit = load_config(config_file) if config_file.exists() else None
    if audit is not None and audit.tags:
        gov.tags = TagIndex.from_rules(config_rules(audit))
        gov.tag_sources.append(str(config_file))
    if found.policy.document.restricted_tags:
        described = _store_tags(gov.tags, store or (audit.store if audit else None))
        if described:
            gov.tag_sources.append(described)
    return gov


def _store_tags(tags: TagIndex, store: str | None) -> str:
    """Add the tags of the store's current lineage; the store's name, or "" when there is none to read."""
    from collectors.sources import describe_source, open_indexed_store, read_events
    from lineage_auditor.events import run_events
    from lineage_auditor.graph import LineageGraph

    try:
        embedded = open_indexed_store(store)
        if embedded is None:
            graph = LineageGraph.from_events(read_events(store))
        else:
            with embedded:
                graph = LineageGraph.from_events(run_events(embedded.latest_run_events(), lambda _: None))
    except LineageAuditError:  # no store yet, or one that cannot be read back (console, none)
        return ""
    tags.observe(graph)
    return describe_source(store)


# ---------------------------------------------------------------------- checking a plan


@dataclass
class Verdict:
    """The policy's word on a plan: its denials, and the spec's approvals it relied on."""

    problems: list[SpecProblem] = field(default_factory=list)
    approvals: list[Approval] = field(default_factory=list)

    def enforce(self) -> None:
        if self.problems:
            raise GovernanceDenied(self.problems)


def check_plan(loaded: LoadedSpec, plan: Plan, gov: Governance, *, naming: Naming | None = None) -> list[SpecProblem]:
    """Every denial of the policy for this plan, each at the line of the step (or key) concerned."""
    return _judge(loaded, plan, gov, naming or (lambda table: table)).problems


def judge_run(loaded: LoadedSpec, plan: Plan, gov: Governance, identity: Identity, *, naming: Naming) -> Verdict:
    """At run: may ``identity`` run this spec, and does its plan, rendered for this run, pass?"""
    if gov.policy is None:
        return Verdict()
    spec = loaded.pipeline
    may_run = gov.policy.can_run(identity.user, spec.id, spec.team, today=gov.today)
    verdict = _judge(loaded, plan, gov, naming)
    if not may_run:
        verdict.problems.insert(0, _problem(loaded, ("team",), may_run))
    return verdict


def run_by_facet(loaded: LoadedSpec, identity: Identity, gov: Governance, verdict: Verdict) -> RunByRunFacet:
    """The ``lineageAudit_runBy`` facet of a run of this spec."""
    approvals = [a.model_dump(mode="json", exclude_defaults=True) for a in verdict.approvals]
    return RunByRunFacet(runBy=identity.user, team=loaded.pipeline.team, identitySource=identity.source.value,
                         policy=gov.policy.file if gov.policy else None, approvals=approvals or None)


def _judge(loaded: LoadedSpec, plan: Plan, gov: Governance, name: Naming) -> Verdict:
    policy = gov.policy
    verdict = Verdict()
    if policy is None:
        return verdict
    spec = loaded.pipeline
    team = policy.check_team(spec.team)
    if not team:
        verdict.problems.append(_problem(loaded, ("team",), team))
        return verdict
    index = {s.id: i for i, s in enumerate(spec.steps)}
    decisions: list[tuple[int, Decision]] = []
    for step_plan in plan.steps:
        i = index[step_plan.id]
        for table in step_plan.writes:
            decisions.append((i, policy.can_write(spec.team, name(table), today=gov.today)))
            decisions.append((i, policy.can_write_ai_dataset(name(table), spec.approvals, sql_fingerprint(loaded, plan, table),
                                                             today=gov.today)))
        for table, columns in reads(spec.steps[i], step_plan).items():
            for column, tags in _tagged(gov.tags, table, columns):
                decisions.append((i, policy.can_read(spec.team, name(table), column, tags, spec.approvals, today=gov.today)))
    for i, decision in decisions:
        if not decision:
            verdict.problems.append(_problem(loaded, ("steps", i), decision))
        elif decision.approval is not None and spec.approvals[decision.approval] not in verdict.approvals:
            verdict.approvals.append(spec.approvals[decision.approval])
    return verdict


def _problem(loaded: LoadedSpec, loc: tuple[Any, ...], decision: Decision) -> SpecProblem:
    line, column = position(loaded.root, loc)
    dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return SpecProblem(str(loaded.path), line, column, dotted, decision.explain())


def reads(step: Step, step_plan: StepPlan) -> dict[str, set[str] | None]:
    """Each table the step reads with the columns it reads (None: read whole, columns unknown)."""
    columns: dict[str, set[str]] = {}
    for lineage in step_plan.lineage:
        inputs = [i for f in lineage.fields for i in f.inputs] + list(lineage.dataset_inputs)
        for item in inputs:
            columns.setdefault(item.column.dataset.name.lower(), set()).add(item.column.field)
    if step.check is not None and not any(c.sql for c in step.check.checks):
        named = {column for check in step.check.checks for _, column in check.columns}
        columns.setdefault(step.check.dataset.lower(), set()).update(named)
    return {table: (columns.get(table.lower()) or None) for table in dict.fromkeys(step_plan.reads)}


def _tagged(tags: TagIndex, table: str, columns: set[str] | None) -> list[tuple[str | None, list[str]]]:
    """(column, tags) of what is read that carries tags; a whole-table read is every tagged column."""
    found: list[tuple[str | None, list[str]]] = []
    whole = tags.dataset_tags(table)
    if columns is None:
        if whole:
            found.append((None, whole))
        found.extend((column, found_tags) for column, found_tags in sorted(tags.tagged_columns(table).items()))
        return found
    for column in sorted(columns):
        column_tags = tags.column_tags(table, column)
        if column_tags:
            found.append((column, column_tags))
    return found


# ---------------------------------------------------------------------- AI dataset fingerprints


def sql_fingerprint(loaded: LoadedSpec, plan: Plan, table: str) -> str:
    """12 hex digits naming the SQL (and python and load steps) that produce ``table`` in this spec.

    The step writing it and every step it depends on count, as written (templates unrendered,
    SQL files read), so the fingerprint is the same every day and changes when the SQL does:
    an AI dataset's owner approves one fingerprint (``approvals: [{dataset, by, sql}]``).
    """
    steps = {s.id: s for s in loaded.pipeline.steps}
    plans = {s.id: s for s in plan.steps}
    writer = next((s.id for s in plan.steps if table.lower() in (w.lower() for w in s.writes)), None)
    if writer is None:
        return ""
    wanted = _ancestors(writer, plans) | {writer}
    parts = [_recipe(loaded, steps[s.id]) for s in plan.steps if s.id in wanted]
    text = "\n".join(p for p in parts if p)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _ancestors(step: str, plans: dict[str, StepPlan]) -> set[str]:
    found: set[str] = set()
    todo = list(plans[step].depends_on)
    while todo:
        current = todo.pop()
        if current not in found and current in plans:
            found.add(current)
            todo.extend(plans[current].depends_on)
    return found


def _recipe(loaded: LoadedSpec, step: Step) -> str:
    """What of a step decides the data: its SQL text, python callable and declared lineage, load settings."""
    if step.kind is StepKind.SQL and step.sql is not None:
        text = step.sql.query
        if step.sql.file:
            try:
                text = read_text(loaded.path.parent / step.sql.file, what="SQL file")
            except ConfigError:
                text = f"(unreadable {step.sql.file})"
        body = "\n".join(line.rstrip() for line in text.strip().splitlines())
        return f"sql {step.id} {step.sql.dialect}\n{body}"
    for kind, model in ((StepKind.PYTHON, step.python), (StepKind.LOAD, step.load)):
        if step.kind is kind and model is not None:
            return f"{kind.value} {step.id} " + json.dumps(model.model_dump(mode="json", by_alias=True), sort_keys=True)
    return ""


def ai_fingerprints(loaded: LoadedSpec, plan: Plan, gov: Governance, *, naming: Naming | None = None) -> dict[str, dict[str, str]]:
    """Each AI dataset (of the policy) the spec writes: the fingerprint its owner approves, and the owner."""
    if gov.policy is None:
        return {}
    name = naming or (lambda table: table)
    out = {}
    for table in dict.fromkeys(t for s in plan.steps for t in s.writes):
        found = gov.policy.ai_dataset(name(table))
        if found is not None:
            out[table] = {"sql": sql_fingerprint(loaded, plan, table), "owner": found[1].owner}
    return out


__all__: Sequence[str] = ["Governance", "GovernanceDenied", "Verdict", "ai_fingerprints", "check_plan", "judge_run",
                          "load_governance", "reads", "run_by_facet", "sql_fingerprint"]
