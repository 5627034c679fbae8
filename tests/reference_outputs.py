"""The reference pipelines' outputs in a comparable form: tables as sorted CSV text without the
per-run stamps, and each published column's lineage back to its root sources.

``tests/data/reference_outputs/`` holds these for the demo's inputs as the hand-written
pipelines produced them before they became specs (see the README there); the parity test
holds the specs to them.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import duckdb

from collectors.store import EmbeddedStore
from lineage_auditor.graph import LineageGraph
from lineage_auditor.model import ColumnRef

#: Published tables and the columns left out of the comparison (stamps that differ per run).
TABLES = {
    "weather.hourly": ("run_id", "source_request"),
    "weather.hourly_quarantine": ("run_id", "source_request"),
    "analytics.user_orders": (),
    "features.churn_features": (),
}


def snapshot_tables(warehouse: Path) -> dict[str, str]:
    """Each published table as CSV text, rows sorted, stamps left out."""
    out = {}
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        for table, stamps in TABLES.items():
            columns = [r[0] for r in conn.execute(f"DESCRIBE {table}").fetchall() if r[0] not in stamps]
            rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY ALL").fetchall()
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([[_text(v) for v in row] for row in rows])
            out[table] = buffer.getvalue()
    return out


def doubles_to_12_digits(table_csv: str) -> str:
    """The CSV with every fractional number at 12 significant digits: DuckDB's parallel AVG and
    SUM of doubles differ in the last bits between runs (2.6 or 2.5999999999999996)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in csv.reader(io.StringIO(table_csv)):
        writer.writerow([_digits(field) for field in row])
    return out.getvalue()


def _digits(field: str) -> str:
    if "." not in field and "e" not in field.lower():
        return field
    try:
        return f"{float(field):.12g}"
    except ValueError:
        return field


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _name(column: ColumnRef) -> str:
    """A column by a name that does not depend on where the demo ran: a warehouse table without
    its catalog, a file by its base name, an API by namespace and path."""
    ds = column.dataset
    if ds.namespace.startswith("duckdb://"):
        return f"{ds.name.split('.', 1)[1]}.{column.field}"
    if ds.namespace == "file":
        return f"file:{Path(ds.name).name}.{column.field}"
    return f"{ds.namespace}/{ds.name}.{column.field}"


def snapshot_lineage(store: Path) -> dict[str, dict[str, Any]]:
    """Per published column: the columns it is computed from (with transformation types) and the
    root sources it comes from, end to end."""
    with EmbeddedStore(store) as s:
        graph = LineageGraph.from_events(s.events())
    out: dict[str, dict[str, Any]] = {}
    direct: dict[str, set[str]] = {}
    for edge in graph.column_edges():
        target = _name(edge.target)
        if target.rsplit(".", 1)[0] not in TABLES:
            continue
        for t in edge.transformations:
            direct.setdefault(target, set()).add(f"{_name(edge.source)} {t.type}/{t.subtype}")
    for target, sources in sorted(direct.items()):
        column = next(c for c in graph.columns() if _name(c) == target)
        roots = sorted(_name(r) for r in graph.column_root_sources(column))
        out[target] = {"inputs": sorted(sources), "roots": roots}
    return out
