"""The policy's answers: may this team write that dataset, read that column, run that pipeline?

Each answer is a :class:`Decision`: allowed or not, why, the :class:`Rule` that decided it
(``governance.yml:12`` and what the rule says) and, for a denial, the fix. The functions are
pure: identity, tags, approvals and today's date come in as arguments, so the pipeline
validator, the runner, the audit and the lineage service ask the same questions the same way.

Defaults, as the policy's design states them: writing is denied outside the datasets a team
owns unless a grant allows it; reading is allowed unless the dataset or column carries a
restricted tag, which needs a read grant or an approval by a listed approver that has not
expired; writing an AI dataset needs its owner's approval of the SQL that writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from fnmatch import fnmatchcase
from typing import Any

import yaml

from lineage_auditor.governance.model import (
    AIDatasetRule,
    Approval,
    Budget,
    DatasetPattern,
    Grant,
    PolicyDocument,
    Rates,
    RestrictedTag,
    Team,
)
from lineage_auditor.model import DatasetRef
from lineage_auditor.textfiles import position
from lineage_auditor.yamlmodels import did_you_mean, dotted

Subject = DatasetRef | str  # a dataset, or its name (schema.table) when the namespace is not known


@dataclass(frozen=True)
class Rule:
    """One rule of the policy: what it says, and where (``file:line``, key path)."""

    text: str
    file: str
    line: int
    path: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "file": self.file, "line": self.line, "path": self.path}


@dataclass(frozen=True)
class Decision:
    """An answer of the policy; truthy when allowed.

    ``approval`` is the index (in the approvals asked about) of the approval that allowed
    the access, or that was looked at and refused (expired, wrong approver, other SQL).
    """

    allowed: bool
    reason: str
    rule: Rule | None = None
    fix: str = ""
    approval: int | None = None

    def __bool__(self) -> bool:
        return self.allowed

    def explain(self) -> str:
        """``reason; rule FILE:LINE: text; fix: ...`` (the parts there are)."""
        text = self.reason
        if self.rule is not None:
            text += f"; rule {self.rule}"
        if self.fix:
            text += f"; fix: {self.fix}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "reason": self.reason, "rule": self.rule.to_json() if self.rule else None,
                "fix": self.fix, "approval": self.approval}


def today_utc() -> date:
    return datetime.now(timezone.utc).date()


class Policy:
    """A validated ``governance.yml`` with the position of every rule (see :func:`load_policy`)."""

    def __init__(self, document: PolicyDocument, file: str, root: yaml.Node | None = None) -> None:
        self.document = document
        self.file = file
        self._root = root
        self._teams = {t.name: t for t in document.teams}

    # -------------------------------------------------------------- rules and lookups

    def rule(self, loc: tuple[Any, ...], text: str) -> Rule:
        """The rule at ``loc`` (``("grants", 2)``) with its line in the policy file."""
        line, _ = position(self._root, loc)
        return Rule(text, self.file, line, dotted(loc))

    @property
    def team_names(self) -> list[str]:
        return list(self._teams)

    def team(self, name: str) -> Team | None:
        return self._teams.get(name)

    def teams_of(self, user: str) -> list[str]:
        """The teams ``user`` is a member of, in policy order."""
        return [t.name for t in self.document.teams if user in t.members]

    def owners_of(self, dataset: Subject) -> list[str]:
        """Teams whose ``owns`` covers ``dataset``."""
        return [t.name for t in self.document.teams if any(_covers(p, dataset) for p in t.owns)]

    def budget(self, team: str) -> Budget | None:
        return next((b for b in self.document.budgets if b.team == team), None)

    def budget_rule(self, team: str) -> Rule | None:
        for i, b in enumerate(self.document.budgets):
            if b.team == team:
                return self.rule(("budgets", i), f"budget of team {team}: {b.monthly:g} {b.currency} a month, "
                                                 f"warn at {b.warn_at:.0%}, fail at {b.fail_at:.0%}")
        return None

    def rates(self, dialect: str) -> Rates | None:
        """The cost model's prices for a target dialect (its default for others); None without a model."""
        model = self.document.cost_model
        if model is None:
            return None
        return model.targets.get(dialect.lower(), model.default)

    @property
    def currency(self) -> str | None:
        return self.document.cost_model.currency if self.document.cost_model else None

    def is_listed(self, user: str, people: Iterable[str]) -> bool:
        """``user`` is named in ``people`` directly or as a member of a ``team:NAME`` there."""
        for who in people:
            if who == user:
                return True
            if who.startswith("team:") and user in (self._teams.get(who[5:]) or Team(name="-")).members:
                return True
        return False

    def person(self, who: str) -> str:
        """A user to name in a fix: ``who`` itself, or the first member of ``team:NAME``."""
        if who.startswith("team:"):
            members = (self._teams.get(who[5:]) or Team(name="-")).members
            return members[0] if members else who
        return who

    # -------------------------------------------------------------- teams and runs

    def check_team(self, team: str) -> Decision:
        """A pipeline's ``team`` must be a team of the policy."""
        if team in self._teams:
            i = self.team_names.index(team)
            return Decision(True, f"team {team} is defined", self.rule(("teams", i), f"team {team}"))
        hint = did_you_mean(team, self.team_names)
        return Decision(False, f"team {team!r} is not a team of the policy{hint}",
                        self.rule(("teams",), f"teams: {', '.join(self.team_names) or '(none)'}"),
                        fix=f"add team {team} to {self.file} or use one of its teams")

    def can_run(self, user: str, pipeline: str, team: str, *, today: date | None = None) -> Decision:
        """May ``user`` run ``pipeline`` of ``team``? Its members may; others need a ``run`` grant."""
        teams = self.teams_of(user)
        if team in teams:
            i = self.team_names.index(team)
            return Decision(True, f"user {user} is a member of team {team}",
                            self.rule(("teams", i, "members"), f"team {team} has members {', '.join(self._teams[team].members)}"))
        for i, grant in self._grants(teams, today):
            if any(fnmatchcase(pipeline, p) for p in grant.run):
                return Decision(True, f"team {grant.team} may run {pipeline}",
                                self.rule(("grants", i), _grant_text(grant)))
        who = f"user {user} (team {', '.join(teams)})" if teams else f"user {user} (in no team of the policy)"
        rule: Rule | None
        if team in self._teams:
            i = self.team_names.index(team)
            rule = self.rule(("teams", i, "members"), f"team {team} has members {', '.join(self._teams[team].members) or '(none)'}; "
                                                      "other users need a run grant")
        else:
            rule = self.check_team(team).rule
        own = teams[0] if teams else None
        fix = (f"add {user} to team {team}" + (f", or grant team {own} run: [{pipeline}]" if own else "")) + f" in {self.file}"
        return Decision(False, f"{who} may not run pipeline {pipeline} of team {team}", rule, fix)

    # -------------------------------------------------------------- writes

    def can_write(self, team: str, dataset: Subject, *, today: date | None = None) -> Decision:
        """May ``team`` write ``dataset``? Yes when it owns it or holds a write grant for it."""
        name = _name(dataset)
        if team not in self._teams:
            return self.check_team(team)
        i = self.team_names.index(team)
        owned = self._teams[team].owns
        for j, pattern in enumerate(owned):
            if _covers(pattern, dataset):
                return Decision(True, f"team {team} owns {name}",
                                self.rule(("teams", i, "owns", j), f"team {team} owns {_pattern_text(pattern)}"))
        for k, grant in self._grants([team], today):
            if any(_covers(p, dataset) for p in grant.write):
                return Decision(True, f"team {team} may write {name}", self.rule(("grants", k), _grant_text(grant)))
        owners = [o for o in self.owners_of(dataset) if o != team]
        whose = f"owned by team {', '.join(owners)}" if owners else "no team owns it"
        mine = ", ".join(_pattern_text(p) for p in owned) or "nothing"
        rule = self.rule(("teams", i, "owns") if owned else ("teams", i),
                         f"team {team} owns {mine} (writes outside owned datasets are denied)")
        return Decision(False, f"team {team} may not write {name} ({whose})", rule,
                        f"grants: [{{team: {team}, write: [{name}]}}] in {self.file}")

    # -------------------------------------------------------------- restricted reads

    def restricted(self, tags: Iterable[str]) -> list[tuple[str, int, RestrictedTag]]:
        """Each tag of ``tags`` that a ``restricted_tags`` rule matches: (tag, rule index, rule)."""
        found = []
        for tag in dict.fromkeys(tags):
            for i, rule in enumerate(self.document.restricted_tags):
                if fnmatchcase(tag.lower(), rule.tag.lower()):
                    found.append((tag, i, rule))
                    break
        return found

    def can_read(self, team: str, dataset: Subject, column: str | None, tags: Iterable[str],
                 approvals: Sequence[Approval] = (), *, today: date | None = None) -> Decision:
        """May ``team`` read ``column`` of ``dataset`` (None: the dataset as a whole), which carries ``tags``?

        Allowed unless a tag is restricted; a restricted tag needs a read grant covering the
        column or an approval of it by a listed approver that has not expired.
        """
        day = today or today_utc()
        subject = f"{_name(dataset)}.{column}" if column else _name(dataset)
        decision = Decision(True, f"{subject} carries no restricted tag (reads are allowed by default)")
        for tag, index, restricted in self.restricted(tags):
            decision = self._restricted_read(team, dataset, column, subject, tag, index, restricted, approvals, day)
            if not decision:
                return decision
        return decision

    def _restricted_read(self, team: str, dataset: Subject, column: str | None, subject: str, tag: str, index: int,
                         restricted: RestrictedTag, approvals: Sequence[Approval], day: date) -> Decision:
        rule = self.rule(("restricted_tags", index),
                         f"restricted tag {restricted.tag} (approvers: {', '.join(restricted.approvers)})")
        for k, grant in self._grants([team], day):
            if any(_covers(p, dataset, column) for p in grant.read):
                return Decision(True, f"team {team} may read {subject} ({tag})", self.rule(("grants", k), _grant_text(grant)))
        refused: Decision | None = None
        for n, approval in enumerate(approvals):
            if not approval.tag or not fnmatchcase(tag.lower(), approval.tag.lower()):
                continue
            if not self.is_listed(approval.by, restricted.approvers):
                refused = refused or Decision(
                    False, f"reads {subject} ({tag}): the approval is by {approval.by}, who is not an approver of "
                           f"{restricted.tag}", rule, f"have one of {', '.join(restricted.approvers)} approve it", n)
            elif approval.expires is not None and approval.expires < day:
                refused = refused or Decision(
                    False, f"reads {subject} ({tag}): the approval by {approval.by} expired on {approval.expires}",
                    rule, f"renew it: a new expires, approved by {approval.by}", n)
            else:
                return Decision(True, f"reads {subject} ({tag}) with the approval of {approval.by}", rule, approval=n)
        if refused is not None:
            return refused
        example = self.person(restricted.approvers[0])
        return Decision(False, f"reads {subject} ({tag}) without an approval", rule,
                        f"approvals: [{{tag: {tag}, by: {example}, reason: ..., expires: YYYY-MM-DD}}] in the spec, "
                        f"or grant team {team} read on {_name(dataset)} in {self.file}")

    # -------------------------------------------------------------- AI datasets

    def ai_dataset(self, dataset: Subject) -> tuple[int, AIDatasetRule] | None:
        """The ``ai_datasets`` rule (index, rule) covering ``dataset``, if it is one."""
        for i, rule in enumerate(self.document.ai_datasets):
            if _covers(rule.dataset, dataset):
                return i, rule
        return None

    def can_write_ai_dataset(self, dataset: Subject, approvals: Sequence[Approval], fingerprint: str, *,
                             today: date | None = None) -> Decision:
        """Writing an AI dataset needs its owner's approval of the SQL that writes it (``fingerprint``)."""
        name = _name(dataset)
        found = self.ai_dataset(dataset)
        if found is None:
            return Decision(True, f"{name} is not an AI dataset of the policy")
        index, ai = found
        day = today or today_utc()
        rule = self.rule(("ai_datasets", index), f"AI dataset {ai.dataset} (owner {ai.owner})")
        owner = self.person(ai.owner)
        refused: Decision | None = None
        for n, approval in enumerate(approvals):
            if not approval.dataset or not _covers(approval.dataset, dataset):
                continue
            if not self.is_listed(approval.by, [ai.owner]):
                why = f"the approval is by {approval.by}, not its owner {ai.owner}"
                fix = f"have {owner} approve it"
            elif approval.expires is not None and approval.expires < day:
                why, fix = f"the approval by {approval.by} expired on {approval.expires}", f"renew it (approved by {owner})"
            elif approval.sql != fingerprint:
                why = (f"the approval by {approval.by} is for SQL {approval.sql or '(none named)'}, the SQL is now {fingerprint}")
                fix = f"have {owner} approve the new SQL (sql: {fingerprint})"
            else:
                return Decision(True, f"writes AI dataset {name} with the approval of {approval.by}", rule, approval=n)
            refused = refused or Decision(False, f"writes AI dataset {name}: {why}", rule, fix, n)
        if refused is not None:
            return refused
        return Decision(False, f"writes AI dataset {name} without its owner's approval", rule,
                        f"approvals: [{{dataset: {name}, by: {owner}, reason: ..., sql: {fingerprint}}}] in the spec")

    # -------------------------------------------------------------- helpers

    def _grants(self, teams: Sequence[str], today: date | None) -> Iterable[tuple[int, Grant]]:
        """Grants to any of ``teams`` still in force (index in the policy, grant)."""
        day = today or today_utc()
        for i, grant in enumerate(self.document.grants):
            if grant.team in teams and (grant.expires is None or grant.expires >= day):
                yield i, grant


