"""Benchmark: auditing one AI dataset on a large synthetic store, and the HTML report in Chromium.

    python bench/audit.py                 # 50,000 events, 1,000 jobs, 5,000 datasets; 2,000-node report
    python bench/audit.py --scale 0.2     # a fifth of that, for a quick look

Prints: time to load the embedded store (not part of the audit), audit time for one AI
dataset (read events + build graph and view + run every check), and the HTML report's size
and time to first draw in headless Chromium (Debian's package). Targets: audit < 5 s,
render < 3 s.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent.parent / "tests")]

from collectors.store import EmbeddedStore  # noqa: E402
from lineage_auditor.audit import AuditView, parse_config, run_audit  # noqa: E402
from lineage_auditor.audit.runner import load_scoped  # noqa: E402
from lineage_auditor.audit.view import load_lineage  # noqa: E402
from lineage_auditor.graph import LineageGraph  # noqa: E402

NS = "postgres://warehouse:5432"
COLUMNS = 8
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _name(i: int) -> str:
    return f"db.s{i // 100}.t{i}"


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def synthetic_events(jobs: int, datasets_per_job: int, runs: int, seed: int = 7, window: int | None = None) -> list[dict]:
    """Jobs in layers: job j writes datasets_per_job tables and reads 3 tables of earlier jobs
    (any earlier half of the graph, or with ``window`` the tables of the ``window`` jobs before)."""
    rng = random.Random(seed)
    events = []
    cols = [f"c{k}" for k in range(COLUMNS)]
    for j in range(jobs):
        outs = [j * datasets_per_job + k for k in range(datasets_per_job)]
        if window:
            ins = [] if j == 0 else rng.sample(range(max(0, j - window) * datasets_per_job, j * datasets_per_job), min(3, j * datasets_per_job))
        else:
            ins = [] if j < jobs // 20 else rng.sample(range(0, (j // 2 + 1) * datasets_per_job), 3)
        outputs = []
        for o in outs:
            fields = {c: {"inputFields": [{"namespace": NS, "name": _name(i), "field": rng.choice(cols),
                                            "transformations": [{"type": "DIRECT", "subtype": "TRANSFORMATION", "masking": False}]}
                                           for i in ins]} for c in cols}
            outputs.append({"namespace": NS, "name": _name(o), "facets": {
                "schema": {"_producer": "x", "_schemaURL": "x", "fields": [{"name": c, "type": "BIGINT"} for c in cols]},
                "columnLineage": {"_producer": "x", "_schemaURL": "x", "fields": fields}},
                "outputFacets": {"outputStatistics": {"_producer": "x", "_schemaURL": "x", "rowCount": 1000}}})
        job = {"namespace": "bench", "name": f"job{j}", "facets": {
            "ownership": {"_producer": "x", "_schemaURL": "x", "owners": [{"name": "team:a", "type": "MAINTAINER"}]},
            "documentation": {"_producer": "x", "_schemaURL": "x", "description": "bench job"}}}
        for r in range(runs):
            run_id = f"{j:05d}-{r:04d}-0000-0000-000000000000"
            start = T0 + timedelta(hours=r, seconds=j)
            for kind, at in (("START", start), ("COMPLETE", start + timedelta(minutes=1))):
                events.append({"eventType": kind, "eventTime": _iso(at), "producer": "x", "schemaURL": "x",
                               "run": {"runId": run_id, "facets": {}}, "job": job,
                               "inputs": [{"namespace": NS, "name": _name(i)} for i in ins], "outputs": outputs})
    return events


def bench_audit(scale: float) -> None:
    jobs = max(20, int(1000 * scale))
    events = synthetic_events(jobs, 5, runs=25)
    print(f"synthetic store: {len(events):,} events, {jobs:,} jobs, {jobs * 5:,} datasets")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lineage.db"
        began = time.perf_counter()
        with EmbeddedStore(path) as store:
            store.add_events(events)
        print(f"  load into embedded store (setup, not audited): {time.perf_counter() - began:.1f} s")
        target = _name(jobs * 5 - 1)
        config = parse_config(f"ai_datasets:\n  - name: {target}\n    owner: team:ml\n    purpose: bench\n"
                              "tags:\n  - {column: 's0.t0.c0', tags: [pii.email]}\n")
        began = time.perf_counter()
        with EmbeddedStore(path) as store:  # what `lineage-audit audit` does on the embedded store
            graph, view, _ = load_scoped(store, config)
        read = time.perf_counter() - began
        result = run_audit(graph, view, config)
        total = time.perf_counter() - began
        with EmbeddedStore(path) as store:  # what it does on other stores: every event, one pass
            began_all = time.perf_counter()
            load_lineage(store.events())
            every_event = time.perf_counter() - began_all
        print(f"  audit of one AI dataset: {total:.2f} s (target < 5 s; {total / 5:.2f}x of target)")
        print(f"    read latest runs + runs touching the audited datasets, build graph and view {read:.2f} s, "
              f"checks {sum(result.timings_s.values()):.2f} s")
        print(f"  for comparison, one pass over every event (Marquez or file stores): {every_event:.2f} s")
        print(f"    per check: " + ", ".join(f"{k} {v:.2f}s" for k, v in result.timings_s.items()))
        print(f"    upstream datasets: {len(graph.upstream(result.datasets[0])):,}, findings: {len(result.findings)}")


def report_graph_events(nodes: int) -> list[dict]:
    """A provenance graph of about ``nodes`` table-level nodes (half datasets, half jobs)."""
    return synthetic_events(nodes // 2, 1, runs=1, seed=3, window=20)


def bench_report(nodes: int) -> None:
    from reports.audit_report import build_report, render_html

    events = report_graph_events(nodes)
    graph = LineageGraph.from_events(events)
    view = AuditView.from_events(events)
    target = graph.datasets()[-1]
    target = max(graph.datasets(), key=lambda d: len(graph.upstream(d)))
    config = parse_config(f"ai_datasets:\n  - name: '{target}'\n")
    began = time.perf_counter()
    result = run_audit(graph, view, config, checks=["coverage"])
    report = build_report(result, graph, view, config, target)
    html = render_html(report, graph)
    rendered = time.perf_counter() - began
    sub = graph.subgraph([target, *graph.upstream(target)])
    table_nodes = len(sub.datasets()) + len(sub.jobs())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.html"
        path.write_text(html, encoding="utf-8")
        print(f"HTML report: {table_nodes:,} table-level nodes ({len(sub.columns()):,} columns), "
              f"{len(html.encode()) / 1e6:.2f} MB, built in {rendered:.2f} s")
        from playwright.sync_api import sync_playwright

        from browser import CHROMIUM_ARGS, chromium_path

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            began = time.perf_counter()
            page.goto(path.as_uri(), wait_until="load", timeout=120_000)
            page.wait_for_selector("#lineage-graph[data-ready=true]", timeout=120_000)
            ready = time.perf_counter() - began
            first_draw = page.evaluate("lineageGraph.firstDrawMs")
            count = page.get_attribute("#lineage-graph", "data-node-count")
            browser.close()
        print(f"  Chromium: ready {ready:.2f} s after navigation (target < 3 s; {ready / 3:.2f}x of target), "
              f"first draw at {first_draw / 1000 if first_draw else float('nan'):.2f} s page time, "
              f"{count} nodes drawn, console errors: {len(errors)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full synthetic store")
    parser.add_argument("--report-nodes", type=int, default=2000)
    parser.add_argument("--skip-audit", action="store_true")
    args = parser.parse_args()
    if not args.skip_audit:
        bench_audit(args.scale)
    bench_report(args.report_nodes)


if __name__ == "__main__":
    main()
