"""`lineage-audit serve` with real clients: openlineage-python's HttpTransport, httpx, Prometheus's parser.

The server is a real uvicorn process on 127.0.0.1 over an embedded store; the client is the
OpenLineage Python client unchanged, authenticating with an API key (a bearer token).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport
from prometheus_client.parser import text_string_to_metric_families

from collectors.store import EmbeddedStore
from service_helpers import Server, add_token, pipeline_run, start_server


def as_openlineage(raw: dict[str, Any]) -> RunEvent:
    """Our dict as openlineage-python's own RunEvent with its facet classes (what an integration emits)."""
    from openlineage.client.facet_v2 import (error_message_run, nominal_time_run, output_statistics_output_dataset,
                                             ownership_job, parent_run)

    facets = raw["run"].get("facets") or {}
    run_facets: dict[str, Any] = {}
    if "nominalTime" in facets:
        run_facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(nominalStartTime=facets["nominalTime"]["nominalStartTime"])
    if "parent" in facets:
        p = facets["parent"]
        run_facets["parent"] = parent_run.ParentRunFacet(run=parent_run.Run(runId=p["run"]["runId"]),
                                                         job=parent_run.Job(namespace=p["job"]["namespace"], name=p["job"]["name"]))
    if "errorMessage" in facets:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=facets["errorMessage"]["message"], programmingLanguage="python")
    owners = ((raw["job"].get("facets") or {}).get("ownership") or {}).get("owners") or []
    job_facets: dict[str, Any] = {"ownership": ownership_job.OwnershipJobFacet(
        owners=[ownership_job.Owner(name=o["name"], type=o.get("type")) for o in owners])} if owners else {}
    outputs = []
    for d in raw.get("outputs") or []:
        stats = (d.get("outputFacets") or {}).get("outputStatistics")
        out_facets = {"outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=stats["rowCount"], size=stats.get("size"))} if stats else {}
        outputs.append(OutputDataset(namespace=d["namespace"], name=d["name"], outputFacets=out_facets))
    return RunEvent(
        eventType=RunState(raw["eventType"]), eventTime=raw["eventTime"], producer=raw["producer"],
        run=Run(runId=raw["run"]["runId"], facets=run_facets),
        job=Job(namespace=raw["job"]["namespace"], name=raw["job"]["name"], facets=job_facets),
        inputs=[InputDataset(namespace=d["namespace"], name=d["name"]) for d in raw.get("inputs") or []],
        outputs=outputs,
    )


def client_for(url: str, token: str) -> OpenLineageClient:
    return OpenLineageClient(transport=HttpTransport(HttpConfig(url=url, auth=ApiKeyTokenProvider({"apiKey": token}))))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, Path]]:
    root = tmp_path_factory.mktemp("serve")
    token = add_token(root, "alice")
    store = root / "central.db"
    server = start_server(["--store", f"embedded:{store}", "--tokens", str(root / "tokens.json")], root)
    try:
        yield server, token, store
    finally:
        server.stop()


def _events(n_runs: int, failed_every: int = 10) -> list[dict[str, Any]]:
    out = []
    for i in range(n_runs):
        out += pipeline_run(i, pipeline=f"p{i % 5}", team="growth" if i % 5 % 2 else "ml", failed=i % failed_every == 3)
    return out