def _name(dataset: Subject) -> str:
    return dataset.name if isinstance(dataset, DatasetRef) else dataset


def _namespace(dataset: Subject) -> str:
    return dataset.namespace if isinstance(dataset, DatasetRef) else ""


def _covers(pattern: str | DatasetPattern, dataset: Subject, column: str | None = None) -> bool:
    """True when ``pattern`` covers ``dataset`` (and ``column``; None means every column).

    The dataset glob matches the name or any dot-suffix of it (``mart.*`` covers
    ``warehouse.mart.revenue``), case-insensitively, as names are written in SQL.
    """
    if isinstance(pattern, str):
        pattern = DatasetPattern(dataset=pattern)
    namespace = _namespace(dataset)
    if namespace and not fnmatchcase(namespace, pattern.namespace):
        return False
    if not name_glob_matches(_name(dataset), pattern.dataset):
        return False
    if column is None:
        return "*" in pattern.columns
    return any(fnmatchcase(column.lower(), c.lower()) for c in pattern.columns)


def name_glob_matches(name: str, glob: str) -> bool:
    """``glob`` matches ``name`` or one of its dot-suffixes (``db.mart.x``, ``mart.x``, ``x``)."""
    parts = name.lower().split(".")
    glob = glob.lower()
    return any(fnmatchcase(".".join(parts[i:]), glob) for i in range(len(parts)))


def _pattern_text(pattern: str | DatasetPattern) -> str:
    if isinstance(pattern, str):
        return pattern
    text = pattern.dataset if pattern.namespace == "*" else f"{pattern.namespace}/{pattern.dataset}"
    return text if pattern.columns == ["*"] else f"{text} ({', '.join(pattern.columns)})"


def _grant_text(grant: Grant) -> str:
    parts = [f"{kind} {', '.join(_pattern_text(p) for p in getattr(grant, kind))}"
             for kind in ("read", "write", "run") if getattr(grant, kind)]
    text = f"grant to team {grant.team}: " + "; ".join(parts)
    return text + (f" (until {grant.expires})" if grant.expires else "")
