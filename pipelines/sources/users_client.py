"""The users API client: every page, every valid user exactly once, every reject accounted for.

Pages are fetched in order under the shared retry policy
(:mod:`pipelines.sources.resilience`): transient faults (5xx, 429 with Retry-After,
timeouts, connection errors) are retried with backoff and jitter inside a deadline per page
(the policy's ``call_deadline``) and one total deadline, behind a circuit breaker. A page whose body never parses is retried like a transient fault,
then written to the dead-letter file with its raw body, and the fetch continues with the next
page. Each record is validated with the :class:`User` model; an invalid record, or a second
record with an id already seen, goes to the dead-letter file with the reason and the raw
record. :class:`~pipelines.sources.errors.SourceUnavailable` is raised when the API stays
down past the deadline or the breaker stays open.

The bearer token is sent in a header only; it never appears in a URL, an error, a
dead-letter entry or a ``repr``.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from pipelines.sources.dead_letter import DeadLetterWriter
from pipelines.sources.errors import MalformedResponse, SourceError, SourceUnavailable
from pipelines.sources.resilience import CircuitBreaker, Deadline, ResilientHttp, RetryPolicy

SOURCE = "users-api"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
MAX_BLIND_PAGES = 3  # pages dead-lettered in a row before the page count is known: give up


class User(BaseModel):
    """One user as the pipeline loads it; extra fields from the API are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: StrictInt = Field(gt=0)
    name: str = Field(min_length=1)
    email: str = Field(pattern=EMAIL_PATTERN)
    country: str = Field(pattern=r"^[A-Z]{2}$")
    signup_date: date
    plan: Literal["free", "pro", "enterprise"]
    active: StrictBool = True


class _Page(BaseModel):
    model_config = ConfigDict(extra="allow")
    page: StrictInt
    per_page: StrictInt
    total: StrictInt = Field(ge=0)
    total_pages: StrictInt = Field(ge=0)
    data: list[Any]


@dataclass
class FetchResult:
    """The outcome of one :meth:`UsersClient.fetch_all`.

    ``users`` are valid and unique by id, in page order. ``dead_letters`` counts entries
    written (invalid records + duplicate records + malformed pages); ``skipped_pages`` lists
    pages that were dead-lettered instead of loaded. ``requests`` counts HTTP attempts.
    """

    users: list[User]
    pages: int
    total_pages: int
    total: int
    requests: int
    retries: int
    dead_letters: int
    invalid_records: int
    duplicate_records: int
    skipped_pages: list[int] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    breaker_opened: int = 0
    elapsed_s: float = 0.0
    source_url: str = ""

    @property
    def complete(self) -> bool:
        """True when every page was read and no record was rejected."""
        return not self.skipped_pages and self.dead_letters == 0


