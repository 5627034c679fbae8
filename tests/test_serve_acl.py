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
