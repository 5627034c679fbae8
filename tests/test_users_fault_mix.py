"""The HTTP extract's default budget survives the mock API's fault mix, and says what happened when it does not.

The fault mix is the one the mock API documents (``--error-rate 0.3 --rate-limit-rate 0.1
--timeout-rate 0.05``: 45% of requests fail), served by the real mock API on 127.0.0.1.
To keep 20 runs fast, every duration of the shipped budget (request timeout, page and total
deadlines, backoff, Retry-After cap, hence the breaker's cooldown) and of the mock (its stall)
is scaled by the same factor: the race between faults and budget is the one a real run has.
The one liberty: the mock's Retry-After is whole seconds, so a 429 asks for 0 s here.
"""

from __future__ import annotations

import dataclasses
import time

import httpx
import pytest

from lineage_auditor.retry import RetryPolicy
from pipelines.dsl.http_extract import budget, fetch
from pipelines.reference import USERS_TOKEN_ENV
from reference_specs import users_extract
from pipelines.sources.errors import SourceUnavailable
from pipelines.sources.mock_api import MockApiServer

SCALE = 0.05  # a 0.5 s request timeout: a busy CI machine does not turn ok requests into timeouts
FAULT_MIX = {"error_rate": 0.3, "rate_limit_rate": 0.1, "timeout_rate": 0.05}
SEEDS = range(100, 120)
MOCK_STALL_S = 30.0  # the mock's default stall for a "timeout" request


def scaled(policy: RetryPolicy, factor: float) -> RetryPolicy:
    """``policy`` with every duration multiplied by ``factor`` (counts unchanged)."""
    times = ("timeout", "base_delay", "max_delay", "deadline", "max_retry_after")
    return dataclasses.replace(policy, **{name: getattr(policy, name) * factor for name in times},
                               call_deadline=policy.call_deadline * factor if policy.call_deadline else None)


def test_default_budget_survives_the_fault_mix_in_20_of_20_seeded_runs(tmp_path, monkeypatch):
    policy = scaled(budget(), SCALE)
    outcomes: dict[int, str] = {}
    started = time.monotonic()
    with MockApiServer(seed=7) as server:
        monkeypatch.setenv(USERS_TOKEN_ENV, server.token)
        extract = users_extract(server.url)
        for seed in SEEDS:
            server.set_faults({**FAULT_MIX, "timeout_seconds": MOCK_STALL_S * SCALE, "retry_after": 0, "seed": seed})
            try:
                result = fetch(extract, folder=tmp_path, policy=policy)
            except SourceUnavailable as exc:
                outcomes[seed] = str(exc)
                continue
            outcomes[seed] = f"{len(result.rows)} users, {result.requests} requests"
            assert len(result.rows) == 1000 and not result.rejected, outcomes[seed]
            assert len({row[0] for row in result.rows}) == 1000  # every user once
    elapsed = time.monotonic() - started
    failed = {seed: text for seed, text in outcomes.items() if "unavailable" in text}
    assert not failed, f"{len(failed)} of {len(SEEDS)} runs failed: {failed}"
    print(f"20 seeded runs under the fault mix: {elapsed:.1f}s")


def test_giving_up_counts_every_attempt_of_the_fetch_and_says_would_be_exceeded(tmp_path, monkeypatch):
    """Two pages load, then the API goes down: the error names the page, its deadline, and
    every request of the fetch (not only the last page's)."""
    with MockApiServer(n_users=150) as server:
        monkeypatch.setenv(USERS_TOKEN_ENV, server.token)
        ok = 0

        def outage_after_two_pages(response: httpx.Response) -> None:
            nonlocal ok
            if response.status_code == 200:
                ok += 1
                if ok == 2:
                    server.set_faults({"outage": True})

        policy = RetryPolicy(max_attempts=100, base_delay=0.05, max_delay=0.2, jitter=0.0, timeout=1.0,
                             call_deadline=0.8, deadline=30.0)
        extract = users_extract(server.url)
        started = time.monotonic()
        with pytest.raises(SourceUnavailable) as caught:
            fetch(extract, folder=tmp_path, policy=policy, event_hooks={"response": [outage_after_two_pages]})
        elapsed = time.monotonic() - started
        served = server.stats()
    message = str(caught.value)
    assert "page 3 deadline of 0.8s would be exceeded after" in message, message
    assert elapsed < 0.8 + 0.3, "stopped before the page deadline, not after sleeping through it"
    total = served["ok"] + served["outage"]
    assert caught.value.attempts == total and f"{total} attempts in this fetch: " in message, message
    assert "2 ok" in message and f"{served['outage']} HTTP 503" in message, message
