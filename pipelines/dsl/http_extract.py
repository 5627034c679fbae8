"""A spec's ``extract: http`` step: a paged JSON API read under the one retry policy.

Paging by page number, by cursor or by ``Link: rel="next"``; a bearer token from an
environment variable or a secret file (never from the spec itself); every record checked
against the declared columns, a record that does not fit dead-lettered with its page and the
reason, so one bad record costs one record. Retries, ``Retry-After``, deadlines and the
circuit breaker are :class:`pipelines.sources.resilience.ResilientHttp`'s, like the
reference pipelines' sources.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from lineage_auditor.errors import ConfigError
from lineage_auditor.retry import RetryPolicy
from lineage_auditor.textfiles import read_text
from pipelines.dsl.columns import RowRuleCheck, fit_record, logical_type
from pipelines.dsl.model import HttpExtract, Paging
from pipelines.sources.errors import MalformedResponse
from pipelines.sources.resilience import ResilientHttp

MAX_PAGES = 100_000  # a server that never stops paging is a bug on its side, not a reason to loop forever
PAGE_DEADLINE_S = 60.0  # one page with its retries: longer means the API is down, not slow
FETCH_DEADLINE_S = 600.0  # the whole fetch, unless the step's timeout says otherwise


REQUEST_TIMEOUT_S = 5.0  # one request; a stalled one is retried within the page's deadline


def budget(timeout_s: float | None = None) -> RetryPolicy:
    """The retry budget of an HTTP extract: 5 s per request, up to 12 attempts and 60 s per page,
    and the step's timeout (else 10 minutes) for the whole fetch. Under the mock users API's
    documented fault mix (45% of requests failing) it loads every page (tests/test_users_fault_mix.py)."""
    return RetryPolicy(max_attempts=12, timeout=REQUEST_TIMEOUT_S, call_deadline=PAGE_DEADLINE_S,
                       deadline=timeout_s or FETCH_DEADLINE_S)


@dataclass
class Fetched:
    """The records that fit, the ones that did not (with why), and what it took."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    requests: int = 0
    retries: int = 0
    rules: RowRuleCheck | None = None  # the row rules applied, with what each refused


def fetch(extract: HttpExtract, *, folder: Path, policy: RetryPolicy,
          sleep: Callable[[float], None] | None = None,
          event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None) -> Fetched:
    """Every page of the API, as rows in the declared column order (``event_hooks``: httpx's, to
    watch each request and response)."""
    headers = {"Accept": "application/json", **_auth(extract, folder)}
    columns = [(c.key, logical_type(c.type), c.nullable) for c in extract.columns]
    out = Fetched()
    source = urlsplit(extract.url).netloc or "http source"
    with httpx.Client(headers=headers, follow_redirects=True, event_hooks=dict(event_hooks or {})) as client:
        http = ResilientHttp(client, source=source, policy=policy, sleep=sleep or time.sleep)
        deadline = http.new_deadline()
        rules = RowRuleCheck.of(extract.reject, [c.name for c in extract.columns])
        out.rules = rules
        for page, records in _pages(http, extract, deadline):
            out.pages = page
            for index, record in enumerate(records):
                row, problem = _row(record, columns)
                if not problem and rules is not None:
                    problem = "; ".join(rules.problems(row, f"page {page} record {index}"))
                if problem:
                    out.rejected.append({"page": page, "index": index, "reason": problem, "raw": record})
                else:
                    out.rows.append(row)
        out.requests, out.retries = http.stats.requests, http.stats.retries
    return out


def _auth(extract: HttpExtract, folder: Path) -> dict[str, str]:
    if extract.token_env:
        token = os.environ.get(extract.token_env, "")
        if not token:
            raise ConfigError(f"extract http: the environment variable {extract.token_env} holding the token is not set")
        return {"Authorization": f"Bearer {token}"}
    if extract.token_file:
        token = read_text(folder / extract.token_file, what="the token file").strip()
        return {"Authorization": f"Bearer {token}"}
    return {}


def _pages(http: ResilientHttp, extract: HttpExtract, deadline: Any) -> Iterator[tuple[int, list[Any]]]:
    """Each page's records, following the paging until the API says there are no more."""
    url: str | None = extract.url
    cursor: str | None = None
    for page in range(1, MAX_PAGES + 1):
        params: dict[str, Any] = {}
        if extract.paging is Paging.PAGE:
            params = {extract.page_param: page, extract.size_param: extract.page_size}
        elif extract.paging is Paging.CURSOR:
            params = {extract.size_param: extract.page_size, **({extract.cursor_param: cursor} if cursor else {})}
        assert url is not None
        response, body, records = http.get(url, deadline=http.call_deadline(deadline, f"page {page} deadline"),
                                           params=params or None,
                                           parse=functools.partial(_page, page=page, key=extract.records))
        yield page, records
        if extract.paging is Paging.NONE:
            return
        if extract.paging is Paging.PAGE and len(records) < extract.page_size:
            return
        if extract.paging is Paging.CURSOR:
            cursor = body.get(extract.cursor_field) if isinstance(body, dict) else None
            if not cursor:
                return
        if extract.paging is Paging.LINK:
            url = response.links.get("next", {}).get("url")
            if not url:
                return
    raise MalformedResponse(f"more than {MAX_PAGES} pages: the API keeps paging", raw="")


def _page(response: httpx.Response, page: int, key: str) -> tuple[httpx.Response, Any, list[Any]]:
    """The response, its body decoded once and the records in it. A body that is not JSON, or has no
    list of records where the spec says, is malformed: retried like a transient fault, then refused."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        raise MalformedResponse(f"page {page} is not JSON", raw=response.text[:2000]) from None
    return response, body, _records(body, key, page)


def _records(body: Any, key: str, page: int) -> list[Any]:
    found = body
    for part in [p for p in key.split(".") if p]:
        found = found.get(part) if isinstance(found, dict) else None
    if not isinstance(found, list):
        where = f"key {key!r}" if key else "the top level"
        raise MalformedResponse(f"page {page}: no list of records at {where}", raw=str(body)[:2000])
    return found


def _row(record: Any, columns: list[tuple[str, str, bool]]) -> tuple[tuple[Any, ...], str]:
    if not isinstance(record, dict):
        return (), f"a record is an object, got {type(record).__name__}"
    return fit_record(record, columns)
