"""The lineage graph: built from SQL lineage and from OpenLineage events, and its queries."""

from __future__ import annotations

import random

import pytest

from lineage_auditor.facets import column_lineage_facet
from lineage_auditor.graph import ColumnEdge, Hop, JobRef, LineageGraph
from lineage_auditor.times import parse_time
from lineage_auditor.model import (
    AGGREGATION,
    DIRECT,
    FILTER,
    GROUP_BY,
    IDENTITY,
    INDIRECT,
    JOIN,
    TRANSFORMATION,
    ColumnRef,
    DatasetLineage,
    DatasetRef,
    InputField,
    OutputField,
    SqlLineageResult,
    StatementLineage,
    Transformation,
)

NS = "postgres://db:5432"
RAW_ORDERS = DatasetRef(NS, "shop.raw.orders")
RAW_USERS = DatasetRef(NS, "shop.raw.users")
STG_ORDERS = DatasetRef(NS, "shop.stg.orders")
USER_REV = DatasetRef(NS, "shop.mart.user_rev")
FEATURES = DatasetRef(NS, "shop.ml.features")

IDENT = Transformation(DIRECT, IDENTITY)
TRANSFORM = Transformation(DIRECT, TRANSFORMATION)
MASKED = Transformation(DIRECT, TRANSFORMATION, masking=True)
AGG = Transformation(DIRECT, AGGREGATION)
T_FILTER = Transformation(INDIRECT, FILTER)
T_JOIN = Transformation(INDIRECT, JOIN)
T_GROUP = Transformation(INDIRECT, GROUP_BY)


def col(ds: DatasetRef, name: str) -> ColumnRef:
    return ColumnRef(ds, name)


def out(name: str, pos: int, *inputs: tuple[ColumnRef, Transformation], type_: str | None = None) -> OutputField:
    return OutputField(name, pos, [InputField(c, [t]) for c, t in inputs], type_)


def sql_result() -> SqlLineageResult:
    """Three statements: raw -> staging -> mart (join, group by, md5) -> ML features."""
    stg = DatasetLineage(
        STG_ORDERS,
        [
            out("id", 0, (col(RAW_ORDERS, "id"), IDENT), type_="INT"),
            out("user_id", 1, (col(RAW_ORDERS, "user_id"), IDENT)),
            out("amount", 2, (col(RAW_ORDERS, "amount"), TRANSFORM)),
        ],
        [InputField(col(RAW_ORDERS, "status"), [T_FILTER])],
    )
    rev = DatasetLineage(
        USER_REV,
        [
            out("user_id", 0, (col(RAW_USERS, "id"), IDENT)),
            out("email_hash", 1, (col(RAW_USERS, "email"), MASKED)),
            out("revenue", 2, (col(STG_ORDERS, "amount"), AGG)),
        ],
        [
            InputField(col(STG_ORDERS, "user_id"), [T_JOIN]),
            InputField(col(RAW_USERS, "id"), [T_JOIN, T_GROUP]),
            InputField(col(RAW_USERS, "email"), [T_GROUP]),
        ],
    )
    feat = DatasetLineage(
        FEATURES,
        [
            out("user_id", 0, (col(USER_REV, "user_id"), IDENT)),
            out("revenue", 1, (col(USER_REV, "revenue"), IDENT)),
            out("email_hash", 2, (col(USER_REV, "email_hash"), IDENT)),
        ],
    )
    stmts = [
        StatementLineage(0, "etl.sql", 1, "CREATE_TABLE_AS", "CREATE TABLE stg.orders AS ...", [RAW_ORDERS], [stg]),
        StatementLineage(1, "etl.sql", 5, "CREATE_TABLE_AS", "CREATE TABLE mart.user_rev AS ...", [STG_ORDERS, RAW_USERS], [rev]),
        StatementLineage(2, "etl.sql", 12, "CREATE_TABLE_AS", "CREATE TABLE ml.features AS ...", [USER_REV], [feat]),
    ]
    return SqlLineageResult(statements=stmts)


@pytest.fixture()
def graph() -> LineageGraph:
    return LineageGraph.from_sql_result(sql_result())


JOB0, JOB1, JOB2 = (JobRef("sql", f"etl.sql#{i}") for i in range(3))


# ------------------------------------------------------------------ building from SQL


