"""OpenLineage emission: our emitter against openlineage-python's client, in one run.

What a pipeline pays per event, for the same realistic events (START/COMPLETE of a SQL step
with schema, columnLineage, data quality facets):
  ours  : LineageEmitter -> embedded SQLite store (one fsync'd transaction per event)
  ours  : LineageEmitter -> NDJSON file (fsync per event)
  ours  : LineageEmitter -> lineage server down (refused port): event spooled, never raised
  peer  : openlineage-python OpenLineageClient -> its file transport (append, no fsync)
  peer  : openlineage-python OpenLineageClient -> http transport, server down: emit() raises
          after its default retries (timed on a single event; it blocks for seconds)
and the embedded store's bulk import rate (``add_events``).

Usage: python bench/emit.py [--events N]
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collectors.emit import LineageEmitter, emitter_from_config, to_event_dict  # noqa: E402
from collectors.emit.examples import example_run  # noqa: E402
from collectors.store import EmbeddedStore  # noqa: E402


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_events(n: int) -> list:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    out: list = []
    while len(out) < n:
        out += example_run(start=start + timedelta(minutes=len(out)))
    return out[:n]


def rate(label: str, n: int, seconds: float) -> float:
    per_s = n / seconds if seconds else float("inf")
    print(f"  {label:<62} {per_s:>9.0f} events/s  ({seconds * 1000 / n:7.2f} ms/event)")
    return per_s


def time_emitter(emitter: LineageEmitter, events: list) -> float:
    began = time.perf_counter()
    for event in events:
        emitter.emit(event)
    elapsed = time.perf_counter() - began
    emitter.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    events = make_events(args.events)
    n = len(events)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"{n} events, one process, 2-core machine\n")
        ours_db = rate("ours: emitter -> embedded store (fsync per event)", n,
                       time_emitter(emitter_from_config(f"embedded:{root / 'a.db'}", home=root / "h1"), events))
        ours_file = rate("ours: emitter -> NDJSON file (fsync per event)", n,
                         time_emitter(emitter_from_config(f"file:{root / 'a.ndjson'}", home=root / "h2"), events))
        down = emitter_from_config(f"marquez:http://127.0.0.1:{closed_port()}", home=root / "h3")
        ours_down = rate("ours: emitter -> server down: spooled, no exception", n, time_emitter(down, events))
        assert down.stats.spooled == n

        from openlineage.client import OpenLineageClient
        from openlineage.client.transport.file import FileConfig, FileTransport

        client = OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(root / "peer.ndjson"), append=True)))
        began = time.perf_counter()
        for event in events:
            client.emit(event)
        peer_file = rate("peer: openlineage-python client -> file (no fsync)", n, time.perf_counter() - began)

        from openlineage.client.transport.http import HttpConfig, HttpTransport

        peer_http = OpenLineageClient(transport=HttpTransport(HttpConfig(url=f"http://127.0.0.1:{closed_port()}")))
        began = time.perf_counter()
        raised = False
        try:
            peer_http.emit(events[0])
        except Exception:  # noqa: BLE001 - the point: it raises into the pipeline
            raised = True
        peer_down_s = time.perf_counter() - began
        print(f"  {'peer: openlineage-python client -> server down (1 event)':<62} "
              f"{peer_down_s * 1000:9.0f} ms, then {'raises' if raised else 'returns'}")

        dicts = [to_event_dict(e) for e in make_events(max(n, 1000))]
        with EmbeddedStore(root / "bulk.db") as store:
            began = time.perf_counter()
            store.add_events(dicts)
            rate("ours: embedded store add_events (bulk, batched transactions)", len(dicts), time.perf_counter() - began)

        print("\nratios")
        print(f"  embedded store vs peer file transport: {ours_db / peer_file:5.2f}x events/s (ours fsyncs, peer does not)")
        print(f"  NDJSON file    vs peer file transport: {ours_file / peer_file:5.2f}x events/s")
        per_event_down = 1000 / ours_down
        print(f"  server down, per-event cost: ours {per_event_down:.2f} ms (spooled) vs peer {peer_down_s * 1000:.0f} ms"
              f" and an exception -> {peer_down_s * 1000 / per_event_down:,.0f}x")


if __name__ == "__main__":
    main()
