"""Lineage stores with an event index: the embedded store (SQLite) and its PostgreSQL twin.

Both keep raw OpenLineage events, idempotent on run id + event type + event time, and offer
the same methods (:class:`IndexedStore`), so everything that reads or writes a store works on
either; :func:`open_indexed` opens the one a store address names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from collectors.store.address import StoreKind, parse_address, store_path
from collectors.store.rows import EventRow, event_row
from collectors.store.sqlite import EmbeddedStore
from lineage_auditor.errors import StoreError

Cursor = tuple[int, int]


class IndexedStore(Protocol):
    """What both stores offer (see :class:`EmbeddedStore` for the meaning of each)."""

    def add_event(self, event: dict[str, Any]) -> bool: ...

    def add_events(self, events: Iterable[dict[str, Any]]) -> int: ...

    def add_rows(self, rows: Sequence[EventRow]) -> list[bool]: ...

    def count(self) -> int: ...

    def events(self, job: str | tuple[str, str] | None = None, since: str | datetime | None = None,
               until: str | datetime | None = None) -> Iterator[dict[str, Any]]: ...

    def latest_run_events(self) -> Iterator[dict[str, Any]]: ...

    def run_events_touching(self, datasets: Iterable[tuple[str, str]]) -> Iterator[dict[str, Any]]: ...

    def events_after(self, cursor: Cursor = (0, 0), limit: int = 5000) -> tuple[list[dict[str, Any]], Cursor]: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> None: ...


def open_indexed(config: dict[str, Any] | str, *, create: bool = True) -> IndexedStore:
    """The embedded or PostgreSQL store a config (or address) names; StoreError for any other kind.

    ``create=False`` refuses to create an empty store (:class:`StoreNotFound`).
    """
    if isinstance(config, str):
        config = parse_address(config)
    kind = config["type"]
    if kind == StoreKind.EMBEDDED:
        return EmbeddedStore(store_path(config), create=create)
    if kind == StoreKind.POSTGRESQL:
        from collectors.store.postgres import PostgresStore

        return PostgresStore(str(config["dsn"]), create=create)
    raise StoreError(f"{kind} is not a lineage store with an index; use embedded[:PATH] or postgresql://...")


__all__ = ["EmbeddedStore", "EventRow", "IndexedStore", "event_row", "open_indexed"]
