"""Copying OpenLineage events between lineage stores (embedded file <-> Marquez server).

A store is named by the one address syntax: ``marquez://host:port`` (or an ``http(s)://`` URL
of a Marquez), ``embedded`` (the default local store), ``embedded:PATH`` or ``file:PATH``
(NDJSON). Every kind offers ``events()``
and an idempotent ``add_event(event) -> bool``, so copying twice copies nothing the second
time and moving from laptop to server loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from collectors.marquez.client import MarquezClient, event_key
from collectors.openlineage_json import NDJSON_SUFFIXES, append_ndjson, iter_events
from collectors.store import open_indexed
from collectors.store.address import INDEXED, StoreKind, parse_address, store_path
from lineage_auditor.errors import StoreError
from lineage_auditor.events import from_openlineage
from lineage_auditor.scrub import scrub_url


class EventStore(Protocol):
    def events(self) -> Iterator[dict[str, Any]]: ...

    def add_event(self, event: dict[str, Any]) -> bool: ...


@dataclass
class CopyResult:
    read: int = 0
    added: int = 0
    already_present: int = 0

    def to_json(self) -> dict[str, int]:
        return {"read": self.read, "added": self.added, "already_present": self.already_present}


class FileEventStore:
    """NDJSON event files as a store: read every event, append the ones not there yet."""

    def __init__(self, path: Path, *, must_exist: bool = False) -> None:
        if must_exist and not path.exists():
            raise StoreError("no such file", file=str(path))
        self.path = path
        self._known: set[tuple[str, str, str]] | None = None

    def events(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return iter(())
        return iter_events(self.path)

    def add_event(self, event: dict[str, Any]) -> bool:
        if self._known is None:
            self._known = {event_key(e) for e in self.events()}
        key = event_key(event)
        if key in self._known:
            return False
        from_openlineage(event)  # refuse what is not an event, as the embedded store does
        append_ndjson(self.path, event)
        self._known.add(key)
        return True


def open_store(uri: str, *, must_exist: bool = False) -> EventStore:
    """Open the store an address names (the one address syntax of ``--store``/``--lineage``).

    ``must_exist`` (for a source) refuses to create an empty store.
    """
    config = parse_address(uri)
    kind = config["type"]
    if kind == StoreKind.MARQUEZ:
        return MarquezClient(config["url"])
    if kind in INDEXED:
        return open_indexed(config, create=not must_exist)
    if kind == StoreKind.FILE:
        path = store_path(config)
        if path.suffix not in NDJSON_SUFFIXES and not (must_exist and path.exists()):
            raise StoreError("events are copied into NDJSON files (.ndjson or .jsonl)", file=str(path))
        return FileEventStore(path, must_exist=must_exist)
    raise StoreError(f"{scrub_url(uri)!r} cannot be copied from or to; use marquez://HOST:PORT, embedded[:PATH], postgresql://HOST:PORT/DB or file:PATH")


def copy_events(
    source: EventStore, target: EventStore, *, on_event: Callable[[], None] | None = None
) -> CopyResult:
    """Copy every event of ``source`` that ``target`` lacks, oldest first.

    A Marquez target is read once up front for the events it already has (one paged scan)
    rather than asked per event; any other target deduplicates in ``add_event``.
    """
    result = CopyResult()
    known = {event_key(e) for e in target.events()} if isinstance(target, MarquezClient) else None
    for event in source.events():
        result.read += 1
        if known is not None:
            key = event_key(event)
            if key in known:
                result.already_present += 1
            else:
                target.post_event(event)  # type: ignore[attr-defined]
                known.add(key)
                result.added += 1
        elif target.add_event(event):
            result.added += 1
        else:
            result.already_present += 1
        if on_event:
            on_event()
    return result


def close_store(store: EventStore) -> None:
    closer = getattr(store, "close", None)
    if callable(closer):
        closer()
