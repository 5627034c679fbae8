"""Two `serve` replicas on one PostgreSQL store, as a platform team runs them behind a load balancer.

The same 1,000 events go alternately to both (some to both at once): every event is stored
exactly once and both replicas' /metrics agree. Then one replica is killed (SIGKILL) while a
client streams to both: nothing the client was told was accepted is lost, and what the dead
replica did not acknowledge is sent to the other, as a load balancer's retry would.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from collectors.store.postgres import SCHEMA
from service_helpers import Server, add_token, pipeline_run, start_server

pytestmark = pytest.mark.postgres


@pytest.fixture
def replicas(tmp_path: Path, pg_dsn: str) -> Iterator[tuple[list[Server], str, str]]:
    token = add_token(tmp_path, "airflow")
    args = ["--store", pg_dsn, "--tokens", str(tmp_path / "tokens.json")]
    servers = [start_server(args, tmp_path), start_server(args, tmp_path)]
    try:
        yield servers, token, pg_dsn
    finally:
        for s in servers:
            s.stop()


def _events() -> list[dict[str, Any]]:
    out = []
    for i in range(250):
        out += pipeline_run(i, pipeline=f"team_pipeline_{i % 4}", team=f"team{i % 4}", failed=i % 9 == 0)
    return out


def _metrics(server: Server, token: str) -> str:
    response = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200
    return response.text


def _stored(dsn: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT run_id, event_type, event_time FROM {SCHEMA}.events").fetchall()


def test_two_replicas_store_each_event_once_agree_and_survive_a_kill(replicas: tuple[list[Server], str, str]) -> None:
    (a, b), token, dsn = replicas
    auth = {"Authorization": f"Bearer {token}"}
    events = _events()
    assert len(events) == 1000
    first, rest = events[:600], events[600:]

    with httpx.Client(headers=auth, timeout=10) as http:
        def post(server: Server, event: dict[str, Any]) -> int:
            return http.post(f"{server.url}/api/v1/lineage", json=event).status_code

        both = []
        for i, event in enumerate(first):
            assert post((a, b)[i % 2], event) in (200, 201)
            if i % 10 == 0:  # the same event to both replicas at once: a retry racing the original
                both.append(event)
        threads = [threading.Thread(target=lambda s=s: [post(s, e) for e in both]) for s in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(_stored(dsn)) == 600
        assert len(set(_stored(dsn))) == 600
        assert _metrics(a, token) == _metrics(b, token), "both replicas fold the same events"

        acknowledged: list[dict[str, Any]] = []
        for i, event in enumerate(rest):
            if i == 150:
                b.stop(signal.SIGKILL)  # mid-stream, without a goodbye
            target = (a, b)[i % 2]
            try:
                status = post(target, event)
            except httpx.HTTPError:
                status = post(a, event)  # the load balancer's retry on the surviving replica
            assert status in (200, 201)
            acknowledged.append(event)
    stored = set(_stored(dsn))
    assert len(_stored(dsn)) == 1000 and len(stored) == 1000, "every event once, none twice"
    from lineage_auditor.events import from_openlineage

    assert {from_openlineage(e).identity for e in acknowledged} <= stored, "nothing acknowledged was lost"
    restarted = start_server(b.args, b.log.parent)
    try:
        assert _metrics(a, token) == _metrics(restarted, token), "a restarted replica agrees with the survivor"
    finally:
        restarted.stop()