def test_sql_result_nodes(graph: LineageGraph) -> None:
    assert graph.datasets() == sorted([RAW_ORDERS, RAW_USERS, STG_ORDERS, USER_REV, FEATURES])
    assert graph.jobs() == [JOB0, JOB1, JOB2]
    assert graph.columns(STG_ORDERS) == [col(STG_ORDERS, "id"), col(STG_ORDERS, "user_id"), col(STG_ORDERS, "amount")]
    # Input columns the SQL mentions become columns of their (unknown-schema) dataset.
    assert set(graph.columns(RAW_ORDERS)) == {col(RAW_ORDERS, n) for n in ("id", "user_id", "amount", "status")}
    assert graph.info(col(STG_ORDERS, "id"))["type"] == "INT"
    assert graph.info(JOB1)["sql"] == "CREATE TABLE mart.user_rev AS ..."
    assert graph.info(JOB1)["line"] == 5
    assert graph.producers(USER_REV) == [JOB1]
    assert graph.consumers(RAW_USERS) == [JOB1]
    assert graph.job_inputs(JOB1) == [RAW_USERS, STG_ORDERS]
    assert graph.job_outputs(JOB1) == [USER_REV]


def test_dataset_level_inputs_become_indirect_edges_to_every_output_column(graph: LineageGraph) -> None:
    edges = {(e.source, e.target): e for e in graph.column_edges() if e.job == JOB0}
    status = col(RAW_ORDERS, "status")
    for name in ("id", "user_id", "amount"):
        assert edges[(status, col(STG_ORDERS, name))].transformations == frozenset({T_FILTER})
    assert edges[(col(RAW_ORDERS, "amount"), col(STG_ORDERS, "amount"))] == ColumnEdge(
        col(RAW_ORDERS, "amount"), col(STG_ORDERS, "amount"), JOB0, frozenset({TRANSFORM})
    )
    assert len(edges) == 6


def test_the_job_namespace_is_configurable() -> None:
    g = LineageGraph.from_sql_result(sql_result(), job_namespace="dbt")
    assert g.jobs()[0] == JobRef("dbt", "etl.sql#0")


# ------------------------------------------------------------------ table-level queries


def test_upstream_nearest_first_with_depth(graph: LineageGraph) -> None:
    assert graph.upstream(FEATURES) == [USER_REV, RAW_USERS, STG_ORDERS, RAW_ORDERS]
    assert graph.upstream(FEATURES, depth=1) == [USER_REV]
    assert graph.upstream(FEATURES, depth=2) == [USER_REV, RAW_USERS, STG_ORDERS]
    assert graph.upstream(FEATURES, depth=0) == []
    assert graph.upstream(RAW_ORDERS) == []


def test_downstream_with_depth(graph: LineageGraph) -> None:
    assert graph.downstream(RAW_ORDERS) == [STG_ORDERS, USER_REV, FEATURES]
    assert graph.downstream(RAW_ORDERS, depth=2) == [STG_ORDERS, USER_REV]
    assert graph.downstream(FEATURES) == []


def test_upstream_and_downstream_of_a_job(graph: LineageGraph) -> None:
    assert graph.upstream(JOB1) == [RAW_USERS, STG_ORDERS, RAW_ORDERS]
    assert graph.upstream(JOB1, depth=1) == [RAW_USERS, STG_ORDERS]
    assert graph.downstream(JOB1) == [USER_REV, FEATURES]


def test_upstream_depths_count_jobs_crossed(graph: LineageGraph) -> None:
    assert graph.upstream_depths(FEATURES) == {USER_REV: 1, RAW_USERS: 2, STG_ORDERS: 2, RAW_ORDERS: 3}
    assert graph.upstream_depths(RAW_ORDERS) == {}
    assert graph.upstream_depths(DatasetRef(NS, "not.there")) == {}


def test_column_inputs_merge_every_jobs_transformations(graph: LineageGraph) -> None:
    hops = graph.column_inputs(col(USER_REV, "revenue"))
    by_source = {hop.source: hop for hop in hops}
    assert by_source[col(STG_ORDERS, "amount")].transformations == (AGG,)
    assert by_source[col(STG_ORDERS, "amount")].jobs == (JOB1,)
    # dataset-level inputs reach every output column as INDIRECT edges
    assert set(by_source[col(RAW_USERS, "id")].transformations) == {T_JOIN, T_GROUP}
    assert graph.column_inputs(col(RAW_ORDERS, "id")) == []


def test_unknown_node_has_no_lineage(graph: LineageGraph) -> None:
    nowhere = DatasetRef(NS, "nowhere")
    assert graph.upstream(nowhere) == []
    assert graph.column_upstream(col(nowhere, "x")) == []
    assert nowhere not in graph


def test_root_sources(graph: LineageGraph) -> None:
    assert graph.root_sources(FEATURES) == [RAW_USERS, RAW_ORDERS]
    assert graph.root_sources(STG_ORDERS) == [RAW_ORDERS]
    assert graph.root_sources(RAW_ORDERS) == []


