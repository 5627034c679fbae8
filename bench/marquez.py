"""Marquez against our own stores, in one run, on one synthetic lineage graph.

1. Ingest: OpenLineage events/s written one by one, Marquez ``POST /api/v1/lineage`` (it
   has no batch endpoint) against the embedded store's ``add_event`` (a fresh SQLite file).
2. Impact: latency of a column-level downstream query ("what does this column feed?") at
   ``--depth`` column hops, Marquez ``GET /api/v1/column-lineage?withDownstream=true``
   (filtered to the downstream side by the client) against ``LineageGraph.column_downstream``
   on the in-memory networkx graph built from the same events, from two kinds of start:
   source columns (Marquez answers those with an empty graph: its query is anchored on
   derived columns) and intermediate columns (derived, and feeding others). Each answer of
   Marquez is compared with ours and the equal ones counted.

The graph: ``--jobs`` jobs in ``--layers`` layers, each reading 3 earlier datasets and writing
``--outputs-per-job`` datasets; source datasets fill up to ``--datasets``; every dataset has
``--columns-per-dataset`` columns, each output column derived from two input columns.
Defaults: 1,000 jobs / 5,000 datasets / 50,000 columns, one COMPLETE event per job.
The default depth is 5: Marquez's recursive column-lineage query grows steeply with depth
(from an intermediate column, depth 24 ran for more than 300 s on 2 cores).

Marquez: ``--url`` of a running server, or one started here with ``MarquezServer`` on free
ports and a throwaway database, which needs a marquez-api jar (``LINEAGE_AUDIT_MARQUEZ_JAR``,
or one already fetched by ``lineage-audit marquez up``) and PostgreSQL. Without either the
bench says so and stops: there is nothing to compare.

Usage: python bench/marquez.py [--url http://127.0.0.1:5000] [--scale 0.2] [--queries 30] [--depth 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collectors.marquez import MarquezClient, MarquezServer, artifact  # noqa: E402
from collectors.marquez.client import DOWNSTREAM, field_node  # noqa: E402
from collectors.marquez.database import drop_database  # noqa: E402
from collectors.store import EmbeddedStore  # noqa: E402
from lineage_auditor.errors import LineageAuditError  # noqa: E402
from lineage_auditor.graph import LineageGraph  # noqa: E402
from lineage_auditor.model import ColumnRef, DatasetRef  # noqa: E402

PRODUCER = "https://github.com/lineage-audit/lineage-audit/bench"
SCHEMA_URL = "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
LINEAGE_URL = "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet"


def synthetic_events(args: argparse.Namespace, namespace: str) -> tuple[list[dict], list[DatasetRef]]:
    """One COMPLETE RunEvent per job; returns the events and the source datasets."""
    rng = random.Random(7)
    n_out = args.jobs * args.outputs_per_job
    n_src = max(args.datasets - n_out, 3)
    cols = [f"c{i}" for i in range(args.columns_per_dataset)]
    sources = [DatasetRef(namespace, f"src.table_{i:05d}") for i in range(n_src)]
    layers: list[list[DatasetRef]] = [sources]
    per_layer = max(1, args.jobs // args.layers)
    events, start = [], datetime(2025, 1, 1, tzinfo=timezone.utc)
    for j in range(args.jobs):
        layer = min(j // per_layer + 1, args.layers)
        while len(layers) <= layer:
            layers.append([])
        pool = [d for lower in layers[:layer] for d in lower]
        inputs = rng.sample(pool, 3)
        outputs = [DatasetRef(namespace, f"l{layer}.table_{j:04d}_{k}") for k in range(args.outputs_per_job)]
        layers[layer].extend(outputs)
        events.append(_event(j, start + timedelta(seconds=j), inputs, outputs, cols, rng))
    return events, sources


def _event(j: int, when: datetime, inputs: list[DatasetRef], outputs: list[DatasetRef], cols: list[str], rng) -> dict:
    def schema() -> dict:
        return {"_producer": PRODUCER, "_schemaURL": SCHEMA_URL, "fields": [{"name": c, "type": "BIGINT"} for c in cols]}

    def derived(i: int) -> dict:
        a, b = rng.sample(inputs, 2)
        picks = [(a, cols[i], "IDENTITY"), (b, cols[(i + rng.randrange(1, len(cols))) % len(cols)], "TRANSFORMATION")]
        return {"inputFields": [
            {"namespace": d.namespace, "name": d.name, "field": f,
             "transformations": [{"type": "DIRECT", "subtype": sub, "masking": False}]}
            for d, f, sub in picks
        ]}

    return {
        "eventType": "COMPLETE",
        "eventTime": when.isoformat().replace("+00:00", "Z"),
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4()), "facets": {}},
        "job": {"namespace": "bench", "name": f"job_{j:04d}", "facets": {}},
        "inputs": [{"namespace": d.namespace, "name": d.name, "facets": {"schema": schema()}} for d in inputs],
        "outputs": [
            {"namespace": d.namespace, "name": d.name, "facets": {
                "schema": schema(),
                "columnLineage": {"_producer": PRODUCER, "_schemaURL": LINEAGE_URL,
                                  "fields": {c: derived(i) for i, c in enumerate(cols)}},
            }}
            for d in outputs
        ],
    }


def ingest_embedded(events: list[dict]) -> float:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStore(Path(tmp) / "bench.db") as store:
        started = time.perf_counter()
        for event in events:
            store.add_event(event)
        return len(events) / (time.perf_counter() - started)


def ingest_marquez(client: MarquezClient, events: list[dict]) -> float:
    started = time.perf_counter()
    for event in events:
        client.post_event(event)
    return len(events) / (time.perf_counter() - started)


def timed(fn, queries: list[ColumnRef]) -> tuple[list[float], list[set | None]]:
    """Milliseconds per query and each answer (None: the query failed, e.g. timed out)."""
    times, answers = [], []
    for col in queries:
        started = time.perf_counter()
        try:
            answers.append(fn(col))
        except LineageAuditError as exc:
            print(f"  query from {col} failed: {str(exc).splitlines()[0][:160]}")
            answers.append(None)
        times.append((time.perf_counter() - started) * 1000)
    return times, answers


def summary(ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"median {statistics.median(ms):9.2f} ms   p95 {p95:9.2f} ms"


def marquez_available(args: argparse.Namespace) -> str | None:
    """None when there is a Marquez to measure, else why not (said before any work is done)."""
    if args.url:
        return None
    jar = os.environ.get("LINEAGE_AUDIT_MARQUEZ_JAR")
    if jar:
        return None if Path(jar).is_file() else f"LINEAGE_AUDIT_MARQUEZ_JAR={jar} is not a file"
    fetched = artifact.cache_dir() / "lib" / f"marquez-api-{artifact.MARQUEZ_VERSION}.jar"
    if fetched.is_file():
        return None
    return (
        "this benchmark needs Marquez: pass --url of a running server, or set LINEAGE_AUDIT_MARQUEZ_JAR to a "
        f"marquez-api jar (or fetch one with `lineage-audit marquez up`; none at {fetched}). The package "
        "registry this project's CI uses does not serve marquez-api, so it cannot run there."
    )


def pick_queries(graph: LineageGraph, sources: list[DatasetRef], n: int) -> tuple[list[ColumnRef], list[ColumnRef]]:
    """``n`` source columns that feed something and ``n`` intermediate ones (derived, and feeding)."""
    rng = random.Random(11)
    source_set = set(sources)
    feeding = [c for c in graph.columns() if graph.column_downstream(c, 1)]
    from_sources = sorted(c for c in feeding if c.dataset in source_set)
    intermediate = sorted(c for c in feeding if c.dataset not in source_set and graph.column_upstream(c, 1))
    return rng.sample(from_sources, min(n, len(from_sources))), rng.sample(intermediate, min(n, len(intermediate)))


def start_marquez(args: argparse.Namespace):
    """(client, server, db) for --url or a Marquez started here; (None, reason) if impossible."""
    if args.url:
        return MarquezClient(args.url, timeout=args.timeout), None, None
    db = f"bench_marquez_{uuid.uuid4().hex[:8]}"
    server = MarquezServer(Path(tempfile.mkdtemp(prefix="bench-marquez-")), port=0, admin_port=0, db_name=db)
    started = time.perf_counter()
    try:
        info = server.up(timeout=600)
    except LineageAuditError as exc:
        try:
            drop_database(db)
        except Exception:  # the server never got that far
            pass
        return None, str(exc).splitlines()[0], None
    print(f"Marquez {info.version} started in {time.perf_counter() - started:.1f} s at {info.url}")
    return MarquezClient(info.url, timeout=args.timeout), server, db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running Marquez (default: start one here)")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink jobs and datasets (0.2 = a fifth)")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--datasets", type=int, default=5000)
    parser.add_argument("--columns-per-dataset", type=int, default=10)
    parser.add_argument("--outputs-per-job", type=int, default=4)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--queries", type=int, default=30, help="queries of each kind (source, intermediate)")
    parser.add_argument("--depth", type=int, default=5, help="column hops, for Marquez and for us")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per Marquez request")
    args = parser.parse_args()
    missing = marquez_available(args)
    if missing:
        print(f"bench/marquez.py: {missing}", file=sys.stderr)
        sys.exit(2)
    args.jobs = max(8, int(args.jobs * args.scale))
    args.datasets = max(40, int(args.datasets * args.scale))

    namespace = f"bench://w{uuid.uuid4().hex[:6]}"
    events, sources = synthetic_events(args, namespace)
    n_datasets = len(sources) + args.jobs * args.outputs_per_job
    print(f"synthetic graph: {args.jobs} jobs, {n_datasets} datasets, {n_datasets * args.columns_per_dataset} columns, "
          f"{len(events)} events" + ("" if args.scale == 1.0 else f"  [REDUCED: --scale {args.scale}]"))

    embedded_rate = ingest_embedded(events)
    graph_started = time.perf_counter()
    graph = LineageGraph.from_events(events)
    graph_build_s = time.perf_counter() - graph_started
    kinds = dict(zip(("source", "intermediate"), pick_queries(graph, sources, args.queries)))
    ours = {kind: timed(lambda c: set(graph.column_downstream(c, args.depth)), qs) for kind, qs in kinds.items()}

    client, server, db = start_marquez(args)
    if client is None:
        print(f"bench/marquez.py: Marquez could not be started: {server}", file=sys.stderr)
        sys.exit(2)
    theirs: dict[str, tuple[list[float], list[set | None]]] = {}
    try:
        marquez_rate = ingest_marquez(client, events)

        def marquez_downstream(c: ColumnRef) -> set:
            view = client.column_lineage(field_node(c.dataset.namespace, c.dataset.name, c.field),
                                         depth=args.depth, direction=DOWNSTREAM)
            return view.columns() - {c}

        theirs = {kind: timed(marquez_downstream, qs) for kind, qs in kinds.items()}
    finally:
        client.close()
        if isinstance(server, MarquezServer):
            server.down()
            drop_database(db)

    print()
    print(f"ingest, one event at a time ({len(events)} events, {args.outputs_per_job} outputs x "
          f"{args.columns_per_dataset} columns of lineage each)")
    print(f"  embedded store add_event   {embedded_rate:10.1f} events/s")
    print(f"  Marquez POST /lineage      {marquez_rate:10.1f} events/s")
    print(f"  ratio embedded / Marquez   {embedded_rate / marquez_rate:10.1f}x")
    print(f"\n(in-memory graph built in {graph_build_s:.2f} s)")
    for kind, queries in kinds.items():
        our_ms, our_answers = ours[kind]
        their_ms, their_answers = theirs[kind]
        avg = statistics.mean(len(a) for a in our_answers if a is not None) if our_answers else 0
        equal = sum(a == b for a, b in zip(our_answers, their_answers))
        failed = sum(b is None for b in their_answers)
        empty = sum(b == set() for b in their_answers)
        print()
        print(f"column downstream impact at depth {args.depth}, {len(queries)} {kind} columns (avg {avg:.0f} columns affected)")
        if not queries:
            print("  no such columns in this graph")
            continue
        print(f"  in-memory graph (networkx) {summary(our_ms)}")
        print(f"  Marquez /column-lineage    {summary(their_ms)}")
        print(f"  ratio Marquez / in-memory  {statistics.median(their_ms) / statistics.median(our_ms):10.1f}x (medians)")
        print(f"  answers equal              {equal} of {len(queries)}   (Marquez empty: {empty}, failed: {failed})")


if __name__ == "__main__":
    main()
