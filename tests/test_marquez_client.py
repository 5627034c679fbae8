"""MarquezClient logic that does not need the server: paging, path encoding, direction
filtering of Marquez's undirected answers, deduplication of raw events, store copying.

The answers below are shaped as Marquez 0.51 documents them (spec/openapi.yml) and as its
resources write them (column-lineage ``inEdges`` name the node itself as origin; events
are stored once per POST). tests/test_marquez.py checks the same behaviour against a real
Marquez.
"""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import unquote

import httpx
import pytest

from collectors.marquez.client import (
    BOTH, DOWNSTREAM, UPSTREAM, LineageView, MarquezClient, MarquezHTTPError, dataset_node, event_key, field_node,
)
from collectors.marquez.collect import copy_events, open_store
from collectors.store import EmbeddedStore
from lineage_auditor.errors import LineageAuditError
from lineage_auditor.graph import LineageGraph
from lineage_auditor.model import AGGREGATION, DIRECT, ColumnRef, DatasetRef, Transformation
from tests.marquez_events import Scenario


class EventsEndpoint:
    """``/api/v1/lineage`` POST and ``/api/v1/events/lineage`` GET as Marquez answers them:
    every POST kept, filtered on event time, paged with limit/offset and totalCount."""

    def __init__(self) -> None:
        self.stored: list[dict] = []
        self.posts = 0
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST" and request.url.path == "/api/v1/lineage":
            self.posts += 1
            self.stored.append(json.loads(request.content))
            return httpx.Response(201)
        if request.url.path == "/api/v1/events/lineage":
            q = request.url.params
            after, before = _t(q.get("after")), _t(q.get("before"))
            rows = [e for e in self.stored if after <= _t(e["eventTime"]) < before]
            rows.sort(key=lambda e: _t(e["eventTime"]), reverse=q.get("sortDirection", "desc") == "desc")
            off, lim = int(q.get("offset", 0)), int(q.get("limit", 100))
            return httpx.Response(200, json={"events": rows[off:off + lim], "totalCount": len(rows)})
        return httpx.Response(404, json={"code": 404, "message": "not found"})


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _client(handler, page_size: int = 100) -> MarquezClient:
    return MarquezClient("http://marquez.test", transport=httpx.MockTransport(handler), page_size=page_size)


def test_lists_page_until_total_count():
    seen: list[tuple[str, int]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((unquote(request.url.raw_path.decode().split("?")[0]), int(request.url.params["offset"])))
        assert request.url.params["limit"] == "2"
        offset = int(request.url.params["offset"])
        items = [{"name": f"d{i}"} for i in range(offset, min(offset + 2, 5))]
        return httpx.Response(200, json={"datasets": items, "totalCount": 5})

    names = [d["name"] for d in _client(handler, page_size=2).datasets("postgres://db:5432")]
    assert names == ["d0", "d1", "d2", "d3", "d4"]
    assert seen == [("/api/v1/namespaces/postgres://db:5432/datasets", o) for o in (0, 2, 4)]


def test_namespace_with_slashes_is_one_path_segment():
    paths: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path)
        return httpx.Response(200, json={"runs": []})

    list(_client(handler).runs("postgres://db:5432", "a/job"))
    assert paths[0].startswith(b"/api/v1/namespaces/postgres%3A%2F%2Fdb%3A5432/jobs/a%2Fjob/runs")


def test_lists_without_total_count_stop_on_a_short_page():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        calls.append(offset)
        return httpx.Response(200, json={"runs": [{"id": str(i)} for i in range(offset, min(offset + 3, 7))]})

    assert len(list(_client(handler, page_size=3).runs("ns", "job"))) == 7
    assert calls == [0, 3, 6]


