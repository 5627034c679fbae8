"""Where pipelines write: PostgreSQL (psycopg 3) or an embedded DuckDB file, same semantics.

Two ways to write a table, both atomic:

- :meth:`Target.upsert` merges rows keyed on the table's key: the batch goes into a temporary
  staging table (``COPY`` on PostgreSQL), then one ``INSERT … ON CONFLICT (key) DO UPDATE``
  in the same transaction. A row is only rewritten when a value column changed, so running the
  same day again leaves the table exactly as it was (its stamp columns included).
- :meth:`Target.replace` / :meth:`Target.replace_from_sql` build the complete new table next
  to the old one and swap it in within one transaction: readers see the old table or the new
  one, never a half-written one, and a failure leaves the old table untouched.

A target is named by a URL: ``postgresql://user:pass@host:port/db`` or ``duckdb:PATH``.
Its :meth:`Target.describe` never shows the password.
"""

from __future__ import annotations

import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from lineage_auditor.errors import PipelineError
from lineage_auditor.model import DatasetRef
from pipelines.runtime.coltypes import SQL_TYPES
from pipelines.runtime.copytext import NULL, frame_chunks, row_chunks
from pipelines.runtime.naming import duckdb_dataset, postgres_dataset

NEW_SUFFIX = "__new"


class TargetError(PipelineError):
    """The target could not be reached or refused a write (message has no password)."""


