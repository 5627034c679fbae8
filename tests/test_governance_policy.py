"""The governance policy: read like a compiler, and its answers name the rule (policy file:line)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from lineage_auditor.errors import ConfigError
from lineage_auditor.governance import Approval, IdentitySource, PolicyErrors, find_policy, load_policy, resolve_identity
from lineage_auditor.governance.schema import SCHEMA_FILE, policy_json_schema
from lineage_auditor.model import DatasetRef

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "governance.yml"
TODAY = date(2024, 6, 1)

POLICY = """\
apiVersion: lineage-audit/v1
kind: Policy
teams:
  - name: growth
    members: [gina]
    owns: ["mart.*", staging.orders]
  - name: finance
    members: [fred]
    owns: ["finance.*"]
  - name: ml
    members: [mia]
    owns: ["features.*"]
  - name: privacy
    members: [dana]
grants:
  - team: growth
    write: [finance.daily_revenue]
  - team: finance
    run: ["daily_*"]
  - team: ml
    read: [{dataset: crm.users, columns: [country]}]
restricted_tags:
  - tag: "pii.*"
    approvers: ["team:privacy"]
  - tag: license.restricted
    approvers: [lee]
ai_datasets:
  - dataset: features.churn
    owner: mia
budgets:
  - {team: growth, monthly: 100, currency: EUR}
cost_model:
  currency: EUR