# An undirected Marquez lineage answer: users -> job -> out, orders -> job. Each node names
# itself in ``data`` as Marquez's do (see the recorded lineage answer in the contract tests).
def _node(kind: str, name: str, ins: list[str], outs: list[str]) -> dict:
    node_id = f"{kind.lower()}:ns:{name}"
    return {"id": node_id, "type": kind, "data": {"id": {"namespace": "ns", "name": name}, "namespace": "ns", "name": name},
            "inEdges": [{"origin": i, "destination": node_id} for i in ins],
            "outEdges": [{"origin": node_id, "destination": o} for o in outs]}


GRAPH = {"graph": [
    _node("DATASET", "users", [], ["job:ns:job"]),
    _node("DATASET", "orders", [], ["job:ns:job"]),
    _node("JOB", "job", ["dataset:ns:users", "dataset:ns:orders"], ["dataset:ns:out"]),
    _node("DATASET", "out", ["job:ns:job"], []),
]}


def test_lineage_direction_is_recovered_client_side():
    client = _client(lambda r: httpx.Response(200, json=GRAPH))
    assert set(client.lineage("dataset:ns:users", direction=DOWNSTREAM).nodes) == {
        "dataset:ns:users", "job:ns:job", "dataset:ns:out"}
    assert set(client.lineage("dataset:ns:out", direction=UPSTREAM).nodes) == {
        "dataset:ns:out", "job:ns:job", "dataset:ns:users", "dataset:ns:orders"}
    assert set(client.lineage("dataset:ns:users", direction=UPSTREAM).nodes) == {"dataset:ns:users"}
    assert len(client.lineage("dataset:ns:users", direction=BOTH).nodes) == 4


def _field(ds: str, field: str, inputs: list[tuple[str, str]], ins: list[str], outs: list[str]) -> dict:
    node = f"datasetField:ns:{ds}:{field}"
    return {
        "id": node, "type": "DATASET_FIELD",
        "data": {"namespace": "ns", "dataset": ds, "field": field, "fieldType": "INT",
                 "transformationType": "AGGREGATION" if inputs else None,
                 "inputFields": [{"namespace": "ns", "dataset": d, "field": f, "transformationType": "AGGREGATION"}
                                 for d, f in inputs]},
        # as ColumnLineageService writes them: inEdges with the node itself as origin
        "inEdges": [{"origin": node, "destination": i} for i in ins],
        "outEdges": [{"origin": node, "destination": o} for o in outs],
    }


COLUMNS = {"graph": [
    _field("orders", "amount", [], [], ["datasetField:ns:out:revenue"]),
    _field("out", "revenue", [("orders", "amount")], ["datasetField:ns:orders:amount"], ["datasetField:ns:mart:total"]),
    _field("mart", "total", [("out", "revenue")], ["datasetField:ns:out:revenue"], []),
    _field("orders", "id", [], [], ["datasetField:ns:out:n"]),
    _field("out", "n", [("orders", "id")], ["datasetField:ns:orders:id"], []),
]}


def test_column_lineage_edges_and_direction():
    params = []

    def handler(request: httpx.Request) -> httpx.Response:
        params.append(dict(request.url.params))
        return httpx.Response(200, json=COLUMNS)

    client = _client(handler)
    down = client.column_lineage(field_node("ns", "orders", "amount"), direction=DOWNSTREAM)
    assert down.columns() == {ColumnRef(DatasetRef("ns", t), f) for t, f in
                              (("orders", "amount"), ("out", "revenue"), ("mart", "total"))}
    assert params[-1] == {"nodeId": "datasetField:ns:orders:amount", "depth": "20", "withDownstream": "true"}

    up = client.column_lineage(field_node("ns", "mart", "total"), direction=UPSTREAM)
    aggregation = frozenset({Transformation(DIRECT, AGGREGATION)})
    assert {(e.source.field, e.target.field, e.transformations) for e in up.column_edges()} == {
        ("revenue", "total", aggregation), ("amount", "revenue", aggregation)}
    assert params[-1]["withDownstream"] == "false"

    whole = client.column_lineage(dataset_node("ns", "out"), direction=UPSTREAM)
    assert {str(c) for c in whole.columns()} == {"out.revenue", "out.n", "orders.amount", "orders.id"}