def quote(identifier: str) -> str:
    """A SQL identifier in double quotes (both dialects), ``schema.table`` quoted per part."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in identifier.split("."))


@dataclass(frozen=True)
class Column:
    """One column: name, logical type (see :mod:`pipelines.runtime.coltypes`), whether it may be null, what it means."""

    name: str
    type: str
    nullable: bool = True
    description: str = ""


@dataclass(frozen=True)
class Table:
    """A table a pipeline writes.

    ``key`` identifies a row for upserts. ``stamps`` are bookkeeping columns (run id, source
    request) that are rewritten with a row but whose change alone does not count as a change.
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    stamps: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = self.column_names
        unknown = [c for c in (*self.key, *self.stamps) if c not in names]
        if unknown or "." not in self.name:
            raise ValueError(f"table {self.name}: bad key/stamps {unknown} or name without a schema")

    @property
    def schema(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def value_columns(self) -> list[str]:
        """Columns whose change makes an upsert rewrite the row."""
        return [c for c in self.column_names if c not in self.key and c not in self.stamps]

    def renamed(self, name: str) -> "Table":
        return Table(name, self.columns, self.key, self.stamps)


@dataclass
class LoadResult:
    """What one write did: rows offered, rows inserted or changed (upsert), the table's size after."""

    table: str
    rows: int
    written: int
    total: int = 0
    details: dict[str, Any] = field(default_factory=dict)


class Target(ABC):
    """A warehouse the pipelines write to.

    ``meter`` (a :class:`~pipelines.runtime.warehouse_cost.Meter`), while set, watches every
    connection :meth:`connect` opens: what the warehouse reports of each statement is summed
    into a step's cost without the step's code knowing.
    """

    dialect: str = ""
    meter: Any = None
    limit_at: float | None = None  # monotonic time at which statements stop (see time_limit)

    @contextlib.contextmanager
    def time_limit(self, seconds: float | None) -> Iterator[None]:
        """While in the block, every statement on a connection :meth:`connect` opens stops
        ``seconds`` from now (PostgreSQL: ``statement_timeout``; DuckDB: the connection is
        interrupted): a step's timeout bounds its SQL too, not only its retries."""
        before = self.limit_at
        self.limit_at = None if seconds is None else time.monotonic() + seconds
        try:
            yield
        finally:
            self.limit_at = before

    def _seconds_left(self) -> float | None:
        return None if self.limit_at is None else max(0.001, self.limit_at - time.monotonic())

    @abstractmethod
    def describe(self) -> str:
        """A human name for logs and summaries (no password)."""

    @abstractmethod
    def dataset(self, table: str) -> DatasetRef:
        """The OpenLineage dataset of ``schema.table`` in this target."""

    @property
    def namespace(self) -> str:
        """The OpenLineage namespace of this warehouse's datasets (the same for every table)."""
        return self.dataset("main.any").namespace

    def upsert(self, table: Table, rows: Iterable[Sequence[Any]]) -> LoadResult:
        """Merge ``rows`` into ``table`` on its key, in one transaction."""
        return self.upsert_many([(table, rows)])[0]

    @abstractmethod
    def upsert_many(self, batches: Sequence[tuple[Table, Iterable[Sequence[Any]]]]) -> list[LoadResult]:
        """Merge each batch into its table, all in one transaction."""

    @abstractmethod
    def replace(self, table: Table, rows: Any) -> LoadResult:
        """Make ``table`` hold exactly ``rows`` (tuples, or a DataFrame with the table's columns):
        build the new table, swap it in within one transaction."""

    def replace_from_sql(self, table: str, select_sql: str, conn: Any = None) -> LoadResult:
        """Make ``table`` the result of ``select_sql`` (in this dialect), swapped in atomically
        (in the caller's transaction when ``conn`` is given)."""
        if conn is None:
            with self.connect() as own:
                return self.replace_from_sql(table, select_sql, own)
        new = table + NEW_SUFFIX
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(table.split('.')[0])}")
        conn.execute(f"DROP TABLE IF EXISTS {quote(new)}")
        conn.execute(f"CREATE TABLE {quote(new)} AS {select_sql}")
        count = int(conn.execute(f"SELECT count(*) FROM {quote(new)}").fetchone()[0])
        self._swap(conn, table)
        return LoadResult(table, count, count, count)

    def _ensure(self, conn: Any, table: Table) -> None:
        """Create the table's schema and the table itself when missing (caller's transaction)."""
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(table.schema)}")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {quote(table.name)} ({self._column_defs(table)})")

    @abstractmethod
    def connect(self) -> Any:
        """A context manager yielding a connection inside one transaction."""

    @abstractmethod
    def _swap(self, conn: Any, table: str) -> None:
        """Drop the old table and rename ``table + NEW_SUFFIX`` into place (caller's transaction)."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query."""

    def records(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a read-only query as column name -> value (an extract from this database)."""
        with self.connect() as conn:
            cursor = conn.execute(sql)
            names = [d[0] for d in cursor.description or ()]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    @abstractmethod
    def columns(self, table: str) -> list[tuple[str, str]]:
        """``(name, type)`` of each column of an existing table, in order (empty if none)."""

    def secrets(self) -> list[str]:
        """Values that must never be printed or recorded (the DSN password)."""
        return []

    def sql_type(self, column: Column) -> str:
        return SQL_TYPES[self.dialect][column.type]

    def schema_fields(self, table: Table) -> list[tuple[str, str, str]]:
        """``(name, type in this dialect, description)`` per column: the ``schema`` facet's fields."""
        return [(c.name, self.sql_type(c), c.description) for c in table.columns]

    def table_exists(self, table: str) -> bool:
        return bool(self.columns(table))

    def table_bytes(self, table: str) -> int | None:
        """The size of an existing table as the warehouse stores it, when it says (None otherwise)."""
        return None

    def _watched(self, conn: Any) -> Any:
        return self.meter.watch(conn) if self.meter is not None else conn

    def _column_defs(self, table: Table) -> str:
        defs = [
            f"{quote(c.name)} {self.sql_type(c)}{'' if c.nullable or c.name in table.key else ' NOT NULL'}"
            for c in table.columns
        ]
        if table.key:
            defs.append(f"PRIMARY KEY ({', '.join(quote(k) for k in table.key)})")
        return ", ".join(defs)

    def _merge_sql(self, table: Table, source: str) -> str:
        """``INSERT … ON CONFLICT DO UPDATE`` that only touches rows whose values changed."""
        cols = ", ".join(quote(c) for c in table.column_names)
        updates = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in table.column_names if c not in table.key)
        values = table.value_columns or [c for c in table.column_names if c not in table.key]
        current = ", ".join(f"cur.{quote(c)}" for c in values)
        incoming = ", ".join(f"EXCLUDED.{quote(c)}" for c in values)
        conflict = f"ON CONFLICT ({', '.join(quote(k) for k in table.key)})"
        action = (
            f"DO UPDATE SET {updates} WHERE ({current}, NULL) IS DISTINCT FROM ({incoming}, NULL)"
            if updates else "DO NOTHING"
        )
        return f"INSERT INTO {quote(table.name)} AS cur ({cols}) SELECT {cols} FROM {source} {conflict} {action}"


def is_frame(data: Any) -> TypeGuard[Any]:
    """True for a pandas DataFrame (loaded column-wise, the fast path for big batches)."""
    return hasattr(data, "iloc") and hasattr(data, "columns")


def dedupe_on_key(table: Table, rows: Any) -> Any:
    """Keep the last row per key (a batch must not update the same row twice)."""
    if is_frame(rows):
        return rows.drop_duplicates(subset=list(table.key), keep="last") if table.key else rows
    if not table.key:
        return list(rows)
    index = [table.column_names.index(k) for k in table.key]
    latest: dict[tuple[Any, ...], Sequence[Any]] = {}
    for row in rows:
        latest[tuple(row[i] for i in index)] = row
    return list(latest.values())


# --------------------------------------------------------------------------- PostgreSQL


