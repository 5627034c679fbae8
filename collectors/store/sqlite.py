"""The embedded lineage store: OpenLineage events in one SQLite file, plus a small run index.

Why SQLite: it needs no server on a fresh machine, survives crashes (WAL, synchronous=FULL),
and lets two pipeline processes write at once (each write is one ``BEGIN IMMEDIATE``
transaction; writers wait on ``busy_timeout`` instead of failing). Raw events are kept
verbatim and are idempotent on (run id, event type, event time), so replaying a spool or
copying lineage twice never duplicates anything.

Events are validated at the door (:func:`lineage_auditor.events.from_openlineage`): one that
does not have OpenLineage's shape is refused with an :class:`EventError` and never stored.
The store keeps no derived "current view": readers build it from events with the one event
model, so every store gives the same answers. The index only answers which runs to read.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from collectors.store.rows import EventRow, add_in_batches, dataset_rows, event_row, stored_events
from collectors.store.schema import DDL, OLD_VIEW_TABLES, SCHEMA_VERSION
from lineage_auditor.errors import EventError, StoreError, StoreNotFound
from lineage_auditor.events import RunEvent, from_openlineage, is_static_event

#: Where an incremental reader is (the same shape as the PostgreSQL store's): (0, last row id).
Cursor = tuple[int, int]
START: Cursor = (0, 0)

BUSY_TIMEOUT_S = 60.0


class EmbeddedStore:
    """OpenLineage events in a local SQLite file.

    Safe to share between threads of one process and between processes. A file that is not
    a lineage-audit store (another program's database, a truncated or corrupt file, a
    folder) is a :class:`StoreError` naming the file, never a crash.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        if self.path.is_dir():
            raise StoreError("is a folder, not an embedded lineage store (a .db file)", file=str(self.path))
        if not create and not self.path.is_file():
            raise StoreNotFound("no embedded lineage store here", file=str(self.path))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the embedded store: {exc}", file=str(self.path)) from None
        self._conn.row_factory = sqlite3.Row
        try:
            self._setup()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # text in a damaged file may not decode
            self._conn.close()
            raise StoreError(f"not a readable lineage-audit store ({exc})", file=str(self.path)) from None
        except StoreError:
            self._conn.close()
            raise

    # -- connection and transactions ------------------------------------------------------

    def _setup(self) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version > SCHEMA_VERSION:
            raise StoreError(f"written by a newer lineage-audit (store format {version}); upgrade to read it",
                             file=str(self.path))
        if tables and "events" not in tables:
            raise StoreError("an SQLite database, but not a lineage-audit store (no events table)", file=str(self.path))
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:  # switching to WAL needs a moment without other writers
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if str(mode).lower() != "wal":
            raise StoreError(f"could not enable WAL (journal_mode={mode})", file=str(self.path))
        conn.execute("PRAGMA synchronous = FULL")
        if version == SCHEMA_VERSION:
            return
        with self._write() as tx:
            for table in OLD_VIEW_TABLES:  # format 1 kept a derived view; the index replaces it
                tx.conn.execute(f"DROP TABLE IF EXISTS {table}")
            tx.executescript_safe(DDL)
            if "events" in tables:
                self._reindex(tx.conn)
            tx.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _write(self) -> Iterator["_Tx"]:
        """One write transaction, taken up front so concurrent writers queue, not deadlock."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield _Tx(self._conn)
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # damaged, or locked past the timeout
                raise StoreError(f"cannot write the embedded store ({exc})", file=str(self.path)) from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "EmbeddedStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.path)!r})"

    # -- writing ----------------------------------------------------------------------------

    def _insert(self, conn: sqlite3.Connection, raw: Any) -> bool:
        return self._insert_row(conn, event_row(raw))

    def _insert_row(self, conn: sqlite3.Connection, row: EventRow) -> bool:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO events (run_id, event_type, event_time, job_namespace, job_name, payload, added_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            row.values(),
        )
        if cursor.rowcount == 0:
            return False
        if row.event is not None:
            _index(conn, row.event)
        return True

    def add_event(self, event: dict[str, Any]) -> bool:
        """Store one event; False when the same (run id, event type, event time) is already in.

        Raises :class:`EventError` (naming the bad value's path) for something that is not an
        OpenLineage event; nothing of it is stored.
        """
        with self._write() as tx:
            return self._insert(tx.conn, event)

    def add_rows(self, rows: Sequence[EventRow]) -> list[bool]:
        """Store rows built by :func:`~collectors.store.rows.event_row` in ONE transaction (a group
        commit); for each, whether it was new. All are stored or none (:class:`StoreError`)."""
        with self._write() as tx:
            return [self._insert_row(tx.conn, row) for row in rows]

    def add_events(self, events: Iterable[dict[str, Any]]) -> int:
        """Store many events in few transactions; returns how many were new.

        One invalid event refuses its whole batch (nothing of a bad batch is stored).
        """
        return add_in_batches(self.add_rows, events)

    def _reindex(self, conn: sqlite3.Connection) -> None:
        """Build the run index from the raw events (after an upgrade); bad old events are left out."""
        conn.execute("DELETE FROM run_index")
        conn.execute("DELETE FROM run_dataset_index")
        for row in conn.execute("SELECT payload FROM events ORDER BY event_time, id").fetchall():
            try:
                raw = orjson.loads(row[0])
                if not is_static_event(raw):
                    _index(conn, from_openlineage(raw))
            except (EventError, orjson.JSONDecodeError):
                continue

    # -- raw events -------------------------------------------------------------------------

    def count(self) -> int:
        """Number of stored events."""
        return int(self._rows("SELECT COUNT(*) FROM events")[0][0])

    def events(
        self,
        job: str | tuple[str, str] | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Stored events in event-time order (ties in arrival order).

        ``job`` is a job name (any namespace) or a (namespace, name) pair; ``since`` is
        inclusive and ``until`` exclusive. Reads page by page, so a large store streams.
        """
        for row_id, payload in stored_events(self._rows, "events", "?", job=job, since=since, until=until):
            yield self._decode(payload, row_id)

    def latest_run_events(self) -> Iterator[dict[str, Any]]:
        """Events of each job's latest run (by the run's first event), oldest first.

        A lineage graph's current view is what each job's latest run reported; reading only
        those runs spares parsing the history of a large store.
        """
        yield from self._payloads(
            "WITH latest AS (SELECT run_id FROM (SELECT run_id, ROW_NUMBER() OVER ("
            "PARTITION BY job_namespace, job_name ORDER BY first_event_time DESC, run_id DESC) AS n FROM run_index) "
            "WHERE n = 1) "
            "SELECT e.payload, e.id FROM events e JOIN latest l ON e.run_id = l.run_id ORDER BY e.event_time, e.id"
        )

    def run_events_touching(self, datasets: Iterable[tuple[str, str]]) -> Iterator[dict[str, Any]]:
        """Events of every run that read or wrote one of ``datasets`` ((namespace, name)), oldest first."""
        wanted = sorted(set(datasets))
        if not wanted:
            return
        pairs = " UNION ALL ".join("SELECT ?, ?" for _ in wanted)
        params = [part for pair in wanted for part in pair]
        yield from self._payloads(
            f"WITH wanted(namespace, name) AS ({pairs}), "
            "touching AS (SELECT DISTINCT rd.run_id FROM run_dataset_index rd "
            "JOIN wanted w ON rd.namespace = w.namespace AND rd.name = w.name) "
            "SELECT e.payload, e.id FROM events e JOIN touching t ON e.run_id = t.run_id ORDER BY e.event_time, e.id",
            params,
        )

    def events_after(self, cursor: Cursor = START, limit: int = 5000) -> tuple[list[dict[str, Any]], Cursor]:
        """Events stored after ``cursor`` in arrival order, and the cursor to ask with next.

        Writers take the database in turn (``BEGIN IMMEDIATE``), so row ids commit in order
        and a reader that moved past an id never misses a row committed later.
        """
        rows = self._rows(f"SELECT id, payload FROM events WHERE id > ? ORDER BY id LIMIT {int(limit)}", [cursor[1]])
        if not rows:
            return [], cursor
        return [self._decode(row["payload"], row["id"]) for row in rows], (0, int(rows[-1]["id"]))

    def describe(self) -> str:
        return f"embedded:{self.path}"

    def _payloads(self, sql: str, params: Iterable[Any] = ()) -> Iterator[dict[str, Any]]:
        for row in self._rows(sql, params):
            yield self._decode(row[0], row[1])

    def _decode(self, payload: Any, row_id: int) -> Any:
        """One stored event's JSON (orjson: ~4x json.loads on large events).

        Only valid events get in through this class, so a payload that is not JSON means
        the file was altered or damaged: a StoreError naming the row, not a decoder's crash.
        """
        try:
            return orjson.loads(payload)
        except (orjson.JSONDecodeError, TypeError):
            raise StoreError(f"stored event #{row_id} is not JSON (the file was altered or damaged)",
                             file=str(self.path)) from None

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Rows of a read query; a corrupt file found while reading is a StoreError."""
        try:
            with self._lock:
                return self._conn.execute(sql, list(params)).fetchall()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            raise StoreError(f"cannot read the embedded store ({exc})", file=str(self.path)) from None


def _index(conn: sqlite3.Connection, event: RunEvent) -> None:
    """Record which job a run belongs to, when it began, and the datasets it touched.

    The first event time is the minimum over the run's events, so arrival order does not
    matter: an old spool replayed late never makes an old run "latest".
    """
    conn.execute(
        "INSERT INTO run_index (run_id, job_namespace, job_name, first_event_time) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (run_id) DO UPDATE SET first_event_time = MIN(first_event_time, excluded.first_event_time)",
        (event.run_id, event.job.namespace, event.job.name, event.time_key),
    )
    conn.executemany(
        "INSERT OR IGNORE INTO run_dataset_index (run_id, role, namespace, name) VALUES (?, ?, ?, ?)",
        dataset_rows(event),
    )


class _Tx:
    """The connection inside one write transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def executescript_safe(self, script: str) -> None:
        """Run DDL statements one by one (``executescript`` would commit our transaction)."""
        for statement in script.split(";"):
            if statement.strip():
                self.conn.execute(statement)