def test_downstream_impact_comes_from_the_stored_events_not_column_lineage():
    endpoint = EventsEndpoint()
    client = _client(endpoint)
    s = Scenario.fresh()
    for event in s.run_events():
        client.post_event(event)
    amount = ColumnRef(DatasetRef(s.ds_namespace, s.table("orders")), "amount")
    expected = set(LineageGraph.from_events(s.run_events()).column_downstream(amount))
    assert expected
    assert client.downstream_columns(amount.dataset.namespace, amount.dataset.name, "amount") == expected
    assert not [r for r in endpoint.requests if r.url.path == "/api/v1/column-lineage"]
    reads = len(endpoint.requests)
    client.downstream_columns(amount.dataset.namespace, amount.dataset.name, "amount")
    assert len(endpoint.requests) == reads  # the graph is kept until the next post


def test_column_lineage_of_an_unknown_node_is_empty_but_other_errors_raise():
    client = _client(lambda r: httpx.Response(404, json={"code": 404, "message": "Could not find node"}))
    assert client.column_lineage(field_node("ns", "x", "y")).nodes == {}
    broken = _client(lambda r: httpx.Response(500, text="boom"))
    with pytest.raises(MarquezHTTPError, match="answered 500: boom"):
        broken.column_lineage(field_node("ns", "x", "y"))


def test_unreachable_marquez_is_a_clear_error():
    def refuse(request):
        raise httpx.ConnectError("connection refused")

    with pytest.raises(LineageAuditError, match="cannot reach Marquez at http://marquez.test"):
        list(_client(refuse).namespaces())


def test_events_are_read_oldest_first_once_each_and_since_filters():
    endpoint = EventsEndpoint()
    client = _client(endpoint, page_size=2)
    s = Scenario.fresh()
    old, new = s.run_events(start=datetime.fromisoformat("2024-01-01T00:00:00+00:00")), s.run_events(
        start=datetime.fromisoformat("2031-06-01T00:00:00+00:00"))  # after Marquez's default 'before'
    for event in old + new + old[:1]:
        client.post_event(event)
    dup = dict(old[1], eventTime=old[1]["eventTime"].replace("Z", "+00:00"))  # same instant, other format
    client.post_event(dup)

    got = list(client.events())
    assert [event_key(e) for e in got] == [event_key(e) for e in old + new]
    assert [event_key(e) for e in client.events(since="2030-01-01T00:00:00Z")] == [event_key(e) for e in new]
    assert endpoint.requests[-1].url.params["sortDirection"] == "asc"


def test_add_event_posts_only_what_marquez_lacks():
    endpoint = EventsEndpoint()
    client = _client(endpoint)
    events = Scenario.fresh().run_events()
    assert [client.add_event(e) for e in events] == [True, True]
    assert [client.add_event(e) for e in events] == [False, False]
    assert endpoint.posts == 2


def test_copy_marquez_to_embedded_and_back_is_idempotent(tmp_path):
    endpoint = EventsEndpoint()
    marquez = _client(endpoint)
    s = Scenario.fresh()
    events = s.run_events() + s.run_events(fail="boom")
    for event in events:
        marquez.post_event(event)

    with EmbeddedStore(tmp_path / "a.db") as store:
        first, second = copy_events(marquez, store), copy_events(marquez, store)
        assert (first.added, second.added, second.already_present) == (4, 0, 4)
        assert sorted(map(event_key, store.events())) == sorted(map(event_key, events))

        back = copy_events(store, marquez)
        assert (back.added, back.already_present) == (0, 4)
        extra = s.run_events()
        for event in extra:
            store.add_event(event)
        assert copy_events(store, marquez).added == 2
    assert endpoint.posts == 6


def test_store_uris():
    assert open_store("marquez://127.0.0.1:5000").url == "http://127.0.0.1:5000"
    assert open_store("http://127.0.0.1:5000/").url == "http://127.0.0.1:5000"
    for bad in ("marquez://", "mysql://x", "embeded"):
        with pytest.raises(LineageAuditError):
            open_store(bad)


