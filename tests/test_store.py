"""The embedded lineage store: idempotent raw events, an order-independent view, concurrent writers."""

from __future__ import annotations

import copy
import json
import multiprocessing
import random
import sqlite3
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from collectors.emit import to_event_dict
from collectors.emit.examples import WAREHOUSE, example_run
from collectors.store import EmbeddedStore, time_key
from lineage_auditor.model import ColumnRef, DatasetRef

T0 = datetime(2024, 5, 1, 6, 0, tzinfo=timezone.utc)
OUTPUT = "warehouse.analytics.user_orders"


def run_events(start: datetime = T0, *, fail: bool = False, job: str = "users_orders.build_user_orders") -> list[dict]:
    return [to_event_dict(e) for e in example_run(start=start, fail=fail, job_name=job)]


def with_schema(event: dict, columns: list[tuple[str, str]]) -> dict:
    """The event with the output's schema replaced (a pipeline that changed its table)."""
    event = copy.deepcopy(event)
    for out in event["outputs"]:
        out["facets"]["schema"]["fields"] = [{"name": n, "type": t} for n, t in columns]
    return event


@pytest.fixture
def store(tmp_path: Path):
    with EmbeddedStore(tmp_path / "lineage.db") as s:
        yield s


def view_snapshot(store: EmbeddedStore) -> dict:
    """Everything the auditor reads, as plain data."""
    return {
        "datasets": store.datasets(),
        "versions": store.dataset_versions(WAREHOUSE, OUTPUT),
        "jobs": store.jobs(),
        "runs": store.runs(),
        "lineage": repr(store.column_lineage(WAREHOUSE, OUTPUT)),
    }


def test_add_event_is_idempotent_on_run_type_and_time(store):
    start, complete = run_events()
    assert store.add_event(start) is True
    assert store.add_event(start) is False
    same_instant = copy.deepcopy(start)
    same_instant["eventTime"] = start["eventTime"].replace("Z", "+00:00")
    assert store.add_event(same_instant) is False, "the same instant written differently is the same event"
    assert store.add_events([start, complete, complete]) == 1
    assert store.count() == 2
    stored = list(store.events())
    assert stored == [start, complete], "raw events come back exactly as sent"


def test_rejects_what_is_not_an_event(store):
    with pytest.raises(ValueError):
        store.add_event({"eventType": "START"})
    with pytest.raises(ValueError):
        store.add_event({"eventType": "START", "eventTime": "yesterday", "run": {"runId": "x"}})
    assert store.count() == 0


def test_events_in_time_order_with_filters(store):
    first = run_events(T0)
    second = run_events(T0 + timedelta(hours=1), job="weather.load")
    store.add_events(list(reversed(second + first)))
    times = [e["eventTime"] for e in store.events()]
    assert times == sorted(times, key=time_key)
    assert [e["job"]["name"] for e in store.events(job="weather.load")] == ["weather.load"] * 2
    assert len(list(store.events(job=("lineage-audit", "weather.load")))) == 2
    assert len(list(store.events(job=("other", "weather.load")))) == 0
    later = list(store.events(since=T0 + timedelta(minutes=30)))
    assert [e["run"]["runId"] for e in later] == [second[0]["run"]["runId"]] * 2
    assert len(list(store.events(until="2024-05-01T06:00:02Z"))) == 1


def test_events_stream_past_one_page(store):
    events = []
    for i in range(1201):
        events.append({
            "eventType": "OTHER", "eventTime": (T0 + timedelta(seconds=i)).isoformat(), "producer": "p",
            "schemaURL": "s", "run": {"runId": str(uuid.uuid4())}, "job": {"namespace": "n", "name": "j"},
        })
    assert store.add_events(events) == 1201
    assert [e["eventTime"] for e in store.events()] == [e["eventTime"] for e in events]


