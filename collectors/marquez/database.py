"""The PostgreSQL side of a local Marquez: a role of its own and a database that role owns.

Each Marquez instance (one database) gets its own login role, ``<database>_owner``, so two
local Marquez servers never share credentials and starting one can never lock another out.
An existing role's password is never changed: ``up`` uses the password it generated when
it created the role (kept, mode 0600, in the download cache, one file per role) or
``MARQUEZ_DB_PASSWORD``, checks that it opens the role, and otherwise stops with a message
that says what to do.

Marquez runs its own schema migrations on start. On PostgreSQL 15 the ``public`` schema no
longer grants CREATE to everyone, so the database is created ``OWNER`` the role rather than
granted to it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from lineage_auditor.errors import LineageAuditError

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:55432/postgres"
ROLE_SUFFIX = "_owner"
PASSWORD_ENV = "MARQUEZ_DB_PASSWORD"
MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names


@dataclass(frozen=True)
class MarquezDatabase:
    """Where Marquez keeps its data; ``password`` is never printed or logged."""

    host: str
    port: int
    name: str
    user: str
    password: str

    def env(self) -> dict[str, str]:
        """The variables ``marquez.yml`` (``collectors/marquez/deploy/``) reads for its ``db`` section."""
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


def role_for(database: str) -> str:
    """The login role of the Marquez that keeps its data in ``database``."""
    return (database[: MAX_IDENTIFIER - len(ROLE_SUFFIX)] + ROLE_SUFFIX).lower()


def ensure_database(name: str, secrets_dir: Path, dsn: str | None = None) -> MarquezDatabase:
    """Create (when missing) the instance's role and database ``name`` owned by it; idempotent.

    ``secrets_dir`` holds the generated password of each role this account created.
    """
    dsn = dsn or admin_dsn()
    parts = urlsplit(dsn)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    role = role_for(name)
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            password = _role_password(conn, role, secrets_dir / role)
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(role)))
            else:
                owner = conn.execute(
                    "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,)
                ).fetchone()
                if owner and owner[0] != role:
                    raise LineageAuditError(
                        f"database {name} on {host}:{port} belongs to role {owner[0]}, not {role}: "
                        "it was not created by this Marquez set-up; choose another --db-name"
                    )
    except psycopg.OperationalError as exc:
        raise LineageAuditError(
            f"cannot reach PostgreSQL at {host}:{port} for Marquez's database ({_first_line(exc)}); "
            "start it with scripts/postgres.sh start or set LINEAGE_AUDIT_PG_DSN"
        ) from exc
    _check_login(dsn, role, password, name)
    return MarquezDatabase(host, port, name, role, password)


def _role_password(conn: psycopg.Connection, role: str, secret_file: Path) -> str:
    """The role's password: ``MARQUEZ_DB_PASSWORD``, or the one kept when the role was made.

    A missing role is created with that password (or a new one, kept in ``secret_file``);
    an existing role's password is never altered.
    """
    given = os.environ.get(PASSWORD_ENV) or None
    kept = secret_file.read_text().strip() if secret_file.is_file() else None
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    if exists:
        password = given or kept
        if not password:
            raise LineageAuditError(
                f"PostgreSQL role {role} already exists and its password is not known here; "
                f"set {PASSWORD_ENV} to it, or choose another --db-name (its password is never changed)"
            )
        return password
    password = given or secrets.token_urlsafe(18)
    conn.execute(sql.SQL("CREATE ROLE {} WITH LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    if not given:
        _keep(secret_file, password)
    return password


def _keep(secret_file: Path, password: str) -> None:
    secret_file.parent.mkdir(parents=True, exist_ok=True)
    secret_file.unlink(missing_ok=True)  # a stale file of a role since dropped
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")


def _check_login(admin: str, role: str, password: str, database: str) -> None:
    """Log in as the role the way Marquez will, so a wrong password is our clear error, not
    a Java stack trace in Marquez's log."""
    parts = urlsplit(admin)
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{parts.hostname or '127.0.0.1'}:{parts.port or 5432}"
    try:
        psycopg.connect(urlunsplit((parts.scheme, netloc, f"/{database}", "", "")), connect_timeout=10).close()
    except psycopg.OperationalError as exc:
        raise LineageAuditError(
            f"cannot log in to PostgreSQL as role {role} with the password "
            + (f"in {PASSWORD_ENV}" if os.environ.get(PASSWORD_ENV) else "kept for it")
            + f" ({_first_line(exc)}); set {PASSWORD_ENV} to the role's password, or choose another --db-name"
        ) from None


def drop_database(name: str, dsn: str | None = None) -> None:
    """Remove a Marquez database and the role made for it (tests and benchmarks use one per
    run); the server must be stopped first. A role that still owns anything else stays."""
    with psycopg.connect(dsn or admin_dsn(), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        try:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role_for(name))))
        except psycopg.errors.DependentObjectsStillExist:
            pass


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
