"""Read OpenLineage run events back from whichever store lineage was written to.

Stores are named by the one address syntax (:mod:`collectors.store.address`): the embedded
SQLite store, a Marquez server, or NDJSON/JSON files. Without an address, the configured
lineage target is read (``--lineage`` > ``OPENLINEAGE__...`` env > openlineage.yml >
embedded), so ``lineage show`` looks where the pipelines wrote.

Whatever the store, readers get typed :class:`~lineage_auditor.events.RunEvent` objects
oldest first (offsets normalized), and an event another producer or an older version wrote
with the wrong shape is skipped and counted in a :class:`SkippedEvents`, never a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.emit.config import resolve_transport_config
from collectors.openlineage_json import iter_located_events
from collectors.store import IndexedStore, open_indexed
from collectors.store.address import INDEXED, READABLE, StoreKind, describe, parse_address, store_path
from lineage_auditor.errors import EventError, StoreError, StoreNotFound
from lineage_auditor.events import RunEvent, from_openlineage, is_static_event, run_events, sort_events
from lineage_auditor.graph import LineageGraph


@dataclass
class SkippedEvents:
    """Events a reader left out because they are not valid OpenLineage, with the first reasons."""

    count: int = 0
    reasons: list[str] = field(default_factory=list)

    def __call__(self, error: EventError) -> None:
        self.count += 1
        if len(self.reasons) < 3:
            self.reasons.append(str(error))

    def summary(self) -> str:
        """One line for the user, or "" when nothing was skipped."""
        if not self.count:
            return ""
        noun = "event that is" if self.count == 1 else "events that are"
        return f"skipped {self.count} {noun} not valid OpenLineage (first: {self.reasons[0]})"


def store_config(spec: str | None) -> dict[str, Any]:
    """The store an address (or, without one, the configuration) names."""
    return parse_address(spec) if spec else resolve_transport_config(None)[0]


def describe_source(spec: str | None) -> str:
    """A readable name for the store a spec (or the configuration) points at, without secrets."""
    return describe(store_config(spec))


def open_indexed_store(spec: str | None = None) -> IndexedStore | None:
    """The indexed store (embedded or PostgreSQL) a spec (or the configuration) names, or None.

    Callers use it for queries only an indexed store can answer (latest runs, runs touching
    given datasets) and fall back to :func:`read_events` for the others.
    """
    config = store_config(spec)
    if config["type"] not in INDEXED:
        return None
    if config["type"] == StoreKind.EMBEDDED and not store_path(config).exists():
        raise StoreNotFound("no embedded lineage store here yet (run a pipeline first)", file=str(store_path(config)))
    return open_indexed(config, create=False)


def _located(skipped: SkippedEvents | None, where: str) -> Callable[[EventError], None] | None:
    """A skip callback that names the store the bad event came from."""
    if skipped is None:
        return None
    return lambda exc: skipped(exc if exc.file else EventError(exc.message, file=where))


def read_events(spec: str | None = None, skipped: SkippedEvents | None = None) -> Iterator[RunEvent]:
    """Every run event in the named (or configured) store, oldest first."""
    config = store_config(spec)
    kind = config["type"]
    if kind not in READABLE:
        raise StoreError(f"lineage written to {kind!r} cannot be read back; name a store with --store")
    if kind in INDEXED:
        store = open_indexed_store(spec)
        assert store is not None
        with store:
            where = str(store_path(config)) if kind == StoreKind.EMBEDDED else store.describe()
            yield from run_events(store.events(), _located(skipped, where))
        return
    if kind == StoreKind.FILE:
        yield from sort_events(_file_events(store_path(config), skipped))
        return
    yield from sort_events(run_events(_marquez_events(config), _located(skipped, describe(config))))


def latest_graph(spec: str | None = None) -> LineageGraph:
    """The lineage graph as each job's latest run left it (the embedded store reads only those runs).

    Events that are not valid OpenLineage are passed over: the graph is what can be known.
    """
    store = open_indexed_store(spec)
    if store is None:
        return LineageGraph.from_events(read_events(spec, SkippedEvents()))
    with store:
        return LineageGraph.from_events(run_events(store.latest_run_events(), SkippedEvents()))


def _file_events(path: Path, skipped: SkippedEvents | None) -> Iterator[RunEvent]:
    """Events of NDJSON/JSON files, each once (a re-sent event appended twice counts once)."""
    seen: set[tuple[str, str, str]] = set()
    for (file, line), raw in iter_located_events(path, skipped):
        if is_static_event(raw):
            continue
        try:
            event = from_openlineage(raw, strict=False)
            if event.identity not in seen:
                seen.add(event.identity)
                yield event
        except EventError as exc:
            located = EventError(exc.message, file=file, line=line)
            if skipped is None:
                raise located from None
            skipped(located)


def _marquez_events(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    from collectors.marquez.client import MarquezClient

    auth = config.get("auth")
    if not isinstance(auth, dict):
        auth = {}
    client = MarquezClient(str(config["url"]), api_key=auth.get("apiKey") or auth.get("api_key"))
    try:
        yield from client.events()
    finally:
        client.close()
