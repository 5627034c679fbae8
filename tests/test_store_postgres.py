"""The PostgreSQL store on a real server: migrations, concurrent writers, commit-safe reads.

Parity of answers with the embedded store is in test_store_parity.py; here is what only a
shared database has to get right.
"""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from collectors.store import open_indexed
from collectors.store.postgres import MIGRATIONS, SCHEMA, PostgresStore
from conftest import dsn_for
from lineage_auditor.errors import EventError, StoreError, StoreNotFound

pytestmark = pytest.mark.postgres


def _event(i: int, kind: str = "COMPLETE", job: str = "job") -> dict:
    return {
        "eventType": kind, "eventTime": f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
        "producer": "https://example.com/p", "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json",
        "run": {"runId": f"01900000-0000-7000-8000-{i:012d}"}, "job": {"namespace": "etl", "name": f"{job}{i % 7}"},
        "inputs": [{"namespace": "pg://h:5432", "name": f"db.raw.t{i % 5}"}], "outputs": [],
    }


def _fresh(pg_admin_dsn: str, name: str) -> str:
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return dsn_for(pg_admin_dsn, database=name)


def test_replicas_starting_at_once_migrate_once_and_record_the_version(pg_admin_dsn: str) -> None:
    dsn = _fresh(pg_admin_dsn, "t_store_pg_migrate")
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            PostgresStore(dsn).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with psycopg.connect(dsn) as conn:
        versions = conn.execute(f"SELECT version, description FROM {SCHEMA}.schema_migrations ORDER BY version").fetchall()
    assert versions == [(v, d) for v, d, _ in MIGRATIONS]
    with PostgresStore(dsn) as store:
        assert store.schema_version() == MIGRATIONS[-1][0]


def test_reader_without_create_refuses_an_empty_database_and_a_bad_dsn_hides_its_password(pg_admin_dsn: str) -> None:
    dsn = _fresh(pg_admin_dsn, "t_store_pg_empty")
    with pytest.raises(StoreNotFound):
        open_indexed(dsn, create=False)
    bad = dsn_for(pg_admin_dsn, database="no_such_db_here", password="s3cret-pw")
    with pytest.raises(StoreError) as caught:
        open_indexed(bad)
    assert "s3cret-pw" not in str(caught.value) and "no_such_db_here" in str(caught.value)


def test_concurrent_writers_store_every_event_once(pg_dsn: str) -> None:
    events = [_event(i) for i in range(300)]
    added: list[int] = []
    lock = threading.Lock()

    def write(order: list[dict]) -> None:
        with PostgresStore(pg_dsn) as store:
            n = sum(store.add_event(e) for e in order)
        with lock:
            added.append(n)

    orders = [events, events[::-1], events[100:] + events[:100]]
    threads = [threading.Thread(target=write, args=(o,)) for o in orders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(added) == 300, added
    with PostgresStore(pg_dsn) as store:
        assert store.count() == 300
        assert store.add_events(events) == 0, "a re-send stores nothing"
        latest = list(store.latest_run_events())
        assert len({e["job"]["name"] for e in latest}) == 7


def test_an_invalid_event_in_a_batch_stores_nothing_of_it(pg_dsn: str) -> None:
    with PostgresStore(pg_dsn) as store:
        before = store.count()
        bad = _event(9000)
        bad["run"]["runId"] = ""
        with pytest.raises(EventError, match="run.runId"):
            store.add_events([_event(9001), bad])
        assert store.count() == before


def test_an_incremental_reader_never_skips_an_event_whose_transaction_commits_late(pg_admin_dsn: str) -> None:
    dsn = _fresh(pg_admin_dsn, "t_store_pg_cursor")
    with PostgresStore(dsn) as slow, PostgresStore(dsn) as fast, PostgresStore(dsn) as reader:
        got, cursor = reader.events_after()
        assert got == []
        with slow._tx() as cur:  # a replica's insert still in flight ...
            slow._insert(cur, _event(1))
            fast.add_event(_event(2))  # ... while another replica's later insert commits
            seen, cursor = reader.events_after(cursor)
            assert seen == [], "nothing past the transaction still running"
        seen, cursor = reader.events_after(cursor)
        assert [e["run"]["runId"][-1] for e in seen] == ["1", "2"]
        assert reader.events_after(cursor)[0] == []


def test_lineage_show_and_collect_work_on_a_postgresql_address(pg_admin_dsn: str, tmp_path: Path) -> None:
    from collectors.store import EmbeddedStore
    from lineage_auditor.cli import _register, cli

    dsn = _fresh(pg_admin_dsn, "t_store_pg_cli")
    source = tmp_path / "laptop.db"
    with EmbeddedStore(source) as store:
        store.add_events([_event(i) for i in range(20)])
    _register()
    res = CliRunner().invoke(cli, ["collect", "--from", f"embedded:{source}", "--to", dsn, "--format", "json"])
    assert res.exit_code == 0, res.output
    with PostgresStore(dsn) as store:
        assert store.count() == 20
    res = CliRunner().invoke(cli, ["lineage", "show", "raw.t1", "--store", dsn, "--format", "json"])
    assert res.exit_code == 0, res.output