def test_layers_are_lineage_depth(graph: LineageGraph) -> None:
    layers = graph.layers()
    assert [layers[n] for n in (RAW_ORDERS, RAW_USERS, JOB0, STG_ORDERS, JOB1, USER_REV, JOB2, FEATURES)] == [0, 0, 1, 2, 3, 4, 5, 6]


def test_layers_survive_a_cycle() -> None:
    """A job that reads and writes one table (INSERT INTO t SELECT FROM t) is no error."""
    g = LineageGraph()
    job = JobRef("sql", "dedupe")
    g.add_io(job, [STG_ORDERS, RAW_ORDERS], [STG_ORDERS])
    layers = g.layers()
    assert layers[RAW_ORDERS] == 0
    assert layers[STG_ORDERS] == layers[job] == 1
    assert g.upstream(STG_ORDERS) == [RAW_ORDERS]


# ------------------------------------------------------------------ column-level queries


def test_column_upstream_all_edges(graph: LineageGraph) -> None:
    assert graph.column_upstream(col(FEATURES, "revenue")) == [
        col(USER_REV, "revenue"),
        col(RAW_USERS, "email"),  # GROUP BY, dataset level
        col(RAW_USERS, "id"),  # JOIN / GROUP BY, dataset level
        col(STG_ORDERS, "amount"),
        col(STG_ORDERS, "user_id"),  # JOIN
        col(RAW_ORDERS, "amount"),
        col(RAW_ORDERS, "status"),  # WHERE
        col(RAW_ORDERS, "user_id"),
    ]


def test_column_upstream_direct_only_and_depth(graph: LineageGraph) -> None:
    revenue = col(FEATURES, "revenue")
    assert graph.column_upstream(revenue, direct_only=True) == [
        col(USER_REV, "revenue"),
        col(STG_ORDERS, "amount"),
        col(RAW_ORDERS, "amount"),
    ]
    assert graph.column_upstream(revenue, depth=1) == [col(USER_REV, "revenue")]


def test_column_downstream(graph: LineageGraph) -> None:
    email = col(RAW_USERS, "email")
    assert graph.column_downstream(email, direct_only=True) == [col(USER_REV, "email_hash"), col(FEATURES, "email_hash")]
    assert graph.column_downstream(email, depth=1) == [
        col(USER_REV, "email_hash"),
        col(USER_REV, "revenue"),
        col(USER_REV, "user_id"),
    ]


def test_column_root_sources(graph: LineageGraph) -> None:
    assert graph.column_root_sources(col(FEATURES, "revenue"), direct_only=True) == [col(RAW_ORDERS, "amount")]
    assert graph.column_root_sources(col(FEATURES, "email_hash"), direct_only=True) == [col(RAW_USERS, "email")]
    assert graph.column_root_sources(col(RAW_USERS, "email")) == []


def test_paths_carry_each_hops_transformations(graph: LineageGraph) -> None:
    paths = graph.paths(col(RAW_USERS, "email"), col(FEATURES, "email_hash"))
    assert paths == [
        [
            Hop(col(RAW_USERS, "email"), col(USER_REV, "email_hash"), (MASKED, T_GROUP), (JOB1,)),
            Hop(col(USER_REV, "email_hash"), col(FEATURES, "email_hash"), (IDENT,), (JOB2,)),
        ]
    ]
    assert [hop.masking for hop in paths[0]] == [True, False]


def test_all_simple_paths(graph: LineageGraph) -> None:
    paths = graph.paths(col(RAW_ORDERS, "status"), col(FEATURES, "revenue"))
    assert [[hop.target for hop in p] for p in paths] == [
        [col(STG_ORDERS, "amount"), col(USER_REV, "revenue"), col(FEATURES, "revenue")],
        [col(STG_ORDERS, "user_id"), col(USER_REV, "revenue"), col(FEATURES, "revenue")],
    ]
    assert [t.subtype for t in paths[1][1].transformations] == [JOIN]
    assert graph.paths(col(RAW_ORDERS, "status"), col(FEATURES, "revenue"), direct_only=True) == []
    assert len(graph.paths(col(RAW_ORDERS, "status"), col(FEATURES, "revenue"), limit=1)) == 1
    assert graph.paths(col(FEATURES, "revenue"), col(RAW_ORDERS, "status")) == []


