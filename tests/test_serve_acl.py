"""Access control of `serve` from the governance policy: a team writes only what it owns.

Teams and grants come from a real governance.yml (lineage_auditor.governance); the client
is openlineage-python's HttpTransport with each user's API key.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from collectors.store import EmbeddedStore
from service_helpers import Server, add_token, pipeline_run, start_server

POLICY = """\
apiVersion: lineage-audit/v1
kind: Policy
teams:
  - name: growth
    members: [gina]
    owns: ["mart.*"]
  - name: finance
    members: [fred]
    owns: ["finance.*"]
"""


@pytest.fixture
def governed(tmp_path: Path) -> Iterator[tuple[Server, dict[str, str], Path]]:
    (tmp_path / "governance.yml").write_text(POLICY)
    tokens = {user: add_token(tmp_path, user) for user in ("gina", "fred", "nobody")}
    store = tmp_path / "s.db"
    server = start_server(["--store", f"embedded:{store}", "--tokens", str(tmp_path / "tokens.json"),
                           "--policy", str(tmp_path / "governance.yml")], tmp_path)
    try:
        yield server, tokens, store
    finally:
        server.stop()


def test_a_cross_team_write_is_refused_naming_the_rule_and_nothing_is_stored(
        governed: tuple[Server, dict[str, str], Path]) -> None:
    server, tokens, store = governed

    def send(user: str, event: dict) -> httpx.Response:
        return httpx.post(f"{server.url}/api/v1/lineage", json=event, headers={"Authorization": f"Bearer {tokens[user]}"})

    own = pipeline_run(1, pipeline="sales", team="growth", table="wh.mart.sales")
    for event in own:
        assert send("gina", event).status_code == 201
    theirs = pipeline_run(2, pipeline="ledger", team="growth", table="wh.finance.ledger")
    refused = send("gina", theirs[2])  # the step's COMPLETE writes finance's table
    assert refused.status_code == 403
    detail = refused.json()["detail"]
    assert "team growth may not write wh.finance.ledger (owned by team finance)" in detail
    assert "governance.yml:" in detail, "the rule is named by file and line"
    assert send("fred", theirs[2]).status_code == 201, "the owner's team may write it"
    outsider = send("nobody", pipeline_run(3, table="wh.mart.other")[2])
    assert outsider.status_code == 403 and "in no team" in outsider.json()["detail"]
    with EmbeddedStore(store) as db:
        written = [o["name"] for e in db.events() for o in e["outputs"]]
    assert sorted(written) == ["wh.finance.ledger", "wh.mart.sales"], "nothing of a refused event is stored"


READ_POLICY = """\
apiVersion: lineage-audit/v1
kind: Policy
teams:
  - name: platform
    members: [ada]
    owns: ["crm.*", "features.*"]
  - name: growth
    members: [gina]
  - name: privacy
    members: [priya]
grants:
  - team: privacy
    read: [{dataset: crm.users, columns: [email]}]
    reason: the privacy team reviews where e-mail addresses go
restricted_tags:
  - tag: "pii.*"
    approvers: ["team:privacy"]
"""
SECRET_SQL = "SELECT id, split_part(email, '@', 2) AS email_domain FROM crm.users /* domain-secret */"


def _facet(name: str, body: dict) -> dict:
    return {"_producer": "https://example.com/producer", "_schemaURL": f"https://openlineage.io/spec/facets/1-0-0/{name}.json", **body}


def _tagged_events() -> list[dict]:
    """crm.load writes wh.crm.users, whose email is tagged pii.email; features.build reads it with SQL."""
    def event(run: str, job: str, when: str, inputs: list, outputs: list, job_facets: dict) -> dict:
        return {"eventType": "COMPLETE", "eventTime": when, "producer": "https://example.com/producer",
                "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                "run": {"runId": run, "facets": {}}, "job": {"namespace": "lineage-audit", "name": job, "facets": job_facets},
                "inputs": inputs, "outputs": outputs}

    schema = _facet("SchemaDatasetFacet", {"fields": [{"name": "id", "type": "BIGINT"}, {"name": "email", "type": "TEXT"}]})
    tags = _facet("TagsDatasetFacet", {"tags": [{"key": "pii", "value": "email", "source": "crm", "field": "email"}]})
    users = {"namespace": "postgres://wh:5432", "name": "wh.crm.users", "facets": {"schema": schema, "tags": tags}}
    lineage = _facet("ColumnLineageDatasetFacet", {"fields": {
        "id": {"inputFields": [{"namespace": "postgres://wh:5432", "name": "wh.crm.users", "field": "id"}]},
        "email_domain": {"inputFields": [{"namespace": "postgres://wh:5432", "name": "wh.crm.users", "field": "email"}]}}})
    features = {"namespace": "postgres://wh:5432", "name": "wh.features.user_domains",
                "facets": {"schema": _facet("SchemaDatasetFacet", {"fields": [{"name": "id"}, {"name": "email_domain"}]}),
                           "columnLineage": lineage}}
    sql = {"sql": _facet("SQLJobFacet", {"query": SECRET_SQL})}
    return [event("01900000-0000-7000-8000-00000000a001", "crm.load", "2024-05-01T01:00:00Z", [], [users], {}),
            event("01900000-0000-7000-8000-00000000a002", "features.build", "2024-05-01T02:00:00Z", [users], [features], sql)]


def test_pages_withhold_restricted_columns_and_their_sql_without_a_read_grant(tmp_path: Path) -> None:
    (tmp_path / "governance.yml").write_text(READ_POLICY)
    tokens = {user: add_token(tmp_path, user) for user in ("ada", "gina", "priya")}
    server = start_server(["--store", f"embedded:{tmp_path / 's.db'}", "--tokens", str(tmp_path / "tokens.json"),
                           "--policy", str(tmp_path / "governance.yml")], tmp_path)

    def get(user: str, name: str) -> str:
        answer = httpx.get(f"{server.url}/datasets", params={"name": name}, headers={"Authorization": f"Bearer {tokens[user]}"})
        assert answer.status_code == 200, answer.text
        return answer.text

    try:
        for event in _tagged_events():
            sent = httpx.post(f"{server.url}/api/v1/lineage", json=event, headers={"Authorization": f"Bearer {tokens['ada']}"})
            assert sent.status_code == 201, sent.text
        outsider, reviewer = get("gina", "wh.features.user_domains"), get("priya", "wh.features.user_domains")
        users_page = get("gina", "wh.crm.users")
    finally:
        server.stop()
    assert "domain-secret" not in outsider, "the SQL reading a restricted column reaches no page of a reader without a grant"
    assert "withheld: it touches a restricted column" in outsider
    assert "domain-secret" in reviewer, "a read grant on the column shows the SQL (writers table and graph panel)"
    assert "withheld" not in reviewer.split("<h2>Lineage</h2>")[0]
    row = users_page.split('<table id="columns">')[1].split("</table>")[0]
    assert "email <span" in row and "(restricted)" in row and "reads wh.crm.users.email (pii" in row
    assert "id <span" not in row, "an untagged column is shown as usual"