"""


def _policy(tmp_path: Path, text: str = POLICY):  # type: ignore[no-untyped-def]
    path = tmp_path / "governance.yml"
    path.write_text(text)
    return load_policy(path)


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(PolicyErrors) as caught:
        _policy(tmp_path, text)
    return [str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems]


# ------------------------------------------------------------------ reading the file


def test_the_example_policy_loads_and_the_committed_schema_is_the_models() -> None:
    policy = load_policy(EXAMPLE)
    assert policy.team_names == ["data-platform", "growth", "ml", "privacy"]
    assert SCHEMA_FILE.read_text() == policy_json_schema(), \
        "lineage_auditor/governance/policy.schema.json is stale: run `lineage-audit policy schema --write`"


def test_the_json_schema_accepts_the_example_and_refuses_a_typo() -> None:
    import jsonschema
    import yaml

    schema = json.loads(policy_json_schema())
    doc = yaml.safe_load(EXAMPLE.read_text())
    jsonschema.validate(doc, schema)
    doc["teams"][0]["own"] = doc["teams"][0].pop("owns")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


@pytest.mark.parametrize("old, new, expected", [
    ("    owns: [\"mart.*\", staging.orders]\n", "    own: [\"mart.*\"]\n",
     ["governance.yml:6:5: teams[0].own: unknown key 'own' (did you mean 'owns'?)"]),
    ("kind: Policy\n", "kind: Pipeline\n",
     ["governance.yml:2:7: kind: 'Pipeline': this file is not a governance policy (kind: Policy)"]),
    ("  - team: finance\n    run:", "  - team: finanse\n    run:",
     ["governance.yml:18:11: grants[1].team: no team named 'finanse' (did you mean 'finance'?)"]),
    ("approvers: [\"team:privacy\"]", "approvers: [\"team:privcy\"]",
     ["governance.yml:24:17: restricted_tags[0].approvers[0]: no team named 'privcy' (did you mean 'privacy'?)"]),
    ("monthly: 100, currency: EUR}", "monthly: 100, currency: USD}",
     ["governance.yml:31:44: budgets[0].currency: USD is not the cost model's currency (EUR); amounts are not converted"]),
    ("monthly: 100, currency: EUR}", "monthly: 100, currency: EUR, warn_at: 1.2}",
     ["governance.yml:31:5: budgets[0]: warn_at (1.2) is above fail_at (1.0)"]),
    ("    read: [{dataset: crm.users, columns: [country]}]\n", "    reason: none\n",
     ["governance.yml:20:5: grants[2]: a grant needs read, write or run"]),
    ("  - name: privacy\n", "  - name: growth\n", [
        "governance.yml:13:11: teams[3].name: team 'growth' is defined twice",
        "governance.yml:24:17: restricted_tags[0].approvers[0]: no team named 'privacy' (teams: growth, finance, ml)"]),
    ("currency: EUR\n", "currency: euro\n",
     ["governance.yml:33:13: cost_model.currency: 'euro' is not a currency code (three capital letters: USD, EUR)"]),
])
def test_malformed_policies_say_where_and_what(tmp_path: Path, old: str, new: str, expected: list[str]) -> None:
    assert old in POLICY
    assert _problems(tmp_path, POLICY.replace(old, new, 1)) == expected


def test_a_policy_that_is_not_a_mapping_or_not_there(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a policy is a mapping"):
        _policy(tmp_path, "- just a list\n")
    with pytest.raises(ConfigError, match="no such policy file"):
        load_policy(tmp_path / "missing.yml")


# ------------------------------------------------------------------ writes and runs


def test_a_cross_team_write_is_denied_and_names_the_rule(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    ledger = DatasetRef("postgres://db:5432", "wh.finance.ledger")
    decision = policy.can_write("growth", ledger)
    assert not decision
    assert decision.explain() == (
        f"team growth may not write wh.finance.ledger (owned by team finance); rule {tmp_path}/governance.yml:6: "
        f"team growth owns mart.*, staging.orders (writes outside owned datasets are denied); "
        f"fix: grants: [{{team: growth, write: [wh.finance.ledger]}}] in {tmp_path}/governance.yml")
    assert decision.rule is not None and (decision.rule.line, decision.rule.path) == (6, "teams[0].owns")
    assert policy.can_write("finance", ledger)  # the owner may
    granted = policy.can_write("growth", "finance.daily_revenue")
    assert granted and str(granted.rule).endswith("governance.yml:16: grant to team growth: write finance.daily_revenue")
    assert policy.can_write("growth", DatasetRef("duckdb:///w.duckdb", "w.mart.revenue"))  # mart.* by dot-suffix
    unknown = policy.can_write("growht", "mart.revenue")
    assert not unknown and unknown.reason == "team 'growht' is not a team of the policy (did you mean 'growth'?)"


def test_members_run_their_team_s_pipelines_others_need_a_grant(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    assert policy.can_run("gina", "daily_revenue", "growth").reason == "user gina is a member of team growth"
    denied = policy.can_run("mia", "daily_revenue", "growth")
    assert not denied
    assert denied.reason == "user mia (team ml) may not run pipeline daily_revenue of team growth"
    assert denied.fix == f"add mia to team growth, or grant team ml run: [daily_revenue] in {tmp_path}/governance.yml"
    assert policy.can_run("fred", "daily_revenue", "growth")  # finance may run daily_*
    assert not policy.can_run("fred", "weekly_revenue", "growth")
    assert policy.can_run("nobody", "daily_revenue", "growth").reason.startswith("user nobody (in no team of the policy)")


# ------------------------------------------------------------------ restricted reads


def _approval(**fields: object) -> Approval:
    return Approval.model_validate({"by": "dana", "reason": "churn model", "ticket": "PRIV-12", **fields})


def test_restricted_reads_need_an_approval_by_a_listed_approver_that_has_not_expired(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    ask = lambda *approvals: policy.can_read("ml", "crm.users", "email", ["pii.email"], approvals, today=TODAY)  # noqa: E731
    rule = f"rule {tmp_path}/governance.yml:23: restricted tag pii.* (approvers: team:privacy)"

    approved = ask(_approval(tag="pii.email", expires="2024-12-31"))
    assert approved and approved.approval == 0 and approved.reason == "reads crm.users.email (pii.email) with the approval of dana"

    missing = ask()
    assert not missing and missing.explain() == (
        f"reads crm.users.email (pii.email) without an approval; {rule}; fix: approvals: [{{tag: pii.email, by: dana, "
        f"reason: ..., expires: YYYY-MM-DD}}] in the spec, or grant team ml read on crm.users in {tmp_path}/governance.yml")

    expired = ask(_approval(tag="pii.email", expires="2024-05-31"))
    assert not expired and expired.approval == 0
    assert expired.reason == "reads crm.users.email (pii.email): the approval by dana expired on 2024-05-31"

    stranger = ask(_approval(tag="pii.email", by="eve"))
    assert not stranger and stranger.reason == ("reads crm.users.email (pii.email): the approval is by eve, "
                                                "who is not an approver of pii.*")
    assert stranger.fix == "have one of team:privacy approve it"

    other_tag = ask(_approval(tag="pii.phone"))
    assert not other_tag and "without an approval" in other_tag.reason
    assert ask(_approval(tag="pii.*"))  # an approval may cover a tag pattern


def test_unrestricted_reads_are_allowed_and_read_grants_cover_named_columns_only(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    assert policy.can_read("growth", "crm.users", "email", ["internal"]).reason == \
        "crm.users.email carries no restricted tag (reads are allowed by default)"
    country = policy.can_read("ml", "crm.users", "country", ["pii.location"])
    assert country and str(country.rule).endswith("governance.yml:20: grant to team ml: read crm.users (country)")
    assert not policy.can_read("ml", "crm.users", "email", ["pii.email"])
    assert not policy.can_read("growth", "crm.users", "country", ["pii.location"])
    assert not policy.can_read("ml", "crm.users", None, ["license.restricted"])  # a dataset-level tag


# ------------------------------------------------------------------ AI datasets


def test_writing_an_ai_dataset_needs_its_owner_s_approval_of_that_sql(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    sql = "0123456789ab"
    ask = lambda *approvals: policy.can_write_ai_dataset("wh.features.churn", approvals, sql, today=TODAY)  # noqa: E731
    missing = ask()
    assert not missing and missing.explain() == (
        f"writes AI dataset wh.features.churn without its owner's approval; rule {tmp_path}/governance.yml:28: "
        f"AI dataset features.churn (owner mia); fix: approvals: [{{dataset: wh.features.churn, by: mia, "
        f"reason: ..., sql: {sql}}}] in the spec")
    owner = _approval(dataset="features.churn", by="mia", sql=sql)
    assert ask(owner)
    assert ask(_approval(dataset="features.churn", by="gina", sql=sql)).reason == \
        "writes AI dataset wh.features.churn: the approval is by gina, not its owner mia"
    changed = ask(_approval(dataset="features.churn", by="mia", sql="ffffffffffff"))
    assert changed.reason == ("writes AI dataset wh.features.churn: the approval by mia is for SQL ffffffffffff, "
                              "the SQL is now 0123456789ab")
    assert policy.can_write_ai_dataset("features.other", (), sql).reason == "features.other is not an AI dataset of the policy"


def test_an_approval_names_one_subject_and_a_real_fingerprint() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="exactly one of tag, dataset"):
        _approval(tag="pii.email", dataset="features.churn")
    with pytest.raises(ValidationError, match="is not a SQL fingerprint"):
        _approval(dataset="features.churn", sql="abc")


# ------------------------------------------------------------------ identity and finding the policy


def test_identity_comes_from_as_then_the_environment_then_the_os() -> None:
    assert resolve_identity("mia", {"LINEAGE_AUDIT_USER": "gina"}).source is IdentitySource.OPTION
    from_env = resolve_identity(None, {"LINEAGE_AUDIT_USER": "gina"})
    assert (from_env.user, from_env.source) == ("gina", IdentitySource.ENV)
    assert resolve_identity(None, {}).source is IdentitySource.OS
    with pytest.raises(ConfigError, match="--as: the user name is empty"):
        resolve_identity(" ", {})


def test_the_policy_is_found_by_option_then_project_config_then_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_policy().policy is None
    assert find_policy().describe() == "no governance policy (no --policy and no ./lineage-audit.yml): nothing is enforced"
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "governance.yml").write_text(POLICY)
    (tmp_path / "lineage-audit.yml").write_text("version: 1\ngovernance: policies/governance.yml\n")
    found = find_policy()
    assert found.policy is not None and found.source == "governance: in lineage-audit.yml"
    assert find_policy(EXAMPLE).source == "--policy"
    (tmp_path / "lineage-audit.yml").write_text("version: 1\ngovernance: policies/nope.yml\n")
    with pytest.raises(ConfigError) as caught:
        find_policy()
    assert str(caught.value) == "lineage-audit.yml:2:13: governance: no such policy file policies/nope.yml"


def test_policy_check_prints_every_problem_and_exits_2(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lineage_auditor.cli import cli

    bad = tmp_path / "governance.yml"
    bad.write_text(POLICY.replace("owns: [\"mart.*\"", "own: [\"mart.*\"").replace("team: finance\n", "team: finanse\n"))
    res = CliRunner().invoke(cli, ["policy", "check", str(bad)])
    assert res.exit_code == 2
    assert res.output.splitlines() == [
        f"{bad}:6:5: teams[0].own: unknown key 'own' (did you mean 'owns'?)",
    ]
    fixed = tmp_path / "fixed.yml"
    fixed.write_text(POLICY.replace("team: finance\n", "team: finanse\n"))
    res = CliRunner().invoke(cli, ["policy", "check", str(fixed)])
    assert res.exit_code == 2 and res.output.strip() == f"{fixed}:18:11: grants[1].team: no team named 'finanse' (did you mean 'finance'?)"
    res = CliRunner().invoke(cli, ["policy", "check", str(EXAMPLE)])
    assert res.exit_code == 0 and "valid (4 teams, 2 grants, 2 restricted tags, 1 AI datasets, 3 budgets, a cost model, alerts to 2 webhooks and the console)" in res.output
