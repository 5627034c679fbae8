"""Fold one OpenLineage event into the store's current view.

Each function runs inside the caller's write transaction. "Latest" always means latest
event time, never latest arrival: every upsert compares event times, so replaying an old
spool after newer runs leaves the view as if events had arrived in order.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

TERMINAL_STATES = {"COMPLETE": "COMPLETED", "FAIL": "FAILED", "ABORT": "ABORTED"}
ACTIVE_STATES = {"START": "RUNNING", "RUNNING": "RUNNING"}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def schema_hash(fields: list[Any]) -> str:
    """Identity of a schema: names, types and nested fields (descriptions do not count)."""

    def shape(items: list[Any]) -> list[Any]:
        out = []
        for item in items or []:
            if isinstance(item, dict):
                out.append([item.get("name"), item.get("type"), shape(item.get("fields") or [])])
        return out

    return hashlib.sha256(_json(shape(fields)).encode()).hexdigest()[:16]


def _upsert_entity(conn: sqlite3.Connection, table: str, namespace: str, name: str, when: str) -> None:
    conn.execute(
        f"INSERT INTO {table} (namespace, name, first_seen, last_seen) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (namespace, name) DO UPDATE SET "
        "first_seen = MIN(first_seen, excluded.first_seen), "
        "last_seen = MAX(last_seen, excluded.last_seen)",
        (namespace, name, when, when),
    )


def _upsert_facets(
    conn: sqlite3.Connection, table: str, keys: dict[str, str], facets: Any, when: str, run_id: str | None
) -> None:
    """Latest-wins per facet key; ``{"_deleted": true}`` removes the facet (OpenLineage rule)."""
    if not isinstance(facets, dict):
        return
    key_cols = list(keys)
    conflict = ", ".join(key_cols + ["facet"])
    with_run = table != "run_facets"
    for facet, value in facets.items():
        if value is None:
            continue
        deleted = isinstance(value, dict) and value.get("_deleted") is True
        cols = key_cols + ["facet", "value", "event_time"] + (["run_id"] if with_run else [])
        params = list(keys.values()) + [facet, None if deleted else _json(value), when]
        params += [run_id] if with_run else []
        updates = "value = excluded.value, event_time = excluded.event_time"
        updates += ", run_id = excluded.run_id" if with_run else ""
        conn.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            f"ON CONFLICT ({conflict}) DO UPDATE SET {updates} "
            f"WHERE excluded.event_time >= {table}.event_time",
            params,
        )


def _observe_schema(
    conn: sqlite3.Connection, dataset: dict[str, Any], role: str, when: str, run_id: str
) -> None:
    facets = dataset.get("facets") or {}
    schema = facets.get("schema")
    if not isinstance(schema, dict) or schema.get("_deleted") or not isinstance(schema.get("fields"), list):
        return
    version = facets.get("version")
    dataset_version = version.get("datasetVersion") if isinstance(version, dict) else None
    conn.execute(
        "INSERT OR REPLACE INTO schema_observations "
        "(namespace, name, event_time, run_id, role, schema_hash, fields, dataset_version) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            dataset.get("namespace", ""),
            dataset["name"],
            when,
            run_id,
            role,
            schema_hash(schema["fields"]),
            _json(schema["fields"]),
            dataset_version,
        ),
    )


def _apply_dataset(
    conn: sqlite3.Connection, dataset: Any, role: str, when: str, run_id: str | None
) -> None:
    if not isinstance(dataset, dict) or not dataset.get("name"):
        return
    namespace, name = str(dataset.get("namespace", "")), str(dataset["name"])
    _upsert_entity(conn, "datasets", namespace, name, when)
    _upsert_facets(conn, "dataset_facets", {"namespace": namespace, "name": name}, dataset.get("facets"), when, run_id)
    _observe_schema(conn, dataset, role, when, run_id or "")
    if run_id and role in ("input", "output"):
        _record_run_dataset(conn, dataset, role, when, run_id)


def _record_run_dataset(conn: sqlite3.Connection, dataset: dict[str, Any], role: str, when: str, run_id: str) -> None:
    """What one run read or wrote: the dataset, its version facet, its input/output facets."""
    namespace, name = str(dataset.get("namespace", "")), str(dataset["name"])
    io_facets = dataset.get("inputFacets" if role == "input" else "outputFacets") or {}
    version = (dataset.get("facets") or {}).get("version")
    dataset_version = version.get("datasetVersion") if isinstance(version, dict) else None
    row = conn.execute(
        "SELECT facets, dataset_version, event_time FROM run_datasets "
        "WHERE run_id=? AND role=? AND namespace=? AND name=?",
        (run_id, role, namespace, name),
    ).fetchone()
    merged = json.loads(row[0]) if row and row[0] else {}
    newer = row is None or when >= row[2]
    for key, value in io_facets.items():
        if newer or key not in merged:
            merged[key] = value
    if row and not (newer and dataset_version):
        dataset_version = row[1] or dataset_version
    conn.execute(
        "INSERT INTO run_datasets (run_id, role, namespace, name, facets, dataset_version, event_time) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, role, namespace, name) DO UPDATE SET "
        "facets = excluded.facets, dataset_version = excluded.dataset_version, "
        "event_time = MAX(run_datasets.event_time, excluded.event_time)",
        (run_id, role, namespace, name, _json(merged), dataset_version, when),
    )


def _next_state(row: sqlite3.Row | None, event_type: str, when: str) -> tuple[str | None, str | None]:
    """Run state after this event: a terminal event beats any START/RUNNING, whatever the order."""
    new = TERMINAL_STATES.get(event_type) or ACTIVE_STATES.get(event_type)
    old, old_time = (row["state"], row["state_time"]) if row else (None, None)
    if new is None:
        return (old, old_time) if old else ("NEW", when)
    if old is None or old == "NEW":
        return new, when
    new_terminal = event_type in TERMINAL_STATES
    old_terminal = old in TERMINAL_STATES.values()
    if new_terminal != old_terminal:
        return (new, when) if new_terminal else (old, old_time)
    return (new, when) if when >= old_time else (old, old_time)


def _apply_run(conn: sqlite3.Connection, event: dict[str, Any], run_id: str, when: str) -> None:
    job = event.get("job") or {}
    event_type = str(event.get("eventType") or "OTHER")
    row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    state, state_time = _next_state(row, event_type, when)
    started = [row["started_at"]] if row and row["started_at"] else []
    ended = [row["ended_at"]] if row and row["ended_at"] else []
    if event_type == "START":
        started.append(when)
    if event_type in TERMINAL_STATES:
        ended.append(when)
    conn.execute(
        "INSERT INTO runs (run_id, job_namespace, job_name, state, state_time, started_at, ended_at, "
        "first_event_time, last_event_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (run_id) DO UPDATE SET state = excluded.state, state_time = excluded.state_time, "
        "started_at = excluded.started_at, ended_at = excluded.ended_at, "
        "first_event_time = MIN(runs.first_event_time, excluded.first_event_time), "
        "last_event_time = MAX(runs.last_event_time, excluded.last_event_time)",
        (
            run_id,
            str(job.get("namespace", "")),
            str(job.get("name", "")),
            state,
            state_time,
            min(started) if started else None,
            max(ended) if ended else None,
            when,
            when,
        ),
    )
    _upsert_facets(conn, "run_facets", {"run_id": run_id}, (event.get("run") or {}).get("facets"), when, None)


def apply_event(conn: sqlite3.Connection, event: dict[str, Any], run_id: str, when: str) -> None:
    """Fold one event (already stored raw) into the view tables."""
    job = event.get("job")
    is_run_event = isinstance(event.get("run"), dict)
    if isinstance(job, dict) and job.get("name"):
        namespace, name = str(job.get("namespace", "")), str(job["name"])
        _upsert_entity(conn, "jobs", namespace, name, when)
        _upsert_facets(conn, "job_facets", {"namespace": namespace, "name": name}, job.get("facets"), when, run_id if is_run_event else None)
    if is_run_event:
        _apply_run(conn, event, run_id, when)
    declared = "declared_" if not is_run_event else ""
    for dataset in event.get("inputs") or []:
        _apply_dataset(conn, dataset, f"{declared}input", when, run_id if is_run_event else None)
    for dataset in event.get("outputs") or []:
        _apply_dataset(conn, dataset, f"{declared}output", when, run_id if is_run_event else None)
    if isinstance(event.get("dataset"), dict):
        _apply_dataset(conn, event["dataset"], "dataset_event", when, None)

