"""What the warehouse itself reports about the statements a step sends: rows and bytes scanned, time.

- **DuckDB**: profiling on the step's connections (``PRAGMA enable_profiling = 'no_output'``)
  and the JSON profile of each statement (``get_profiling_information``): rows each scan
  operator read, their bytes (rows scanned times the scan's bytes per row: the logical size
  of the columns read, as BigQuery counts), operator time, and the bytes DuckDB wrote.
- **PostgreSQL**: each statement that writes (``CREATE TABLE ... AS``, ``INSERT``, ``UPDATE``,
  ``DELETE``, ``MERGE``) runs under ``EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON)``,
  which executes it once and reports the shared and local buffers its plan touched (hit +
  read, times the block size: a full scan reads the table's size) and rows read by each scan.
  Chosen over ``pg_stat_statements``: that needs the extension preloaded (a server restart,
  not available on many managed servers), aggregates by normalized query across every
  session rather than per execution, and would have to be read and diffed around each
  statement. A ``SELECT`` whose rows the runner needs (a check's count) is not explained
  (that would run it twice): checks on PostgreSQL are measured by process time only.
- **BigQuery**: a dry run (``configuration.dryRun``) answers ``totalBytesProcessed`` without
  running the query: what on-demand pricing bills (:func:`bigquery_dry_run`).

A meter watches connections through :meth:`Meter.watch`; the target's ``connect`` hands
every connection to the active meter (``Target.meter``), so step code needs no change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lineage_auditor.errors import PipelineError

#: Statements PostgreSQL can EXPLAIN ANALYZE without changing what the caller sees (no rows wanted).
_PG_WRITES = re.compile(
    r"^\s*(?:CREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?(?:TEMP(?:ORARY)?\s+|UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"(?:\"[^\"]*\"|[^\s(])+\s*(?:\([^)]*\)\s*)?AS\s+(?:SELECT|WITH|VALUES|TABLE|\()|INSERT\b|UPDATE\b|DELETE\b|MERGE\b)",
    re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_SCAN_NODES = ("Scan",)  # PostgreSQL plan node types ending with it read a relation


@dataclass
class WarehouseUsage:
    """What the warehouse reported for a step's statements, summed."""

    engine: str
    method: str
    statements: int = 0
    rows_scanned: int = 0
    bytes_scanned: int = 0
    bytes_written: int | None = None
    seconds: float = 0.0

    def add(self, rows: int, scanned: int, seconds: float, written: int | None = None) -> None:
        self.statements += 1
        self.rows_scanned += rows
        self.bytes_scanned += scanned
        self.seconds += seconds
        if written is not None:
            self.bytes_written = (self.bytes_written or 0) + written


class Meter:
    """Watches a step's connections and sums what the warehouse reports."""

    engine = ""
    method = "none"

    def __init__(self) -> None:
        self.usage = WarehouseUsage(self.engine, self.method)

    def watch(self, conn: Any) -> Any:
        """``conn`` itself, or a stand-in that measures the statements sent through it."""
        return conn


