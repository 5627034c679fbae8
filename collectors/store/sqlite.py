"""The embedded lineage store: OpenLineage events in one SQLite file, plus a queryable view.

Why SQLite: it needs no server on a fresh machine, survives crashes (WAL, synchronous=FULL),
and lets two pipeline processes write at once (each write is one ``BEGIN IMMEDIATE``
transaction; writers wait on ``busy_timeout`` instead of failing). Raw events are kept
verbatim and are idempotent on (run id, event type, event time), so replaying a spool or
copying lineage twice never duplicates anything.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from collectors.openlineage_json import event_identity
from collectors.store.schema import DDL, SCHEMA_VERSION, VIEW_TABLES
from collectors.store.times import display_time, time_key
from collectors.store.view import apply_event
from lineage_auditor.facets import lineage_from_facet
from lineage_auditor.model import DatasetLineage, DatasetRef

BUSY_TIMEOUT_S = 60.0
BATCH = 500
_PAGE = 1000
_META_KEYS = ("_producer", "_schemaURL")


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def _clean(facet: Any) -> Any:
    """A facet without its ``_producer``/``_schemaURL`` bookkeeping."""
    if isinstance(facet, dict):
        return {k: v for k, v in facet.items() if k not in _META_KEYS}
    return facet


class EmbeddedStore:
    """OpenLineage events and the current lineage view in a local SQLite file.

    Safe to share between threads of one process and between processes.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        self._setup()

    # -- connection and transactions ------------------------------------------------------

    def _setup(self) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
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
            raise sqlite3.OperationalError(f"{self.path}: could not enable WAL (journal_mode={mode})")
        conn.execute("PRAGMA synchronous = FULL")
        with self._write() as tx:
            tx.executescript_safe(DDL)
            tx.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _write(self) -> Iterator["_Tx"]:
        """One write transaction, taken up front so concurrent writers queue, not deadlock."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Tx(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

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

    def _insert(self, conn: sqlite3.Connection, event: dict[str, Any]) -> bool:
        if not isinstance(event, dict):
            raise ValueError(f"an OpenLineage event must be a JSON object, got {type(event).__name__}")
        run_id, event_type, raw_time = event_identity(event)
        if not run_id or not raw_time:
            raise ValueError("an OpenLineage event needs eventTime and run.runId (or a dataset/job)")
        when = time_key(raw_time)
        job = event.get("job") if isinstance(event.get("job"), dict) else {}
        cursor = conn.execute(
            "INSERT OR IGNORE INTO events (run_id, event_type, event_time, job_namespace, job_name, payload, added_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                event_type,
                when,
                job.get("namespace"),
                job.get("name"),
                json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str),
                time_key(datetime.now(timezone.utc)),
            ),
        )
        if cursor.rowcount == 0:
            return False
        apply_event(conn, event, run_id, when)
        return True

    def add_event(self, event: dict[str, Any]) -> bool:
        """Store one event; False when the same (run id, event type, event time) is already in.

        Raises ValueError for something that is not an OpenLineage event.
        """
        with self._write() as tx:
            return self._insert(tx.conn, event)

    def add_events(self, events: Iterable[dict[str, Any]]) -> int:
        """Store many events in few transactions; returns how many were new."""
        added = 0
        batch: list[dict[str, Any]] = []
        for event in events:
            batch.append(event)
            if len(batch) >= BATCH:
                added += self._add_batch(batch)
                batch = []
        if batch:
            added += self._add_batch(batch)
        return added

    def _add_batch(self, batch: list[dict[str, Any]]) -> int:
        with self._write() as tx:
            return sum(self._insert(tx.conn, event) for event in batch)

    def rebuild_view(self) -> int:
        """Derive the view again from the raw events (after an upgrade); returns events applied."""
        applied = 0
        with self._write() as tx:
            for table in VIEW_TABLES:
                tx.conn.execute(f"DELETE FROM {table}")
            for event in self.events():  # pages through the same transaction
                run_id, _, raw_time = event_identity(event)
                apply_event(tx.conn, event, run_id, time_key(raw_time))
                applied += 1
        return applied

    # -- raw events -------------------------------------------------------------------------

    def count(self) -> int:
        """Number of stored events."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

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
        # Row-value comparison: SQLite seeks the (event_time, id) index to the page start;
        # the equivalent OR form scans from the beginning each page (quadratic).
        where, params = ["(event_time, id) > (?, ?)"], []
        if isinstance(job, tuple):
            where.append("job_namespace = ? AND job_name = ?")
            params += list(job)
        elif job:
            where.append("job_name = ?")
            params.append(job)
        if since is not None:
            where.append("event_time >= ?")
            params.append(time_key(since))
        if until is not None:
            where.append("event_time < ?")
            params.append(time_key(until))
        sql = f"SELECT id, event_time, payload FROM events WHERE {' AND '.join(where)} ORDER BY event_time, id LIMIT {_PAGE}"
        last_time, last_id = "", 0
        while True:
            with self._lock:
                rows = self._conn.execute(sql, [last_time, last_id, *params]).fetchall()
            for row in rows:
                yield orjson.loads(row["payload"])  # ~4x json.loads on large events
            if len(rows) < _PAGE:
                return
            last_time, last_id = rows[-1]["event_time"], rows[-1]["id"]

    def latest_run_events(self) -> Iterator[dict[str, Any]]:
        """Events of each job's latest run (by the run's first event), oldest first.

        A lineage graph's current view is what each job's latest run reported; reading only
        those runs spares parsing the history of a large store.
        """
        yield from self._payloads(
            "WITH latest AS (SELECT run_id FROM (SELECT run_id, ROW_NUMBER() OVER ("
            "PARTITION BY job_namespace, job_name ORDER BY first_event_time DESC, run_id DESC) AS n FROM runs) "
            "WHERE n = 1) "
            "SELECT e.payload FROM events e JOIN latest l ON e.run_id = l.run_id ORDER BY e.event_time, e.id"
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
            "touching AS (SELECT DISTINCT rd.run_id FROM run_datasets rd "
            "JOIN wanted w ON rd.namespace = w.namespace AND rd.name = w.name) "
            "SELECT e.payload FROM events e JOIN touching t ON e.run_id = t.run_id ORDER BY e.event_time, e.id",
            params,
        )

    def _payloads(self, sql: str, params: Iterable[Any] = ()) -> Iterator[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(sql, list(params)).fetchall()
        for row in rows:
            yield orjson.loads(row[0])

    # -- the view: datasets -----------------------------------------------------------------

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, list(params)).fetchall()

    def _facets(self, table: str, where: str, params: Iterable[Any]) -> dict[str, Any]:
        rows = self._query(f"SELECT facet, value FROM {table} WHERE {where} ORDER BY facet", params)
        return {row["facet"]: _loads(row["value"]) for row in rows if row["value"] is not None}

    def dataset_versions(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """Schema history of a dataset, oldest first, with the run that produced each version."""
        return [{k: v for k, v in version.items() if not k.startswith("_")} for version in self._versions(namespace, name)]

    def _versions(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """Schema history of a dataset, oldest first, with the run that produced each version.

        A new version starts whenever a written schema differs from the one before (by event
        time). Datasets nobody writes (sources) get their versions from what readers saw.
        """
        rows = self._query(
            "SELECT * FROM schema_observations WHERE namespace = ? AND name = ? ORDER BY event_time, run_id",
            (namespace, name),
        )
        written = [r for r in rows if r["role"] in ("output", "dataset_event", "declared_output")]
        versions: list[dict[str, Any]] = []
        for row in written or rows:
            if versions and versions[-1]["schema_hash"] == row["schema_hash"]:
                current = versions[-1]
                current["last_seen"] = display_time(row["event_time"])
                if row["run_id"] and row["run_id"] not in current["runs"]:
                    current["runs"].append(row["run_id"])
                current["dataset_version"] = row["dataset_version"] or current["dataset_version"]
                continue
            versions.append(
                {
                    "version": len(versions) + 1,
                    "schema_hash": row["schema_hash"],
                    "fields": json.loads(row["fields"]),
                    "run_id": row["run_id"] or None,
                    "created_at": display_time(row["event_time"]),
                    "last_seen": display_time(row["event_time"]),
                    "runs": [row["run_id"]] if row["run_id"] else [],
                    "dataset_version": row["dataset_version"],
                    "_created_key": row["event_time"],
                }
            )
        return versions

    def _dataset_dict(self, row: sqlite3.Row, detail: bool) -> dict[str, Any]:
        namespace, name = row["namespace"], row["name"]
        facets = self._facets("dataset_facets", "namespace = ? AND name = ?", (namespace, name))
        versions = self.dataset_versions(namespace, name)
        out: dict[str, Any] = {
            "namespace": namespace,
            "name": name,
            "fields": versions[-1]["fields"] if versions else [],
            "current_version": versions[-1]["version"] if versions else None,
            "first_seen": display_time(row["first_seen"]),
            "last_seen": display_time(row["last_seen"]),
            "has_column_lineage": "columnLineage" in facets,
            "facets": facets,
        }
        if detail:
            out["versions"] = versions
            for key, role in (("produced_by", "output"), ("consumed_by", "input")):
                jobs = self._query(
                    "SELECT DISTINCT r.job_namespace, r.job_name FROM run_datasets d JOIN runs r USING (run_id) "
                    "WHERE d.namespace = ? AND d.name = ? AND d.role = ? ORDER BY 1, 2",
                    (namespace, name, role),
                )
                out[key] = [{"namespace": j[0], "name": j[1]} for j in jobs]
        return out

    def datasets(self) -> list[dict[str, Any]]:
        """Every dataset seen, with its latest schema fields and facets."""
        rows = self._query("SELECT * FROM datasets ORDER BY namespace, name")
        return [self._dataset_dict(row, detail=False) for row in rows]

    def dataset(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One dataset with its schema versions and the jobs that write and read it."""
        rows = self._query("SELECT * FROM datasets WHERE namespace = ? AND name = ?", (namespace, name))
        return self._dataset_dict(rows[0], detail=True) if rows else None

    def column_lineage(self, namespace: str, name: str) -> DatasetLineage | None:
        """The latest ``columnLineage`` facet reported for a dataset, as the model."""
        facets = self._facets("dataset_facets", "namespace = ? AND name = ? AND facet = 'columnLineage'", (namespace, name))
        facet = facets.get("columnLineage")
        return lineage_from_facet(DatasetRef(namespace, name), facet) if isinstance(facet, dict) else None

    # -- the view: jobs and runs ------------------------------------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        """Every job with its latest facets, latest run and the datasets its runs touched."""
        return [self._job_dict(row) for row in self._query("SELECT * FROM jobs ORDER BY namespace, name")]

    def _job_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        namespace, name = row["namespace"], row["name"]
        facets = self._facets("job_facets", "namespace = ? AND name = ?", (namespace, name))
        latest = self._query(
            "SELECT run_id, state, started_at, ended_at FROM runs WHERE job_namespace = ? AND job_name = ? "
            "ORDER BY COALESCE(started_at, first_event_time) DESC, last_event_time DESC LIMIT 1",
            (namespace, name),
        )
        io = self._query(
            "SELECT DISTINCT d.role, d.namespace, d.name FROM run_datasets d JOIN runs r USING (run_id) "
            "WHERE r.job_namespace = ? AND r.job_name = ? ORDER BY 1, 2, 3",
            (namespace, name),
        )
        sql, owners, docs = facets.get("sql") or {}, facets.get("ownership") or {}, facets.get("documentation") or {}
        return {
            "namespace": namespace,
            "name": name,
            "sql": sql.get("query"),
            "ownership": owners.get("owners") or [],
            "documentation": docs.get("description"),
            "job_type": _clean(facets.get("jobType")),
            "source_code_location": _clean(facets.get("sourceCodeLocation")),
            "facets": facets,
            "first_seen": display_time(row["first_seen"]),
            "last_seen": display_time(row["last_seen"]),
            "latest_run": (
                {
                    "run_id": latest[0]["run_id"],
                    "state": latest[0]["state"],
                    "started_at": display_time(latest[0]["started_at"]),
                    "ended_at": display_time(latest[0]["ended_at"]),
                }
                if latest
                else None
            ),
            "inputs": [{"namespace": r[1], "name": r[2]} for r in io if r[0] == "input"],
            "outputs": [{"namespace": r[1], "name": r[2]} for r in io if r[0] == "output"],
        }

    def runs(self, job_namespace: str | None = None, job_name: str | None = None) -> list[dict[str, Any]]:
        """Runs (oldest first), optionally of one job, with state, times and dataset versions."""
        where, params = [], []
        if job_namespace is not None:
            where.append("job_namespace = ?")
            params.append(job_namespace)
        if job_name is not None:
            where.append("job_name = ?")
            params.append(job_name)
        rows = self._query(
            "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY COALESCE(started_at, first_event_time), run_id",
            params,
        )
        versions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        return [self._run_dict(row, versions) for row in rows]

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run by id."""
        rows = self._query("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return self._run_dict(rows[0], {}) if rows else None

    def _run_dict(self, row: sqlite3.Row, cache: dict[tuple[str, str], list[dict[str, Any]]]) -> dict[str, Any]:
        run_id = row["run_id"]
        facets = self._facets("run_facets", "run_id = ?", (run_id,))
        nominal, parent, error = facets.get("nominalTime") or {}, facets.get("parent"), facets.get("errorMessage")
        datasets = self._query(
            "SELECT role, namespace, name, facets, dataset_version FROM run_datasets WHERE run_id = ? ORDER BY role, namespace, name",
            (run_id,),
        )
        out: dict[str, Any] = {
            "run_id": run_id,
            "job_namespace": row["job_namespace"],
            "job_name": row["job_name"],
            "state": row["state"],
            "started_at": display_time(row["started_at"]),
            "ended_at": display_time(row["ended_at"]),
            "nominal_start_time": nominal.get("nominalStartTime"),
            "nominal_end_time": nominal.get("nominalEndTime"),
            "parent": (
                {
                    "run_id": (parent.get("run") or {}).get("runId"),
                    "job_namespace": (parent.get("job") or {}).get("namespace"),
                    "job_name": (parent.get("job") or {}).get("name"),
                }
                if isinstance(parent, dict)
                else None
            ),
            "error_message": (
                {
                    "message": error.get("message"),
                    "programming_language": error.get("programmingLanguage"),
                    "stack_trace": error.get("stackTrace"),
                }
                if isinstance(error, dict)
                else None
            ),
            "facets": facets,
            "inputs": [],
            "outputs": [],
        }
        for ds in datasets:
            key = (ds["namespace"], ds["name"])
            if key not in cache:
                cache[key] = self._versions(*key)
            entry = {
                "namespace": ds["namespace"],
                "name": ds["name"],
                "dataset_version": ds["dataset_version"],
                "schema_version": _schema_version_for(cache[key], run_id, ds["role"], row["first_event_time"]),
                "facets": _loads(ds["facets"]) or {},
            }
            out["inputs" if ds["role"] == "input" else "outputs"].append(entry)
        return out


def _schema_version_for(versions: list[dict[str, Any]], run_id: str, role: str, run_time: str) -> int | None:
    """The schema version a run wrote (the one its output created or repeated) or read."""
    if role == "output":
        for version in versions:
            if run_id in version["runs"]:
                return int(version["version"])
    current = None
    for version in versions:
        if version["_created_key"] <= run_time:
            current = int(version["version"])
    return current or (int(versions[-1]["version"]) if versions and role == "output" else None)


class _Tx:
    """The connection inside one write transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def executescript_safe(self, script: str) -> None:
        """Run DDL statements one by one (``executescript`` would commit our transaction)."""
        for statement in script.split(";"):
            if statement.strip():
                self.conn.execute(statement)
