"""The embedded lineage store: idempotent validated events, an order-independent current view, concurrent writers."""

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
from collectors.store import EmbeddedStore
from lineage_auditor.audit.view import AuditView, load_lineage
from lineage_auditor.errors import EventError, StoreError
from lineage_auditor.events import RunState
from lineage_auditor.events import run_events as run_events_of
from lineage_auditor.graph import LineageGraph
from lineage_auditor.model import ColumnRef, DatasetRef
from lineage_auditor.times import parse_time, time_key

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


def current(store: EmbeddedStore) -> tuple[LineageGraph, AuditView]:
    """The one current view of a store: graph of each job's latest run, and the audit view."""
    graph, view, _ = load_lineage(store.events())
    return graph, view


def view_snapshot(store: EmbeddedStore) -> dict:
    """What the auditor reads from a store, as plain data."""
    graph, view = current(store)
    latest = LineageGraph.from_events(store.latest_run_events())
    out = DatasetRef(WAREHOUSE, OUTPUT)
    return {
        "datasets": graph.datasets(),
        "versions": [(v.version, v.fields, v.run_id, v.schema_hash) for v in view.dataset_versions(out)],
        "runs": [r.to_json() for r in view.runs()],
        "latest": {str(j): graph.latest_run(j) for j in graph.jobs()},
        "edges": sorted(map(repr, graph.column_edges())),
        "latest_index": sorted(map(repr, latest.column_edges())),
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


POISON = {
    "inputs is a list of strings": {"inputs": ["x"]},
    "outputs holds a list": {"outputs": [[1]]},
    "inputs is a number": {"inputs": 5},
    "schema fields is text": {"outputs": [{"namespace": "n", "name": "t", "facets": {"schema": {"fields": "abc"}}}]},
    "column lineage of numbers": {"outputs": [{"namespace": "n", "name": "t", "facets": {"columnLineage": {"fields": [1, 2]}}}]},
    "owners is text": {"outputs": [{"namespace": "n", "name": "t", "facets": {"ownership": {"owners": "bob"}}}]},
    "a facet that is not an object": {"run": {"runId": "r", "facets": {"nominalTime": "today"}}},
    "unknown event type": {"eventType": "FINISHED"},
    "job without a name": {"job": {"namespace": "n"}},
}


@pytest.mark.parametrize("case", sorted(POISON))
def test_refuses_malformed_events_at_the_door(store, case):
    good = run_events()[0]
    bad = {**copy.deepcopy(good), **POISON[case]}
    with pytest.raises(EventError) as err:
        store.add_event(bad)
    assert "Traceback" not in str(err.value) and str(err.value)
    assert store.count() == 0, "nothing of a refused event is stored"
    store.add_event(good)
    graph, view = current(store)  # the store stays readable
    assert [r.state for r in view.runs()] == ["START"]


def test_rejects_what_is_not_an_event(store):
    with pytest.raises(EventError, match="eventTime"):
        store.add_event({"eventType": "START"})
    with pytest.raises(EventError, match="eventTime"):
        store.add_event({"eventType": "START", "eventTime": "yesterday", "run": {"runId": "x"}})
    with pytest.raises(EventError, match="object"):
        store.add_event(["not", "an", "event"])  # type: ignore[arg-type]
    assert store.count() == 0


@pytest.mark.parametrize("kind", ["text", "foreign sqlite", "truncated", "folder", "newer format"])
def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path, kind):
    path = tmp_path / "lineage.db"
    if kind == "text":
        path.write_text("hello, this is not a database\n" * 100)
    elif kind == "foreign sqlite":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE customers (id INTEGER)")
        conn.commit()
        conn.close()
    elif kind == "truncated":
        with EmbeddedStore(path) as s:
            s.add_events(run_events(T0) + run_events(T0 + timedelta(days=1)))
        data = path.read_bytes()
        (tmp_path / "lineage.db-wal").unlink(missing_ok=True)
        path.write_bytes(data[: len(data) // 2 + 100])
    elif kind == "folder":
        path.mkdir()
    else:
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
    with pytest.raises(StoreError) as err:
        with EmbeddedStore(path) as s:
            list(s.events())
            list(s.latest_run_events())
    assert str(path) in str(err.value)


def test_format_1_store_is_upgraded_and_its_bad_events_left_out(tmp_path):
    """A store written before the event model: eight view tables and an unvalidated event."""
    path = tmp_path / "old.db"
    good = run_events(T0)
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, event_type TEXT NOT NULL, "
        "event_time TEXT NOT NULL, job_namespace TEXT, job_name TEXT, payload TEXT NOT NULL, added_at TEXT NOT NULL, "
        "UNIQUE (run_id, event_type, event_time));"
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, job_namespace TEXT, job_name TEXT, state TEXT);"
        "CREATE TABLE datasets (namespace TEXT, name TEXT); PRAGMA user_version = 1;"
    )
    poisoned = {**copy.deepcopy(good[1]), "inputs": ["x"], "eventTime": "2024-05-02T00:00:00Z"}
    for event in good + [poisoned]:
        conn.execute("INSERT INTO events (run_id, event_type, event_time, job_namespace, job_name, payload, added_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", (event["run"]["runId"], event["eventType"], time_key(event["eventTime"]),
                     event["job"]["namespace"], event["job"]["name"], json.dumps(event), "x"))
    conn.commit()
    conn.close()
    with EmbeddedStore(path) as s:
        assert s.count() == 3
        skipped: list[EventError] = []
        latest = LineageGraph.from_events(run_events_of(s.latest_run_events(), skipped.append))
        assert latest.latest_run(latest.jobs()[0]).state == "COMPLETE"
        assert [str(e) for e in skipped] == ["inputs[0]: expected an object, got a string"], "reported, not a crash"
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "datasets" not in tables and "runs" not in tables and {"run_index", "run_dataset_index"} <= tables
    conn.close()


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


