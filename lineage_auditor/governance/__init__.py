"""Governance: who may read and write what, down to the column, and what it costs.

The public surface (what the pipeline runner, the audit and the lineage service use):

    >>> from lineage_auditor.governance import load_policy, resolve_identity   # doctest: +SKIP
    >>> policy = load_policy("governance.yml")
    >>> decision = policy.can_write("growth", DatasetRef("postgres://db:5432", "wh.finance.ledger"))
    >>> bool(decision), decision.explain()
    (False, 'team growth may not write wh.finance.ledger (owned by team finance); rule governance.yml:9: ...')

:class:`Policy` answers ``can_run``, ``can_write``, ``can_read`` (restricted tags, approvals),
``can_write_ai_dataset`` and ``check_team``; each answer is a :class:`Decision` naming the
:class:`Rule` (policy file:line) that decided it and, for a denial, the fix.
"""

from lineage_auditor.governance.identity import Identity, IdentitySource, resolve_identity
from lineage_auditor.governance.loader import Found, PolicyErrors, find_policy, load_policy
from lineage_auditor.governance.model import Approval, Budget, CostModel, PolicyDocument, Rates
from lineage_auditor.governance.policy import Decision, Policy, Rule, today_utc

#: Run facets of ours that governance writes (schemas in pipelines/runtime/facets/).
RUN_BY_FACET = "lineageAudit_runBy"
COST_FACET = "lineageAudit_cost"

__all__ = [
    "Approval", "Budget", "COST_FACET", "CostModel", "Decision", "Found", "Identity", "IdentitySource", "Policy",
    "PolicyDocument", "PolicyErrors", "RUN_BY_FACET", "Rates", "Rule", "find_policy", "load_policy",
    "resolve_identity", "today_utc",
]
