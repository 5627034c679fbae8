"""`lineage-audit serve`: ingest over HTTP against the embedded store written in-process, and scrape time.

What a producer pays per event, sent as the OpenLineage HTTP transport sends (one event per
POST, keep-alive, bearer token), against writing the same events into the embedded store
in the same process (one transaction per event, as the embedded transport does):
  ours  : serve over the embedded store (SQLite)
  ours  : serve over the PostgreSQL store (with --pg DSN, or $LINEAGE_AUDIT_PG_DSN)
  peer  : EmbeddedStore.add_event in-process
and /metrics on a store of 50,000 events: the first scrape of a fresh process (folds every
event once) and the median of later scrapes (fold only what is new), after 100 new events too.

Usage: python bench/serve.py [--events N] [--store-events N] [--pg DSN]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import httpx  # noqa: E402

from collectors.store import EmbeddedStore  # noqa: E402
from service_helpers import add_token, pipeline_run, start_server  # noqa: E402


def make_events(n: int, offset: int = 0) -> list[dict]:
    out: list[dict] = []
    i = offset
    while len(out) < n:
        out += pipeline_run(i, pipeline=f"p{i % 20}", team=f"t{i % 5}", failed=i % 13 == 0)
        i += 1
    return out[:n]


def rate(label: str, n: int, seconds: float) -> float:
    per_s = n / seconds
    print(f"  {label:<58} {per_s:>8.0f} events/s  ({seconds * 1000 / n:6.2f} ms/event)")
    return per_s


def in_process(events: list[dict], root: Path) -> float:
    with EmbeddedStore(root / "inproc.db") as store:
        began = time.perf_counter()
        for event in events:
            store.add_event(event)
        return rate("embedded store, in-process add_event (peer)", len(events), time.perf_counter() - began)


def over_http(events: list[dict], root: Path, store: str, label: str) -> float:
    token = add_token(root, "bench")
    server = start_server(["--store", store, "--tokens", str(root / "tokens.json")], root)
    try:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            http.post(f"{server.url}/api/v1/lineage", json=make_events(1, offset=10**6)[0])  # warm up
            began = time.perf_counter()
            for event in events:
                assert http.post(f"{server.url}/api/v1/lineage", json=event).status_code == 201
            return rate(label, len(events), time.perf_counter() - began)
    finally:
        server.stop()


def scrapes(root: Path, n_events: int) -> None:
    path = root / "big.db"
    began = time.perf_counter()
    with EmbeddedStore(path) as store:
        store.add_events(make_events(n_events, offset=20000))
    print(f"  built a {n_events:,}-event store in {time.perf_counter() - began:.1f} s")
    token = add_token(root, "scraper")
    server = start_server(["--store", f"embedded:{path}", "--tokens", str(root / "tokens.json")], root)
    try:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
            def scrape() -> float:
                t = time.perf_counter()
                assert http.get(f"{server.url}/metrics").status_code == 200
                return time.perf_counter() - t

            first = scrape()
            warm = [scrape() for _ in range(30)]
            for event in make_events(100, offset=90000):
                http.post(f"{server.url}/api/v1/lineage", json=event)
            after_new = scrape()
            print(f"  /metrics, first scrape of a fresh process (folds all {n_events:,} events): {first * 1000:8.1f} ms")
            print(f"  /metrics, later scrapes (median of 30, nothing new):                  {statistics.median(warm) * 1000:8.1f} ms")
            print(f"  /metrics, a scrape after 100 new events:                              {after_new * 1000:8.1f} ms")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--store-events", type=int, default=50_000)
    parser.add_argument("--pg", default=os.environ.get("LINEAGE_AUDIT_PG_DSN"))
    args = parser.parse_args()
    events = make_events(args.events)
    print(f"ingest of {len(events)} pipeline events (4 per run), one per request:")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        peer = in_process(events, root)
        sqlite = over_http(events, root, f"embedded:{root / 'served.db'}", "serve over HTTP, embedded store")
        print(f"  ratio HTTP/in-process: {sqlite / peer:.2f}x")
        if args.pg:
            import psycopg

            name = f"bench_serve_{os.getpid()}"
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            try:
                from urllib.parse import urlsplit, urlunsplit

                parts = urlsplit(args.pg)
                dsn = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
                pg = over_http(events, root, dsn, "serve over HTTP, PostgreSQL store")
                print(f"  ratio HTTP+PostgreSQL/in-process: {pg / peer:.2f}x")
            finally:
                with psycopg.connect(args.pg, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            print("  (PostgreSQL store skipped: give --pg DSN or set LINEAGE_AUDIT_PG_DSN)")
        print("scrape:")
        scrapes(root, args.store_events)


if __name__ == "__main__":
    main()
