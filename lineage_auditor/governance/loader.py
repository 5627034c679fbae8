"""Reading ``governance.yml``: every problem at once, each at its file:line:column.

The file goes through the one reader of user files (:mod:`lineage_auditor.textfiles`) and
is validated against :class:`~lineage_auditor.governance.model.PolicyDocument`; then the
references between its rules are checked (a grant, budget or ``team:`` approver names a team
that exists, team names are unique, budgets are in the cost model's currency).

Where the policy comes from (:func:`find_policy`): ``--policy PATH``, else the ``governance:``
key of the project config (``lineage-audit.yml``), else there is none and nothing is enforced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lineage_auditor.errors import ConfigError
from lineage_auditor.governance.model import API_VERSION, KIND, PolicyDocument
from lineage_auditor.governance.policy import Policy
from lineage_auditor.textfiles import position, read_yaml
from lineage_auditor.yamlmodels import Problem, Problems, did_you_mean, dotted, header_wording, problem_at

ALIASES = {"api_version": "apiVersion"}
PROJECT_CONFIG = "lineage-audit.yml"  # the audit config's default name (lineage_auditor.audit.config)


class PolicyErrors(Problems):
    """A policy file with problems; ``problems`` lists all of them, the message shows the first."""


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy; :class:`PolicyErrors` lists every problem found."""
    file = str(path)
    if not Path(path).exists():
        raise ConfigError("no such policy file", file=file)
    data, root = read_yaml(path, what="policy")
    if root is None or not isinstance(data, dict):
        raise ConfigError("a policy is a mapping (apiVersion, kind: Policy, teams, grants, ...)", file=file, line=1, column=1)
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as exc:
        raise PolicyErrors([problem_at(err, model=PolicyDocument, root=root, file=file, aliases=ALIASES,
                                       wording=_wording) for err in exc.errors()]) from None
    policy = Policy(document, file, root)
    problems = _references(policy)
    if problems:
        raise PolicyErrors(problems)
    return policy


@dataclass(frozen=True)
class Found:
    """The policy in force and where it came from (said by ``pipelines plan``)."""

    policy: Policy | None
    source: str

    def describe(self) -> str:
        if self.policy is None:
            return f"no governance policy ({self.source}): nothing is enforced"
        return f"governance policy {self.policy.file} ({self.source})"


def find_policy(explicit: str | Path | None = None, config_path: str | Path | None = None) -> Found:
    """The policy named by ``--policy``, else by the project config's ``governance:`` key, else none.

    ``config_path`` is the project config (default ``./lineage-audit.yml`` when present); its
    ``governance:`` path is relative to the config file.
    """
    if explicit:
        return Found(load_policy(explicit), "--policy")
    config_file = Path(config_path) if config_path else Path(PROJECT_CONFIG)
    if not config_file.exists():
        if config_path:
            raise ConfigError("no such config file", file=str(config_file))
        return Found(None, f"no --policy and no ./{PROJECT_CONFIG}")
    data, root = read_yaml(config_file, what="config")
    named = data.get("governance") if isinstance(data, dict) else None
    if not named:
        return Found(None, f"no --policy, and {config_file} has no governance: key")
    line, column = position(root, ("governance",))
    if not isinstance(named, str):
        raise ConfigError("governance: expected the path of a policy file", file=str(config_file), line=line, column=column)
    path = Path(named)
    if not path.is_absolute():
        path = config_file.parent / path
    if not path.exists():
        raise ConfigError(f"governance: no such policy file {named}", file=str(config_file), line=line, column=column)
    return Found(load_policy(path), f"governance: in {config_file}")


PATTERN_WORDING = {
    "currency": "is not a currency code (three capital letters: USD, EUR)",
    "url": "is not an http:// or https:// URL",
    "token_env": "is not an environment variable's name (letters, digits and _)",
}


def _wording(err: Mapping[str, Any], loc: tuple[Any, ...]) -> str | None:
    header = header_wording(err, loc, kind=KIND, what="a governance policy", api_version=API_VERSION)
    if header or err["type"] != "string_pattern_mismatch" or not loc or loc[-1] not in PATTERN_WORDING:
        return header
    return f"{err.get('input')!r} {PATTERN_WORDING[loc[-1]]}"


def _references(policy: Policy) -> list[Problem]:
    """Rules naming teams that do not exist, a team defined twice, budgets in another currency."""
    doc = policy.document
    problems: list[Problem] = []

    def problem(loc: tuple[Any, ...], message: str) -> None:
        line, column = position(policy._root, loc)
        problems.append(Problem(policy.file, line, column, dotted(loc), message))

    names = [t.name for t in doc.teams]
    for i, name in enumerate(names):
        if name in names[:i]:
            problem(("teams", i, "name"), f"team {name!r} is defined twice")

    def known(team: str, loc: tuple[Any, ...]) -> None:
        if team not in names:
            listed = ", ".join(dict.fromkeys(names)) or "none"
            problem(loc, f"no team named {team!r}" + did_you_mean(team, names, otherwise=f" (teams: {listed})"))

    for i, grant in enumerate(doc.grants):
        known(grant.team, ("grants", i, "team"))
    for i, budget in enumerate(doc.budgets):
        known(budget.team, ("budgets", i, "team"))
        if budget.team in [b.team for b in doc.budgets[:i]]:
            problem(("budgets", i, "team"), f"team {budget.team!r} has two budgets")
        if doc.cost_model is not None and budget.currency != doc.cost_model.currency:
            problem(("budgets", i, "currency"), f"{budget.currency} is not the cost model's currency "
                                                f"({doc.cost_model.currency}); amounts are not converted")
    for i, tag in enumerate(doc.restricted_tags):
        for j, who in enumerate(tag.approvers):
            if who.startswith("team:"):
                known(who[5:], ("restricted_tags", i, "approvers", j))
    for i, ai in enumerate(doc.ai_datasets):
        if ai.owner.startswith("team:"):
            known(ai.owner[5:], ("ai_datasets", i, "owner"))
    if doc.alerts is not None:
        routes: list[tuple[tuple[Any, ...], Any]] = [(("alerts", "webhooks", i), w) for i, w in enumerate(doc.alerts.webhooks)]
        if doc.alerts.console is not None:
            routes.append((("alerts", "console"), doc.alerts.console))
        for loc, route in routes:
            for j, team in enumerate(route.teams):
                known(team, (*loc, "teams", j))
        hooks = [doc.alerts.webhook_name(i) for i in range(len(doc.alerts.webhooks))]
        for i, name in enumerate(hooks):
            if name in hooks[:i]:
                problem(("alerts", "webhooks", i, "name"), f"two webhooks are named {name!r} (names keep their dead-letter files apart)")
    return problems
