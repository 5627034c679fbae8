"""The Marquez reader against a real Marquez 0.51.1's recorded answers, replayed over HTTP.

CI cannot start Marquez (its registry does not serve ``marquez-api``), so these tests are
what keeps the reader honest about the server as it really behaves: the answers were
recorded from Marquez 0.51.1 after posting ``posted_events.json`` (the shared folder's
README). tests/marquez_replay.py serves them on 127.0.0.1 and refuses any request that was
never recorded, so every assertion below is about an answer Marquez really gave.
"""

from __future__ import annotations

import pytest

from collectors.marquez.client import (
    BOTH, COLUMN_LINEAGE_JOB, DOWNSTREAM, UPSTREAM, MarquezClient, MarquezHTTPError, dataset_node, event_key, field_node,
)
from lineage_auditor.graph import LineageGraph
from lineage_auditor.model import DIRECT, IDENTITY, ColumnRef, DatasetRef, Transformation
from tests.marquez_replay import Recordings, ReplayServer, replay_marquez

NS = "postgres://db.example.com:5432"
JOBS = "shop-etl"
USERS, ORDERS = DatasetRef(NS, "shop.public.users"), DatasetRef(NS, "shop.public.orders")
USER_ORDERS, CHURN = DatasetRef(NS, "analytics.public.user_orders"), DatasetRef(NS, "features.public.churn")


def col(ds: DatasetRef, name: str) -> ColumnRef:
    return ColumnRef(ds, name)


@pytest.fixture(scope="module")
def recordings() -> Recordings:
    return Recordings.load()


@pytest.fixture
def server(recordings):
    with replay_marquez(recordings) as replay:
        yield replay
    assert not replay.unmatched, f"the reader asked what Marquez was never asked: {replay.unmatched}"


def client(server: ReplayServer, page_size: int = 100) -> MarquezClient:
    return MarquezClient(server.url, page_size=page_size, timeout=10)


def test_column_lineage_downstream_of_a_source_column_is_empty_in_marquez(server):
    view = client(server).column_lineage(field_node(NS, ORDERS.name, "amount"), depth=5, direction=DOWNSTREAM)
    assert view.nodes == {}
    assert view.column_edges() == []


def test_downstream_impact_of_a_source_column_does_not_trust_that_empty_answer(server, recordings):
    impact = client(server, page_size=3).downstream_columns(NS, ORDERS.name, "amount")
    assert impact == {col(USER_ORDERS, "revenue_usd")}
    # The answer is the embedded store's: the graph of the events that were posted.
    assert impact == set(LineageGraph.from_events(recordings.posted).column_downstream(col(ORDERS, "amount")))
    assert not [p for m, p, q in server.requests if p == "/api/v1/column-lineage"]


def test_column_lineage_downstream_of_an_intermediate_column(server):
    start = field_node(NS, USER_ORDERS.name, "revenue_usd")
    view = client(server).column_lineage(start, depth=5, direction=DOWNSTREAM)
    assert view.columns() == {col(USER_ORDERS, "revenue_usd"), col(CHURN, "revenue_usd")}
    assert {(e.source, e.target) for e in view.column_edges()} == {(col(USER_ORDERS, "revenue_usd"), col(CHURN, "revenue_usd"))}
    # The same answer, read both ways, also names what feeds the start column.
    both = client(server).column_lineage(start, depth=5, direction=BOTH)
    assert {(e.source, e.target) for e in both.column_edges()} >= {
        (col(ORDERS, "amount"), col(USER_ORDERS, "revenue_usd")), (col(ORDERS, "currency"), col(USER_ORDERS, "revenue_usd"))}


def test_column_lineage_of_a_dataset_keeps_only_the_deprecated_transformation_pair(server):
    view = client(server).column_lineage(dataset_node(NS, USER_ORDERS.name), depth=5, direction=UPSTREAM)
    edges = {(e.source, e.target): e for e in view.column_edges()}
    assert set(edges) == {
        (col(USERS, "id"), col(USER_ORDERS, "user_id")),
        (col(USERS, "email"), col(USER_ORDERS, "email")),
        (col(USERS, "country"), col(USER_ORDERS, "country")),
        (col(ORDERS, "amount"), col(USER_ORDERS, "revenue_usd")),
        (col(ORDERS, "currency"), col(USER_ORDERS, "revenue_usd")),
    }
    # Only ``country``'s event carried transformationType/Description; Marquez drops the
    # per-input ``transformations`` lists, so every other edge comes back without a type.
    assert edges[(col(USERS, "country"), col(USER_ORDERS, "country"))].transformations == frozenset(
        {Transformation(DIRECT, IDENTITY)})
    assert {k for k, e in edges.items() if e.transformations} == {(col(USERS, "country"), col(USER_ORDERS, "country"))}
    assert {e.job for e in edges.values()} == {COLUMN_LINEAGE_JOB}
    # The dataset-level INDIRECT inputs (the JOIN keys) are not kept either.
    assert col(ORDERS, "user_id") not in view.columns()


