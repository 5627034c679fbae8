"""Copying OpenLineage events between lineage stores (embedded file <-> Marquez server).

A store is named by a URI: ``marquez://host:port`` (or an ``http(s)://`` URL of a Marquez),
``embedded`` (the default local store) or ``embedded:PATH``. Both kinds offer ``events()``
and an idempotent ``add_event(event) -> bool``, so copying twice copies nothing the second
time and moving from laptop to server loses nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from collectors.marquez.client import MarquezClient, event_key
from lineage_auditor.errors import LineageAuditError


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


def default_embedded_path() -> Path:
    home = os.environ.get("LINEAGE_AUDIT_HOME") or ".lineage"
    return Path(home) / "lineage.db"


def marquez_url(uri: str) -> str | None:
    """The http URL of a ``marquez://host:port`` or ``http(s)://`` store URI, else None."""
    parts = urlsplit(uri)
    if parts.scheme == "marquez":
        if not parts.netloc:
            raise LineageAuditError(f"store URI {uri!r} needs a host: marquez://HOST:PORT")
        return f"http://{parts.netloc}{parts.path}".rstrip("/")
    if parts.scheme in ("http", "https"):
        return uri.rstrip("/")
    return None


def open_store(uri: str, *, must_exist: bool = False) -> EventStore:
    """Open the store a URI names; raises LineageAuditError for anything else.

    ``must_exist`` (for a source) refuses to create an empty embedded store file.
    """
    url = marquez_url(uri)
    if url:
        return MarquezClient(url)
    if uri == "embedded" or uri.startswith("embedded:"):
        path = Path(uri.split(":", 1)[1]) if ":" in uri and uri.split(":", 1)[1] else default_embedded_path()
        if must_exist and not path.is_file():
            raise LineageAuditError("embedded store not found", file=str(path))
        return _open_embedded(path)
    raise LineageAuditError(
        f"unknown store {uri!r}: use marquez://HOST:PORT, embedded or embedded:PATH"
    )


def _open_embedded(path: Path) -> EventStore:
    try:
        from collectors.store import EmbeddedStore  # type: ignore[attr-defined]
    except ImportError as exc:
        raise LineageAuditError("the embedded store is not available in this installation") from exc
    return EmbeddedStore(path)


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
