"""Shared fixtures: a real PostgreSQL (one fresh database per test module) and the spec folder.

PostgreSQL comes from ``$LINEAGE_AUDIT_PG_DSN`` or, when that is unset, the throwaway
cluster ``scripts/postgres.sh start`` installs and starts. If it cannot start, the tests
that need it FAIL with the script's message: a missing database is never a skip.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

# Fixtures shared by several modules live in their own files; registering them here (once)
# gives one session-wide Chromium and one Marquez server, however many modules use them.
pytest_plugins = ["browser", "conftest_marquez"]

REPO = Path(__file__).resolve().parents[1]
PG_ENV = "LINEAGE_AUDIT_PG_DSN"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:55432/postgres"


def dsn_for(dsn: str, *, database: str | None = None, user: str | None = None, password: str | None = None) -> str:
    """``dsn`` (a postgresql:// URL) with another database, user or password."""
    parts = urlsplit(dsn)
    user = user if user is not None else parts.username or ""
    password = password if password is not None else parts.password or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = parts.hostname or "127.0.0.1"
    netloc = f"{auth}{host}:{parts.port}" if parts.port else f"{auth}{host}"
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


@pytest.fixture(scope="session")
def pg_admin_dsn() -> str:
    """A superuser DSN of a running PostgreSQL (started by scripts/postgres.sh when needed)."""
    import psycopg

    dsn = os.environ.get(PG_ENV)
    if not dsn:
        done = subprocess.run([str(REPO / "scripts" / "postgres.sh"), "start"], capture_output=True, text=True,
                              timeout=900)
        if done.returncode != 0:
            pytest.fail(f"PostgreSQL did not start (scripts/postgres.sh start): {done.stderr.strip()}", pytrace=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("postgresql://")]
        dsn = lines[-1] if lines else DEFAULT_DSN
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.fail(f"cannot connect to PostgreSQL at {urlsplit(dsn).hostname}:{urlsplit(dsn).port}: {exc}",
                    pytrace=False)
    return dsn


@pytest.fixture(scope="module")
def pg_dsn(pg_admin_dsn: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A DSN of a fresh database for this test module, dropped afterwards."""
    import psycopg

    module = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())[:30]
    name = f"t_{module}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield dsn_for(pg_admin_dsn, database=name)
    finally:
        with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    """The shipped pipeline specs."""
    return REPO / "pipelines" / "specs"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated lineage home (``$LINEAGE_AUDIT_HOME``) and no ambient OpenLineage configuration."""
    for key in list(os.environ):
        if key.startswith("OPENLINEAGE"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("LINEAGE_AUDIT_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "state"