def test_runs_view(store):
    ok = run_events(T0)
    failed = run_events(T0 + timedelta(days=1), fail=True)
    store.add_events(ok + failed)
    runs = store.runs(job_name="users_orders.build_user_orders")
    assert [r["state"] for r in runs] == ["COMPLETED", "FAILED"]
    done, broken = runs
    assert done["run_id"] == ok[0]["run"]["runId"]
    assert done["started_at"] == "2024-05-01T06:00:00Z" and done["ended_at"] == "2024-05-01T06:00:03Z"
    assert done["nominal_start_time"] == "2024-05-01T06:00:00Z"
    assert done["parent"]["job_name"] == "users_orders" and done["parent"]["run_id"]
    assert done["error_message"] is None
    assert broken["error_message"]["message"] == "users API unavailable past the deadline"
    assert broken["error_message"]["programming_language"] == "python"
    assert {d["name"] for d in done["inputs"]} == {"warehouse.staging.users", "warehouse.staging.orders"}
    users = next(d for d in done["inputs"] if d["name"].endswith("users"))
    assert users["facets"]["dataQualityMetrics"]["rowCount"] == 100
    assert users["facets"]["dataQualityAssertions"]["assertions"][0]["success"] is True
    [out] = done["outputs"]
    assert out["name"] == OUTPUT and out["schema_version"] == 1
    assert out["dataset_version"] == done["run_id"]
    assert out["facets"]["outputStatistics"]["rowCount"] == 100
    assert store.run(done["run_id"]) == done
    assert store.runs(job_namespace="nope") == []


def test_terminal_state_wins_whatever_the_arrival_order(store):
    start, complete = run_events()
    store.add_event(complete)
    store.add_event(start)
    [run] = store.runs()
    assert run["state"] == "COMPLETED"
    assert run["started_at"] == "2024-05-01T06:00:00Z"


def test_jobs_view(store):
    store.add_events(run_events(T0) + run_events(T0 + timedelta(days=1), fail=True))
    [job] = store.jobs()
    assert job["name"] == "users_orders.build_user_orders"
    assert job["sql"].startswith("INSERT INTO analytics.user_orders")
    assert job["ownership"] == [{"name": "team:analytics", "type": "TEAM"}]
    assert job["documentation"] == "One row per user with order count and revenue."
    assert job["job_type"] == {"processingType": "BATCH", "integration": "LINEAGE_AUDIT", "jobType": "TASK"}
    assert job["source_code_location"]["version"] == "0123abcdef0123abcdef0123abcdef0123abcdef"
    assert job["latest_run"]["state"] == "FAILED"
    assert {d["name"] for d in job["inputs"]} == {"warehouse.staging.users", "warehouse.staging.orders"}
    assert [d["name"] for d in job["outputs"]] == [OUTPUT]


def test_dataset_schema_versions_track_the_producing_run(store):
    v1 = run_events(T0)
    v1_again = run_events(T0 + timedelta(days=1))
    v2 = [with_schema(e, [("user_id", "integer"), ("revenue", "numeric")]) for e in run_events(T0 + timedelta(days=2))]
    store.add_events(v1 + v1_again + v2)
    versions = store.dataset_versions(WAREHOUSE, OUTPUT)
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["run_id"] == v1[0]["run"]["runId"]
    assert versions[0]["runs"] == [v1[0]["run"]["runId"], v1_again[0]["run"]["runId"]]
    assert [f["name"] for f in versions[0]["fields"]] == ["user_id", "country", "order_count", "revenue"]
    assert versions[1]["run_id"] == v2[0]["run"]["runId"]
    assert [f["name"] for f in versions[1]["fields"]] == ["user_id", "revenue"]
    dataset = store.dataset(WAREHOUSE, OUTPUT)
    assert dataset["current_version"] == 2
    assert [f["name"] for f in dataset["fields"]] == ["user_id", "revenue"]
    assert dataset["produced_by"] == [{"namespace": "lineage-audit", "name": "users_orders.build_user_orders"}]
    assert dataset["has_column_lineage"] is True
    assert store.dataset(WAREHOUSE, "missing") is None
    names = [d["name"] for d in store.datasets()]
    assert names == sorted(["warehouse.staging.users", "warehouse.staging.orders", OUTPUT])
    users = store.dataset(WAREHOUSE, "warehouse.staging.users")
    assert users["consumed_by"] and users["current_version"] == 1, "sources get versions from what readers saw"


def test_column_lineage_is_the_latest_facet(store):
    first = run_events(T0)
    later = copy.deepcopy(run_events(T0 + timedelta(days=1)))
    for event in later:
        event["outputs"][0]["facets"]["columnLineage"]["fields"].pop("country")
    store.add_events(later + first)  # the older run arrives last (a late replay)
    lineage = store.column_lineage(WAREHOUSE, OUTPUT)
    assert lineage.dataset == DatasetRef(WAREHOUSE, OUTPUT)
    assert lineage.field_names() == ["user_id", "order_count", "revenue"]
    revenue = next(f for f in lineage.fields if f.name == "revenue")
    [source] = revenue.inputs
    assert source.column == ColumnRef(DatasetRef(WAREHOUSE, "warehouse.staging.orders"), "amount")
    assert [(t.type, t.subtype) for t in source.transformations] == [("DIRECT", "AGGREGATION")]
    assert {i.transformations[0].subtype for i in lineage.dataset_inputs} == {"JOIN", "GROUP_BY"}
    assert store.column_lineage(WAREHOUSE, "warehouse.staging.users") is None


