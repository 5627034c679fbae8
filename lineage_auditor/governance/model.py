"""The governance policy (``apiVersion: lineage-audit/v1``, ``kind: Policy``): the one definition.

These pydantic models are the grammar of ``governance.yml``: the loader validates against
them, the JSON Schema editors use is generated from them (``policy.schema.json`` beside this
module), and :class:`~lineage_auditor.governance.policy.Policy` answers questions from the
validated objects. :class:`Approval` is also what a pipeline spec's ``approvals:`` holds.

Every model forbids unknown keys, so a typo is an error with a "did you mean" rather than a
rule silently ignored.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lineage_auditor.yamlmodels import Duration

API_VERSION = "lineage-audit/v1"
KIND = "Policy"
CURRENCY = r"^[A-Z]{3}$"

Glob = Annotated[str, Field(min_length=1, description="a glob: * matches anything, ? one character")]


class _Policy(BaseModel):
    """Strict and immutable: unknown keys are errors, validated objects never change."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DatasetPattern(_Policy):
    """Datasets (and optionally only some of their columns) a rule is about."""

    dataset: Glob = Field(description="schema.table glob, matched against the dataset name and its dot-suffixes "
                                      "(mart.* matches warehouse.mart.revenue)")
    namespace: Glob = Field("*", description="OpenLineage namespace glob, e.g. postgres://db.internal:5432")
    columns: list[Glob] = Field(default_factory=lambda: ["*"], min_length=1, description="column globs")


#: ``mart.*`` is short for ``{dataset: mart.*}`` (any namespace, every column).
Pattern = Annotated[str | DatasetPattern, Field(description="a schema.table glob, or {dataset, namespace, columns}")]


class Team(_Policy):
    name: str = Field(min_length=1, description="the team's name, as specs write it in team:")
    members: list[str] = Field(default_factory=list, description="users (as --as, LINEAGE_AUDIT_USER or the OS user name them)")
    owns: list[Pattern] = Field(default_factory=list, description="datasets the team may write (and answers for)")
    description: str = ""


class Grant(_Policy):
    """A standing permission for a team beyond what it owns."""

    team: str = Field(min_length=1)
    read: list[Pattern] = Field(default_factory=list, description="restricted datasets or columns the team may read without an approval")
    write: list[Pattern] = Field(default_factory=list, description="datasets the team may write besides its own")
    run: list[Glob] = Field(default_factory=list, description="ids of other teams' pipelines its members may run")
    reason: str = ""
    expires: date | None = None

    @model_validator(mode="after")
    def _grants_something(self) -> "Grant":
        if not (self.read or self.write or self.run):
            raise ValueError("a grant needs read, write or run")
        return self


class RestrictedTag(_Policy):
    """Columns or datasets carrying a matching tag need an approval (or a read grant) to be read."""

    tag: Glob = Field(description="a tag glob: pii.*, license.restricted")
    approvers: list[str] = Field(min_length=1, description="users, or team:NAME for any member of a team")
    description: str = ""


class AIDatasetRule(_Policy):
    """Writing into this dataset (or changing the SQL that does) needs its owner's approval."""

    dataset: Glob = Field(description="schema.table glob of the AI dataset")
    owner: str = Field(min_length=1, description="a user, or team:NAME for any member of a team")


class Budget(_Policy):
    team: str = Field(min_length=1)
    monthly: float = Field(gt=0, description="the team's spending per calendar month (UTC)")
    currency: str = Field("USD", pattern=CURRENCY)
    warn_at: float = Field(0.8, gt=0, description="share of the budget that warns")
    fail_at: float = Field(1.0, gt=0, description="share of the budget that is a HIGH finding")

    @model_validator(mode="after")
    def _ordered(self) -> "Budget":
        if self.warn_at > self.fail_at:
            raise ValueError(f"warn_at ({self.warn_at}) is above fail_at ({self.fail_at})")
        return self


class Rates(_Policy):
    """Prices for one warehouse; a step's cost is the sum of the three parts."""

    cpu_hour: float = Field(0.0, ge=0, description="per CPU-hour of the runner's process")
    tib_scanned: float = Field(0.0, ge=0, description="per TiB (2^40 bytes) the warehouse reports scanned")
    credit_hour: float = Field(0.0, ge=0, description="per warehouse credit-hour")
    credits_per_hour: float = Field(1.0, ge=0, description="credits the warehouse burns per hour of statement time (its size)")


class CostModel(_Policy):
    currency: str = Field("USD", pattern=CURRENCY)
    default: Rates = Rates()
    targets: dict[str, Rates] = Field(default_factory=dict, description="rates per target dialect (duckdb, postgres, "
                                                                        "bigquery, snowflake), instead of default")


class AlertCondition(StrEnum):
    """What ``alerts:`` can route: the conditions of deploy/prometheus/alerts.yml."""

    PIPELINE_FAILED = "pipeline_failed"  # a pipeline's latest run ended in FAIL or ABORT
    DEADLINE_MISSED = "deadline_missed"  # no success within a spec's sla.deadline (needs the specs)
    SPOOL_BACKLOG = "spool_backlog"  # lineage events waiting in the local spool
    BUDGET_WARN = "budget_warn"  # a team spent its budget's warn_at this month
    AI_DATASET_HIGH_FINDINGS = "ai_dataset_high_findings"  # HIGH findings on an AI dataset (needs the audit config)


