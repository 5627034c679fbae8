"""Tables of the embedded store: raw events, and a current view derived from them.

The raw ``events`` table is the source of truth (OpenLineage JSON, unique on run id + event
type + event time). Every other table is a view that :mod:`collectors.store.view` keeps up to
date and can rebuild from ``events``. View rows carry the event time they came from and only
a newer event replaces them, so the view does not depend on the order events arrive in
(a spool replayed late, two pipelines writing at once).
"""

from __future__ import annotations

SCHEMA_VERSION = 1

VIEW_TABLES = (
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

CREATE TABLE IF NOT EXISTS datasets (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE IF NOT EXISTS dataset_facets (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    facet      TEXT NOT NULL,
    value      TEXT,
    event_time TEXT NOT NULL,
    run_id     TEXT,
    PRIMARY KEY (namespace, name, facet)
);

CREATE TABLE IF NOT EXISTS schema_observations (
    namespace       TEXT NOT NULL,
    name            TEXT NOT NULL,
    event_time      TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    role            TEXT NOT NULL,
    schema_hash     TEXT NOT NULL,
    fields          TEXT NOT NULL,
    dataset_version TEXT,
    PRIMARY KEY (namespace, name, event_time, run_id, role)
);

CREATE TABLE IF NOT EXISTS jobs (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE IF NOT EXISTS job_facets (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    facet      TEXT NOT NULL,
    value      TEXT,
    event_time TEXT NOT NULL,
    run_id     TEXT,
    PRIMARY KEY (namespace, name, facet)
);

CREATE TABLE IF NOT EXISTS runs (
    run_id           TEXT PRIMARY KEY,
    job_namespace    TEXT NOT NULL,
    job_name         TEXT NOT NULL,
    state            TEXT,
    state_time       TEXT,
    started_at       TEXT,
    ended_at         TEXT,
    first_event_time TEXT NOT NULL,
    last_event_time  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job_name, job_namespace, first_event_time);

CREATE TABLE IF NOT EXISTS run_facets (
    run_id     TEXT NOT NULL,
    facet      TEXT NOT NULL,
    value      TEXT,
    event_time TEXT NOT NULL,
    PRIMARY KEY (run_id, facet)
);

CREATE TABLE IF NOT EXISTS run_datasets (
    run_id     TEXT NOT NULL,
    role       TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    facets     TEXT,
    dataset_version TEXT,
    event_time TEXT NOT NULL,
    PRIMARY KEY (run_id, role, namespace, name)
);
CREATE INDEX IF NOT EXISTS run_datasets_by_dataset ON run_datasets (name, namespace);
"""
