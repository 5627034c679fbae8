"""Static enforcement: ``pipelines validate`` and ``plan`` check every write and every column read
against the governance policy, each denial at the step's line with the rule's file:line and a fix."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from collectors.store import EmbeddedStore
from lineage_auditor.cli import cli
from lineage_auditor.governance import load_policy
from pipelines.dsl import load_spec, plan_spec
from pipelines.dsl.governance import Governance, check_plan, reads, sql_fingerprint
from lineage_auditor.governance.tags import TagIndex

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

POLICY = """\
apiVersion: lineage-audit/v1
kind: Policy
teams:
  - name: growth
    members: [gina]
    owns: ["mart.*", "staging.*"]
  - name: finance
    members: [fred]
    owns: ["finance.*"]
  - name: ml
    members: [mia]
    owns: ["features.*"]
  - name: privacy
    members: [dana]
restricted_tags:
  - tag: "pii.*"
    approvers: ["team:privacy"]
ai_datasets:
  - dataset: mart.user_features
    owner: mia
"""

CONFIG = """\
version: 1
governance: governance.yml
tags:
  - {column: crm.users.email, tags: [pii.email]}
"""

SPEC = """\
apiVersion: lineage-audit/v1
kind: Pipeline
id: user_revenue
team: growth
sources: [crm.users, staging.orders]
approvals: []
steps:
  - id: revenue
    sql:
      dialect: duckdb
      query: |
        CREATE TABLE mart.user_revenue AS
        SELECT u.id, u.country, SUM(o.amount) AS revenue
        FROM staging.orders AS o JOIN crm.users AS u ON u.id = o.user_id
        GROUP BY u.id, u.country
"""

PII_STEP = """\
  - id: contacts
    sql:
      dialect: duckdb
      query: |
        CREATE TABLE mart.contacts AS
        SELECT id, lower(email) AS email FROM crm.users
