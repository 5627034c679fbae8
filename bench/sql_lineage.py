"""Column lineage on TPC-H + TPC-DS: our engine against sqlglot.lineage and sqllineage.

All three run in this one process on the same 121 queries with their schemas; we print the
median ms/query of each and the ratios. Peers:
  (a) ``sqlglot.lineage.lineage(None, sql, schema=..., trim_selects=False)`` — every column
      in one call (the fastest way to use it);
  (b) sqllineage ``LineageRunner(sql, metadata_provider=DummyMetaDataProvider(schema))``
      asked for column lineage.

Usage: python bench/sql_lineage.py [--repeat N] [--peer-b-limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lineage_auditor.sql import analyze_sql  # noqa: E402


def load_corpus() -> list[tuple[str, str, dict]]:
    root = Path(os.environ.get("LINEAGE_AUDIT_CORPUS") or REPO.parent / "shared" / "corpus")
    if not root.exists():
        sys.exit(f"corpus not found at {root}: set LINEAGE_AUDIT_CORPUS")
    out = []
    for bench in ("tpch", "tpcds"):
        schema = json.loads((root / f"{bench}_schema.json").read_text())
        for path in sorted((root / bench).glob("*.sql")):
            out.append((f"{bench}/{path.name}", path.read_text(), schema))
    return out


def ours(sql: str, schema: dict) -> int:
    result = analyze_sql(sql, schema=schema)
    if result.errors:
        raise RuntimeError(result.errors[0].message)
    return sum(len(o.fields) for st in result.statements for o in st.outputs)


def sqlglot_lineage(sql: str, schema: dict) -> int:
    from sqlglot.lineage import lineage

    return len(lineage(None, sql, schema=schema, trim_selects=False))


def sqllineage_columns(sql: str, schema: dict) -> int:
    from sqllineage.core.metadata.dummy import DummyMetaDataProvider  # type: ignore
    from sqllineage.runner import LineageRunner  # type: ignore

    provider = DummyMetaDataProvider({f"default.{t}": list(cols) for t, cols in schema.items()})
    runner = LineageRunner(f"INSERT INTO bench_out {sql}", dialect="ansi", metadata_provider=provider, silent_mode=True)
    return len(runner.get_column_lineage())


def measure(name, fn, corpus, repeat: int) -> tuple[float, int]:
    """Median ms/query (each query's best of ``repeat``) and the number of failures."""
    per_query = []
    failures = 0
    for label, sql, schema in corpus:
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            try:
                fn(sql, schema)
            except Exception as exc:  # a peer failing on a query is a result, not a crash
                failures += 1
                print(f"  {name} failed on {label}: {type(exc).__name__}: {str(exc)[:100]}", file=sys.stderr)
                break
            best = min(best, time.perf_counter() - start)
        if best != float("inf"):
            per_query.append(best * 1000)
    return (statistics.median(per_query) if per_query else float("nan")), failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs per query; the best counts (default 5)")
    parser.add_argument("--peer-b-limit", type=int, default=0, help="run sqllineage on only the first N queries (0: all)")
    args = parser.parse_args()
    corpus = load_corpus()
    import sqlglot
    import sqlglot.parser

    compiled = "compiled by sqlglotc" if sqlglot.parser.__file__.endswith(".so") else "pure Python"

    print(f"corpus: {len(corpus)} queries; sqlglot {sqlglot.__version__} ({compiled})")
    for _, sql, schema in corpus[:5]:  # warm caches and imports for everyone
        ours(sql, schema)
        sqlglot_lineage(sql, schema)
    ours_ms, ours_fail = measure("ours", ours, corpus, args.repeat)
    a_ms, a_fail = measure("sqlglot.lineage", sqlglot_lineage, corpus, args.repeat)
    b_corpus = corpus[: args.peer_b_limit] if args.peer_b_limit else corpus
    b_ms, b_fail = measure("sqllineage", sqllineage_columns, b_corpus, 1)
    print(f"{'engine':<34}{'median ms/query':>16}{'failed':>8}")
    print(f"{'lineage-audit':<34}{ours_ms:>16.2f}{ours_fail:>8}")
    print(f"{'(a) sqlglot.lineage(None, ...)':<34}{a_ms:>16.2f}{a_fail:>8}")
    print(f"{'(b) sqllineage LineageRunner':<34}{b_ms:>16.2f}{b_fail:>8}   ({len(b_corpus)} queries)")
    print(f"ratio (a)/ours: {a_ms / ours_ms:.1f}x   (target >= 3x)")
    print(f"ratio (b)/ours: {b_ms / ours_ms:.1f}x   (target >= 50x)")


if __name__ == "__main__":
    main()
