"""How every HTTP source fetches: the shared retry policy plus a circuit breaker.

The policy itself (what is retryable, backoff with jitter, Retry-After, deadlines) is
:mod:`lineage_auditor.retry`, shared with the OpenLineage HTTP transport; this module adds
what only a data source needs:

- :class:`RetryPolicy` (re-exported) says how often and how long to retry, the per-request
  timeout, the deadline of one call (a page) and of one logical fetch (all its pages).
- :class:`CircuitBreaker` opens after N consecutive failures so a dead service is not
  hammered; after a cooldown it lets one probe through (half-open).
- :class:`ResilientHttp` runs one GET under both and turns "never got an answer" into
  :class:`~pipelines.sources.errors.SourceUnavailable`.

A 429 is not counted as a breaker failure (the service is alive, it asks us to slow down);
5xx, 408, timeouts and connection errors are. A 2xx body that does not parse is retried like
a transient fault, then handed back as :class:`MalformedResponse` so the caller can dead-letter it.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from lineage_auditor.retry import (Deadline, GaveUp, Retryable, RetryPolicy, attempts_text, parse_retry_after,
                                   retry_call, retryable_reason, retryable_status)
from pipelines.sources.errors import MalformedResponse, SourceError, SourceUnavailable

__all__ = ["CallStats", "CircuitBreaker", "Deadline", "ResilientHttp", "RetryPolicy", "parse_retry_after"]

T = TypeVar("T")


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; half-open after ``cooldown`` s.

    States: ``closed`` (calls flow), ``open`` (calls refused until the cooldown ends),
    ``half_open`` (one probe allowed: success closes, failure re-opens). Share one breaker
    per upstream service; it is thread-safe.
    """

    def __init__(self, failure_threshold: int = 5, cooldown: float = 10.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self.times_opened = 0

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self._opened_at >= self.cooldown else "open"

    def wait_time(self) -> float:
        """Seconds until a call may go through (0 when closed or half-open)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cooldown - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            half_open = self._opened_at is not None and self._state() == "half_open"
            if half_open or (self._opened_at is None and self._failures >= self.failure_threshold):
                self._opened_at = self._clock()
                self.times_opened += 1

    def reset(self) -> None:
        self.record_success()


@dataclass
class CallStats:
    """What the retry loop did, summed over every call made through one :class:`ResilientHttp`."""

    requests: int = 0
    retries: int = 0
    waited_s: float = 0.0
    failures: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "retries": self.retries,
                "waited_s": round(self.waited_s, 3), "failures": dict(self.failures)}


class _Retry(Retryable):
    """One failed attempt worth retrying, with what the breaker and the caller need to know."""

    def __init__(self, reason: str, *, retry_after: float | None = None,
                 breaker_failure: bool = True, malformed: MalformedResponse | None = None) -> None:
        super().__init__(reason, retry_after=retry_after)
        self.breaker_failure = breaker_failure
        self.malformed = malformed


def _identity(response: httpx.Response) -> httpx.Response:
    return response


class ResilientHttp:
    """GET requests under a :class:`RetryPolicy` and a :class:`CircuitBreaker`.

    ``source`` names the upstream in errors and stats (never a secret). ``sleep`` and ``rng``
    are injectable so tests can observe waits without waiting and replay the jitter.
    """

    def __init__(self, client: httpx.Client, *, source: str, policy: RetryPolicy | None = None,
                 breaker: CircuitBreaker | None = None, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, stats: CallStats | None = None) -> None:
        self.client = client
        self.source = source
        self.policy = policy or RetryPolicy()
        # default cooldown: a quarter of a call's deadline at most, so one open spell never decides a call
        call_budget = self.policy.call_deadline or self.policy.deadline
        self.breaker = breaker or CircuitBreaker(cooldown=min(10.0, call_budget / 4))
        self.stats = stats if stats is not None else CallStats()  # a caller's, to read after the calls
        self._sleep = sleep
        self._rng = rng or random.Random()

    def new_deadline(self) -> Deadline:
        """A deadline for one logical fetch (all its calls), per the policy."""
        return Deadline(self.policy.deadline)

    def call_deadline(self, fetch: Deadline, name: str = "page deadline") -> Deadline:
        """The deadline of one call (a page) inside ``fetch``: the policy's ``call_deadline``."""
        if self.policy.call_deadline is None:
            return fetch
        return fetch.within(self.policy.call_deadline, name=name)

    def get(self, url: str, *, deadline: Deadline, params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None,
            parse: Callable[[httpx.Response], T] = _identity) -> T:  # type: ignore[assignment]
        """GET ``url`` until ``parse(response)`` succeeds on a 2xx answer.

        ``parse`` raises :class:`MalformedResponse` for a body it cannot use; that is retried
        and, once attempts run out, re-raised with the last raw body. A non-retryable status
        raises :class:`SourceError`; running out of time, attempts or breaker patience raises
        :class:`SourceUnavailable`.
        """
        malformed = 0
        last: list[_Retry] = []
        own = deadline.within(None, name=deadline.name)  # this call's attempts, counted up the chain

        def attempt() -> T:
            nonlocal malformed
            self._wait_for_breaker(own, last[-1] if last else None)
            try:
                value = self._attempt(url, params, headers, parse, own)
            except _Retry as failure:
                last.append(failure)
                own.count(failure.reason)
                self.stats.failures[failure.reason] += 1
                if failure.breaker_failure:
                    self.breaker.record_failure()
                if failure.malformed is not None:
                    malformed += 1
                    if malformed >= self.policy.malformed_attempts:
                        raise failure.malformed from None
                raise
            own.count("ok")
            return value

        try:
            return retry_call(attempt, policy=self.policy, deadline=deadline, sleep=self._backoff, rng=self._rng)
        except GaveUp as gave_up:
            failure = last[-1]
            if failure.malformed is not None:
                raise failure.malformed from None
            raise self._unavailable(gave_up.why, own, failure.reason) from None

    def _attempt(self, url: str, params: Mapping[str, Any] | None, headers: Mapping[str, str] | None,
                 parse: Callable[[httpx.Response], T], deadline: Deadline) -> T:
        timeout = max(0.001, min(self.policy.timeout, deadline.remaining()))
        self.stats.requests += 1
        try:
            response = self.client.get(url, params=params, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            reason = retryable_reason(exc)
            if reason is None:
                raise SourceError(f"{self.source}: {type(exc).__name__} for {_redact(url)}",
                                  source=self.source) from None
            raise _Retry(reason) from None
        status = response.status_code
        if retryable_status(status):
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise _Retry(f"HTTP {status}", retry_after=retry_after, breaker_failure=status != 429)
        if status >= 400:
            self.breaker.record_success()  # it answered: the service is up, the request is wrong
            raise SourceError(f"{self.source}: HTTP {status} for {_redact(url)}: {_snippet(response)}",
                              source=self.source, status=status)
        try:
            value = parse(response)
        except MalformedResponse as exc:
            self.breaker.record_success()
            exc.source = exc.source or self.source
            raise _Retry("malformed response", breaker_failure=False, malformed=exc) from None
        self.breaker.record_success()
        return value

    def _wait_for_breaker(self, deadline: Deadline, last: _Retry | None) -> None:
        wait = self.breaker.wait_time()
        if wait <= 0:
            return
        if wait >= deadline.remaining():
            reason = last.reason if last else "earlier failures"
            raise SourceUnavailable(
                f"{self.source} unavailable: circuit breaker open ({self.breaker.failure_threshold} "
                f"consecutive failures, last: {reason}); next probe in {wait:.1f}s is past the "
                f"{deadline.binding().name}{_fetch_note(deadline)}",
                source=self.source, attempts=deadline.root().attempts, last_error=reason, breaker_open=True)
        self._pause(wait)

    def _backoff(self, seconds: float) -> None:
        self.stats.retries += 1
        self._pause(seconds)

    def _pause(self, seconds: float) -> None:
        self.stats.waited_s += seconds
        self._sleep(seconds)

    def _unavailable(self, why: str, deadline: Deadline, last_error: str) -> SourceUnavailable:
        return SourceUnavailable(f"{self.source} unavailable: {why}{_fetch_note(deadline)} (last error: {last_error})",
                                 source=self.source, attempts=deadline.root().attempts, last_error=last_error)


def _fetch_note(deadline: Deadline) -> str:
    """``; 42 attempts in this fetch: 13 ok, 21 HTTP 503 ...`` when the call is part of a larger fetch."""
    root = deadline.root()
    if root.attempts <= deadline.attempts:
        return ""
    outcomes = ", ".join(f"{n} {what}" for what, n in root.outcomes.most_common())
    return f"; {attempts_text(root.attempts)} in this fetch: {outcomes}"


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:limit] + ("..." if len(text) > limit else "")


def _redact(url: str) -> str:
    """The URL without user info (a password in a URL must not reach an error message)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(userinfo=b"")) if parsed.userinfo else url
