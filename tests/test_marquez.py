"""Against a real Marquez server: what we post comes back, as datasets, column lineage, runs
and raw events, and copying or replaying events never duplicates one.

The server is started once per test run by the ``marquez_server`` fixture
(tests/conftest_marquez.py); if it cannot start, these tests fail with the reason.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from collectors.marquez.cli import collect
from collectors.marquez.client import DOWNSTREAM, UPSTREAM, dataset_node, event_key, field_node, job_node
from collectors.marquez.collect import copy_events
from collectors.store import EmbeddedStore
from lineage_auditor.graph import LineageGraph
from lineage_auditor.model import ColumnRef, DatasetRef
from tests.marquez_events import USER_ORDERS, Scenario
from tests.olspec import validate_event

pytestmark = pytest.mark.marquez


def _post(client, events) -> None:
    for event in events:
        validate_event(event)
        client.post_event(event)


def _events_of(events, scenario: Scenario) -> list[dict]:
    return [e for e in events if (e.get("job") or {}).get("namespace") == scenario.job_namespace]


def _graph_signature(events) -> tuple[set, set]:
    """Table edges and column edges of the graph the auditor builds from these events."""
    graph = LineageGraph.from_events(events)
    tables = {(str(job), "in", str(d)) for job in graph.jobs() for d in graph.job_inputs(job)}
    tables |= {(str(job), "out", str(d)) for job in graph.jobs() for d in graph.job_outputs(job)}
    columns = {(e.source, e.target, e.job, e.transformations) for e in graph.column_edges()}
    runs = {(str(job), run.run_id, run.state) for job in graph.jobs() if (run := graph.latest_run(job))}
    return tables, columns, runs


def test_posted_events_become_datasets_with_schema_fields(marquez_client):
    s = Scenario.fresh()
    _post(marquez_client, s.run_events())

    out = marquez_client.dataset(s.ds_namespace, s.table("user_orders"))
    assert [(f["name"], f["type"]) for f in out["fields"]] == USER_ORDERS
    names = {d["name"] for d in marquez_client.datasets(s.ds_namespace)}
    assert names == {s.table("users"), s.table("orders"), s.table("user_orders")}
    assert [j["name"] for j in marquez_client.jobs(s.job_namespace)] == [s.job]
    assert list(marquez_client.dataset_versions(s.ds_namespace, s.table("user_orders")))
    assert s.job_namespace in {n["name"] for n in marquez_client.namespaces()}


def test_column_lineage_returns_what_the_facet_declared(marquez_client):
    s = Scenario.fresh()
    _post(marquez_client, s.run_events())
    out = s.table("user_orders")

    revenue = marquez_client.column_lineage(field_node(s.ds_namespace, out, "revenue"), direction=UPSTREAM)
    assert {(e.source.dataset.name, e.source.field) for e in revenue.column_edges()} == {(s.table("orders"), "amount")}

    whole = marquez_client.column_lineage(dataset_node(s.ds_namespace, out), direction=UPSTREAM)
    got = {(e.source.dataset.name, e.source.field, e.target.dataset.name, e.target.field) for e in whole.column_edges()}
    assert got == s.edges()

    impact = marquez_client.downstream_columns(s.ds_namespace, s.table("orders"), "amount")
    assert impact == {ColumnRef(DatasetRef(s.ds_namespace, out), "revenue")}


def test_lineage_graph_is_filtered_by_direction(marquez_client):
    s = Scenario.fresh()
    _post(marquez_client, s.run_events())
    users = dataset_node(s.ds_namespace, s.table("users"))

    down = set(marquez_client.lineage(users, direction=DOWNSTREAM).nodes)
    assert down == {users, job_node(s.job_namespace, s.job), dataset_node(s.ds_namespace, s.table("user_orders"))}
    assert set(marquez_client.lineage(users, direction=UPSTREAM).nodes) == {users}
    # Marquez itself answers undirected: the sibling input is in the raw neighbourhood.
    assert dataset_node(s.ds_namespace, s.table("orders")) in marquez_client.lineage(users).nodes


def test_runs_are_completed_or_failed_with_their_error_message(marquez_client):
    s = Scenario.fresh()
    ok = s.run_events()
    failed = s.run_events(fail="users API unreachable after 5 retries")
    _post(marquez_client, ok + failed)

    runs = {r["id"]: r for r in marquez_client.runs(s.job_namespace, s.job)}
    good, bad = runs[ok[0]["run"]["runId"]], runs[failed[0]["run"]["runId"]]
    assert good["state"] == "COMPLETED"
    assert bad["state"] == "FAILED"
    assert bad["facets"]["errorMessage"]["message"] == "users API unreachable after 5 retries"
    assert {v["datasetVersionId"]["name"] for v in good["inputDatasetVersions"]} == {s.table("users"), s.table("orders")}
    assert [v["datasetVersionId"]["name"] for v in good["outputDatasetVersions"]] == [s.table("user_orders")]
    assert marquez_client.run(bad["id"])["state"] == "FAILED"


def test_replaying_events_keeps_each_once_and_the_graph_intact(marquez_client):
    s = Scenario.fresh()
    events = s.run_events() + s.run_events()
    _post(marquez_client, events)
    before = _events_of(marquez_client.events(), s)
    lineage_before = marquez_client.column_lineage(dataset_node(s.ds_namespace, s.table("user_orders"))).column_edges()

    added = [marquez_client.add_event(e) for e in events]  # a replay of the same spool
    result = copy_events(_ListStore(events), marquez_client)  # and a second copy

    assert added == [False] * len(events)
    assert (result.added, result.already_present) == (0, len(events))
    after = _events_of(marquez_client.events(), s)
    assert sorted(map(event_key, after)) == sorted(map(event_key, events))
    assert len(after) == len(before) == len(events)
    lineage_after = marquez_client.column_lineage(dataset_node(s.ds_namespace, s.table("user_orders"))).column_edges()
    assert set(lineage_after) == set(lineage_before)
    assert {(e.source.field, e.target.field) for e in lineage_after} == {(c, o) for _, c, _, o in s.edges()}


def test_a_raw_double_post_is_read_back_once(marquez_client):
    s = Scenario.fresh()
    event = s.run_events()[0]
    marquez_client.post_event(event)
    marquez_client.post_event(event)  # Marquez stores both copies
    assert [event_key(e) for e in _events_of(marquez_client.events(), s)] == [event_key(event)]


def test_events_since_skips_older_events(marquez_client):
    s = Scenario.fresh()
    old = s.run_events(start=datetime(2024, 1, 1, tzinfo=timezone.utc))
    new = s.run_events(start=datetime(2024, 6, 1, tzinfo=timezone.utc))
    _post(marquez_client, old + new)
    got = _events_of(marquez_client.events(since="2024-03-01T00:00:00Z"), s)
    assert [event_key(e) for e in got] == [event_key(e) for e in new]


def test_collect_marquez_to_embedded_copies_the_same_events_and_graph(marquez_client, marquez_url, tmp_path):
    s = Scenario.fresh()
    events = s.run_events() + s.run_events(fail="boom")
    _post(marquez_client, events)
    db = tmp_path / "copy.db"
    host = marquez_url.removeprefix("http://")

    first = CliRunner().invoke(collect, ["--from", f"marquez://{host}", "--to", f"embedded:{db}", "--format", "json"])
    second = CliRunner().invoke(collect, ["--from", f"marquez://{host}", "--to", f"embedded:{db}", "--format", "json"])

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert '"added": 0' in second.output
    with EmbeddedStore(db) as store:
        copied = _events_of(store.events(), s)
    from_marquez = _events_of(marquez_client.events(), s)
    assert sorted(map(event_key, copied)) == sorted(map(event_key, events)) == sorted(map(event_key, from_marquez))
    assert _graph_signature(copied) == _graph_signature(events) == _graph_signature(from_marquez)


def test_collect_embedded_to_marquez_twice_adds_each_event_once(marquez_client, marquez_url, tmp_path):
    s = Scenario.fresh()
    events = s.run_events() + s.run_events()
    db = tmp_path / "laptop.db"
    with EmbeddedStore(db) as store:
        for event in events:
            store.add_event(event)
    host = marquez_url.removeprefix("http://")
    for _ in range(2):
        done = CliRunner().invoke(collect, ["--from", f"embedded:{db}", "--to", f"marquez://{host}"])
        assert done.exit_code == 0, done.output
    after = _events_of(marquez_client.events(), s)
    assert sorted(map(event_key, after)) == sorted(map(event_key, events))
    out = marquez_client.dataset(s.ds_namespace, s.table("user_orders"))
    assert [f["name"] for f in out["fields"]] == [n for n, _ in USER_ORDERS]


def test_up_again_reuses_the_running_server(marquez_server):
    first = marquez_server.recorded()
    again = marquez_server.up()
    assert again.reused and again.pid == first.pid and again.port == first.port
    assert marquez_server.status()["healthy"] is True


class _ListStore:
    """Events held in memory, as a store (the source of a replay)."""

    def __init__(self, events):
        self._events = list(events)

    def events(self):
        return iter(self._events)

    def add_event(self, event):  # pragma: no cover - only a source here
        raise AssertionError("read-only")