class _Watched:
    """A connection whose ``execute`` goes through a meter; everything else is the connection's."""

    def __init__(self, conn: Any, execute: Any) -> None:
        self._conn = conn
        self._execute = execute

    def execute(self, sql: Any, *args: Any, **kwargs: Any) -> Any:
        return self._execute(self._conn, sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


# ---------------------------------------------------------------------- DuckDB


class DuckDBProfiler(Meter):
    """DuckDB's JSON profile of every statement on the watched connections."""

    engine = "duckdb"
    method = "duckdb-profiling"

    def watch(self, conn: Any) -> Any:
        if not hasattr(conn, "get_profiling_information"):  # a DuckDB without the profile API: time only
            return conn
        conn.execute("PRAGMA enable_profiling = 'no_output'")
        return _Watched(conn, self._execute)

    def _execute(self, conn: Any, sql: Any, *args: Any, **kwargs: Any) -> Any:
        result = conn.execute(sql, *args, **kwargs)
        try:
            profile = json.loads(conn.get_profiling_information(format="json"))
        except Exception:  # noqa: BLE001 - a statement without a plan (DDL) has no profile to read
            return result
        self.usage.add(*duckdb_profile_usage(profile))
        return result


def duckdb_profile_usage(profile: Mapping[str, Any]) -> tuple[int, int, float, int | None]:
    """(rows scanned, bytes scanned, operator seconds, bytes written) from one DuckDB JSON profile.

    Bytes scanned are per scan operator its rows scanned times the bytes per row it emitted
    (the logical size of the columns it read; DuckDB reports no scanned bytes of its own).
    Reads the keys of DuckDB 1.1+ (``operator_rows_scanned``, ``result_set_size``) and 2.x
    (``rows_scanned``, ``intermediate_size_bytes``).
    """
    rows = scanned = 0
    seconds = 0.0
    for node in _operators(profile):
        seconds += float(node.get("timing", node.get("operator_timing", 0.0)) or 0.0)
        read = int(node.get("rows_scanned", node.get("operator_rows_scanned", 0)) or 0)
        if read:
            out_rows = int(node.get("intermediate_rows", node.get("operator_cardinality", 0)) or 0)
            out_bytes = int(node.get("intermediate_size_bytes", node.get("result_set_size", 0)) or 0)
            rows += read
            scanned += round(read * out_bytes / out_rows) if out_rows else 0
    io = profile.get("io") or {}
    written = io.get("total_bytes_written")
    return rows, scanned, seconds, int(written) if written is not None else None


def _operators(profile: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    stack = list(profile.get("children") or profile.get("operator") or [])
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            yield node
            stack.extend(node.get("children") or [])


# ---------------------------------------------------------------------- PostgreSQL


class PostgresExplain(Meter):
    """Writing statements run under ``EXPLAIN (ANALYZE, BUFFERS)``: executed once, with their plan's figures."""

    engine = "postgres"
    method = "explain-analyze"

    def __init__(self) -> None:
        super().__init__()
        self.block_size = 0

    def watch(self, conn: Any) -> Any:
        return _Watched(conn, self._execute)

    def _execute(self, conn: Any, sql: Any, *args: Any, **kwargs: Any) -> Any:
        text = str(sql)
        if not isinstance(sql, str) or not _PG_WRITES.match(text) or _RETURNING.search(text):
            return conn.execute(sql, *args, **kwargs)
        if not self.block_size:
            self.block_size = int(conn.execute("SELECT current_setting('block_size')").fetchone()[0])
        cursor = conn.execute("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) " + text, *args, **kwargs)
        answer = cursor.fetchone()[0]
        document = json.loads(answer) if isinstance(answer, str) else answer
        self.usage.add(*postgres_plan_usage(document, self.block_size))
        return cursor


def postgres_plan_usage(document: Any, block_size: int = 8192) -> tuple[int, int, float]:
    """(rows scanned, bytes read, execution seconds) from ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)``.

    Bytes are the buffers the plan touched (shared and local, hit and read: the top node's
    counts include its children's) times the block size; rows are those each scan node read
    (rows returned plus rows its filter removed, over all loops). A ``CREATE TABLE IF NOT
    EXISTS ... AS`` of a table that exists explains as a bare tag: nothing was read.
    """
    rows = blocks = 0
    seconds = 0.0
    for item in document if isinstance(document, list) else [document]:
        if not isinstance(item, Mapping) or not isinstance(item.get("Plan"), Mapping):
            continue
        plan = item["Plan"]
        blocks += sum(int(plan.get(k, 0) or 0) for k in ("Shared Hit Blocks", "Shared Read Blocks",
                                                          "Local Hit Blocks", "Local Read Blocks"))
        seconds += float(item.get("Execution Time", 0.0) or 0.0) / 1000.0
        rows += sum(_scanned_rows(node) for node in _plan_nodes(plan))
    return rows, blocks * block_size, seconds


def _plan_nodes(plan: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    stack = [plan]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(n for n in node.get("Plans") or [] if isinstance(n, Mapping))


def _scanned_rows(node: Mapping[str, Any]) -> int:
    if not str(node.get("Node Type", "")).endswith(_SCAN_NODES) or node.get("Node Type") == "Bitmap Index Scan":
        return 0
    loops = int(node.get("Actual Loops", 1) or 1)
    kept = float(node.get("Actual Rows", 0) or 0) * loops
    removed = float(node.get("Rows Removed by Filter", 0) or 0) * loops
    return round(kept + removed)


def meter_for(dialect: str) -> Meter:
    """The meter of a target dialect (one that reports nothing for others)."""
    if dialect == "duckdb":
        return DuckDBProfiler()
    if dialect == "postgres":
        return PostgresExplain()
    meter = Meter()
    meter.usage.engine = dialect
    return meter


# ---------------------------------------------------------------------- BigQuery


BIGQUERY_API = "https://bigquery.googleapis.com/bigquery/v2"


def bigquery_dry_run_request(sql: str, *, location: str | None = None) -> dict[str, Any]:
    """The ``jobs.insert`` body of a dry run of ``sql`` (standard SQL, no cache: the bytes a real run bills)."""
    body: dict[str, Any] = {"configuration": {"dryRun": True, "query": {"query": sql, "useLegacySql": False,
                                                                      "useQueryCache": False}}}
    if location:
        body["jobReference"] = {"location": location}
    return body


def bigquery_bytes_processed(job: Mapping[str, Any]) -> int:
    """``totalBytesProcessed`` of a dry-run job resource (the API sends int64 as a string)."""
    statistics = job.get("statistics") if isinstance(job, Mapping) else None
    if not isinstance(statistics, Mapping):
        raise PipelineError("BigQuery dry run: the answer has no statistics (not a job resource)")
    query = statistics.get("query")
    value: Any = (query if isinstance(query, Mapping) else {}).get("totalBytesProcessed",
                                                                    statistics.get("totalBytesProcessed"))
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PipelineError(f"BigQuery dry run: totalBytesProcessed is {value!r}, not a number of bytes") from None


def bigquery_dry_run(sql: str, *, project: str, token: str, location: str | None = None,
                     api: str = BIGQUERY_API, timeout: float = 30.0) -> WarehouseUsage:
    """What BigQuery would scan for ``sql``, from a dry run (free; nothing runs)."""
    import httpx

    try:
        answer = httpx.post(f"{api}/projects/{project}/jobs", json=bigquery_dry_run_request(sql, location=location),
                            headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise PipelineError(f"BigQuery dry run: {api} did not answer ({type(exc).__name__})") from None
    if answer.status_code != 200:
        message = _error_message(answer)
        raise PipelineError(f"BigQuery dry run: HTTP {answer.status_code}: {message}")
    usage = WarehouseUsage("bigquery", "dry-run")
    usage.add(0, bigquery_bytes_processed(answer.json()), 0.0)
    return usage


def _error_message(answer: Any) -> str:
    try:
        return str(answer.json()["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return answer.text[:300]