def test_lineage_is_undirected_in_marquez_and_directed_by_the_reader(server):
    reader = client(server)
    node = dataset_node(NS, USER_ORDERS.name)
    both = reader.lineage(node, depth=2)
    assert set(both.nodes) == {node, dataset_node(NS, USERS.name), dataset_node(NS, ORDERS.name),
                               f"job:{JOBS}:build_user_orders", f"job:{JOBS}:build_churn"}
    assert set(reader.lineage(node, depth=2, direction=UPSTREAM).nodes) == {
        node, dataset_node(NS, USERS.name), dataset_node(NS, ORDERS.name), f"job:{JOBS}:build_user_orders"}
    assert set(reader.lineage(node, depth=2, direction=DOWNSTREAM).nodes) == {node, f"job:{JOBS}:build_churn"}


def test_datasets_come_with_their_fields(server):
    datasets = {d["name"]: [(f["name"], f["type"]) for f in d["fields"]] for d in client(server).datasets(NS)}
    assert datasets == {
        USER_ORDERS.name: [("user_id", "INT"), ("email", "TEXT"), ("country", "TEXT"), ("revenue_usd", "NUMERIC")],
        CHURN.name: [("user_key", "TEXT"), ("revenue_usd", "NUMERIC")],
        ORDERS.name: [("order_id", "INT"), ("user_id", "INT"), ("amount", "NUMERIC"), ("currency", "TEXT")],
        USERS.name: [("id", "INT"), ("email", "TEXT"), ("country", "TEXT")],
    }
    one = client(server).dataset(NS, USER_ORDERS.name)
    assert {c["name"] for c in one["columnLineage"]} == {"user_id", "email", "country", "revenue_usd"}


def test_dataset_versions_include_the_one_a_schema_less_start_made(server):
    versions = list(client(server, page_size=10).dataset_versions(NS, USER_ORDERS.name))
    assert [len(v["fields"]) for v in versions] == [4, 0]
    assert {v["createdByRun"]["id"] for v in versions} == {"01a23c00-0000-7000-8000-00000000a001"}


def test_jobs_runs_and_run_facets(server):
    reader = client(server)
    assert sorted(j["name"] for j in reader.jobs(JOBS)) == ["build_churn", "build_user_orders"]
    runs = list(reader.runs(JOBS, "build_churn"))
    assert [(r["id"][-4:], r["state"]) for r in runs] == [("a003", "FAILED"), ("a002", "COMPLETED")]
    assert runs[0]["facets"]["errorMessage"]["message"] == "relation features.public.churn is locked"
    facets = reader.run_facets("01a23c00-0000-7000-8000-00000000a003")
    assert facets["errorMessage"]["message"] == "relation features.public.churn is locked"


def test_events_are_paged_and_the_stored_duplicate_is_read_once(server, recordings):
    got = list(client(server, page_size=3).events())
    # Marquez stored 7 (the re-sent COMPLETE twice); the reader returns each event once.
    assert len(got) == 6
    assert [event_key(e) for e in got] == list(dict.fromkeys(event_key(e) for e in recordings.posted))
    pages = [q for m, p, q in server.requests if p == "/api/v1/events/lineage"]
    assert [q["offset"] for q in pages] == ["0", "3", "6"]
    # The graph from Marquez's events is the graph from the events that were posted.
    ours, theirs = LineageGraph.from_events(recordings.posted), LineageGraph.from_events(got)
    assert sorted(map(repr, theirs.column_edges())) == sorted(map(repr, ours.column_edges()))


def test_search(server):
    hits = client(server).search("orders")
    assert [(h["type"], h["name"]) for h in hits] == [
        ("DATASET", USER_ORDERS.name), ("DATASET", ORDERS.name), ("JOB", "build_user_orders")]


def test_an_invalid_event_is_refused_with_marquez_s_reasons(server, recordings):
    with pytest.raises(MarquezHTTPError, match="answered 422: .*eventTime must not be null") as caught:
        client(server).post_event(recordings.get("post_invalid_event").body)
    assert caught.value.status == 422


def test_a_valid_event_is_accepted(server, recordings):
    client(server).post_event(recordings.get("post_valid_event").body)
    assert ("POST", "/api/v1/lineage", {}) in server.requests
