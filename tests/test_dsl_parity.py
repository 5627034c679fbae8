"""The users-orders pipeline as a spec gives the hand-written pipeline's table and column lineage."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

from collectors.store import EmbeddedStore
from lineage_auditor.graph import LineageGraph
from pipelines.dsl import load_spec
from pipelines.dsl.runner import run_spec
from pipelines.runtime.run import Environment
from pipelines.runtime.spec import builtin_spec
from pipelines.specs import reference_spec_path
from pipelines.sources.mock_api import MockApiServer
from pipelines.sources.orders_csv import generate_orders
from pipelines.users_orders.pipeline import run_users_orders

SPEC = reference_spec_path("users_orders")
TOKEN = "parity-token"


def _table(path: Path) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute("SELECT * FROM analytics.user_orders ORDER BY user_id").fetchall()


def _lineage(store: Path) -> dict[str, set[tuple[str, str, str]]]:
    """analytics.user_orders: output field -> (input table, input field, transformation), names without the db file."""
    with EmbeddedStore(store) as s:
        graph = LineageGraph.from_events(s.events())
    table = next(d for d in graph.datasets() if d.name.endswith("analytics.user_orders"))
    out: dict[str, set[tuple[str, str, str]]] = {}
    for edge in graph.column_edges():
        if edge.target.dataset == table:
            source = edge.source.dataset.name.split(".", 1)[1]  # drop the database file's name
            for t in edge.transformations:
                out.setdefault(edge.target.field, set()).add((source, edge.source.field, f"{t.type}/{t.subtype}"))
    return out


def test_the_spec_and_the_hand_written_pipeline_agree_row_for_row_and_column_for_column(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    orders = tmp_path / "orders.csv"
    generate_orders(orders, 2000, 120, seed=21, bad_row_rate=0.0)
    monkeypatch.setenv("LINEAGE_AUDIT_USERS_API_TOKEN", TOKEN)
    with MockApiServer(n_users=120, token=TOKEN, seed=4) as api:
        (tmp_path / "hand").mkdir()
        (tmp_path / "spec").mkdir()
        reference = builtin_spec("users_orders")
        with Environment.create(reference, target=f"duckdb:{tmp_path / 'hand' / 'wh.duckdb'}",
                                lineage=f"embedded:{tmp_path / 'hand' / 'lineage.db'}", home=tmp_path / "hand") as env:
            hand = run_users_orders(reference, env, api_url=api.url, api_token=TOKEN, orders_path=orders)
        assert hand.ok, hand
        spec = run_spec(load_spec(SPEC), date(2024, 5, 1), params={"api_url": api.url, "orders_file": str(orders)},
                        target=f"duckdb:{tmp_path / 'spec' / 'wh.duckdb'}",
                        lineage=f"embedded:{tmp_path / 'spec' / 'lineage.db'}", home=tmp_path / "spec")
        assert spec.ok, spec
    rows = _table(tmp_path / "hand" / "wh.duckdb")
    assert len(rows) == 120 and rows == _table(tmp_path / "spec" / "wh.duckdb")
    lineage = _lineage(tmp_path / "hand" / "lineage.db")
    assert lineage["revenue_usd"] >= {("staging.orders", "amount", "DIRECT/AGGREGATION")}, lineage
    assert len(lineage) == 8  # every output column has its inputs
    assert _lineage(tmp_path / "spec" / "lineage.db") == lineage


def test_the_churn_feature_spec_builds_the_demo_feature_table_with_its_lineage(home: Path, tmp_path: Path) -> None:
    """The demo builds features.churn_features by hand; the spec rebuilds it on the same warehouse."""
    import shutil

    from click.testing import CliRunner

    from lineage_auditor.cli import _register, cli

    _register()
    res = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "out")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    warehouse = tmp_path / "out" / "warehouse.duckdb"  # the demo writes its warehouse beside its report
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        hand = conn.execute("SELECT * FROM features.churn_features ORDER BY user_key").fetchall()
    copy = tmp_path / "spec" / "warehouse.duckdb"
    copy.parent.mkdir()
    shutil.copy(warehouse, copy)
    churn = SPEC.parent / "churn_features.yml"
    summary = run_spec(load_spec(churn), date(2024, 5, 1), target=f"duckdb:{copy}",
                       lineage=f"embedded:{tmp_path / 'spec' / 'lineage.db'}", home=tmp_path / "spec")
    assert summary.ok, summary
    with duckdb.connect(str(copy), read_only=True) as conn:
        assert conn.execute("SELECT * FROM features.churn_features ORDER BY user_key").fetchall() == hand
    assert len(hand) > 50

    def lineage(store: Path) -> dict[str, set[tuple[str, str, str]]]:
        with EmbeddedStore(store) as s:
            graph = LineageGraph.from_events(s.events())
        out: dict[str, set[tuple[str, str, str]]] = {}
        for edge in graph.column_edges():
            if edge.target.dataset.name.endswith("features.churn_features"):
                for t in edge.transformations:
                    source = edge.source.dataset.name.split(".", 1)[1]
                    out.setdefault(edge.target.field, set()).add((source, edge.source.field, f"{t.type}/{t.subtype}"))
        return out

    by_hand = lineage(home / "lineage.db")
    assert by_hand and lineage(tmp_path / "spec" / "lineage.db") == by_hand


def test_the_weather_spec_loads_what_the_hand_written_pipeline_loads(tmp_path: Path) -> None:
    from pipelines.weather.pipeline import recorded_days, run_weather

    day = recorded_days()[0]
    reference = builtin_spec("weather")
    (tmp_path / "hand").mkdir()
    with Environment.create(reference, target=f"duckdb:{tmp_path / 'hand' / 'wh.duckdb'}",
                            lineage=f"embedded:{tmp_path / 'hand' / 'lineage.db'}", home=tmp_path / "hand") as env:
        [hand] = run_weather(reference, env, [day], offline=True)
    assert hand.ok, hand
    summary = run_spec(load_spec(SPEC.parent / "weather.yml"), day, target=f"duckdb:{tmp_path / 'spec' / 'wh.duckdb'}",
                       lineage=f"embedded:{tmp_path / 'spec' / 'lineage.db'}", home=tmp_path / "spec")
    assert summary.ok, summary

    def rows(path: Path, table: str) -> list[tuple]:
        with duckdb.connect(str(path), read_only=True) as conn:
            columns = [c for (c,) in conn.execute(f"SELECT column_name FROM information_schema.columns WHERE "
                                                   f"table_schema || '.' || table_name = '{table}' ORDER BY ordinal_position").fetchall()]
            kept = ", ".join(c for c in columns if c not in ("run_id", "source_request"))  # stamps: this run, this request
            return conn.execute(f"SELECT {kept} FROM {table} ORDER BY location, observed_at").fetchall()

    for table in ("weather.hourly", "weather.hourly_quarantine"):
        assert rows(tmp_path / "spec" / "wh.duckdb", table) == rows(tmp_path / "hand" / "wh.duckdb", table), table
    hand_wh = tmp_path / "hand" / "wh.duckdb"
    assert len(rows(hand_wh, "weather.hourly")) + len(rows(hand_wh, "weather.hourly_quarantine")) == 72  # 3 cities x 24 h

    def lineage(store: Path) -> set[tuple[str, str, str, str, str]]:
        with EmbeddedStore(store) as s:
            graph = LineageGraph.from_events(s.events())
        return {(e.source.dataset.name, e.source.field, e.target.dataset.name.split(".", 1)[1], e.target.field,
                 ",".join(sorted(f"{t.type}/{t.subtype}" for t in e.transformations))) for e in graph.column_edges()}

    by_hand = lineage(tmp_path / "hand" / "lineage.db")
    assert by_hand and lineage(tmp_path / "spec" / "lineage.db") == by_hand