class UsersClient:
    """Client for the users API contract (``GET /users?page=&per_page=``, ``GET /users/{id}``).

    ``dead_letter`` receives rejected records and pages; without one, a reject raises
    :class:`SourceError` (never dropped silently). ``sleep`` and ``seed`` are for tests:
    observe waits without waiting, and make the jitter reproducible.
    """

    def __init__(self, base_url: str, *, token: str | None = None, per_page: int = 100,
                 policy: RetryPolicy | None = None, breaker: CircuitBreaker | None = None,
                 dead_letter: DeadLetterWriter | None = None, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep, seed: int | None = None) -> None:
        if per_page < 1:
            raise ValueError("per_page must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.per_page = per_page
        self.dead_letter = dead_letter
        self._own_client = client is None
        self._client = client or httpx.Client()
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self.http = ResilientHttp(self._client, source=SOURCE, policy=policy, breaker=breaker,
                                  sleep=sleep, rng=random.Random(seed) if seed is not None else None)

    @property
    def breaker(self) -> CircuitBreaker:
        return self.http.breaker

    @property
    def policy(self) -> RetryPolicy:
        return self.http.policy

    def fetch_all(self) -> FetchResult:
        """Every user, page by page, within the policy's deadline (see the module doc)."""
        started = time.monotonic()
        before = self.http.stats.as_dict()
        opened_before = self.breaker.times_opened
        deadline = self.http.new_deadline()
        run = _Run()
        page, total_pages, blind = 1, None, 0
        while total_pages is None or page <= total_pages:
            parsed = self._fetch_page(page, self.http.call_deadline(deadline, f"page {page} deadline"), run)
            if parsed is None:
                blind = blind + 1 if total_pages is None else 0
                if blind >= MAX_BLIND_PAGES:
                    raise SourceUnavailable(f"{SOURCE} unavailable: the first {blind} pages were unreadable",
                                            source=SOURCE, last_error="malformed response")
            else:
                total_pages, run.total = parsed.total_pages, parsed.total
                run.pages += 1
                self._take_records(parsed.data, page, run)
            page += 1
        after = self.http.stats.as_dict()
        failures = {k: v - before["failures"].get(k, 0) for k, v in after["failures"].items()
                    if v - before["failures"].get(k, 0)}
        return FetchResult(
            users=run.users, pages=run.pages, total_pages=total_pages or 0, total=run.total,
            requests=after["requests"] - before["requests"], retries=after["retries"] - before["retries"],
            dead_letters=run.dead_letters, invalid_records=run.invalid, duplicate_records=run.duplicates,
            skipped_pages=run.skipped_pages, failures=failures,
            breaker_opened=self.breaker.times_opened - opened_before,
            elapsed_s=round(time.monotonic() - started, 3), source_url=f"{self.base_url}/users")

    def get_user(self, user_id: int) -> User:
        """One user by id; raises SourceError (404 included), MalformedResponse, SourceUnavailable."""
        url = f"{self.base_url}/users/{int(user_id)}"

        def parse(response: httpx.Response) -> User:
            raw = response.content.decode("utf-8", errors="replace")
            try:
                return User.model_validate_json(raw)
            except ValidationError as exc:
                raise MalformedResponse(f"{SOURCE}: invalid user {user_id}: {_reason(exc)}",
                                        raw=raw, source=SOURCE, status=response.status_code) from None

        return self.http.get(url, deadline=self.http.new_deadline(), headers=self._headers, parse=parse)

    def _fetch_page(self, page: int, deadline: Deadline, run: "_Run") -> _Page | None:
        url = f"{self.base_url}/users"
        params = {"page": page, "per_page": self.per_page}
        try:
            return self.http.get(url, deadline=deadline, params=params, headers=self._headers, parse=_parse_page)
        except MalformedResponse as exc:
            self._reject(f"malformed page {page}, still malformed after retries: {exc}",
                         exc.raw, run, page=page, url=f"{url}?page={page}&per_page={self.per_page}")
            run.skipped_pages.append(page)
            return None

    def _take_records(self, records: list[Any], page: int, run: "_Run") -> None:
        for position, record in enumerate(records):
            try:
                user = User.model_validate(record)
            except ValidationError as exc:
                run.invalid += 1
                self._reject(f"invalid user record: {_reason(exc)}", record, run, page=page, position=position)
                continue
            if user.id in run.seen:
                run.duplicates += 1
                self._reject(f"duplicate user id {user.id} (first on page {run.seen[user.id]})", record, run,
                             page=page, position=position)
                continue
            run.seen[user.id] = page
            run.users.append(user)

    def _reject(self, reason: str, raw: Any, run: "_Run", **where: Any) -> None:
        if self.dead_letter is None:
            raise SourceError(f"{SOURCE}: {reason} (no dead-letter file configured)", source=SOURCE)
        self.dead_letter.write(reason, raw, source=SOURCE, **where)
        run.dead_letters += 1

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> "UsersClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        auth = "bearer ***" if "Authorization" in self._headers else "none"
        return f"UsersClient({self.base_url!r}, auth={auth}, per_page={self.per_page})"


@dataclass
class _Run:
    users: list[User] = field(default_factory=list)
    seen: dict[int, int] = field(default_factory=dict)
    pages: int = 0
    total: int = 0
    invalid: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    skipped_pages: list[int] = field(default_factory=list)


def _parse_page(response: httpx.Response) -> _Page:
    raw = response.content.decode("utf-8", errors="replace")
    try:
        page = _Page.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        why = _reason(exc) if isinstance(exc, ValidationError) else f"invalid JSON: {exc}"
        raise MalformedResponse(why, raw=raw, source=SOURCE, status=response.status_code) from None
    if page.total_pages != (math.ceil(page.total / page.per_page) if page.per_page else 0):
        raise MalformedResponse(f"inconsistent page envelope: total={page.total}, per_page={page.per_page}, "
                                f"total_pages={page.total_pages}", raw=raw, source=SOURCE,
                                status=response.status_code)
    return page


def _reason(exc: ValidationError) -> str:
    """Every field error in one line: ``email: String should match pattern ...; id: Field required``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def fetch_users(base_url: str, *, token: str | None = None, dead_letter: DeadLetterWriter | None = None,
                per_page: int = 100, policy: RetryPolicy | None = None) -> FetchResult:
    """One-shot convenience: a :class:`UsersClient` for one :meth:`~UsersClient.fetch_all`."""
    with UsersClient(base_url, token=token, per_page=per_page, policy=policy, dead_letter=dead_letter) as client:
        return client.fetch_all()
