"""Tables of the embedded store: raw events, and an index of runs.

The raw ``events`` table is the source of truth (OpenLineage JSON, unique on run id + event
type + event time). The two index tables only say which runs to read: each run's job and
first event time (for "latest run of every job") and the datasets it touched (for "runs
that touched these datasets"). Everything else readers derive from the events themselves.

Format 1 (before the one event model) kept a derived view in eight more tables; opening
such a store drops them and builds the index from its events.
"""

from __future__ import annotations

SCHEMA_VERSION = 2

OLD_VIEW_TABLES = (
    "datasets",
    "dataset_facets",
    "schema_observations",
    "jobs",
    "job_facets",
    "runs",
    "run_facets",
    "run_datasets",
)

DDL = """
CREATE TABLE IF NOT EXISTS events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    event_time    TEXT NOT NULL,
    job_namespace TEXT,
    job_name      TEXT,
    payload       TEXT NOT NULL,
    added_at      TEXT NOT NULL,
    UNIQUE (run_id, event_type, event_time)
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (event_time, id);
CREATE INDEX IF NOT EXISTS events_by_job ON events (job_name, job_namespace, event_time);

CREATE TABLE IF NOT EXISTS run_index (
    run_id           TEXT PRIMARY KEY,
    job_namespace    TEXT NOT NULL,
    job_name         TEXT NOT NULL,
    first_event_time TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS run_index_by_job ON run_index (job_namespace, job_name, first_event_time);

CREATE TABLE IF NOT EXISTS run_dataset_index (
    run_id    TEXT NOT NULL,
    role      TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    PRIMARY KEY (run_id, role, namespace, name)
);
CREATE INDEX IF NOT EXISTS run_dataset_index_by_dataset ON run_dataset_index (name, namespace);
"""
