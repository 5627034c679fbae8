"""What a store writes for one event: the same validation and identity in every store.

Both stores (SQLite and PostgreSQL) call :func:`event_row` at their door, so an event is
accepted or refused, and identified (run id + event type + event time), the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import islice
from typing import Any

import orjson

from collectors.openlineage_json import event_identity
from lineage_auditor.errors import EventError
from lineage_auditor.events import RunEvent, from_openlineage, is_static_event
from lineage_auditor.times import time_key


@dataclass(frozen=True)
class EventRow:
    """One event as a row of the ``events`` table; ``event`` is None for a static event."""

    event: RunEvent | None
    run_id: str
    event_type: str
    event_time: str
    job_namespace: str | None
    job_name: str | None
    payload: str
    added_at: str

    def values(self) -> tuple[Any, ...]:
        return (self.run_id, self.event_type, self.event_time, self.job_namespace, self.job_name, self.payload,
                self.added_at)


def event_row(raw: Any, event: RunEvent | None = None) -> EventRow:
    """Validate ``raw`` (the one event model) and build its row; EventError names what is wrong.

    ``event`` is ``raw`` already read with :func:`from_openlineage` (a caller that needed it
    first, such as the service's access check), so it is not read twice.
    """
    if is_static_event(raw):
        run_id, event_type, raw_time = event_identity(raw)
        try:
            when = time_key(raw_time)
        except ValueError:
            raise EventError(f"eventTime: not an ISO 8601 date-time: {raw_time[:60]!r}") from None
        job_ns, job_name = None, None
        event = None
    else:
        event = event or from_openlineage(raw)
        run_id, event_type, when = event.identity
        job_ns, job_name = event.job.namespace, event.job.name
    return EventRow(event, run_id, event_type, when, job_ns, job_name, _payload(raw), time_key(datetime.now(timezone.utc)))


BATCH = 500  # events per transaction when many are added at once


def add_in_batches(add_rows: Callable[[Sequence[EventRow]], list[bool]], events: Iterable[Any],
                   size: int = BATCH) -> int:
    """Store ``events`` through a store's ``add_rows`` (one transaction per call), ``size`` at a
    time; how many were new. Every row of a batch is built (validated) before its transaction,
    so one invalid event refuses its whole batch and nothing of it is stored."""
    added, source = 0, iter(events)
    while batch := list(islice(source, size)):
        added += sum(add_rows([event_row(raw) for raw in batch]))
    return added


PAGE = 1000  # rows per page when reading events


def stored_events(rows_of: Callable[[str, list[Any]], Sequence[Any]], table: str, mark: str, *,
                  job: str | tuple[str, str] | None, since: str | datetime | None,
                  until: str | datetime | None) -> Iterator[tuple[int, Any]]:
    """``(id, payload)`` of a store's events in event-time order (ties in arrival order), page by
    page: the one query behind every store's ``events()``. ``rows_of(sql, params)`` runs a query
    on the store; ``mark`` is its driver's placeholder (``?`` or ``%s``).

    Pages are keyed on the row value ``(event_time, id)``: both databases seek their
    ``(event_time, id)`` index to the page start, where the equivalent OR form would scan from
    the beginning for every page (quadratic).
    """
    where, params = [f"(event_time, id) > ({mark}, {mark})"], []
    if isinstance(job, tuple):
        where.append(f"job_namespace = {mark} AND job_name = {mark}")
        params += list(job)
    elif job:
        where.append(f"job_name = {mark}")
        params.append(job)
    if since is not None:
        where.append(f"event_time >= {mark}")
        params.append(time_key(since))
    if until is not None:
        where.append(f"event_time < {mark}")
        params.append(time_key(until))
    sql = f"SELECT id, event_time, payload FROM {table} WHERE {' AND '.join(where)} ORDER BY event_time, id LIMIT {PAGE}"
    last_time, last_id = "", 0
    while True:
        rows = rows_of(sql, [last_time, last_id, *params])
        for row in rows:
            yield row[0], row[2]
        if len(rows) < PAGE:
            return
        last_time, last_id = rows[-1][1], rows[-1][0]


def _payload(raw: Any) -> str:
    """The event as compact JSON text (orjson: ~4x json.dumps; json for what orjson refuses, such as huge ints)."""
    try:
        return orjson.dumps(raw, default=str, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str)


def dataset_rows(event: RunEvent) -> list[tuple[str, str, str, str]]:
    """The run-dataset index rows of one event: (run id, role, namespace, name)."""
    return sorted({(event.run_id, role, ds.ref.namespace, ds.ref.name) for role, ds in event.datasets()})
