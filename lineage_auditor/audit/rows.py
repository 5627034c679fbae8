"""Reading an AI dataset's rows for data drift: from DuckDB or PostgreSQL, or the baseline.

``current`` rows are a sample of the table (the latest ``current_window`` when a time
column is set); ``reference`` rows are the sample saved in the baseline, or the window
before the current one. Table and column names come from the config, so they are checked
to be plain identifiers before they reach SQL.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd

from lineage_auditor.audit.config import AIDataset, DataConfig
from lineage_auditor.errors import LineageAuditError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")
BASELINE_SAMPLE_CAP = 20_000


def load_rows(target: AIDataset, which: str, baseline: dict[str, Any] | None) -> pd.DataFrame | None:
    """Rows for ``which`` = ``reference`` or ``current``; None when there are none to compare."""
    data = target.data
    if data is None:
        return None
    if which == "reference" and data.reference == "baseline":
        return baseline_frame(baseline, target.name)
    now = datetime.now(timezone.utc)
    window = timedelta(seconds=data.current_window) if data.current_window else None
    if which == "current":
        return query_table(data, since=now - window if window and data.time_column else None)
    if window is None or not data.time_column:
        raise LineageAuditError(f"ai_datasets {target.name}: reference: previous_window needs time_column and current_window")
    return query_table(data, since=now - 2 * window, until=now - window)


def baseline_frame(baseline: dict[str, Any] | None, name: str) -> pd.DataFrame | None:
    """The data sample saved for ``name`` (the config's name) in the baseline."""
    sample = ((baseline or {}).get("data") or {}).get(name)
    if not sample:
        return None
    return pd.DataFrame(sample.get("columns") or {})


def baseline_sample(frame: pd.DataFrame, cap: int = BASELINE_SAMPLE_CAP) -> dict[str, Any]:
    """A JSON-ready sample of ``frame`` to keep in the baseline (at most ``cap`` rows)."""
    if len(frame) > cap:
        frame = frame.sample(cap, random_state=0)
    columns: dict[str, list[float | None] | list[str | None]] = {}
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            columns[str(name)] = [None if pd.isna(v) else float(v) for v in series]
        else:
            columns[str(name)] = [None if pd.isna(v) else str(v) for v in series]
    return {"rows": len(frame), "columns": columns}


def query_table(data: DataConfig, *, since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame:
    """A sample of the configured table, optionally restricted to a time window."""
    for ident in filter(None, (data.table, data.time_column)):
        if not _IDENT.match(ident):
            raise LineageAuditError(f"not a plain table or column name: {ident!r}")
    where, params = [], []
    if since is not None:
        where.append(f"{data.time_column} >= ?")
        params.append(since)
    if until is not None:
        where.append(f"{data.time_column} < ?")
        params.append(until)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    warehouse = data.warehouse
    if warehouse.startswith(("postgresql://", "postgres://")):
        return _postgres(warehouse, f"SELECT * FROM {data.table}{clause.replace('?', '%s')} LIMIT {int(data.sample_rows)}", params)
    path = warehouse.removeprefix("duckdb:")
    return _duckdb(path, f"SELECT * FROM {data.table}{clause} USING SAMPLE reservoir({int(data.sample_rows)} ROWS) REPEATABLE (42)", params)


def _duckdb(path: str, sql: str, params: list[Any]) -> pd.DataFrame:
    import duckdb

    try:
        with duckdb.connect(path, read_only=True) as conn:
            return _normalize(conn.execute(sql, params).df())
    except duckdb.Error as exc:
        raise LineageAuditError(f"cannot read rows from DuckDB: {exc}", file=path) from None


def _postgres(dsn: str, sql: str, params: list[Any]) -> pd.DataFrame:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            names = [d.name for d in cur.description or []]
            return _normalize(pd.DataFrame(cur.fetchall(), columns=names))
    except psycopg.Error as exc:
        # never echo the DSN: it may carry a password
        raise LineageAuditError(f"cannot read rows from PostgreSQL: {type(exc).__name__}") from None


def _normalize(frame: pd.DataFrame) -> pd.DataFrame:
    """DECIMAL columns arrive as Python ``Decimal`` objects: make them floats so they test as numbers."""
    from decimal import Decimal

    for name in frame.columns:
        series = frame[name]
        if series.dtype == object:
            present = series.dropna()
            if not present.empty and all(isinstance(v, Decimal) for v in present):
                frame[name] = series.astype(float)
    return frame
