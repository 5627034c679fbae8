"""Run-time enforcement: the rendered plan and the person running it are checked, and every run
records who ran it for which team (``lineageAudit_runBy``)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from collectors.store import EmbeddedStore
from lineage_auditor.cli import cli
from pipelines.runtime.events import CUSTOM_FACETS
from tests.olspec import validate_events, validate_own_facet

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
  - name: privacy
    members: [dana]
grants:
  - team: finance
    run: [revenue]
restricted_tags:
  - tag: "pii.*"
    approvers: ["team:privacy"]
"""

CONFIG = """\
version: 1
governance: governance.yml
tags:
  - {column: staging.users.email, tags: [pii.email]}
"""

SPEC = """\
apiVersion: lineage-audit/v1
kind: Pipeline
id: revenue
team: growth
params:
  out: {type: string, default: mart}
approvals:
  - {tag: pii.email, by: dana, reason: domain statistics, ticket: PRIV-7, expires: 2099-12-31}
retries: {count: 0}
steps:
  - id: users
    extract:
      into: staging.users
      file: {path: users.csv, columns: [{name: id, type: INTEGER}, {name: email, type: VARCHAR}]}
  - id: domains
    depends_on: [users]
    sql:
      dialect: duckdb
      query: |
        CREATE TABLE {{ params.out }}.domains AS
        SELECT split_part(email, '@', 2) AS domain, COUNT(*) AS users
        FROM staging.users GROUP BY 1
"""


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("LINEAGE_AUDIT_USER", "OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LINEAGE_AUDIT_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "governance.yml").write_text(POLICY)
    (tmp_path / "lineage-audit.yml").write_text(CONFIG)
    (tmp_path / "users.csv").write_text("id,email\n1,a@x.org\n2,b@x.org\n3,c@y.org\n")
    (tmp_path / "spec.yml").write_text(SPEC)
    return tmp_path


def _run(project: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["pipelines", "run", "spec.yml", "--date", "2024-05-01", "--target",
                                    f"duckdb:{project / 'wh.duckdb'}", "--lineage", f"embedded:{project / 'lineage.db'}",
                                    "--format", "json", *args])


def _events(project: Path) -> list[dict]:
    with EmbeddedStore(project / "lineage.db") as store:
        return list(store.events())


def _tables(project: Path) -> set[str]:
    with duckdb.connect(str(project / "wh.duckdb"), read_only=True) as conn:
        return {f"{s}.{t}" for s, t in conn.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}


def test_every_run_records_who_ran_it_for_which_team(project: Path) -> None:
    res = _run(project, "--as", "gina")
    assert res.exit_code == 0, res.output
    events = _events(project)
    assert len(events) == 6  # START and COMPLETE of the pipeline and of its two steps
    assert validate_events(events, custom_facets=CUSTOM_FACETS) == 6
    for event in events:
        facet = event["run"]["facets"]["lineageAudit_runBy"]
        validate_own_facet(facet, "RunByRunFacet")
        assert (facet["runBy"], facet["team"], facet["identitySource"], facet["policy"]) == ("gina", "growth", "--as", "governance.yml")
        # the run relied on the privacy team's approval to read staging.users.email
        assert facet["approvals"] == [{"tag": "pii.email", "by": "dana", "reason": "domain statistics",
                                       "ticket": "PRIV-7", "expires": "2099-12-31"}]
    assert "mart.domains" in _tables(project)


def test_the_environment_names_the_user_and_without_a_policy_nothing_is_enforced(project: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "lineage-audit.yml").unlink()
    monkeypatch.setenv("LINEAGE_AUDIT_USER", "mia")  # in no team: fine when no policy is in force
    assert _run(project).exit_code == 0
    facet = _events(project)[0]["run"]["facets"]["lineageAudit_runBy"]
    assert (facet["runBy"], facet["identitySource"], facet.get("policy"), facet.get("approvals")) == \
        ("mia", "LINEAGE_AUDIT_USER", None, None)


def test_another_team_s_member_cannot_run_the_pipeline_unless_granted(project: Path) -> None:
    res = _run(project, "--as", "dana")
    assert res.exit_code == 1
    summary = json.loads(res.stdout)["runs"][0]
    assert summary["state"] == "FAIL" and summary["steps"] == []  # denied before any step ran
    assert summary["error"] == (
        "denied by the governance policy: spec.yml:4:7: team: user dana (team privacy) may not run pipeline revenue "
        "of team growth; rule governance.yml:5: team growth has members gina; other users need a run grant; "
        "fix: add dana to team growth, or grant team privacy run: [revenue] in governance.yml")
    fail = [e for e in _events(project) if e["eventType"] == "FAIL"]
    assert len(fail) == 1 and fail[0]["run"]["facets"]["errorMessage"]["message"] == summary["error"]
    assert fail[0]["run"]["facets"]["lineageAudit_runBy"]["runBy"] == "dana"
    assert not (project / "wh.duckdb").exists()
    assert _run(project, "--as", "fred").exit_code == 0  # finance holds a run grant for revenue


def test_a_template_that_renders_a_forbidden_table_is_denied_at_run(project: Path) -> None:
    validate = CliRunner().invoke(cli, ["pipelines", "validate", "spec.yml"])
    assert validate.exit_code == 0, validate.output  # the default (mart) is growth's own
    res = _run(project, "--as", "gina", "--param", "out=finance")
    assert res.exit_code == 1
    error = json.loads(res.stdout)["runs"][0]["error"]
    assert error.startswith("denied by the governance policy: spec.yml:15:5: steps[1]: team growth may not write ")
    assert "wh.finance.domains (owned by team finance); rule governance.yml:6: team growth owns mart.*, staging.*" in error
    assert not (project / "wh.duckdb").exists()  # nothing ran: no warehouse was even opened


def test_an_expired_approval_stops_the_run_before_it_reads(project: Path) -> None:
    (project / "spec.yml").write_text(SPEC.replace("expires: 2099-12-31", "expires: 2024-01-31"))
    res = _run(project, "--as", "gina")
    assert res.exit_code == 1
    error = json.loads(res.stdout)["runs"][0]["error"]
    assert "reads wh.staging.users.email (pii.email): the approval by dana expired on 2024-01-31" in error
