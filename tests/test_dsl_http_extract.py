"""The HTTP extract (the users-orders spec's users) against the real mock users API on 127.0.0.1:
faults healed or refused with a reason, Retry-After honoured, the breaker failing fast, a
wrong token refused at once, and every record that does not fit dead-lettered with why."""

from __future__ import annotations

from pathlib import Path

import pytest

from lineage_auditor.retry import RetryPolicy
from pipelines.dsl.http_extract import fetch
from pipelines.reference import USERS_TOKEN_ENV
from pipelines.sources.errors import SourceError, SourceUnavailable
from pipelines.sources.mock_api import MockApiServer
from reference_specs import users_extract

FAST = RetryPolicy(timeout=0.5, base_delay=0.02, max_delay=0.5, call_deadline=5.0, deadline=20.0)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(USERS_TOKEN_ENV, "extract-t0ken")
    return "extract-t0ken"


def test_transiently_malformed_pages_heal_on_retry(token: str, tmp_path: Path) -> None:
    with MockApiServer(n_users=500, seed=2, token=token, faults={"malformed_rate": 0.4}) as api:
        result = fetch(users_extract(api.url), folder=tmp_path, policy=FAST)
        served = api.stats()
    assert [row[0] for row in result.rows] == list(range(1, 501)) and not result.rejected
    assert sum(n for k, n in served.items() if k.startswith("malformed")) >= 1


def test_every_record_the_spec_refuses_is_set_aside_with_its_reason(token: str, tmp_path: Path) -> None:
    with MockApiServer(n_users=40, token=token, faults={"invalid_record_ids": [3, 8, 13, 18]}) as api:
        result = fetch(users_extract(api.url), folder=tmp_path, policy=FAST)
    assert [row[0] for row in result.rows] == [i for i in range(1, 41) if i not in (3, 8, 13, 18)]
    reasons = " | ".join(r["reason"] for r in result.rejected)
    assert len(result.rejected) == 4 and all(r["page"] == 1 and isinstance(r["raw"], dict) for r in result.rejected)
    for why in ("email:", "id: missing", "signup_date:", "plan: 'platinum' is not one of"):
        assert why in reasons, reasons


def test_retry_after_is_honoured(token: str, tmp_path: Path) -> None:
    waits: list[float] = []
    with MockApiServer(n_users=200, seed=3, token=token, faults={"rate_limit_rate": 0.5, "retry_after": 3}) as api:
        result = fetch(users_extract(api.url), folder=tmp_path, policy=FAST, sleep=waits.append)
        rate_limited = api.stats()["rate_limited"]
    assert rate_limited >= 2 and len(result.rows) == 200
    assert waits.count(3.0) == rate_limited and all(w == 3.0 for w in waits)  # the wait replaces backoff


def test_an_outage_gives_up_within_the_budget_and_says_so(token: str, tmp_path: Path) -> None:
    with MockApiServer(n_users=50, token=token, faults={"outage": True}) as api:
        host = api.url.split("//")[1]
        with pytest.raises(SourceUnavailable) as caught:
            fetch(users_extract(api.url), folder=tmp_path, policy=FAST, sleep=lambda _: None)
        requests = api.stats()["requests"]
    message = str(caught.value)
    assert message.startswith(f"{host} unavailable: ") and "HTTP 503" in message, message
    assert requests <= FAST.max_attempts and caught.value.attempts == requests


def test_a_wrong_token_is_refused_at_once_without_showing_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(USERS_TOKEN_ENV, "not-the-token")
    with MockApiServer(n_users=10, token="the-token") as api:
        with pytest.raises(SourceError) as caught:
            fetch(users_extract(api.url), folder=tmp_path, policy=FAST)
        requests = api.stats()["requests"]
    assert caught.value.status == 401 and not isinstance(caught.value, SourceUnavailable)
    assert requests == 1 and "not-the-token" not in str(caught.value)
