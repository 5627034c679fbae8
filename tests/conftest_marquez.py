"""Fixtures for tests against a real Marquez server (register as a pytest plugin).

``marquez_server`` starts one Marquez for the whole test run through
:class:`collectors.marquez.server.MarquezServer`: free ports on 127.0.0.1, a fresh
database of its own in the PostgreSQL of ``pg_admin_dsn`` (tests/conftest.py), a state
directory under pytest's temporary folder. If
Marquez cannot be fetched or started the fixture FAILS with the reason (Java, Maven, the
artifact, PostgreSQL, the server log): a missing server is never a skipped test.

``marquez_client`` is a :class:`collectors.marquez.MarquezClient` on that server.
Each test should use its own OpenLineage namespace so tests sharing the server stay apart.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from collectors.marquez import MarquezClient, MarquezServer
from collectors.marquez.database import drop_database
from lineage_auditor.errors import LineageAuditError

START_TIMEOUT_S = float(os.environ.get("LINEAGE_AUDIT_MARQUEZ_START_TIMEOUT", "600"))


@pytest.fixture(scope="session")
def marquez_server(tmp_path_factory: pytest.TempPathFactory, pg_admin_dsn: str) -> Iterator[MarquezServer]:
    """A real Marquez on free ports with its own database; stopped and dropped afterwards."""
    db_name = f"t_marquez_{uuid.uuid4().hex[:10]}"
    server = MarquezServer(
        tmp_path_factory.mktemp("marquez"), port=0, admin_port=0, db_name=db_name, pg_dsn=pg_admin_dsn
    )
    problem = None
    try:
        server.up(timeout=START_TIMEOUT_S)
    except LineageAuditError as exc:
        problem = str(exc)
    if problem:
        _drop_quietly(db_name, pg_admin_dsn)
        pytest.fail(f"could not start a real Marquez for the marquez tests: {problem}", pytrace=False)
    try:
        yield server
    finally:
        server.down()
        _drop_quietly(db_name, pg_admin_dsn)


def _drop_quietly(db_name: str, dsn: str) -> None:
    try:
        drop_database(db_name, dsn)
    except Exception:  # cleanup only: the run's result stands
        pass


@pytest.fixture(scope="session")
def marquez_url(marquez_server: MarquezServer) -> str:
    info = marquez_server.recorded()
    assert info is not None, "Marquez stopped during the test run; see " + str(marquez_server.log_file)
    return info.url


@pytest.fixture
def marquez_client(marquez_url: str) -> Iterator[MarquezClient]:
    with MarquezClient(marquez_url) as client:
        yield client