def test_view_does_not_depend_on_arrival_order(tmp_path):
    events = (
        run_events(T0)
        + run_events(T0 + timedelta(days=1), fail=True)
        + [with_schema(e, [("user_id", "integer")]) for e in run_events(T0 + timedelta(days=2))]
    )
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    with EmbeddedStore(tmp_path / "a.db") as ordered, EmbeddedStore(tmp_path / "b.db") as mixed:
        ordered.add_events(events)
        for event in shuffled:
            mixed.add_event(event)
        assert view_snapshot(mixed) == view_snapshot(ordered)
        before = view_snapshot(mixed)
        assert mixed.rebuild_view() == len(events)
        assert view_snapshot(mixed) == before


def test_deleted_facet_is_removed(store):
    start, complete = run_events()
    complete = copy.deepcopy(complete)
    complete["job"]["facets"]["documentation"] = {"_producer": "p", "_schemaURL": "s", "_deleted": True}
    store.add_events([start, complete])
    assert store.jobs()[0]["documentation"] is None


def test_store_survives_reopen_and_uses_wal(tmp_path):
    path = tmp_path / "nested" / "lineage.db"
    with EmbeddedStore(path) as s:
        s.add_events(run_events())
    with EmbeddedStore(path) as s:
        assert s.count() == 2
        assert s.runs()[0]["state"] == "COMPLETED"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def _writer(path: str, worker: int, runs: int, ready, go) -> None:
    """One pipeline process: START + COMPLETE per run, one transaction per event."""
    store = EmbeddedStore(path)
    ready.set()
    go.wait()
    for i in range(runs):
        for event in run_events(T0 + timedelta(minutes=i), job=f"pipeline{worker}.step"):
            store.add_event(event)
    # every process also re-sends one shared event: it must be stored once
    store.add_event(SHARED)
    store.close()


SHARED = {
    "eventType": "OTHER", "eventTime": "2024-05-01T00:00:00Z", "producer": "p", "schemaURL": "s",
    "run": {"runId": "01900000-0000-7000-8000-000000000000"}, "job": {"namespace": "n", "name": "shared"},
}


def test_concurrent_writer_processes_lose_nothing(tmp_path):
    path = str(tmp_path / "lineage.db")
    ctx = multiprocessing.get_context("spawn")
    workers, runs = 3, 40
    go = ctx.Event()
    readies = [ctx.Event() for _ in range(workers)]
    procs = [ctx.Process(target=_writer, args=(path, w, runs, readies[w], go)) for w in range(workers)]
    for proc in procs:
        proc.start()
    for ready in readies:
        assert ready.wait(60), "a writer process did not start"
    go.set()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0, "a writer process failed (locked or corrupt database)"
    with EmbeddedStore(path) as s:
        assert s.count() == workers * runs * 2 + 1
        assert len(s.runs()) == workers * runs + 1
        assert all(r["state"] == "COMPLETED" for r in s.runs() if r["job_name"] != "shared")
        assert {j["name"] for j in s.jobs()} == {f"pipeline{w}.step" for w in range(workers)} | {"shared"}
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_time_key_normalises_offsets_and_precision():
    assert time_key("2024-05-01T08:00:00+02:00") == "2024-05-01T06:00:00.000000000Z"
    assert time_key("2024-05-01T06:00:00.123456789Z") == "2024-05-01T06:00:00.123456789Z"
    assert time_key(datetime(2024, 5, 1, 6, 0)) == "2024-05-01T06:00:00.000000000Z"
    assert time_key("2024-05-01T06:00:00.1Z") < time_key("2024-05-01T06:00:00.123Z")
    with pytest.raises(ValueError):
        time_key("May 1st")


def test_raw_payload_kept_verbatim(store):
    start, _ = run_events()
    start["run"]["facets"]["custom_thing"] = {"_producer": "p", "_schemaURL": "s", "nested": {"ü": [1, 2.5, None]}}
    store.add_event(start)
    [back] = store.events()
    assert json.dumps(back, sort_keys=True) == json.dumps(start, sort_keys=True)
