"""Time to first draw of the HTML lineage graph in headless Chromium, against pyvis.

A synthetic lineage graph (datasets and jobs, 4 columns per dataset) of about 200 and
2,000 table-view nodes is written once by ``reports.html_graph`` and once by pyvis 0.3.2
with the layout pyvis users reach for on lineage (hierarchical left to right, physics off;
pyvis's default physics takes tens of seconds at these sizes). Both pages open offline in
Debian's Chromium; "first draw" is when the page is loaded and two animation frames have
run, i.e. the graph is on screen and the page answers input. Medians of --repeat runs.

Usage: python bench/graph_render.py [--sizes 200,2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from browser import CHROMIUM_ARGS, chromium_path  # noqa: E402
from lineage_auditor.graph import JobRef, LineageGraph  # noqa: E402
from lineage_auditor.model import (  # noqa: E402
    DIRECT,
    FILTER,
    IDENTITY,
    INDIRECT,
    ColumnRef,
    DatasetLineage,
    DatasetRef,
    InputField,
    OutputField,
    Transformation,
)
from reports.html_graph import write_graph_html  # noqa: E402

FIRST_FRAME_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(performance.now()))))"


def synthetic_graph(nodes: int, seed: int = 1) -> LineageGraph:
    """Sources, then jobs each reading 1-3 earlier datasets and writing one new dataset."""
    rng = random.Random(seed)
    n_datasets = round(nodes / 1.9)
    n_sources = max(1, n_datasets // 10)
    g = LineageGraph()
    made = [DatasetRef("bench", f"raw.t{i}") for i in range(n_sources)]
    for ds in made:
        for k in range(4):
            g.add_column(ColumnRef(ds, f"c{k}"), position=k)
    for i in range(n_datasets - n_sources):
        job = JobRef("bench", f"job{i}")
        out = DatasetRef("bench", f"mart.t{i}")
        inputs = rng.sample(made[-60:], k=min(len(made[-60:]), rng.randint(1, 3)))
        fields = [
            OutputField(f"c{k}", k, [InputField(ColumnRef(rng.choice(inputs), f"c{k}"), [Transformation(DIRECT, IDENTITY)])])
            for k in range(4)
        ]
        flt = [InputField(ColumnRef(inputs[0], "c0"), [Transformation(INDIRECT, FILTER)])]
        g.add_dataset_lineage(job, DatasetLineage(out, fields, flt))
        made.append(out)
    return g


def pyvis_page(graph: LineageGraph, path: Path) -> Path:
    """The same table view as pyvis draws it (bulk add_nodes/add_edges, hierarchical LR)."""
    from pyvis.network import Network

    net = Network(height="900px", width="100%", directed=True, cdn_resources="in_line")
    datasets, jobs = graph.datasets(), graph.jobs()
    names = [str(n) for n in datasets + jobs]
    net.add_nodes(names, label=[n.name for n in datasets + jobs], shape=["box"] * len(datasets) + ["ellipse"] * len(jobs))
    edges = [(str(d), str(j)) for j in jobs for d in graph.job_inputs(j)]
    edges += [(str(j), str(d)) for j in jobs for d in graph.job_outputs(j)]
    net.add_edges(edges)
    net.set_options('{"physics": {"enabled": false}, "layout": {"hierarchical": {"enabled": true, '
                    '"direction": "LR", "sortMethod": "directed"}}}')
    net.write_html(str(path), notebook=False, open_browser=False)
    return path


def first_draw_ms(browser, path: Path) -> float:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
    try:
        page.goto(path.resolve().as_uri(), wait_until="load", timeout=300_000)
        return float(page.evaluate(FIRST_FRAME_JS))
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,2000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"{'nodes':>6} {'ours ms':>9} {'pyvis ms':>9} {'ratio':>6} {'ours KB':>8} {'build+write ms':>15}")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        for size in (int(s) for s in args.sizes.split(",")):
            graph = synthetic_graph(size)
            nodes = len(graph.datasets()) + len(graph.jobs())
            started = time.perf_counter()
            ours_path = write_graph_html(graph, Path(tmp) / f"ours-{size}.html", title=f"{nodes} nodes")
            write_ms = (time.perf_counter() - started) * 1000
            peer_path = pyvis_page(graph, Path(tmp) / f"pyvis-{size}.html")
            ours = statistics.median(first_draw_ms(browser, ours_path) for _ in range(args.repeat))
            peer = statistics.median(first_draw_ms(browser, peer_path) for _ in range(args.repeat))
            kb = ours_path.stat().st_size / 1024
            print(f"{nodes:>6} {ours:>9.0f} {peer:>9.0f} {peer / ours:>5.1f}x {kb:>8.0f} {write_ms:>15.0f}", flush=True)
        browser.close()


if __name__ == "__main__":
    main()