def test_paths_through_diamonds_and_cycles() -> None:
    """a -> b -> d, a -> c -> d, and d -> a (a cycle) : two simple paths, no endless loop."""
    ds = DatasetRef("x", "t")
    a, b, c, d = (col(ds, n) for n in "abcd")
    g = LineageGraph()
    job = JobRef("x", "j")
    for name, sources in (("b", [a]), ("c", [a]), ("d", [b, c]), ("a", [d])):
        g.add_dataset_lineage(job, DatasetLineage(ds, [OutputField(name, 0, [InputField(s, [IDENT]) for s in sources])]))
    assert [[h.target for h in p] for p in g.paths(a, d)] == [[b, d], [c, d]]
    assert g.column_upstream(d) == [b, c, a]


def test_subgraph_keeps_only_the_named_datasets(graph: LineageGraph) -> None:
    sub = graph.subgraph([FEATURES, *graph.upstream(FEATURES, depth=1)])
    assert sub.datasets() == [USER_REV, FEATURES]
    assert sub.jobs() == [JOB1, JOB2]
    assert sub.column_upstream(col(FEATURES, "revenue")) == [col(USER_REV, "revenue")]
    sub.remove_job_edges(JOB2)
    assert graph.column_upstream(col(FEATURES, "revenue"), depth=1) == [col(USER_REV, "revenue")]


def test_a_large_chain_is_walked_in_linear_time() -> None:
    """50,000 columns in a chain of 500 datasets: BFS, no recursion limit, no quadratic blow-up."""
    g = LineageGraph()
    width, length = 100, 500
    for i in range(1, length):
        src, dst = DatasetRef("n", f"t{i - 1}"), DatasetRef("n", f"t{i}")
        fields = [OutputField(f"c{k}", k, [InputField(col(src, f"c{k}"), [IDENT])]) for k in range(width)]
        g.add_dataset_lineage(JobRef("n", f"j{i}"), DatasetLineage(dst, fields))
    last = DatasetRef("n", f"t{length - 1}")
    assert len(g.columns()) == width * length
    assert len(g.upstream(last)) == length - 1
    assert g.column_root_sources(col(last, "c7")) == [col(DatasetRef("n", "t0"), "c7")]
    assert len(g.paths(col(DatasetRef("n", "t0"), "c7"), col(last, "c7"))[0]) == length - 1


# ------------------------------------------------------------------ building from events

PIPE = "pipelines"
LOAD = JobRef(PIPE, "orders.load")
BUILD = JobRef(PIPE, "features.build")
RAW2 = DatasetRef(NS, "shop.raw.orders_v2")


def _dataset(ds: DatasetRef, **facets) -> dict:
    return {"namespace": ds.namespace, "name": ds.name, "facets": facets}


def _schema(*fields: tuple[str, str]) -> dict:
    return {"fields": [{"name": n, "type": t} for n, t in fields]}


def _event(job: JobRef, run: str, kind: str, time: str, inputs=(), outputs=(), job_facets=None, run_facets=None) -> dict:
    return {
        "eventType": kind,
        "eventTime": time,
        "run": {"runId": run, "facets": run_facets or {}},
        "job": {"namespace": job.namespace, "name": job.name, "facets": job_facets or {}},
        "inputs": list(inputs),
        "outputs": list(outputs),
        "producer": "tests",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    }


def _stg_lineage(source: DatasetRef) -> dict:
    return column_lineage_facet(
        DatasetLineage(
            STG_ORDERS,
            [out("id", 0, (col(source, "id"), IDENT)), out("amount", 1, (col(source, "amount"), TRANSFORM))],
            [InputField(col(source, "status"), [T_FILTER])],
        )
    )


def events() -> list[dict]:
    raw = _dataset(
        RAW_ORDERS,
        schema=_schema(("id", "INT"), ("amount", "NUMERIC"), ("status", "TEXT"), ("email", "TEXT")),
        tags={"tags": [{"key": "pii", "value": "email", "field": "email"}, {"key": "tier", "value": "raw"}]},
        ownership={"owners": [{"name": "team:ingest", "type": "MAINTAINER"}]},
    )
    stg = _dataset(
        STG_ORDERS,
        schema=_schema(("id", "INT"), ("amount", "NUMERIC")),
        columnLineage=_stg_lineage(RAW_ORDERS),
        documentation={"description": "clean orders"},
    )
    feat_lineage = column_lineage_facet(DatasetLineage(FEATURES, [out("spend", 0, (col(STG_ORDERS, "amount"), AGG))]))
    return [
        _event(LOAD, "r1", "START", "2024-05-01T10:00:00Z", [raw], [], job_facets={"sql": {"query": "SELECT 1"}}),
        _event(LOAD, "r1", "COMPLETE", "2024-05-01T10:00:05Z", [raw], [stg], run_facets={"nominalTime": {"nominalStartTime": "x"}}),
        _event(BUILD, "r2", "START", "2024-05-01T10:01:00Z", [_dataset(STG_ORDERS)], []),
        _event(BUILD, "r2", "FAIL", "2024-05-01T10:01:09.5+00:00", [_dataset(STG_ORDERS)],
               [_dataset(FEATURES, columnLineage=feat_lineage)]),
    ]