"""


def _project(tmp_path: Path, spec: str = SPEC, policy: str = POLICY) -> Path:
    (tmp_path / "governance.yml").write_text(policy)
    (tmp_path / "lineage-audit.yml").write_text(CONFIG)
    (tmp_path / "spec.yml").write_text(spec)
    return tmp_path / "spec.yml"


def _validate(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    res = CliRunner().invoke(cli, ["pipelines", "validate", str(tmp_path / "spec.yml"),
                                   "--config", str(tmp_path / "lineage-audit.yml"), *args])
    lines = [line.replace(str(tmp_path) + "/", "") for line in res.output.splitlines()]
    return res.exit_code, lines


def _with_approval(approval: str, spec: str = SPEC + PII_STEP) -> str:
    return spec.replace("approvals: []\n", f"approvals:\n  - {approval}\n")


def test_a_spec_within_its_team_s_datasets_passes(tmp_path: Path) -> None:
    _project(tmp_path)
    assert _validate(tmp_path) == (0, ["1 valid spec, 0 problems"])


def test_a_cross_team_write_is_denied_with_the_rule_and_the_fix(tmp_path: Path) -> None:
    _project(tmp_path, SPEC.replace("CREATE TABLE mart.user_revenue", "CREATE TABLE finance.user_revenue"))
    code, lines = _validate(tmp_path)
    assert code == 2
    assert lines == [
        "spec.yml:8:5: steps[0]: team growth may not write finance.user_revenue (owned by team finance); "
        "rule governance.yml:6: team growth owns mart.*, staging.* (writes outside owned datasets are denied); "
        "fix: grants: [{team: growth, write: [finance.user_revenue]}] in governance.yml",
        "0 valid specs, 1 problem"]
    # a write grant lifts it, and the policy without the config applies too (--policy)
    granted = POLICY + "grants:\n  - {team: growth, write: [finance.user_revenue], reason: quarterly close}\n"
    (tmp_path / "governance.yml").write_text(granted)
    assert _validate(tmp_path)[0] == 0


def test_an_approved_pii_read_is_allowed(tmp_path: Path) -> None:
    _project(tmp_path, _with_approval("{tag: pii.email, by: dana, reason: support mailing, ticket: PRIV-1, expires: 2099-12-31}"))
    assert _validate(tmp_path) == (0, ["1 valid spec, 0 problems"])


PII_RULE = "rule governance.yml:16: restricted tag pii.* (approvers: team:privacy)"


@pytest.mark.parametrize("approval, message", [
    (None, f"spec.yml:16:5: steps[1]: reads crm.users.email (pii.email) without an approval; {PII_RULE}; "
           "fix: approvals: [{tag: pii.email, by: dana, reason: ..., expires: YYYY-MM-DD}] in the spec, "
           "or grant team growth read on crm.users in governance.yml"),
    ("{tag: pii.email, by: dana, reason: support mailing, expires: 2024-01-31}",
     f"spec.yml:17:5: steps[1]: reads crm.users.email (pii.email): the approval by dana expired on 2024-01-31; {PII_RULE}; "
     "fix: renew it: a new expires, approved by dana"),
    ("{tag: pii.email, by: gina, reason: I need it}",
     f"spec.yml:17:5: steps[1]: reads crm.users.email (pii.email): the approval is by gina, who is not an approver of pii.*; "
     f"{PII_RULE}; fix: have one of team:privacy approve it"),
], ids=["missing", "expired", "not-an-approver"])
def test_a_pii_read_without_a_valid_approval_is_denied(tmp_path: Path, approval: str | None, message: str) -> None:
    _project(tmp_path, _with_approval(approval) if approval else SPEC + PII_STEP)
    assert _validate(tmp_path) == (2, [message, "0 valid specs, 1 problem"])


def test_joining_on_a_tagged_column_reads_it_too(tmp_path: Path) -> None:
    """INDIRECT use (a join key, a filter) reads the column: the policy is about access, not propagation."""
    join = SPEC.replace("ON u.id = o.user_id", "ON u.email = o.email")
    _project(tmp_path, join)
    code, lines = _validate(tmp_path)
    assert code == 2 and lines[0].startswith("spec.yml:8:5: steps[0]: reads crm.users.email (pii.email) without an approval")


def test_an_ai_dataset_write_needs_the_owner_s_approval_of_its_sql(tmp_path: Path) -> None:
    ai = SPEC.replace("CREATE TABLE mart.user_revenue", "CREATE TABLE mart.user_features")
    spec = _project(tmp_path, ai)
    loaded = load_spec(spec)
    fingerprint = sql_fingerprint(loaded, plan_spec(loaded, date(2024, 5, 1)), "mart.user_features")
    code, lines = _validate(tmp_path)
    assert code == 2 and lines[0] == (
        "spec.yml:8:5: steps[0]: writes AI dataset mart.user_features without its owner's approval; "
        "rule governance.yml:19: AI dataset mart.user_features (owner mia); "
        f"fix: approvals: [{{dataset: mart.user_features, by: mia, reason: ..., sql: {fingerprint}}}] in the spec")
    _project(tmp_path, _with_approval(f"{{dataset: mart.user_features, by: mia, reason: churn v3, sql: {fingerprint}}}", ai))
    assert _validate(tmp_path)[0] == 0
    # the SQL changes: the approval no longer covers it
    changed = ai.replace("SUM(o.amount) AS revenue", "SUM(o.amount) * 1.19 AS revenue")
    _project(tmp_path, _with_approval(f"{{dataset: mart.user_features, by: mia, reason: churn v3, sql: {fingerprint}}}", changed))
    code, lines = _validate(tmp_path)
    assert code == 2 and f"the approval by mia is for SQL {fingerprint}, the SQL is now " in lines[0]
    # the approval of someone else is refused
    _project(tmp_path, _with_approval(f"{{dataset: mart.user_features, by: gina, reason: mine, sql: {fingerprint}}}", ai))
    assert "the approval is by gina, not its owner mia" in _validate(tmp_path)[1][0]


def test_the_fingerprint_is_the_same_every_day_and_ignores_non_sql_settings(tmp_path: Path) -> None:
    spec = _project(tmp_path, SPEC.replace("GROUP BY u.id", "WHERE o.day = DATE '{{ ds }}' GROUP BY u.id"))
    loaded = load_spec(spec)
    first = sql_fingerprint(loaded, plan_spec(loaded, date(2024, 5, 1)), "mart.user_revenue")
    assert first == sql_fingerprint(loaded, plan_spec(loaded, date(2024, 5, 2)), "mart.user_revenue")
    spec.write_text(spec.read_text().replace("team: growth\n", "team: growth\nretries: {count: 4}\n"))
    again = load_spec(spec)
    assert sql_fingerprint(again, plan_spec(again, date(2024, 5, 1)), "mart.user_revenue") == first


def test_plan_shows_the_policy_and_its_denials(tmp_path: Path) -> None:
    _project(tmp_path, SPEC + PII_STEP)
    res = CliRunner().invoke(cli, ["pipelines", "plan", str(tmp_path / "spec.yml"), "--date", "2024-05-01",
                                   "--config", str(tmp_path / "lineage-audit.yml"), "--format", "json"])
    assert res.exit_code == 2
    doc = json.loads(res.stdout)
    assert doc["governance"]["policy"] == str(tmp_path / "governance.yml")
    assert [d["path"] for d in doc["governance"]["denials"]] == ["steps[1]"]
    res = CliRunner().invoke(cli, ["pipelines", "plan", str(tmp_path / "spec.yml"), "--date", "2024-05-01", "--policy",
                                   str(EXAMPLES / "governance.yml"), "--config", str(tmp_path / "nothing-here.yml")])
    assert res.exit_code == 2 and "no such config file" in res.output


def test_without_a_policy_plan_says_nothing_is_enforced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yml").write_text(SPEC.replace("mart.user_revenue", "finance.user_revenue"))
    res = CliRunner().invoke(cli, ["pipelines", "plan", "spec.yml", "--date", "2024-05-01"])
    assert res.exit_code == 0
    assert "governance: no policy (no --policy and no ./lineage-audit.yml): nothing is enforced" in res.output


def test_tags_in_the_lineage_store_restrict_a_column_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A column tagged by another producer's OpenLineage ``tags`` facet needs an approval like a configured one."""
    _project(tmp_path)
    (tmp_path / "lineage-audit.yml").write_text("version: 1\ngovernance: governance.yml\nstore: embedded:lineage.db\n")
    event = {
        "eventType": "COMPLETE", "eventTime": "2024-05-01T00:00:00Z", "producer": "https://example.test",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": "01890f3e-0000-7000-8000-000000000001"}, "job": {"namespace": "crm", "name": "crm_export"},
        "outputs": [{"namespace": "postgres://crm:5432", "name": "warehouse.crm.users", "facets": {
            "tags": {"_producer": "https://example.test", "_schemaURL": "https://openlineage.io/spec/facets/1-0-0/TagsDatasetFacet.json",
                     "tags": [{"key": "pii", "value": "location", "field": "country"}]}}}],
    }
    monkeypatch.chdir(tmp_path)
    with EmbeddedStore(tmp_path / "lineage.db") as store:
        store.add_event(event)
    code, lines = _validate(tmp_path)
    assert code == 2 and lines[0].startswith("spec.yml:8:5: steps[0]: reads crm.users.country (pii.location) without an approval")


def test_a_python_step_reads_its_inputs_whole(tmp_path: Path) -> None:
    spec = _project(tmp_path, SPEC + """\
  - id: score
    python:
      callable: scoring:run
      inputs: [crm.users]
      outputs: [mart.scores]
""")
    loaded = load_spec(spec)
    plan = plan_spec(loaded, date(2024, 5, 1))
    assert reads(loaded.pipeline.steps[1], plan.steps[1]) == {"crm.users": None}
    gov = Governance(load_policy(tmp_path / "governance.yml"), tags=TagIndex.from_rules([("crm.users.email", ["pii.email"])]))
    (problem,) = check_plan(loaded, plan, gov)
    assert (problem.path, problem.message.split(";")[0]) == ("steps[1]", "reads crm.users.email (pii.email) without an approval")


def test_the_examples_pass_the_example_policy(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["pipelines", "validate", str(EXAMPLES / "specs"), "--config", str(EXAMPLES / "lineage-audit.yml")])
    assert res.exit_code == 0, res.output
    assert "3 valid specs, 0 problems" in res.output
