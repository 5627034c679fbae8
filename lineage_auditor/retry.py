"""The one retry policy of every HTTP call lineage-audit makes: source fetches and event delivery.

Why one module: the users API client, the weather fetch and the OpenLineage HTTP transport
must agree on what is worth retrying and on how long to wait, and a fix (say, to
``Retry-After`` parsing) must reach all of them.

- What is retryable: :data:`RETRYABLE_STATUS` (408, 425, 429 and the 5xx that mean "later")
  and :func:`retryable_reason` (timeouts, refused or dropped connections).
- How long to wait: :meth:`RetryPolicy.delay`, exponential backoff with jitter, replaced by the
  server's ``Retry-After`` (delay-seconds or HTTP-date, :func:`parse_retry_after`) up to a cap.
- How long in all: a :class:`Deadline`, optionally inside a larger one (a page inside a whole
  fetch). The loop stops *before* a wait that cannot fit in what is left, so a run that will
  miss its deadline says so at once ("would be exceeded") instead of sleeping into it.

The loop itself is tenacity's (:func:`retry_call`); what is ours is the vocabulary above.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TypeVar

from lineage_auditor.durations import display_duration

T = TypeVar("T")

#: Statuses worth retrying: the same request may succeed later, unchanged.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def retryable_status(status: int) -> bool:
    """True for an HTTP status that a later, identical request may not get."""
    return status in RETRYABLE_STATUS


def retryable_reason(exc: BaseException) -> str | None:
    """A short reason when ``exc`` is a transient transport failure (retry it), else None.

    ``"timeout"`` for any httpx timeout, ``"connection error: <kind>"`` for a refused, reset
    or dropped connection.
    """
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.TransportError):
        return f"connection error: {type(exc).__name__}"
    return None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is no delay
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """How a caller retries.

    ``max_attempts`` bounds the requests of one call; ``call_deadline`` (when set) bounds one
    call with all its retries and waits (one page of a paginated fetch); ``deadline`` bounds
    the whole logical operation (every page). A 2xx body that does not parse gets
    ``malformed_attempts`` tries (a server that keeps sending a broken page will not heal with
    patience). Backoff before retry n (1-based) is ``min(max_delay, base_delay *
    multiplier**(n-1))`` scaled down by up to ``jitter`` (0 = none, 1 = full jitter). A
    ``Retry-After`` from the server replaces the backoff, capped at ``max_retry_after``.
    """

    max_attempts: int = 10
    malformed_attempts: int = 3
    base_delay: float = 0.2
    multiplier: float = 2.0
    max_delay: float = 10.0
    jitter: float = 0.5
    timeout: float = 10.0
    deadline: float = 120.0
    call_deadline: float | None = None
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.malformed_attempts < 1:
            raise ValueError("max_attempts and malformed_attempts must be at least 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")
        if self.timeout <= 0 or self.deadline <= 0 or (self.call_deadline is not None and self.call_deadline <= 0):
            raise ValueError("timeout and deadlines must be positive")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * self.multiplier ** max(0, retry - 1))
        return ceiling * (1.0 - self.jitter * rng.random())

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """The wait before retry ``retry``: the server's Retry-After (capped), else backoff."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return self.backoff(retry, rng)


class Deadline:
    """A point in time after which an operation gives up, and what was tried before it.

    A deadline may sit inside a larger one (:meth:`within`): it ends at whichever comes
    first, and every attempt counted on it is counted on the larger one too, so a failure
    can report the attempts of the whole operation, not only of its last part.
    """

    def __init__(self, seconds: float, *, name: str = "deadline", parent: "Deadline | None" = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.name = name
        self.parent = parent
        self._clock = clock
        self._end = clock() + seconds
        self.attempts = 0
        self.outcomes: Counter[str] = Counter()

    def within(self, seconds: float | None, *, name: str) -> "Deadline":
        """A deadline of ``seconds`` (None: this one's) that also ends when this one does."""
        return Deadline(self.seconds if seconds is None else seconds, name=name, parent=self, clock=self._clock)

    def remaining(self) -> float:
        own = max(0.0, self._end - self._clock())
        return own if self.parent is None else min(own, self.parent.remaining())

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def binding(self) -> "Deadline":
        """The deadline that ends first: this one or one it sits in."""
        if self.parent is None:
            return self
        outer = self.parent.binding()
        return outer if outer._end < self._end else self

    def root(self) -> "Deadline":
        return self if self.parent is None else self.parent.root()

    def count(self, outcome: str) -> None:
        """Record one attempt and how it ended (``ok``, ``HTTP 503``, ``timeout`` ...)."""
        self.attempts += 1
        self.outcomes[outcome] += 1
        if self.parent is not None:
            self.parent.count(outcome)


class Retryable(Exception):
    """One failed attempt worth retrying; ``retry_after`` is the server's wish, in seconds."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class GaveUp(Exception):
    """The retries stopped without success: attempts ran out or the deadline would be passed.

    ``why`` is a phrase for a message ("gave up after 4 attempts", "page deadline of 30s would
    be exceeded after 3 attempts"); ``last`` the last failure.
    """

    def __init__(self, why: str, *, attempts: int, last: Retryable, deadline_hit: bool) -> None:
        super().__init__(why)
        self.why = why
        self.attempts = attempts
        self.last = last
        self.deadline_hit = deadline_hit


def attempts_text(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def retry_call(attempt: Callable[[], T], *, policy: RetryPolicy, deadline: Deadline,
               sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> T:
    """Call ``attempt`` until it returns; it raises :class:`Retryable` for a failure worth retrying.

    Any other exception ends the loop at once. Raises :class:`GaveUp` after
    ``policy.max_attempts`` attempts, or as soon as the next wait would not fit in ``deadline``.
    """
    import tenacity  # here, not at module level: importing the CLI stays cheap

    rng = rng or random.Random()

    def last_failure(state: tenacity.RetryCallState) -> Retryable:
        exc = state.outcome.exception() if state.outcome else None
        assert isinstance(exc, Retryable)
        return exc

    def wait(state: tenacity.RetryCallState) -> float:
        return policy.delay(state.attempt_number, last_failure(state).retry_after, rng)

    def stop(state: tenacity.RetryCallState) -> bool:
        return state.attempt_number >= policy.max_attempts or state.upcoming_sleep >= deadline.remaining()

    def give_up(state: tenacity.RetryCallState) -> T:
        n, last = state.attempt_number, last_failure(state)
        if n >= policy.max_attempts:
            raise GaveUp(f"gave up after {attempts_text(n)}", attempts=n, last=last, deadline_hit=False) from None
        bound = deadline.binding()
        left = deadline.remaining()
        verb = "would be exceeded" if left > 0 else "exceeded"
        wait_note = (f": next wait {display_duration(state.upcoming_sleep)} with {display_duration(left)} left"
                     if left > 0 else "")
        raise GaveUp(f"{bound.name} of {bound.seconds:g}s {verb} after {attempts_text(n)}{wait_note}",
                     attempts=n, last=last, deadline_hit=True) from None

    retrying = tenacity.Retrying(retry=tenacity.retry_if_exception_type(Retryable), wait=wait, stop=stop,
                                 sleep=sleep, retry_error_callback=give_up)
    return retrying(attempt)
