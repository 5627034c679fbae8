"""`lineage-audit serve`: ingest over HTTP against the embedded store written in-process, and scrape time.

What a producer pays per event, sent as the OpenLineage HTTP transport sends (one event per
POST, keep-alive, bearer token), against writing the same events into the embedded store
in the same process (one transaction per event, as the embedded transport does):
  ours  : serve over the embedded store (SQLite)
  ours  : serve over the PostgreSQL store (with --pg DSN, or $LINEAGE_AUDIT_PG_DSN)
  peer  : EmbeddedStore.add_event in-process
and /metrics on a store of 50,000 events: the first scrape of a fresh process (folds every
event once) and the median of later scrapes (fold only what is new), after 100 new events too.

Usage: python bench/serve.py [--events N] [--store-events N] [--clients N...] [--pg DSN]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def over_http(events: list[dict], root: Path, store: str, label: str, clients: int = 1) -> float:
    """Events/s when ``clients`` producers send at once, each one event per request, in order."""
    token = add_token(root, "bench")
    server = start_server(["--store", store, "--tokens", str(root / "tokens.json")], root)
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{server.url}/api/v1/lineage"

    def send(share: list[dict]) -> None:
        with httpx.Client(headers=headers, timeout=30) as http:
            for event in share:
                assert http.post(url, json=event).status_code == 201

    try:
        with httpx.Client(headers=headers, timeout=30) as http:
            http.post(url, json=make_events(1, offset=10**6)[0])  # warm up
        shares = [events[i::clients] for i in range(clients)]
        cpu, began = cpu_seconds(server.process.pid), time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(send, shares))
        per_s = rate(f"{label}, {clients} client{'s' if clients > 1 else ''}", len(events), time.perf_counter() - began)
        used = cpu_seconds(server.process.pid) - cpu
        print(f"    serve's own CPU: {used:.2f} s, {len(events) / used:.0f} events per CPU-second "
              "(what one core would ingest with the clients elsewhere)")
        return per_s
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
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8],
                        help="producers sending at once (each one event per request)")
    parser.add_argument("--pg", default=os.environ.get("LINEAGE_AUDIT_PG_DSN"))
    args = parser.parse_args()
    events = make_events(args.events)
    print(f"ingest of {len(events)} pipeline events (4 per run), one per request:")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        peer = in_process(events, root)
        for clients in args.clients:
            served = root / f"served-{clients}.db"
            sqlite = over_http(events, root, f"embedded:{served}", "serve over HTTP, embedded store", clients)
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
                for clients in args.clients:
                    with psycopg.connect(dsn, autocommit=True) as conn:  # each run starts from an empty store
                        conn.execute("DROP SCHEMA IF EXISTS lineage_audit CASCADE")
                    pg = over_http(events, root, dsn, "serve over HTTP, PostgreSQL store", clients)
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