class PostgresTarget(Target):
    """PostgreSQL through psycopg 3; batches arrive by ``COPY``."""

    dialect = "postgres"

    def __init__(self, dsn: str, *, connect_timeout: int = 10) -> None:
        import psycopg.conninfo

        try:
            params = psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise TargetError(f"invalid PostgreSQL URL: {str(exc).splitlines()[0]}") from None
        self._dsn = dsn
        self._password = str(params.get("password") or "")
        host = str(params.get("host") or "localhost")
        self.host = "localhost" if host.startswith("/") else host.split(",")[0]
        self.port = int(str(params.get("port") or "5432").split(",")[0])
        self.user = str(params.get("user") or "")
        self.database = str(params.get("dbname") or self.user or "postgres")
        self._timeout = connect_timeout

    def describe(self) -> str:
        who = f"{self.user}@" if self.user else ""
        return f"postgresql://{who}{self.host}:{self.port}/{self.database}"

    def secrets(self) -> list[str]:
        return [self._password] if self._password else []

    def dataset(self, table: str) -> DatasetRef:
        return postgres_dataset(self.host, self.port, self.database, table)

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """One connection; the ``with`` block is one transaction (commit on success)."""
        import psycopg

        try:
            conn = psycopg.connect(self._dsn, connect_timeout=self._timeout, application_name="lineage-audit")
        except psycopg.OperationalError as exc:
            raise TargetError(f"cannot connect to {self.describe()}: {self._clean(exc)}") from None
        try:
            with conn:
                left = self._seconds_left()
                if left is not None:
                    conn.execute(f"SET statement_timeout = {max(1, int(left * 1000))}")
                yield self._watched(conn)
        except psycopg.Error as exc:
            raise TargetError(f"{self.describe()}: {self._clean(exc)}") from exc
        finally:
            conn.close()

    def _clean(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return text.replace(self._password, "***") if self._password else text

    def _copy(self, cur: Any, table: str, columns: list[str], data: Any) -> int:
        """Stream rows (tuples, or a DataFrame with these columns) with ``COPY … FROM STDIN``."""
        cols = ", ".join(quote(c) for c in columns)
        data = data[columns] if is_frame(data) else list(data)
        chunks = frame_chunks(data) if is_frame(data) else row_chunks(data)
        with cur.copy(f"COPY {quote(table)} ({cols}) FROM STDIN WITH (FORMAT csv, NULL '{NULL}')") as copy:
            for text in chunks:
                copy.write(text)
        return len(data)

    def upsert_many(self, batches: Sequence[tuple[Table, Iterable[Sequence[Any]]]]) -> list[LoadResult]:
        results = []
        with self.connect() as conn:
            for table, rows in batches:
                batch = dedupe_on_key(table, rows)
                stage = f"_stage_{table.name.replace('.', '_')}"
                self._ensure(conn, table)
                conn.execute(f"CREATE TEMP TABLE {quote(stage)} (LIKE {quote(table.name)}) ON COMMIT DROP")
                with conn.cursor() as cur:
                    offered = self._copy(cur, stage, table.column_names, batch)
                    cur.execute(self._merge_sql(table, quote(stage)))
                    written = max(cur.rowcount, 0)
                    total = cur.execute(f"SELECT count(*) FROM {quote(table.name)}").fetchone()[0]
                results.append(LoadResult(table.name, offered, written, total))
        return results

    def replace(self, table: Table, rows: Iterable[Sequence[Any]]) -> LoadResult:
        new = table.renamed(table.name + NEW_SUFFIX)
        bare = Table(new.name, new.columns)  # key added after the load: one index build, not a million inserts
        with self.connect() as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(table.schema)}")
            conn.execute(f"DROP TABLE IF EXISTS {quote(new.name)}")
            conn.execute(f"CREATE TABLE {quote(new.name)} ({self._column_defs(bare)})")
            with conn.cursor() as cur:
                count = self._copy(cur, new.name, table.column_names, rows)
            if table.key:
                conn.execute(f"ALTER TABLE {quote(new.name)} ADD PRIMARY KEY ({', '.join(quote(k) for k in table.key)})")
            self._swap(conn, table.name)
        return LoadResult(table.name, count, count, count)

    def _swap(self, conn: Any, table: str) -> None:
        """Drop the old table and rename the new one into place (caller's transaction)."""
        schema, name = table.split(".", 1)
        conn.execute(f"DROP TABLE IF EXISTS {quote(table)}")
        conn.execute(f"ALTER TABLE {quote(table + NEW_SUFFIX)} RENAME TO {quote(name)}")
        conn.execute(f"ALTER INDEX IF EXISTS {quote(f'{schema}.{name}{NEW_SUFFIX}_pkey')} RENAME TO {quote(name + '_pkey')}")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return list(conn.execute(sql, params or None).fetchall())

    def columns(self, table: str) -> list[tuple[str, str]]:
        schema, name = table.split(".", 1)
        return [
            (r[0], r[1])
            for r in self.query(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (schema, name),
            )
        ]

    def table_bytes(self, table: str) -> int | None:
        """``pg_table_size``: the table's heap, TOAST and maps (indexes not counted)."""
        rows = self.query("SELECT pg_table_size(to_regclass(%s))", (quote(table),))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None


