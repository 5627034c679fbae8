"""The shared retry policy: backoff bounds, Retry-After, deadline, circuit breaker, error kinds."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from pipelines.sources.errors import MalformedResponse, SourceError, SourceUnavailable
from pipelines.sources.resilience import (CircuitBreaker, Deadline, ResilientHttp, RetryPolicy,
                                          parse_retry_after)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scripted(*statuses: int, headers: dict[str, str] | None = None, body: bytes = b'{"ok": true}'):
    """A transport answering the given statuses in order (then 200), counting requests."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        i = len(seen) - 1
        status = statuses[i] if i < len(statuses) else 200
        return httpx.Response(status, headers=headers or {}, content=body if status == 200 else b"{}")

    return httpx.MockTransport(handler), seen


def http_for(transport: httpx.MockTransport, **policy: float) -> tuple[ResilientHttp, list[float]]:
    sleeps: list[float] = []
    base = {"base_delay": 0.01, "timeout": 1.0, "deadline": 30.0}
    http = ResilientHttp(httpx.Client(transport=transport), source="test-api",
                         policy=RetryPolicy(**{**base, **policy}), breaker=CircuitBreaker(100, 1.0),
                         sleep=sleeps.append, rng=random.Random(1))
    return http, sleeps


def test_backoff_grows_exponentially_within_jitter_and_cap():
    policy = RetryPolicy(base_delay=0.5, multiplier=2.0, max_delay=5.0, jitter=0.5)
    rng = random.Random(3)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (9, 5.0)]:
        waits = [policy.backoff(retry, rng) for _ in range(200)]
        assert all(ceiling * 0.5 <= w <= ceiling for w in waits)
        assert max(waits) - min(waits) > 0  # jittered, not constant


def test_no_jitter_gives_exact_backoff():
    policy = RetryPolicy(base_delay=0.25, jitter=0.0)
    assert [policy.backoff(n, random.Random()) for n in (1, 2, 3)] == [0.25, 0.5, 1.0]


@pytest.mark.parametrize("bad", [dict(max_attempts=0), dict(jitter=1.5), dict(timeout=0), dict(deadline=-1),
                                 dict(malformed_attempts=0)])
def test_policy_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        RetryPolicy(**bad)


def test_retry_after_parses_seconds_and_http_dates():
    now = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


def test_breaker_opens_after_threshold_then_half_opens_after_cooldown():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown=10.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open" and breaker.wait_time() == 10.0 and breaker.times_opened == 1
    clock.now += 4
    assert breaker.wait_time() == 6.0
    clock.now += 6
    assert breaker.state == "half_open" and breaker.wait_time() == 0.0
    breaker.record_failure()  # the probe failed: open again for a full cooldown
    assert breaker.state == "open" and breaker.wait_time() == 10.0 and breaker.times_opened == 2
    clock.now += 10
    breaker.record_success()
    assert breaker.state == "closed"


def test_success_resets_the_consecutive_failure_count():
    breaker = CircuitBreaker(failure_threshold=2, cooldown=1.0, clock=FakeClock())
    for _ in range(5):
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state == "closed"


def test_deadline_counts_down_with_its_clock():
    clock = FakeClock()
    deadline = Deadline(5.0, clock=clock)
    assert deadline.remaining() == 5.0 and not deadline.expired()
    clock.now += 6
    assert deadline.remaining() == 0.0 and deadline.expired()


def test_transient_statuses_are_retried_until_success():
    transport, seen = scripted(503, 500, 502, 504)
    http, sleeps = http_for(transport)
    response = http.get("http://api.test/x", deadline=Deadline(30))
    assert response.status_code == 200
    assert len(seen) == 5 and http.stats.retries == 4 and len(sleeps) == 4
    assert http.stats.failures == {"HTTP 503": 1, "HTTP 500": 1, "HTTP 502": 1, "HTTP 504": 1}


def test_retry_after_replaces_backoff_and_is_capped():
    transport, _ = scripted(429, 429, headers={"Retry-After": "120"})
    http, sleeps = http_for(transport, max_retry_after=2.5)
    http.get("http://api.test/x", deadline=Deadline(30))
    assert sleeps == [2.5, 2.5]


def test_rate_limits_do_not_trip_the_breaker():
    transport, _ = scripted(*([429] * 6), headers={"Retry-After": "0"})
    http, _ = http_for(transport)
    http.breaker = CircuitBreaker(failure_threshold=2, cooldown=60)
    assert http.get("http://api.test/x", deadline=Deadline(30)).status_code == 200
    assert http.breaker.times_opened == 0


def test_gives_up_after_max_attempts_with_the_last_error():
    transport, seen = scripted(*([503] * 20))
    http, _ = http_for(transport, max_attempts=4)
    with pytest.raises(SourceUnavailable, match=r"test-api unavailable: gave up after 4 attempts.*HTTP 503") as err:
        http.get("http://api.test/x", deadline=Deadline(30))
    assert len(seen) == 4 and err.value.attempts == 4 and err.value.last_error == "HTTP 503"


def test_a_wait_past_the_deadline_gives_up_without_sleeping_through_it():
    transport, seen = scripted(*([429] * 5), headers={"Retry-After": "50"})
    http, sleeps = http_for(transport)
    with pytest.raises(SourceUnavailable, match="deadline of 10s would be exceeded after 1 attempt: next wait 50s with 10s left "):
        http.get("http://api.test/x", deadline=Deadline(10))
    assert len(seen) == 1 and sleeps == []


def test_client_errors_are_not_retried():
    transport, seen = scripted(404)
    http, _ = http_for(transport)
    with pytest.raises(SourceError, match="HTTP 404") as err:
        http.get("http://api.test/x", deadline=Deadline(30))
    assert not isinstance(err.value, SourceUnavailable)
    assert err.value.status == 404 and len(seen) == 1


def test_open_breaker_fails_fast_when_its_cooldown_outlasts_the_deadline():
    transport, seen = scripted(*([500] * 10))
    http, _ = http_for(transport)
    http.breaker = CircuitBreaker(failure_threshold=2, cooldown=120)
    with pytest.raises(SourceUnavailable, match="circuit breaker open") as err:
        http.get("http://api.test/x", deadline=Deadline(30))
    assert err.value.breaker_open and len(seen) == 2
    with pytest.raises(SourceUnavailable, match="circuit breaker open"):
        http.get("http://api.test/x", deadline=Deadline(30))
    assert len(seen) == 2  # no request while open


def test_unparseable_bodies_are_retried_then_handed_back_with_the_raw_body():
    transport, seen = scripted(body=b'{"cut": ')

    def parse(response: httpx.Response) -> dict:
        raise MalformedResponse("bad body", raw=response.text)

    http, _ = http_for(transport, malformed_attempts=3)
    with pytest.raises(MalformedResponse) as err:
        http.get("http://api.test/x", deadline=Deadline(30), parse=parse)
    assert err.value.raw == '{"cut": ' and len(seen) == 3 and err.value.source == "test-api"


def test_connection_refused_is_a_retried_failure():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http, sleeps = http_for(httpx.MockTransport(refuse), max_attempts=3)
    with pytest.raises(SourceUnavailable, match="connection error: ConnectError"):
        http.get("http://api.test/x", deadline=Deadline(30))
    assert len(sleeps) == 2


def test_user_info_in_a_url_never_reaches_an_error():
    transport, _ = scripted(403)
    http, _ = http_for(transport)
    with pytest.raises(SourceError) as err:
        http.get("http://user:hunter2@api.test/x", deadline=Deadline(30))
    assert "hunter2" not in str(err.value)