def test_the_openlineage_client_sends_1000_events_each_stored_once(served: tuple[Server, str, Path]) -> None:
    server, token, store = served
    events = _events(250)
    assert len(events) == 1000
    client = client_for(server.url, token)
    for raw in events:
        client.emit(as_openlineage(raw))
    with EmbeddedStore(store) as db:
        assert db.count() == 1000
    for raw in events[:50]:  # a re-send (a retry after a lost answer, a replayed spool)
        client.emit(as_openlineage(raw))
    with EmbeddedStore(store) as db:
        assert db.count() == 1000, "re-sent events are not stored again"
    again = httpx.post(f"{server.url}/api/v1/lineage", json=events[0], headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 200 and again.json() == {"stored": False, "duplicate": True}


def test_metrics_parse_and_match_the_store(served: tuple[Server, str, Path]) -> None:
    server, token, store = served
    response = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    runs = {k: v for k, v in samples.items() if k[0] == "lineage_audit_runs_total"}
    # from the store itself: final events of pipeline runs (no parent facet) by job and state
    expected: dict[tuple[str, str], int] = {}
    with EmbeddedStore(store) as db:
        stored = db.count()
        for e in db.events():
            if e["eventType"] in ("COMPLETE", "FAIL") and "parent" not in e["run"]["facets"]:
                key = (e["job"]["name"], e["eventType"])
                expected[key] = expected.get(key, 0) + 1
    got = {(dict(labels)["pipeline"], dict(labels)["state"]): v for (_, labels), v in runs.items() if dict(labels)["step"] == ""}
    assert got == expected
    assert sum(v for (p, s), v in got.items() if s == "FAIL") == 25
    assert samples[("lineage_audit_events_folded_total", ())] == stored
    p1 = (("pipeline", "p1"), ("team", "growth"))
    assert samples[("lineage_audit_run_duration_seconds_count", p1)] == 50
    assert samples[("lineage_audit_run_duration_seconds_sum", p1)] == 50 * 20
    rows = sum(v for (name, labels), v in samples.items() if name == "lineage_audit_rows_written_total")
    assert rows == sum(100 + i for i in range(250) if i % 10 != 3), "rows of completed loads"
    last = samples[("lineage_audit_last_success_timestamp_seconds", tuple(sorted((*p1, ("step", "")))))]
    from lineage_auditor.times import parse_time

    assert last == parse_time("2024-05-01T04:06:20Z").timestamp(), "p1's last COMPLETE: run 246 at 04:06 + 20 s"


def test_no_token_a_bad_token_and_healthz(served: tuple[Server, str, Path]) -> None:
    server, token, _ = served
    event = _events(1)[0]
    assert httpx.post(f"{server.url}/api/v1/lineage", json=event).status_code == 401
    bad = httpx.post(f"{server.url}/api/v1/lineage", json=event, headers={"Authorization": "Bearer la_0000_nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    health = httpx.get(f"{server.url}/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert "default-src 'none'" in health.headers["content-security-policy"]
    assert health.headers["x-content-type-options"] == "nosniff"


def test_an_invalid_event_is_refused_with_its_reason_and_nothing_is_stored(served: tuple[Server, str, Path]) -> None:
    server, token, store = served
    auth = {"Authorization": f"Bearer {token}"}
    with EmbeddedStore(store) as db:
        before = db.count()
    bad = _events(1)[2]
    bad["run"]["runId"] = "zz-new-run"
    bad["outputs"] = [{"namespace": "x", "name": "wh.t", "facets": {"schema": {"fields": [{"name": 3}]}}}]
    answer = httpx.post(f"{server.url}/api/v1/lineage", json=bad, headers=auth)
    assert answer.status_code == 422
    assert answer.json()["detail"] == "outputs[0].facets.schema.fields[0].name: expected a string, got int"
    not_json = httpx.post(f"{server.url}/api/v1/lineage", content=b"{not json", headers=auth)
    assert not_json.status_code == 400 and not_json.json()["error"] == "body is not JSON"
    with EmbeddedStore(store) as db:
        assert db.count() == before


def test_a_revoked_token_is_refused_by_the_running_server(served: tuple[Server, str, Path], tmp_path: Path) -> None:
    import subprocess
    import sys

    server, _, _ = served
    tokens = Path(server.args[server.args.index("--tokens") + 1])
    second = add_token(tokens.parent, "bob")
    auth = {"Authorization": f"Bearer {second}"}
    assert httpx.get(f"{server.url}/metrics", headers=auth).status_code == 200
    listed = json.loads(subprocess.run([sys.executable, "-m", "lineage_auditor.cli", "tokens", "list", "--tokens", str(tokens),
                                        "--format", "json"], capture_output=True, text=True, check=True).stdout)
    assert second not in json.dumps(listed) and "sha256" not in json.dumps(listed)
    bob = next(e["id"] for e in listed if e["user"] == "bob")
    subprocess.run([sys.executable, "-m", "lineage_auditor.cli", "tokens", "revoke", bob, "--tokens", str(tokens)], check=True,
                   capture_output=True)
    assert httpx.get(f"{server.url}/metrics", headers=auth).status_code == 401
    assert second not in tokens.read_text(), "only the hash is kept"


def test_concurrent_producers_resending_each_others_events_store_each_once(tmp_path: Path) -> None:
    """Eight producers at once, every event sent by two of them: requests that meet in one
    group commit still store each event once, and exactly one of its two senders hears 201."""
    from concurrent.futures import ThreadPoolExecutor

    token = add_token(tmp_path, "alice")
    store = tmp_path / "central.db"
    server = start_server(["--store", f"embedded:{store}", "--tokens", str(tmp_path / "tokens.json")], tmp_path)
    events = _events(100)  # 400 events
    shares = [[e for k, e in enumerate(events) if k % 8 in (i, (i + 1) % 8)] for i in range(8)]

    def send(share: list[dict[str, Any]]) -> list[tuple[str, int]]:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            return [(e["run"]["runId"] + e["eventType"], http.post(f"{server.url}/api/v1/lineage", json=e).status_code)
                    for e in share]

    try:
        with ThreadPoolExecutor(8) as pool:
            answers = [a for part in pool.map(send, shares) for a in part]
    finally:
        server.stop()
    assert len(answers) == 800 and {code for _, code in answers} <= {200, 201}
    created: dict[str, int] = {}
    for key, code in answers:
        created[key] = created.get(key, 0) + (code == 201)
    assert set(created.values()) == {1}, "each event: one 201 (stored), one 200 (duplicate)"
    with EmbeddedStore(store) as db:
        assert db.count() == 400


def test_a_failed_group_commit_acknowledges_none_of_its_requests(tmp_path: Path) -> None:
    """When the store fails a transaction, every request waiting on it fails (the route answers
    503 with Retry-After), none is reported stored, and the next transaction goes on."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from collectors.store import event_row
    from lineage_auditor.errors import StoreError
    from lineage_auditor.service.ingest import GroupCommit

    class FailingOnce:
        """The embedded store, whose first transaction fails as a full disk would fail it."""

        def __init__(self, store: EmbeddedStore) -> None:
            self.store, self.failed = store, False

        def add_rows(self, rows: Any) -> list[bool]:
            if not self.failed:
                self.failed = True
                raise StoreError("disk full")
            return self.store.add_rows(rows)

    events = _events(5)
    with EmbeddedStore(tmp_path / "s.db") as db:
        commit = GroupCommit(FailingOnce(db))

        async def send_all() -> list[Any]:
            return await asyncio.gather(*(commit.add(event_row(e)) for e in events), return_exceptions=True)

        def in_own_loop() -> list[Any]:  # as a server's event loop does, off any loop the test runner has
            with ThreadPoolExecutor(1) as pool:
                return pool.submit(asyncio.run, send_all()).result()

        first = in_own_loop()
        failed = [r for r in first if isinstance(r, StoreError)]
        assert failed and all(r is True or isinstance(r, StoreError) for r in first)
        stored_first = db.count()
        assert stored_first == sum(1 for r in first if r is True), "only what was acknowledged is stored"
        again = in_own_loop()  # the producers retry everything that failed
        commit.stop()
        assert all(isinstance(r, bool) for r in again)
        assert db.count() == len(events)


def test_our_runner_reports_to_serve_through_openlineage_url_and_api_key(tmp_path: Path) -> None:
    """`lineage-audit pipelines run` as a user runs it, pointed at the service by the standard
    OPENLINEAGE_URL and OPENLINEAGE_API_KEY: every event of the run is stored, with column lineage."""
    import subprocess
    import sys

    from service_helpers import REPO

    token, store = add_token(tmp_path, "etl"), tmp_path / "central.db"
    server = start_server(["--store", f"embedded:{store}", "--tokens", str(tmp_path / "tokens.json")], tmp_path)
    (tmp_path / "orders.csv").write_text("order_id,amount\n1,5.00\n2,7.50\n")
    (tmp_path / "spec.yml").write_text(
        "apiVersion: lineage-audit/v1\nkind: Pipeline\nid: served_orders\nteam: growth\n"
        f"target: duckdb:{tmp_path / 'wh.duckdb'}\n"
        "steps:\n"
        "  - id: orders\n    extract:\n      into: staging.orders\n"
        "      file: {path: orders.csv, columns: [{name: order_id, type: INTEGER}, {name: amount, type: \"DECIMAL(14,2)\"}]}\n"
        "  - id: total\n    depends_on: [orders]\n"
        "    sql: {query: \"CREATE TABLE mart.order_total AS SELECT SUM(amount) AS total FROM staging.orders\"}\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "LINEAGE_AUDIT_HOME": str(tmp_path / ".lineage"),
           "OPENLINEAGE_URL": server.url, "OPENLINEAGE_API_KEY": token}
    try:
        done = subprocess.run([sys.executable, "-m", "lineage_auditor.cli", "pipelines", "run", "spec.yml", "--date",
                               "2024-05-01"], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert not list((tmp_path / ".lineage").rglob("spool/*.json")), "nothing spooled: the service took every event"
    with EmbeddedStore(store) as db:
        events = list(db.events(job="served_orders.total"))
    complete = next(e for e in events if e["eventType"] == "COMPLETE")
    lineage = complete["outputs"][0]["facets"]["columnLineage"]["fields"]["total"]["inputFields"]
    assert [(f["name"].rsplit(".", 2)[-2:], f["field"]) for f in lineage] == [(["staging", "orders"], "amount")]
    with EmbeddedStore(store) as db:
        jobs = {e["job"]["name"] for e in db.events() if e["job"]["name"].startswith("served_orders")}
    assert jobs == {"served_orders", "served_orders.orders", "served_orders.total"}
