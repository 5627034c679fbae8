"""The users client against the real mock API on 127.0.0.1 under injected faults."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from pipelines.sources.dead_letter import DeadLetterWriter, read_dead_letters
from pipelines.sources.errors import SourceError, SourceUnavailable
from pipelines.sources.fake_users import make_user
from pipelines.sources.mock_api import MockApiServer
from pipelines.sources.resilience import CircuitBreaker, RetryPolicy
from pipelines.sources.users_client import User, UsersClient

TOKEN = "users-client-t0ken"
FAST = dict(timeout=0.25, base_delay=0.02, max_delay=0.5, deadline=60.0)


@pytest.fixture
def api():
    servers: list[MockApiServer] = []

    def start(**kwargs) -> MockApiServer:
        kwargs.setdefault("token", TOKEN)
        server = MockApiServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def dead_letter(tmp_path):
    writer = DeadLetterWriter(tmp_path / "dead_letter.jsonl")
    yield writer
    writer.close()


def _usable_page(raw: str) -> bool:
    try:
        return isinstance(json.loads(raw).get("data"), list)
    except ValueError:
        return False


def client_for(server: MockApiServer, dead_letter: DeadLetterWriter | None = None, *, per_page: int = 20,
               breaker: CircuitBreaker | None = None, sleep=time.sleep, **policy) -> UsersClient:
    return UsersClient(server.url, token=server.token, per_page=per_page, dead_letter=dead_letter,
                       policy=RetryPolicy(**{**FAST, **policy}), breaker=breaker or CircuitBreaker(5, 0.2),
                       sleep=sleep, seed=5)


def test_clean_fetch_returns_every_user_validated(api, dead_letter):
    server = api(n_users=95, seed=4)
    with client_for(server, dead_letter) as client:
        result = client.fetch_all()
    assert [u.id for u in result.users] == list(range(1, 96))
    assert result.users[6] == User.model_validate(make_user(7, 4))
    assert (result.pages, result.total_pages, result.total) == (5, 5, 95)
    assert result.requests == 5 and result.retries == 0 and result.complete
    assert result.source_url == f"{server.url}/users"


def test_under_5xx_429_and_timeouts_every_user_arrives_exactly_once(api, dead_letter):
    server = api(n_users=300, seed=9, faults={"error_rate": 0.30, "rate_limit_rate": 0.10, "retry_after": 1,
                                              "timeout_rate": 0.05, "timeout_seconds": 3})
    with client_for(server, dead_letter, breaker=CircuitBreaker(5, 0.2), timeout=0.5) as client:
        result = client.fetch_all()
    ids = [u.id for u in result.users]
    assert sorted(ids) == list(range(1, 301)) and len(ids) == len(set(ids))
    assert result.dead_letters == 0 and result.complete
    stats = server.stats()
    # every fault kind really happened, and every page was read
    assert stats["rate_limited"] >= 1 and stats["timeout"] >= 1
    assert sum(v for k, v in stats.items() if k.startswith("error_5")) >= 3
    assert result.pages == result.total_pages == 15 and stats["ok"] >= 15
    assert result.retries == result.requests - 15 > 0
    assert set(result.failures) >= {"HTTP 429", "timeout"}


def test_full_outage_raises_source_unavailable_within_the_deadline(api, dead_letter):
    server = api(n_users=50, faults={"outage": True})
    client = client_for(server, dead_letter, breaker=CircuitBreaker(3, 0.3), deadline=2.0)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as err:
        client.fetch_all()
    elapsed = time.monotonic() - started
    assert elapsed <= 2.0 + 1.0, f"gave up after {elapsed:.1f}s, deadline 2s"
    assert "users-api unavailable" in str(err.value) and "HTTP 503" in str(err.value)
    assert err.value.attempts >= 3 and TOKEN not in str(err.value)
    assert server.stats()["outage"] == err.value.attempts


def test_malformed_page_is_retried_then_dead_lettered_and_the_rest_fetched(api, dead_letter):
    server = api(n_users=60, faults={"malformed_pages": [2]})
    with client_for(server, dead_letter, malformed_attempts=3) as client:
        result = client.fetch_all()
    assert [u.id for u in result.users] == list(range(1, 21)) + list(range(41, 61))
    assert result.skipped_pages == [2] and result.dead_letters == 1 and not result.complete
    dead_letter.close()
    (entry,) = read_dead_letters(dead_letter.path)
    assert entry["source"] == "users-api" and entry["page"] == 2
    assert entry["reason"].startswith("malformed page 2")
    assert entry["url"].endswith("/users?page=2&per_page=20")
    assert entry["raw"] and not _usable_page(entry["raw"])  # the body as received, kept for inspection
    assert sum(v for k, v in server.stats().items() if k.startswith("malformed_")) == 3  # tried 3 times


def test_transiently_malformed_pages_heal_on_retry(api, dead_letter):
    server = api(n_users=100, seed=2, faults={"malformed_rate": 0.4})
    with client_for(server, dead_letter, malformed_attempts=6) as client:
        result = client.fetch_all()
    assert [u.id for u in result.users] == list(range(1, 101))
    assert result.dead_letters == 0 and result.failures.get("malformed response", 0) >= 1


def test_invalid_records_go_to_the_dead_letter_with_reason_and_raw_record(api, dead_letter):
    server = api(n_users=40, faults={"invalid_record_ids": [3, 8, 13, 18]})
    with client_for(server, dead_letter) as client:
        result = client.fetch_all()
    assert [u.id for u in result.users] == [i for i in range(1, 41) if i not in (3, 8, 13, 18)]
    assert result.invalid_records == 4 and result.dead_letters == 4
    dead_letter.close()
    entries = read_dead_letters(dead_letter.path)
    assert len(entries) == 4
    reasons = " | ".join(e["reason"] for e in entries)
    for field in ("email", "id: Field required", "signup_date", "plan"):
        assert field in reasons
    for entry in entries:
        assert entry["reason"].startswith("invalid user record: ") and isinstance(entry["raw"], dict)
        assert entry["raw"]["name"] in {make_user(i, 42)["name"] for i in (3, 8, 13, 18)}


def test_retry_after_is_honoured(api, dead_letter):
    server = api(n_users=200, seed=3, faults={"rate_limit_rate": 0.5, "retry_after": 3})
    waits: list[float] = []
    with client_for(server, dead_letter, sleep=waits.append) as client:
        result = client.fetch_all()
    rate_limited = server.stats()["rate_limited"]
    assert rate_limited >= 2 and len(result.users) == 200
    assert waits.count(3.0) == rate_limited == result.failures["HTTP 429"]
    assert all(w == 3.0 for w in waits)  # a 429 wait replaces backoff, nothing else failed


def test_breaker_opens_after_consecutive_failures_and_then_fails_fast(api, dead_letter):
    server = api(n_users=50, faults={"outage": True})
    breaker = CircuitBreaker(failure_threshold=3, cooldown=60)
    client = client_for(server, dead_letter, breaker=breaker, deadline=10)
    with pytest.raises(SourceUnavailable, match="circuit breaker open") as err:
        client.fetch_all()
    assert err.value.breaker_open and breaker.state == "open"
    assert server.stats()["outage"] == 3
    with pytest.raises(SourceUnavailable, match="circuit breaker open"):
        client.fetch_all()
    assert server.stats()["requests"] == 3  # refused locally, the API was not called again


def test_breaker_half_opens_and_closes_when_the_api_recovers(api, dead_letter):
    server = api(n_users=60, faults={"outage_seconds": 0.8})
    breaker = CircuitBreaker(failure_threshold=2, cooldown=0.2)
    with client_for(server, dead_letter, breaker=breaker, deadline=20) as client:
        result = client.fetch_all()
    assert [u.id for u in result.users] == list(range(1, 61))
    assert result.breaker_opened >= 1 and breaker.state == "closed"


def test_wrong_token_fails_at_once_without_leaking_it(api, dead_letter):
    server = api(n_users=10)
    client = UsersClient(server.url, token="not-the-token", dead_letter=dead_letter, policy=RetryPolicy(**FAST))
    with pytest.raises(SourceError) as err:
        client.fetch_all()
    assert err.value.status == 401 and not isinstance(err.value, SourceUnavailable)
    assert server.stats()["requests"] == 1
    assert "not-the-token" not in str(err.value) + repr(client)
    assert "bearer ***" in repr(client)


def test_without_a_dead_letter_file_a_reject_raises_instead_of_vanishing(api):
    server = api(n_users=10, faults={"invalid_record_ids": [4]})
    with pytest.raises(SourceError, match="no dead-letter file configured"):
        client_for(server, None).fetch_all()


def test_get_user_by_id(api, dead_letter):
    server = api(n_users=10, seed=6, faults={"error_rate": 0.5})
    with client_for(server, dead_letter) as client:
        assert client.get_user(7) == User.model_validate(make_user(7, 6))
        with pytest.raises(SourceError) as err:
            client.get_user(11)
    assert err.value.status == 404


def test_duplicate_ids_across_pages_are_dead_lettered_not_loaded_twice(tmp_path):
    """An API whose data shifts between page requests can repeat a record on the next page."""
    pages = {1: [make_user(1, 1), make_user(2, 1)], 2: [make_user(2, 1), make_user(3, 1)]}

    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params["page"])
        return httpx.Response(200, json={"page": n, "per_page": 2, "total": 4, "total_pages": 2,
                                         "data": pages[n]})

    with DeadLetterWriter(tmp_path / "dl.jsonl") as dl:
        client = UsersClient("http://users.test", per_page=2, dead_letter=dl,
                             client=httpx.Client(transport=httpx.MockTransport(handler)))
        result = client.fetch_all()
    assert [u.id for u in result.users] == [1, 2, 3]
    assert result.duplicate_records == 1 and result.dead_letters == 1
    (entry,) = read_dead_letters(tmp_path / "dl.jsonl")
    assert entry["reason"] == "duplicate user id 2 (first on page 1)" and entry["page"] == 2