def test_events_give_jobs_datasets_and_column_lineage() -> None:
    evs = events()
    random.Random(7).shuffle(evs)  # the store may hand them over in any order
    g = LineageGraph.from_events(evs)
    assert g.jobs() == [BUILD, LOAD]
    assert g.datasets() == [FEATURES, RAW_ORDERS, STG_ORDERS]
    assert g.columns(RAW_ORDERS) == [col(RAW_ORDERS, n) for n in ("id", "amount", "status", "email")]
    assert g.info(col(RAW_ORDERS, "amount"))["type"] == "NUMERIC"
    assert g.upstream(FEATURES) == [STG_ORDERS, RAW_ORDERS]
    assert g.column_upstream(col(FEATURES, "spend")) == [
        col(STG_ORDERS, "amount"),
        col(RAW_ORDERS, "amount"),
        col(RAW_ORDERS, "status"),
    ]
    assert g.paths(col(RAW_ORDERS, "amount"), col(STG_ORDERS, "amount")) == [
        [Hop(col(RAW_ORDERS, "amount"), col(STG_ORDERS, "amount"), (TRANSFORM,), (LOAD,))]
    ]


def test_events_give_tags_owners_docs_and_run_state() -> None:
    g = LineageGraph.from_events(events())
    assert g.info(RAW_ORDERS)["tags"] == [("tier", "raw")]
    assert g.info(col(RAW_ORDERS, "email"))["tags"] == [("pii", "email")]
    assert g.info(RAW_ORDERS)["owners"] == [{"name": "team:ingest", "type": "MAINTAINER"}]
    assert g.info(STG_ORDERS)["description"] == "clean orders"
    assert "columnLineage" in g.info(STG_ORDERS)["facets"]
    assert g.info(LOAD)["sql"] == "SELECT 1"
    load_run = g.latest_run(LOAD)
    assert (load_run.run_id, load_run.state) == ("r1", "COMPLETE")
    assert (load_run.started_at, load_run.ended_at) == (parse_time("2024-05-01T10:00:00Z"), parse_time("2024-05-01T10:00:05Z"))
    assert load_run.facets == {"nominalTime": {"nominalStartTime": "x"}}
    assert g.latest_run(BUILD).state == "FAIL"
    assert g.latest_run(JobRef(PIPE, "never-ran")) is None


def test_a_newer_run_replaces_the_jobs_edges_and_keeps_run_ids() -> None:
    stg = _dataset(STG_ORDERS, columnLineage=_stg_lineage(RAW2))
    rerun = _event(LOAD, "r3", "COMPLETE", "2024-05-02T10:00:00Z", [_dataset(RAW2)], [stg])
    g = LineageGraph.from_events([*events(), rerun])
    assert [r.run_id for r in g.info(LOAD)["runs"]] == ["r1", "r3"]
    assert g.job_inputs(LOAD) == [RAW2]
    assert g.upstream(FEATURES) == [STG_ORDERS, RAW2]
    assert g.column_upstream(col(STG_ORDERS, "amount")) == [col(RAW2, "amount"), col(RAW2, "status")]
    # The old source keeps its nodes (it still exists), just no lineage into staging.
    assert RAW_ORDERS in g
    assert g.column_downstream(col(RAW_ORDERS, "amount")) == []
    # Another job's edges are untouched.
    assert g.column_upstream(col(FEATURES, "spend"), depth=1) == [col(STG_ORDERS, "amount")]


def test_sql_and_events_use_one_edge_model() -> None:
    """The same lineage from SQL and from its emitted facet gives the same column edges."""
    result = sql_result()
    from_sql = LineageGraph.from_sql_result(result)
    job = JobRef("sql", "etl.sql#1")
    rev = result.statements[1].outputs[0]
    event = _event(job, "r", "COMPLETE", "2024-01-01T00:00:00Z",
                   [_dataset(STG_ORDERS), _dataset(RAW_USERS)], [_dataset(USER_REV, columnLineage=column_lineage_facet(rev))])
    from_events = LineageGraph.from_events([event])
    assert set(from_events.column_edges()) == {e for e in from_sql.column_edges() if e.job == job}
