"""The mock users API over real HTTP on 127.0.0.1: pagination, auth, and every fault type."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from pipelines.sources.cli import COMMANDS, generate_orders_command, mock_api_command
from pipelines.sources.mock_api import MockApiServer
from reference_specs import user_problem

REPO = Path(__file__).resolve().parent.parent
TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api():
    """A fresh server per test (about 50 ms to start)."""
    servers: list[MockApiServer] = []

    def start(**kwargs) -> tuple[MockApiServer, httpx.Client]:
        kwargs.setdefault("token", TOKEN)
        server = MockApiServer(**kwargs).start()
        servers.append(server)
        return server, httpx.Client(base_url=server.url, headers=AUTH, timeout=5)

    yield start
    for server in servers:
        server.stop()


def page(client: httpx.Client, n: int, per_page: int = 20) -> httpx.Response:
    return client.get("/users", params={"page": n, "per_page": per_page})


def test_pages_cover_every_user_once_with_the_envelope(api):
    _, client = api(n_users=45, seed=1)
    bodies = [page(client, n).json() for n in (1, 2, 3, 4)]
    assert [len(b["data"]) for b in bodies] == [20, 20, 5, 0]
    for n, body in enumerate(bodies, start=1):
        assert {k: body[k] for k in ("page", "per_page", "total", "total_pages")} == \
            {"page": n, "per_page": 20, "total": 45, "total_pages": 3}
    ids = [u["id"] for b in bodies for u in b["data"]]
    assert ids == list(range(1, 46))
    assert [user_problem(user) for user in bodies[0]["data"]] == [""] * 20


def test_users_are_a_function_of_the_seed(api):
    _, a = api(n_users=30, seed=7)
    _, b = api(n_users=30, seed=7)
    _, c = api(n_users=30, seed=8)
    assert page(a, 1, 30).json() == page(b, 1, 30).json()
    assert page(a, 1, 30).json()["data"] != page(c, 1, 30).json()["data"]


def test_single_user_matches_the_list_and_unknown_ids_are_404(api):
    _, client = api(n_users=10)
    listed = page(client, 1, 10).json()["data"]
    assert client.get("/users/4").json() == listed[3]
    assert client.get("/users/11").status_code == 404
    assert client.get("/users/0").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer"])
def test_requests_without_the_token_get_401(api, header):
    server, _ = api(n_users=5)
    headers = {"Authorization": header} if header else {}
    for path in ("/users", "/users/1", "/_control/faults"):
        response = httpx.get(server.url + path, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}


def test_page_parameters_are_validated(api):
    _, client = api(n_users=5)
    assert page(client, 0).status_code == 422
    assert page(client, 1, 0).status_code == 422
    assert page(client, 1, 501).status_code == 422


def test_error_rate_answers_with_the_configured_server_errors(api):
    server, client = api(n_users=5, faults={"error_rate": 1.0})
    statuses = {page(client, 1).status_code for _ in range(30)}
    assert statuses <= {500, 502, 503} and len(statuses) >= 2
    server.set_faults({"error_rate": 1.0, "error_codes": [502]})
    assert {page(client, 1).status_code for _ in range(5)} == {502}
    assert server.stats()["error_502"] >= 5


def test_rate_limit_answers_429_with_retry_after(api):
    _, client = api(n_users=5, faults={"rate_limit_rate": 1.0, "retry_after": 7})
    response = page(client, 1)
    assert response.status_code == 429 and response.headers["retry-after"] == "7"


def test_added_latency_delays_every_data_request(api):
    _, client = api(n_users=5, faults={"latency_ms": 800})
    with pytest.raises(httpx.ReadTimeout):
        client.get("/users", timeout=0.2)
    assert client.get("/users", timeout=10).status_code == 200
    assert client.get("/healthz", timeout=0.5).status_code == 200  # health is never delayed


def test_timeout_fault_stalls_longer_than_the_client_waits(api):
    server, client = api(n_users=5, faults={"timeout_rate": 1.0, "timeout_seconds": 5})
    with pytest.raises(httpx.ReadTimeout):
        client.get("/users", timeout=0.3)
    assert server.stats()["timeout"] == 1


def _unusable(body: bytes) -> bool:
    try:
        doc = json.loads(body)
    except ValueError:
        return True
    return not isinstance(doc.get("data"), list)


def test_malformed_rate_serves_truncated_invalid_or_misshapen_bodies(api):
    server, client = api(n_users=50, faults={"malformed_rate": 1.0})
    responses = [page(client, 1) for _ in range(12)]
    assert all(r.status_code == 200 and _unusable(r.content) for r in responses)
    kinds = {k for k in server.stats() if k.startswith("malformed_")}
    assert len(kinds) >= 2, kinds


def test_malformed_pages_are_always_broken_and_other_pages_fine(api):
    _, client = api(n_users=60, faults={"malformed_pages": [2]})
    assert all(_unusable(page(client, 2).content) for _ in range(3))
    assert len(page(client, 1).json()["data"]) == 20 and len(page(client, 3).json()["data"]) == 20


def test_invalid_records_fail_validation_the_same_way_on_every_request(api):
    _, client = api(n_users=20, faults={"invalid_record_ids": [2, 3, 4, 5]})
    first, second = page(client, 1).json()["data"], page(client, 1).json()["data"]
    assert first == second
    by_position = {i + 1: u for i, u in enumerate(first)}
    for user_id in (2, 3, 4, 5):  # each corruption the mock makes is one the users spec refuses
        assert user_problem(by_position[user_id]), by_position[user_id]
    for user_id in (1, 6, 20):
        assert user_problem(by_position[user_id]) == ""
    assert "id" not in by_position[5] or "id" not in by_position[4] or "id" not in by_position[2] \
        or "id" not in by_position[3]  # one corruption drops the id


def test_invalid_record_rate_corrupts_about_that_share(api):
    _, client = api(n_users=400, faults={"invalid_record_rate": 0.25})
    bad = 0
    for n in range(1, 5):
        for user in page(client, n, 100).json()["data"]:
            bad += bool(user_problem(user))
    assert 60 <= bad <= 140


def test_timed_outage_answers_503_then_recovers(api):
    _, client = api(n_users=5)
    client.post("/_control/faults", json={"outage_seconds": 0.5}).raise_for_status()
    assert page(client, 1).status_code == 503
    assert client.get("/users/1").status_code == 503
    deadline = time.monotonic() + 10
    while page(client, 1).status_code == 503:
        assert time.monotonic() < deadline, "outage never ended"
        time.sleep(0.1)
    assert client.get("/_control/faults").json()["outage_active"] is False


def test_open_ended_outage_lasts_until_reset(api):
    _, client = api(n_users=5, faults={"outage": True})
    assert page(client, 1).status_code == 503
    assert client.get("/_control/faults").json()["outage_active"] is True
    client.delete("/_control/faults").raise_for_status()
    assert page(client, 1).status_code == 200


def test_faults_are_reproducible_under_a_seed(api):
    faults = {"error_rate": 0.3, "rate_limit_rate": 0.2, "malformed_rate": 0.2}

    def run(client: httpx.Client) -> list[int | str]:
        out = []
        for n in [1, 2, 3, 1, 1, 2, 4, 5, 1, 3] * 3:
            r = page(client, n, 10)
            out.append(r.status_code if r.status_code != 200 or not _unusable(r.content) else "malformed")
        return out

    _, a = api(n_users=50, seed=11, faults=faults)
    _, b = api(n_users=50, seed=11, faults=faults)
    _, c = api(n_users=50, seed=11, faults={**faults, "seed": 12})
    seq = run(a)
    assert seq == run(b)
    assert seq != run(c)
    assert {200, 429, "malformed"} <= set(seq)


def test_control_endpoint_reads_replaces_validates_and_resets(api):
    _, client = api(n_users=5, seed=3)
    assert client.get("/_control/faults").json()["error_rate"] == 0.0
    set_ = client.post("/_control/faults", json={"error_rate": 0.5, "latency_ms": 10}).json()
    assert set_["error_rate"] == 0.5 and set_["latency_ms"] == 10 and set_["effective_seed"] == 3
    assert client.post("/_control/faults", json={"rate_limit_rate": 0.2}).json()["error_rate"] == 0.0  # replaced
    for bad in ({"error_rate": 0.7, "rate_limit_rate": 0.5}, {"error_codes": [404]}, {"no_such_fault": 1},
                {"error_rate": 2}):
        assert client.post("/_control/faults", json=bad).status_code == 422, bad
    assert client.delete("/_control/faults").json()["rate_limit_rate"] == 0.0
    stats = client.get("/_control/stats").json()
    assert isinstance(stats, dict)


def test_commands_are_exported_with_examples():
    assert mock_api_command in COMMANDS and generate_orders_command in COMMANDS
    for command in COMMANDS:
        result = CliRunner().invoke(command, ["--help"])
        assert result.exit_code == 0 and "Examples:" in result.output


def test_inconsistent_fault_flags_are_a_usage_error():
    result = CliRunner().invoke(mock_api_command, ["--error-rate", "0.8", "--rate-limit-rate", "0.5", "--port", "0"])
    assert result.exit_code == 2 and "error_rate + rate_limit_rate" in result.output
    result = CliRunner().invoke(mock_api_command, ["--error-codes", "500,abc", "--port", "0"])
    assert result.exit_code == 2


def test_command_serves_until_interrupted_without_printing_the_token():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.sources.cli", "--port", "0", "--users", "25", "--token", "cli-s3cret",
         "--error-rate", "0.1", "--log-level", "warning"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("mock users API on http://127.0.0.1:"), first
        url = first.split()[4]
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server never became healthy"
            time.sleep(0.05)
        body = httpx.get(url + "/users", params={"per_page": 25, "page": 1},
                         headers={"Authorization": "Bearer cli-s3cret"}, timeout=5)
        assert body.status_code in (200, 500, 502, 503)
        assert httpx.get(url + "/_control/faults", headers={"Authorization": "Bearer cli-s3cret"}).json()[
            "error_rate"] == 0.1
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert "cli-s3cret" not in first + output