# --------------------------------------------------------------------------- DuckDB


class DuckDBTarget(Target):
    """An embedded DuckDB database file; batches arrive as a registered DataFrame."""

    dialect = "duckdb"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()

    def describe(self) -> str:
        return f"duckdb:{self.path}"

    def dataset(self, table: str) -> DatasetRef:
        return duckdb_dataset(self.path, table)

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """One connection; the ``with`` block is one transaction (rolled back on error)."""
        import duckdb

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise TargetError(f"cannot open {self.describe()}: {exc}") from None
        left = self._seconds_left()
        timer = threading.Timer(left, conn.interrupt) if left is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            conn.execute("BEGIN TRANSACTION")
            yield self._watched(conn)
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(duckdb.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, duckdb.Error):
                raise TargetError(f"{self.describe()}: {str(exc).splitlines()[0]}") from exc
            raise
        finally:
            if timer is not None:
                timer.cancel()
            conn.close()

    def _register(self, conn: Any, table: Table, rows: Iterable[Sequence[Any]]) -> tuple[str, int]:
        """The batch as a DataFrame view with each column cast to its declared type."""
        import pandas as pd

        if is_frame(rows):
            frame = rows[table.column_names]
        else:
            frame = pd.DataFrame.from_records(list(rows), columns=table.column_names)
        conn.register("_batch", frame)
        casts = ", ".join(f"CAST({quote(c.name)} AS {self.sql_type(c)}) AS {quote(c.name)}" for c in table.columns)
        return f"(SELECT {casts} FROM _batch)", len(frame)

    def upsert_many(self, batches: Sequence[tuple[Table, Iterable[Sequence[Any]]]]) -> list[LoadResult]:
        results = []
        with self.connect() as conn:
            for table, rows in batches:
                batch = dedupe_on_key(table, rows)
                self._ensure(conn, table)
                source, offered = self._register(conn, table, batch)
                written = conn.execute(self._merge_sql(table, f"{source} AS s")).fetchone()[0]
                total = conn.execute(f"SELECT count(*) FROM {quote(table.name)}").fetchone()[0]
                results.append(LoadResult(table.name, offered, int(written), int(total)))
        return results

    def replace(self, table: Table, rows: Iterable[Sequence[Any]]) -> LoadResult:
        new = table.renamed(table.name + NEW_SUFFIX)
        with self.connect() as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(table.schema)}")
            conn.execute(f"DROP TABLE IF EXISTS {quote(new.name)}")
            conn.execute(f"CREATE TABLE {quote(new.name)} ({self._column_defs(new)})")
            source, count = self._register(conn, table, rows)
            conn.execute(f"INSERT INTO {quote(new.name)} SELECT * FROM {source} AS s")
            self._swap(conn, table.name)
        return LoadResult(table.name, count, count, count)

    def _swap(self, conn: Any, table: str) -> None:
        conn.execute(f"DROP TABLE IF EXISTS {quote(table)}")
        conn.execute(f"ALTER TABLE {quote(table + NEW_SUFFIX)} RENAME TO {quote(table.split('.', 1)[1])}")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return list(conn.execute(sql, list(params) if params else None).fetchall())

    def columns(self, table: str) -> list[tuple[str, str]]:
        if not self.path.exists():
            return []
        schema, name = table.split(".", 1)
        return [
            (r[0], r[1])
            for r in self.query(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                (schema, name),
            )
        ]


def parse_target(url: str | None, *, default_path: Path) -> Target:
    """A target from ``postgresql://…``, ``duckdb:PATH`` or ``PATH.duckdb``; None means the default DuckDB file."""
    if not url:
        return DuckDBTarget(default_path)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresTarget(url)
    if url.startswith("duckdb:"):
        path = url[len("duckdb:"):].removeprefix("//")
        if not path or path == ":memory:":
            raise TargetError("duckdb target needs a file path, e.g. duckdb:warehouse.duckdb")
        return DuckDBTarget(path)
    if url.endswith((".duckdb", ".db")):
        return DuckDBTarget(url)
    raise TargetError(f"unknown target {url.split('@')[-1]!r}: use postgresql://USER@HOST:PORT/DB or duckdb:PATH")
