"""The PostgreSQL side of a local Marquez: a ``marquez`` role and a database it owns.

Marquez runs its own schema migrations on start. On PostgreSQL 15 the ``public`` schema no
longer grants CREATE to everyone, so the database is created ``OWNER marquez`` rather than
granted to it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from lineage_auditor.errors import LineageAuditError

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:55432/postgres"
ROLE = "marquez"


@dataclass(frozen=True)
class MarquezDatabase:
    """Where Marquez keeps its data; ``password`` is never printed or logged."""

    host: str
    port: int
    name: str
    user: str
    password: str

    def env(self) -> dict[str, str]:
        """The variables ``deploy/marquez.yml`` reads for its ``db`` section."""
        return {
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_DB": self.name,
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
        }

    def describe(self) -> str:
        """A printable location, without the password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.name}"


def admin_dsn() -> str:
    """The DSN of a superuser connection (``LINEAGE_AUDIT_PG_DSN`` or the throwaway cluster)."""
    return os.environ.get("LINEAGE_AUDIT_PG_DSN") or DEFAULT_ADMIN_DSN


def role_password(secret_file: Path) -> str:
    """The ``marquez`` role's password: ``MARQUEZ_DB_PASSWORD`` or one generated once and kept
    (mode 0600) beside the download cache, so every local Marquez on this account agrees."""
    given = os.environ.get("MARQUEZ_DB_PASSWORD")
    if given:
        return given
    if secret_file.is_file():
        return secret_file.read_text().strip()
    secret_file.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password


def ensure_database(name: str, password: str, dsn: str | None = None) -> MarquezDatabase:
    """Create (or update) the ``marquez`` role and database ``name`` owned by it; idempotent."""
    dsn = dsn or admin_dsn()
    parts = urlsplit(dsn)
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            _ensure_role(conn, password)
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(ROLE)))
    except psycopg.OperationalError as exc:
        where = f"{parts.hostname}:{parts.port or 5432}"
        raise LineageAuditError(
            f"cannot reach PostgreSQL at {where} for Marquez's database ({_first_line(exc)}); "
            "start it with scripts/postgres.sh start or set LINEAGE_AUDIT_PG_DSN"
        ) from exc
    return MarquezDatabase(parts.hostname or "127.0.0.1", parts.port or 5432, name, ROLE, password)


def drop_database(name: str, dsn: str | None = None) -> None:
    """Remove a Marquez database (tests use one per run); the server must be stopped first."""
    with psycopg.connect(dsn or admin_dsn(), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _ensure_role(conn: psycopg.Connection, password: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    conn.execute(
        sql.SQL(verb + " ROLE {} WITH LOGIN PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(password))
    )


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