def test_lineage_view_neighbours_ignore_edge_orientation():
    view = LineageView.from_json(COLUMNS)
    assert view.neighbours("datasetField:ns:out:revenue", UPSTREAM) == {"datasetField:ns:orders:amount"}
    assert view.neighbours("datasetField:ns:out:revenue", DOWNSTREAM) == {"datasetField:ns:mart:total"}


def test_collect_command_between_embedded_stores(tmp_path):
    from click.testing import CliRunner

    from collectors.marquez.cli import collect

    events = Scenario.fresh().run_events()
    with EmbeddedStore(tmp_path / "laptop.db") as store:
        for event in events:
            store.add_event(event)
    args = ["--from", f"embedded:{tmp_path / 'laptop.db'}", "--to", f"embedded:{tmp_path / 'server.db'}", "--format", "json"]
    first, second = CliRunner().invoke(collect, args), CliRunner().invoke(collect, args)
    assert first.exit_code == 0 and json.loads(first.output)["added"] == 2, first.output
    assert json.loads(second.output) == {"from": args[1], "to": args[3], "read": 2, "added": 0, "already_present": 2}

    from lineage_auditor.cli import _register, cli

    _register()
    missing = CliRunner().invoke(cli, ["collect", "--from", f"embedded:{tmp_path / 'nope.db'}", "--to", "embedded:x.db"])
    assert missing.exit_code == 2, missing.output
    assert f"{tmp_path / 'nope.db'}: no embedded lineage store here" in missing.output
    assert not (tmp_path / "nope.db").exists()


def test_each_inputs_transformations_survive_marquez_through_the_deprecated_pair():
    """Marquez keeps only the field-level transformationType/Description and reports it on
    each input of the field (as the recorded 0.51.1 answers show); our pair names every
    input's type and subtype, so the reader gets each input's transformations back."""
    from lineage_auditor.facets import column_lineage_facet
    from lineage_auditor.model import CONDITIONAL, INDIRECT, TRANSFORMATION, DatasetLineage, InputField, OutputField

    orders, out = DatasetRef("ns", "shop.orders"), DatasetRef("ns", "out")
    sent = {
        ColumnRef(orders, "amount"): [Transformation(DIRECT, AGGREGATION)],
        ColumnRef(orders, "currency"): [Transformation(INDIRECT, CONDITIONAL)],
        ColumnRef(orders, "email"): [Transformation(DIRECT, TRANSFORMATION, masking=True)],
    }
    facet = column_lineage_facet(DatasetLineage(out, [OutputField("revenue", 0, [InputField(c, t) for c, t in sent.items()])]))
    spec = facet["fields"]["revenue"]
    assert spec["transformationType"] == AGGREGATION  # the strongest DIRECT subtype

    node = "datasetField:ns:out:revenue"
    pair = {"transformationType": spec["transformationType"], "transformationDescription": spec["transformationDescription"]}
    answer = {"graph": [
        {"id": node, "type": "DATASET_FIELD",
         "data": {"namespace": "ns", "dataset": "out", "field": "revenue", "fieldType": "NUMERIC", **pair,
                  "inputFields": [{"namespace": "ns", "dataset": c.dataset.name, "field": c.field, **pair} for c in sent]},
         "inEdges": [{"origin": node, "destination": f"datasetField:ns:shop.orders:{c.field}"} for c in sent],
         "outEdges": []},
        *({"id": f"datasetField:ns:shop.orders:{c.field}", "type": "DATASET_FIELD",
           "data": {"namespace": "ns", "dataset": "shop.orders", "field": c.field, "inputFields": []},
           "inEdges": [], "outEdges": [{"origin": f"datasetField:ns:shop.orders:{c.field}", "destination": node}]}
          for c in sent),
    ]}
    got = {e.source: e.transformations for e in LineageView.from_json(answer).column_edges()}
    assert got == {c: frozenset(t) for c, t in sent.items()}
