"""The lineage store in PostgreSQL: the embedded store's events and index, for a shared service.

Why: a platform team runs ``lineage-audit serve`` with more than one replica and an external
database, as Airflow and Marquez are run. This store keeps exactly what the embedded SQLite
store keeps (raw OpenLineage JSON, unique on run id + event type + event time, plus the run
index) behind the same methods, so every reader gives the same answers from either.

Concurrent writers (replicas, pipelines writing directly) are safe without locks of ours:
each event is one ``INSERT ... ON CONFLICT DO NOTHING`` in the transaction that indexes it,
so a re-send racing its original stores one row and both callers learn which one won.
The schema is created and upgraded by numbered migrations (:data:`MIGRATIONS`), recorded in
``schema_migrations`` and applied under an advisory lock, so replicas starting at once
migrate once.

Incremental readers (the metrics) follow :meth:`PostgresStore.events_after`: rows are read
in (transaction id, row id) order and only up to the oldest transaction still running, so
an event whose transaction commits late is never skipped by a reader that moved on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson

from collectors.store.rows import EventRow, add_in_batches, dataset_rows, event_row, stored_events
from lineage_auditor.errors import StoreError, StoreNotFound
from lineage_auditor.events import RunEvent
from lineage_auditor.scrub import scrub_text, scrub_url

SCHEMA = "lineage_audit"
CONNECT_TIMEOUT_S = 10
_MIGRATION_LOCK = 0x4C41_0001  # pg_advisory_xact_lock key: one migrator at a time

#: The store's schema, one step per version; a step never changes once released.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "events and run index", f"""
CREATE TABLE {SCHEMA}.events (
    id            BIGSERIAL PRIMARY KEY,
    tx            xid8 NOT NULL DEFAULT pg_current_xact_id(),
    run_id        TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    event_time    TEXT NOT NULL,
    job_namespace TEXT,
    job_name      TEXT,
    payload       TEXT NOT NULL,
    added_at      TEXT NOT NULL,
    UNIQUE (run_id, event_type, event_time)
);
CREATE INDEX events_by_time ON {SCHEMA}.events (event_time, id);
CREATE INDEX events_by_job ON {SCHEMA}.events (job_name, job_namespace, event_time);
CREATE INDEX events_by_tx ON {SCHEMA}.events (tx, id);
CREATE TABLE {SCHEMA}.run_index (
    run_id           TEXT PRIMARY KEY,
    job_namespace    TEXT NOT NULL,
    job_name         TEXT NOT NULL,
    first_event_time TEXT NOT NULL
);
CREATE INDEX run_index_by_job ON {SCHEMA}.run_index (job_namespace, job_name, first_event_time);
CREATE TABLE {SCHEMA}.run_dataset_index (
    run_id    TEXT NOT NULL,
    role      TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    PRIMARY KEY (run_id, role, namespace, name)
);
CREATE INDEX run_dataset_index_by_dataset ON {SCHEMA}.run_dataset_index (name, namespace);
"""),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

#: Where an incremental reader is: the last (transaction id, row id) it has read.
Cursor = tuple[int, int]
START: Cursor = (0, 0)


class PostgresStore:
    """OpenLineage events in PostgreSQL (schema ``lineage_audit``), the embedded store's twin.

    One connection per store object, shared by its threads under a lock; several processes
    share the database. Connection and SQL failures are :class:`StoreError` with the DSN's
    password removed, never a driver's exception.
    """

    def __init__(self, dsn: str, *, create: bool = True) -> None:
        import psycopg

        self.dsn = dsn
        self.name = scrub_url(dsn)
        self._lock = threading.RLock()
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL store: {_reason(exc)}", file=self.name) from None
        try:
            self._migrate(create)
        except BaseException:
            self._conn.close()
            raise

    # -- schema ---------------------------------------------------------------------------

    def _migrate(self, create: bool) -> None:
        applied = self._applied()
        if applied > SCHEMA_VERSION:
            raise StoreError(f"written by a newer lineage-audit (store schema {applied}); upgrade to read it",
                             file=self.name)
        if applied == SCHEMA_VERSION:
            return
        if applied == 0 and not create:
            raise StoreNotFound("no lineage-audit store in this database yet", file=self.name)
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations ("
                        "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            cur.execute(f"SELECT COALESCE(MAX(version), 0) FROM {SCHEMA}.schema_migrations")
            done = int(cur.fetchone()[0])  # another replica may have migrated while we waited
            for version, description, ddl in MIGRATIONS:
                if version > done:
                    cur.execute(ddl)
                    cur.execute(f"INSERT INTO {SCHEMA}.schema_migrations (version, description) VALUES (%s, %s)",
                                (version, description))

    def _applied(self) -> int:
        """The schema version in the database (0: none yet)."""
        rows = self._rows("SELECT to_regclass(%s) IS NOT NULL", [f"{SCHEMA}.schema_migrations"])
        if not rows[0][0]:
            return 0
        return int(self._rows(f"SELECT COALESCE(MAX(version), 0) FROM {SCHEMA}.schema_migrations")[0][0])

    def schema_version(self) -> int:
        return self._applied()

    # -- connection -----------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One transaction; a failure of the database becomes a StoreError, ours pass through."""
        import psycopg

        with self._lock:
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                raise StoreError(f"cannot write the PostgreSQL store: {_reason(exc)}", file=self.name) from None

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        import psycopg

        try:
            with self._lock, self._conn.cursor() as cur:
                cur.execute(sql, list(params))
                return cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"cannot read the PostgreSQL store: {_reason(exc)}", file=self.name) from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "PostgresStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.name!r})"

    def describe(self) -> str:
        return self.name

    # -- writing --------------------------------------------------------------------------

    def _insert(self, cur: Any, raw: Any) -> bool:
        return self._insert_row(cur, event_row(raw))

    def _insert_row(self, cur: Any, row: EventRow) -> bool:
        cur.execute(
            f"INSERT INTO {SCHEMA}.events (run_id, event_type, event_time, job_namespace, job_name, payload, added_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (run_id, event_type, event_time) DO NOTHING RETURNING id",
            row.values(),
        )
        if cur.fetchone() is None:
            return False
        if row.event is not None:
            _index(cur, row.event)
        return True

    def add_event(self, event: dict[str, Any]) -> bool:
        """Store one event; False when the same (run id, event type, event time) is already in.

        Raises :class:`EventError` for something that is not an OpenLineage event; nothing of
        it is stored (the transaction is rolled back).
        """
        with self._tx() as cur:
            return self._insert(cur, event)

    def add_rows(self, rows: Sequence[EventRow]) -> list[bool]:
        """Store rows built by :func:`~collectors.store.rows.event_row` in ONE transaction (a group
        commit); for each, whether it was new. All are stored or none (:class:`StoreError`).

        Rows are written in identity order, so two replicas' batches take their row locks in
        one order and never wait on each other in a cycle.
        """
        order = sorted(range(len(rows)), key=lambda i: (rows[i].run_id, rows[i].event_type, rows[i].event_time))
        added = [False] * len(rows)
        with self._tx() as cur:
            for i in order:
                added[i] = self._insert_row(cur, rows[i])
        return added

    def add_events(self, events: Iterable[dict[str, Any]]) -> int:
        """Store many events in few transactions; returns how many were new.

        One invalid event refuses its whole batch (nothing of a bad batch is stored).
        """
        return add_in_batches(self.add_rows, events)

    # -- reading --------------------------------------------------------------------------

    def count(self) -> int:
        """Number of stored events."""
        return int(self._rows(f"SELECT COUNT(*) FROM {SCHEMA}.events")[0][0])

    def events(
        self,
        job: str | tuple[str, str] | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Stored events in event-time order (ties in arrival order), page by page.

        ``job`` is a job name (any namespace) or a (namespace, name) pair; ``since`` is
        inclusive and ``until`` exclusive.
        """
        for row_id, payload in stored_events(self._rows, f"{SCHEMA}.events", "%s", job=job, since=since, until=until):
            yield self._decode(payload, row_id)

    def latest_run_events(self) -> Iterator[dict[str, Any]]:
        """Events of each job's latest run (by the run's first event), oldest first."""
        yield from self._payloads(
            f"WITH latest AS (SELECT DISTINCT ON (job_namespace, job_name) run_id FROM {SCHEMA}.run_index "
            "ORDER BY job_namespace, job_name, first_event_time DESC, run_id DESC) "
            f"SELECT e.payload, e.id FROM {SCHEMA}.events e JOIN latest l ON e.run_id = l.run_id "
            "ORDER BY e.event_time, e.id"
        )

    def run_events_touching(self, datasets: Iterable[tuple[str, str]]) -> Iterator[dict[str, Any]]:
        """Events of every run that read or wrote one of ``datasets`` ((namespace, name)), oldest first."""
        wanted = sorted(set(datasets))
        if not wanted:
            return
        yield from self._payloads(
            f"WITH wanted AS (SELECT * FROM unnest(%s::text[], %s::text[]) AS w(namespace, name)), "
            f"touching AS (SELECT DISTINCT rd.run_id FROM {SCHEMA}.run_dataset_index rd "
            "JOIN wanted w ON rd.namespace = w.namespace AND rd.name = w.name) "
            f"SELECT e.payload, e.id FROM {SCHEMA}.events e JOIN touching t ON e.run_id = t.run_id "
            "ORDER BY e.event_time, e.id",
            [[ns for ns, _ in wanted], [name for _, name in wanted]],
        )

    def events_after(self, cursor: Cursor = START, limit: int = 5000) -> tuple[list[dict[str, Any]], Cursor]:
        """Events stored after ``cursor`` (in commit-safe order) and the cursor to ask with next.

        Only rows of transactions older than every transaction still running are returned:
        a row of a transaction that commits later always sorts after the returned cursor.
        """
        rows = self._rows(
            f"SELECT tx::text::bigint, id, payload FROM {SCHEMA}.events "
            "WHERE (tx::text::bigint, id) > (%s, %s) AND tx < pg_snapshot_xmin(pg_current_snapshot()) "
            f"ORDER BY tx, id LIMIT {int(limit)}",
            list(cursor),
        )
        if not rows:
            return [], cursor
        return [self._decode(payload, row_id) for _, row_id, payload in rows], (int(rows[-1][0]), int(rows[-1][1]))

    def _payloads(self, sql: str, params: Iterable[Any] = ()) -> Iterator[dict[str, Any]]:
        for payload, row_id in self._rows(sql, params):
            yield self._decode(payload, row_id)

    def _decode(self, payload: Any, row_id: int) -> Any:
        try:
            return orjson.loads(payload)
        except (orjson.JSONDecodeError, TypeError):
            raise StoreError(f"stored event #{row_id} is not JSON (the table was altered)", file=self.name) from None


def _index(cur: Any, event: RunEvent) -> None:
    """Which job a run belongs to, when it began (the minimum over its events), what it touched."""
    cur.execute(
        f"INSERT INTO {SCHEMA}.run_index (run_id, job_namespace, job_name, first_event_time) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (run_id) DO UPDATE SET first_event_time = LEAST(run_index.first_event_time, excluded.first_event_time)",
        (event.run_id, event.job.namespace, event.job.name, event.time_key),
    )
    rows = dataset_rows(event)
    if rows:
        cur.executemany(
            f"INSERT INTO {SCHEMA}.run_dataset_index (run_id, role, namespace, name) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            rows,
        )


def _reason(exc: Exception) -> str:
    """A driver's message, first line, without any password it may quote."""
    text = str(exc).strip().splitlines()
    return scrub_text(text[0] if text else type(exc).__name__)