def test_runs_from_the_store(store):
    ok = run_events(T0)
    failed = run_events(T0 + timedelta(days=1), fail=True)
    store.add_events(ok + failed)
    graph, view = current(store)
    runs = view.runs()
    assert [r.state for r in runs] == [RunState.COMPLETE, RunState.FAIL]
    done, broken = runs
    assert done.run_id == ok[0]["run"]["runId"]
    assert (done.started_at, done.ended_at) == (parse_time("2024-05-01T06:00:00Z"), parse_time("2024-05-01T06:00:03Z"))
    assert done.error == "" and broken.error == "users API unavailable past the deadline"
    assert {d.name for d in done.inputs} == {"warehouse.staging.users", "warehouse.staging.orders"}
    assert done.row_counts == {DatasetRef(WAREHOUSE, OUTPUT): 100}
    [job] = graph.jobs()
    assert graph.latest_run(job).state == RunState.FAIL
    assert graph.info(job)["sql"].startswith("INSERT INTO analytics.user_orders")


def test_terminal_state_wins_whatever_the_arrival_order(store):
    start, complete = run_events()
    store.add_event(complete)
    store.add_event(start)
    graph, view = current(store)
    [run] = view.runs()
    assert run.state == RunState.COMPLETE
    assert run.started_at == parse_time("2024-05-01T06:00:00Z")
    assert graph.latest_run(graph.jobs()[0]).state == RunState.COMPLETE


def test_dataset_schema_versions_track_the_producing_run(store):
    v1 = run_events(T0)
    v1_again = run_events(T0 + timedelta(days=1))
    v2 = [with_schema(e, [("user_id", "integer"), ("revenue", "numeric")]) for e in run_events(T0 + timedelta(days=2))]
    store.add_events(v2 + v1_again + v1)  # arrival order is not time order
    _, view = current(store)
    versions = view.dataset_versions(DatasetRef(WAREHOUSE, OUTPUT))
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].run_id == v1[0]["run"]["runId"]
    assert [f.name for f in versions[0].fields] == ["user_id", "country", "order_count", "revenue"]
    assert versions[1].run_id == v2[0]["run"]["runId"]
    assert [f.name for f in versions[1].fields] == ["user_id", "revenue"]


def test_column_lineage_is_the_latest_run(store):
    first = run_events(T0)
    later = copy.deepcopy(run_events(T0 + timedelta(days=1)))
    for event in later:
        event["outputs"][0]["facets"]["columnLineage"]["fields"].pop("country")
    store.add_events(later + first)  # the older run arrives last (a late replay)
    graph = LineageGraph.from_events(store.latest_run_events())
    out = DatasetRef(WAREHOUSE, OUTPUT)
    fed = {e.target.field for e in graph.column_edges() if e.target.dataset == out}
    assert fed == {"user_id", "order_count", "revenue"}
    revenue = ColumnRef(out, "revenue")
    amount = ColumnRef(DatasetRef(WAREHOUSE, "warehouse.staging.orders"), "amount")
    [edge] = [e for e in graph.column_edges() if e.source == amount and e.target == revenue]
    assert {(t.type, t.subtype) for t in edge.transformations} == {("DIRECT", "AGGREGATION")}


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


def test_deleted_facet_is_removed(store):
    start, complete = run_events()
    complete = copy.deepcopy(complete)
    complete["job"]["facets"]["documentation"] = {"_producer": "p", "_schemaURL": "s", "_deleted": True}
    store.add_events([start, complete])
    graph, _ = current(store)
    [job] = graph.jobs()
    assert "documentation" not in graph.info(job)["facets"] and not graph.info(job).get("description")


def test_store_survives_reopen_and_uses_wal(tmp_path):
    path = tmp_path / "nested" / "lineage.db"
    with EmbeddedStore(path) as s:
        s.add_events(run_events())
    with EmbeddedStore(path) as s:
        assert s.count() == 2
        assert current(s)[1].runs()[0].state == RunState.COMPLETE
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
        graph, view = current(s)
        assert len(view.runs()) == workers * runs + 1
        assert all(r.state == RunState.COMPLETE for r in view.runs() if r.job.name != "shared")
        assert {j.name for j in graph.jobs()} == {f"pipeline{w}.step" for w in range(workers)} | {"shared"}
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
