"""Reading a store in one pass: the graph keeps each job's latest run, the view every run."""

from __future__ import annotations

from datetime import timedelta

from audit_events import NS, ORDERS, T0, USERS, dataset, run_events
from lineage_auditor.audit.view import load_lineage
from lineage_auditor.model import DatasetRef


def test_graph_follows_the_latest_run_and_the_view_keeps_them_all():
    old = run_events("build", [dataset("raw.users", USERS)], [dataset("mart.a", {"x": "INT"})], at=T0)
    new = run_events("build", [dataset("raw.orders", ORDERS)], [dataset("mart.b", {"y": "INT"})], at=T0 + timedelta(hours=1))
    late_old_event = dict(old[1], eventTime=(T0 + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    graph, view, count = load_lineage(iter(old[:1] + new + [late_old_event]))
    assert count == 4
    (job,) = graph.jobs()
    assert graph.job_inputs(job) == [DatasetRef(NS, "warehouse.raw.orders")]
    assert graph.job_outputs(job) == [DatasetRef(NS, "warehouse.mart.b")]
    assert {r.run_id for r in view.runs(job)} == {old[0]["run"]["runId"], new[0]["run"]["runId"]}


def test_an_empty_store_gives_an_empty_graph():
    graph, view, count = load_lineage(iter([]))
    assert count == 0 and graph.jobs() == []
