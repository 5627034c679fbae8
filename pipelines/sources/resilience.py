"""The one retry policy every HTTP source uses: backoff with jitter, Retry-After, deadline, breaker.

Why one module: the weather fetch and the users client must behave the same way under
faults, and a fix (say, to Retry-After parsing) must reach both.

- :class:`RetryPolicy` says how often and how long to retry, the per-request timeout and the
  total deadline of one logical fetch (all its pages).
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
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from pipelines.sources.errors import MalformedResponse, SourceError, SourceUnavailable

T = TypeVar("T")

#: Statuses worth retrying: the request may succeed later unchanged.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How a source retries.

    ``max_attempts`` bounds the requests for one URL; ``deadline`` bounds one whole fetch
    (every page, every retry and every wait), whichever comes first. A 2xx body that does not
    parse gets ``malformed_attempts`` tries (a server that keeps sending a broken page will
    not heal with patience; the caller dead-letters it). Backoff before retry
    n (1-based) is ``min(max_delay, base_delay * multiplier**(n-1))`` scaled down by up to
    ``jitter`` (0 = none, 1 = full jitter). A ``Retry-After`` from the server replaces the
    backoff, capped at ``max_retry_after``.
    """

    max_attempts: int = 10
    malformed_attempts: int = 3
    base_delay: float = 0.2
    multiplier: float = 2.0
    max_delay: float = 10.0
    jitter: float = 0.5
    timeout: float = 10.0
    deadline: float = 120.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.malformed_attempts < 1:
            raise ValueError("max_attempts and malformed_attempts must be at least 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")
        if self.timeout <= 0 or self.deadline <= 0:
            raise ValueError("timeout and deadline must be positive")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * self.multiplier ** max(0, retry - 1))
        return ceiling * (1.0 - self.jitter * rng.random())


class Deadline:
    """A point in time after which a fetch gives up."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    def expired(self) -> bool:
        return self.remaining() <= 0.0


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


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


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


class _Retry(Exception):
    """One failed attempt worth retrying."""

    def __init__(self, reason: str, *, retry_after: float | None = None,
                 breaker_failure: bool = True, malformed: MalformedResponse | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
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
                 rng: random.Random | None = None) -> None:
        self.client = client
        self.source = source
        self.policy = policy or RetryPolicy()
        # default cooldown: a quarter of the deadline at most, so one open spell never decides a fetch
        self.breaker = breaker or CircuitBreaker(cooldown=min(10.0, self.policy.deadline / 4))
        self.stats = CallStats()
        self._sleep = sleep
        self._rng = rng or random.Random()

    def new_deadline(self) -> Deadline:
        """A deadline for one logical fetch, per the policy."""
        return Deadline(self.policy.deadline)

    def get(self, url: str, *, deadline: Deadline, params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None,
            parse: Callable[[httpx.Response], T] = _identity) -> T:  # type: ignore[assignment]
        """GET ``url`` until ``parse(response)`` succeeds on a 2xx answer.

        ``parse`` raises :class:`MalformedResponse` for a body it cannot use; that is retried
        and, once attempts run out, re-raised with the last raw body. A non-retryable status
        raises :class:`SourceError`; running out of time, attempts or breaker patience raises
        :class:`SourceUnavailable`.
        """
        attempt = malformed = 0
        last: _Retry | None = None
        while True:
            self._wait_for_breaker(deadline, attempt, last)
            attempt += 1
            try:
                return self._attempt(url, params, headers, parse, deadline)
            except _Retry as failure:
                last = failure
                self.stats.failures[failure.reason] += 1
                if failure.breaker_failure:
                    self.breaker.record_failure()
                if failure.malformed is not None:
                    malformed += 1
                    if malformed >= self.policy.malformed_attempts:
                        raise failure.malformed
            if attempt >= self.policy.max_attempts:
                if last.malformed is not None:
                    raise last.malformed
                raise self._unavailable(f"gave up after {_attempts(attempt)}", attempt, last)
            delay = self._delay(attempt, last)
            if delay >= deadline.remaining():
                if last.malformed is not None:
                    raise last.malformed
                raise self._unavailable(f"deadline of {deadline.seconds:g}s exceeded after {_attempts(attempt)}",
                                        attempt, last)
            self.stats.retries += 1
            self._pause(delay)

    def _attempt(self, url: str, params: Mapping[str, Any] | None, headers: Mapping[str, str] | None,
                 parse: Callable[[httpx.Response], T], deadline: Deadline) -> T:
        timeout = max(0.001, min(self.policy.timeout, deadline.remaining()))
        self.stats.requests += 1
        try:
            response = self.client.get(url, params=params, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            raise _Retry("timeout") from None
        except httpx.TransportError as exc:
            raise _Retry(f"connection error: {type(exc).__name__}") from None
        status = response.status_code
        if status in RETRY_STATUSES:
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

    def _wait_for_breaker(self, deadline: Deadline, attempt: int, last: _Retry | None) -> None:
        wait = self.breaker.wait_time()
        if wait <= 0:
            return
        if wait >= deadline.remaining():
            reason = last.reason if last else "earlier failures"
            raise SourceUnavailable(
                f"{self.source} unavailable: circuit breaker open ({self.breaker.failure_threshold} "
                f"consecutive failures, last: {reason}); next probe in {wait:.1f}s is past the deadline",
                source=self.source, attempts=attempt, last_error=reason, breaker_open=True)
        self._pause(wait)

    def _delay(self, attempt: int, last: _Retry) -> float:
        if last.retry_after is not None:
            return min(last.retry_after, self.policy.max_retry_after)
        return self.policy.backoff(attempt, self._rng)

    def _pause(self, seconds: float) -> None:
        self.stats.waited_s += seconds
        self._sleep(seconds)

    def _unavailable(self, why: str, attempts: int, last: _Retry) -> SourceUnavailable:
        return SourceUnavailable(f"{self.source} unavailable: {why} (last error: {last.reason})",
                                 source=self.source, attempts=attempts, last_error=last.reason)


def _attempts(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:limit] + ("..." if len(text) > limit else "")


def _redact(url: str) -> str:
    """The URL without user info (a password in a URL must not reach an error message)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(userinfo=b"")) if parsed.userinfo else url
