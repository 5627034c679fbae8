"""Lineage of one large SQL script: CPU per statement must not grow with the script's size.

The 121 TPC-H/TPC-DS queries are written as a script of CREATE TABLE ... AS / INSERT INTO ...
statements (each reading the benchmark's tables, every tenth also reading a table the script
created earlier), repeated N times with fresh target names. We run the engine on the script at
1x and at the larger size in this one process and print ms/statement for each and their ratio
(1.0 means linear). A peer is not needed: the claim is about our own growth.

Usage: python bench/sql_scaling.py [--scale 50] [--repeat 3] [--profile]
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


def load_corpus() -> tuple[list[str], dict]:
    root = Path(os.environ.get("LINEAGE_AUDIT_CORPUS") or REPO.parent / "shared" / "corpus")
    if not root.exists():
        sys.exit(f"corpus not found at {root}: set LINEAGE_AUDIT_CORPUS")
    queries: list[str] = []
    schema: dict = {}
    for bench in ("tpch", "tpcds"):
        schema.update(json.loads((root / f"{bench}_schema.json").read_text()))
        for path in sorted((root / bench).glob("*.sql")):
            queries.append(path.read_text().strip().rstrip(";"))
    return queries, schema


def script(queries: list[str], copies: int) -> str:
    """The corpus as writes, ``copies`` times; every tenth write also reads an earlier one."""
    parts: list[str] = []
    n = 0
    for copy in range(copies):
        for i, query in enumerate(queries):
            target = f"out_{copy}_{i}"
            if n % 2:
                parts.append(f"CREATE TABLE {target} AS\n{query};\n")
            else:
                parts.append(f"INSERT INTO {target}\n{query};\n")
            if n % 10 == 9:
                parts.append(f"CREATE TABLE {target}_copy AS SELECT * FROM {target};\n")
            n += 1
    return "".join(parts)


def run(sql: str, schema: dict) -> tuple[float, int]:
    start = time.process_time()
    result = analyze_sql(sql, schema=schema, file="script.sql")
    elapsed = time.process_time() - start
    if result.errors:
        raise SystemExit(f"engine error: {result.errors[0]}")
    return elapsed, len(result.statements)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=50, help="copies of the corpus in the large script (default 50)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the 1x script; the median counts (default 3)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the large run instead")
    args = parser.parse_args()
    queries, schema = load_corpus()
    small, large = script(queries, 1), script(queries, args.scale)
    run(small, schema)  # warm imports and caches
    if args.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(run, large, schema)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return
    small_runs = [run(small, schema) for _ in range(args.repeat)]
    small_ms = statistics.median(s / n * 1000 for s, n in small_runs)
    large_s, large_n = run(large, schema)
    large_ms = large_s / large_n * 1000
    print(f"script 1x: {small_runs[0][1]} statements, {len(small) / 1e6:.2f} MB; "
          f"{args.scale}x: {large_n} statements, {len(large) / 1e6:.2f} MB")
    print(f"{'size':<8}{'CPU ms/statement':>18}")
    print(f"{'1x':<8}{small_ms:>18.2f}")
    print(f"{f'{args.scale}x':<8}{large_ms:>18.2f}")
    print(f"growth {args.scale}x/1x: {large_ms / small_ms:.2f}   (linear: about 1.0)")


if __name__ == "__main__":
    main()