#: As in deploy/prometheus/alerts.yml: a backlog pages only when it stays (the target is down, not slow).
DEFAULT_HOLD = {AlertCondition.SPOOL_BACKLOG: timedelta(minutes=15)}


class _Route(_Policy):
    conditions: list[AlertCondition] = Field(default_factory=lambda: list(AlertCondition),
                                             description="the conditions sent here [default: all]")
    teams: list[str] = Field(default_factory=list, description="only alerts about these teams' pipelines and budgets "
                                                                "[default: every alert, also those of no team]")
    send_resolved: bool = Field(True, description="also say when an alert's condition has ended")


class ConsoleRoute(_Route):
    """Alerts as one line each on the console (the service's log, or the output of `alerts check`)."""


class WebhookRoute(_Route):
    """Alerts POSTed as JSON, in Alertmanager's webhook format (version 4), one alert per request."""

    name: str = Field("", description="the receiver's name in the payload and the dead-letter file [default: webhook-N]")
    url: str = Field(pattern=r"^https?://\S+$", description="where to POST")
    token_env: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$",
                           description="environment variable holding a bearer token (never the token itself)")
    attempts: int = Field(5, ge=1, le=50, description="tries per notification (the one retry policy: backoff with jitter)")
    backoff: Duration = Field(timedelta(seconds=1), description="first wait between tries; doubles each time")
    timeout: Duration = Field(timedelta(seconds=10), description="per request")
    dead_letter: str = Field("", description="JSON lines file holding what could not be delivered "
                                             "[default: <state folder>/<name>.dead-letter.jsonl]")


class AlertsPolicy(_Policy):
    """Alerting without Prometheus: the same conditions as deploy/prometheus/alerts.yml, routed here."""

    every: Duration = Field(timedelta(minutes=1), description="how often `lineage-audit serve` evaluates the conditions")
    for_: dict[AlertCondition, Duration] = Field(
        default_factory=dict, alias="for",
        description="how long a condition must hold before it fires [default: spool_backlog 15m, others at once]")
    state: str = Field("", description="file remembering which alerts fire [default: $LINEAGE_AUDIT_HOME/alerts/state.json]")
    console: ConsoleRoute | None = None
    webhooks: list[WebhookRoute] = Field(default_factory=list)

    def hold(self, condition: AlertCondition) -> timedelta:
        """How long ``condition`` must hold before it fires (``for:``, else the rules' default)."""
        return self.for_.get(condition, DEFAULT_HOLD.get(condition, timedelta(0)))

    def webhook_name(self, index: int) -> str:
        return self.webhooks[index].name or f"webhook-{index + 1}"

    @model_validator(mode="after")
    def _routes_somewhere(self) -> "AlertsPolicy":
        if self.console is None and not self.webhooks:
            raise ValueError("alerts need a console: or at least one webhooks: entry")
        return self


class PolicyDocument(_Policy):
    api_version: str = Field(alias="apiVersion", pattern=f"^{re.escape(API_VERSION)}$")
    kind: str = Field(pattern=f"^{KIND}$")
    description: str = ""
    teams: list[Team] = Field(default_factory=list)
    grants: list[Grant] = Field(default_factory=list)
    restricted_tags: list[RestrictedTag] = Field(default_factory=list)
    ai_datasets: list[AIDatasetRule] = Field(default_factory=list)
    budgets: list[Budget] = Field(default_factory=list)
    cost_model: CostModel | None = None
    alerts: AlertsPolicy | None = None


class Approval(_Policy):
    """An approval a pipeline spec carries: to read a restricted tag, or to write an AI dataset.

    ``by`` must be a listed approver of the tag (or the AI dataset's owner); an approval of
    an AI-dataset write names the SQL it approved (``sql``: the fingerprint ``pipelines
    plan`` prints), so changing that SQL needs a new one.
    """

    tag: str = Field("", description="the restricted tag approved for reading (pii.email)")
    dataset: str = Field("", description="the AI dataset approved for writing (schema.table)")
    by: str = Field(min_length=1, description="the approver (a user)")
    reason: str = Field(min_length=1)
    ticket: str = ""
    expires: date | None = Field(None, description="the last day the approval is valid")
    sql: str = Field("", description="with dataset: the fingerprint of the SQL approved")

    @model_validator(mode="after")
    def _one_subject(self) -> "Approval":
        if bool(self.tag) == bool(self.dataset):
            found = "found both" if self.tag else "found none"
            raise ValueError(f"an approval takes exactly one of tag, dataset ({found})")
        return self

    @field_validator("sql")
    @classmethod
    def _fingerprint(cls, value: str) -> str:
        if value and not re.fullmatch(r"[0-9a-f]{12}", value):
            raise ValueError(f"{value!r} is not a SQL fingerprint (12 hex digits, as pipelines plan prints)")
        return value
