"""The interactive lineage graph as one self-contained, offline HTML file.

What it draws: a table view (datasets and jobs) and a column view (columns grouped under
their dataset), laid out left to right by lineage depth, with a search box and a side panel
listing a node's columns and its upstream and downstream.

Readable on first view, without zooming: labels are short and never cut (a file shows its
basename, a name drops the prefix every dataset of its namespace shares, a pipeline step
drops its pipeline's name) and wrap after dots and underscores onto short lines; layers are spaced by their
widest label rather than a fixed grid; the full namespace and name are on hover. A parent
job (a pipeline whose steps are jobs of their own) reads and writes nothing itself, so it is
not drawn as a floating node: its steps say which pipeline they belong to.

How, and why this way (measured, see the design notes): vis-network, the library pyvis
bundles, is inlined from the installed pyvis package so the page needs no network; node
positions are computed here (layered by lineage depth) and drawn with physics off, because
physics or vis's own hierarchical layout freeze the page for seconds to minutes on a few
thousand nodes. pyvis's own HTML template is not used: it links Bootstrap from a CDN and
inserts some names unescaped. Instead our Jinja template (autoescaping on) carries the
graph as JSON in a ``<script type="application/json">`` block, and the page script puts
names on the page with ``textContent`` only. A Content-Security-Policy admits exactly our
inline scripts (by hash), so even an injected ``onerror=`` attribute could not run and the
page cannot reach the network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from lineage_auditor.errors import LineageAuditError
from lineage_auditor.graph import JobRef, LineageGraph
from lineage_auditor.model import DIRECT, DatasetRef

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
ASSETS = HERE / "assets"

# Layout, in canvas pixels. Table view: layers are as far apart as their widest labels
# need (CHAR_PX per character at the page's label font, plus the node's margins) plus
# LAYER_GAP for the edges; rows TABLE_Y apart leave room for two-line labels.
TABLE_Y = 84
CHAR_PX, NODE_PAD, LAYER_GAP = 8.8, 22, 40
# Characters per label line before wrapping after a dot, slash or underscore. Short lines
# are what lets a graph of many layers fit a laptop screen at a readable size: the width a
# layer needs is its longest line.
LABEL_LINE = 12
COLUMN_X, ROW, BLOCK_GAP = 330, 30, 36
MAX_SQL_CHARS = 20_000
SQL_WITHHELD = "-- withheld: this job touches a restricted column you have no read grant for"


@dataclass(frozen=True)
class GraphView:
    """Everything a page needs to embed the graph: inline CSS, scripts and the data block."""

    css: Markup
    vis_js: Markup
    app_js: Markup
    data_json: Markup
    node_counts: dict[str, int]

    @property
    def script_hashes(self) -> list[str]:
        """CSP source expressions for the two executable inline scripts."""
        return [_sha256_source(str(self.vis_js)), _sha256_source(str(self.app_js))]


def render_graph_html(graph: LineageGraph, *, title: str, focus: DatasetRef | None = None) -> str:
    """One self-contained HTML page showing ``graph``; ``focus`` is selected on open."""
    view = graph_view(graph, focus=focus)
    template = _env().get_template("graph_page.html.j2")
    return template.render(title=title, view=view, csp=csp_policy(view.script_hashes))


def write_graph_html(
    graph: LineageGraph, path: str | Path, *, title: str = "Lineage graph", focus: DatasetRef | None = None
) -> Path:
    """Render and write the page (UTF-8), creating parent folders; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_graph_html(graph, title=title, focus=focus), encoding="utf-8")
    return out


def graph_view(graph: LineageGraph, *, focus: DatasetRef | None = None,
               hide_sql: Collection[JobRef] = ()) -> GraphView:
    """The graph view's parts, for pages that embed it (see templates/graph_view.html.j2)."""
    data = graph_view_data(graph, focus=focus, hide_sql=hide_sql)
    return GraphView(
        css=Markup(_asset("graph_view.css")),
        vis_js=Markup(vis_network_js()),
        app_js=Markup(_safe_inline_script(_asset("graph_view.js"))),
        data_json=Markup(json_for_script(data)),
        node_counts={
            "table": len(data["datasets"]) + len(data["jobs"]),
            "column": len(data["datasets"]) + len(data["columns"]),
        },
    )


def csp_policy(script_hashes: list[str]) -> str:
    """A Content-Security-Policy for a self-contained page: our scripts only, no network."""
    scripts = " ".join(f"'{h}'" for h in script_hashes)
    return (
        f"default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; "
        "img-src data:; font-src data:; base-uri 'none'; form-action 'none'"
    )


def json_for_script(data: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` can end or open a tag."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


@lru_cache(maxsize=1)
def vis_network_js() -> str:
    """vis-network as the installed pyvis package ships it, ready to inline.

    Read at render time from the package (never a copy in this repository); the newest
    ``vis-*`` folder wins.
    """
    try:
        import pyvis
    except ModuleNotFoundError as exc:  # pragma: no cover - pyvis is a dependency
        raise LineageAuditError("pyvis is not installed; the HTML graph inlines the vis-network it ships") from exc
    base = Path(pyvis.__file__).parent
    found = sorted(base.glob("lib/vis-*/vis-network.min.js"), key=lambda p: _version_key(p.parent.name))
    found = found or sorted(base.glob("**/vis-network.min.js"), key=lambda p: _version_key(p.parent.name))
    if not found:
        raise LineageAuditError(f"no vis-network.min.js inside the installed pyvis package ({base})")
    return _safe_inline_script(found[-1].read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------- data


def graph_view_data(graph: LineageGraph, *, focus: DatasetRef | None = None,
                    hide_sql: Collection[JobRef] = ()) -> dict[str, Any]:
    """The JSON the page script reads: nodes with positions, panel lists and column edges.

    Ids are short and synthetic (``d0``, ``j0``, ``c0``): names travel only as data. The SQL of
    the jobs in ``hide_sql`` (a reader without the grant to see it) never reaches the page.
    """
    if focus is not None and focus not in graph:
        raise LineageAuditError(f"dataset {focus} is not in the graph")
    parents = _parent_jobs(graph)
    # A parent that reads and writes nothing itself is drawn as its steps' group, not as a node.
    groups = {p for p in parents.values() if p in graph and not graph.job_inputs(p) and not graph.job_outputs(p)}
    datasets, jobs = graph.datasets(), [j for j in graph.jobs() if j not in groups]
    ids: dict[Any, str] = {d: f"d{i}" for i, d in enumerate(datasets)}
    ids.update({j: f"j{i}" for i, j in enumerate(jobs)})
    columns = [c for d in datasets for c in graph.columns(d)]
    ids.update({c: f"c{i}" for i, c in enumerate(columns)})
    labels = _labels(datasets, jobs, parents)
    table_pos = _table_positions(graph, [*datasets, *jobs], labels)
    column_pos = _column_positions(graph, table_pos)

    def id_list(nodes: list[Any]) -> list[str]:
        return [ids[n] for n in nodes]

    out_datasets = []
    for d in datasets:
        info = graph.info(d)
        out_datasets.append({
            "id": ids[d], "ns": d.namespace, "name": d.name, "label": labels[d],
            "desc": str(info.get("description") or ""),
            "owners": [_owner_text(o) for o in info.get("owners") or []],
            "tags": [_tag_text(t) for t in info.get("tags") or []],
            "cols": id_list(graph.columns(d)),
            "up": id_list(graph.upstream(d, depth=1)), "down": id_list(graph.downstream(d, depth=1)),
            "prod": id_list(graph.producers(d)), "cons": id_list(graph.consumers(d)),
            "x": table_pos[d][0], "y": table_pos[d][1], "cx": column_pos[d][0], "cy": column_pos[d][1],
        })
    out_jobs = []
    for j in jobs:
        run = graph.latest_run(j)
        out_jobs.append({
            "id": ids[j], "ns": j.namespace, "name": j.name, "label": labels[j], "state": run.state if run else "",
            "group": parents[j].name if j in parents else "",
            "sql": SQL_WITHHELD if j in hide_sql else str(graph.info(j).get("sql") or "")[:MAX_SQL_CHARS],
            "ins": id_list(graph.job_inputs(j)), "outs": id_list(graph.job_outputs(j)),
            "x": table_pos[j][0], "y": table_pos[j][1],
        })
    out_columns = []
    for c in columns:
        info = graph.info(c)
        out_columns.append({
            "id": ids[c], "ds": ids[c.dataset], "name": c.field, "type": str(info.get("type") or ""),
            "tags": [_tag_text(t) for t in info.get("tags") or []],
            "x": column_pos[c][0], "y": column_pos[c][1],
        })
    return {
        "focus": ids[focus] if focus is not None else None,
        "datasets": out_datasets,
        "jobs": out_jobs,
        "columns": out_columns,
        "columnEdges": _column_edges(graph, ids),
    }


def _column_edges(graph: LineageGraph, ids: dict[Any, str]) -> list[list[Any]]:
    """One edge per column pair, every job's transformations merged: [from, to, how, direct, masked]."""
    merged: dict[tuple[str, str], set] = defaultdict(set)
    for edge in graph.column_edges():
        merged[(ids[edge.source], ids[edge.target])].update(edge.transformations)
    rows = []
    for (src, dst), ts in merged.items():
        how = ", ".join(sorted(f"{t.type}/{t.subtype}" + (" (masked)" if t.masking else "") for t in ts))
        rows.append([src, dst, how, int(any(t.type == DIRECT for t in ts)), int(any(t.masking for t in ts))])
    return rows


def _parent_jobs(graph: LineageGraph) -> dict[JobRef, JobRef]:
    """Each step's parent job, from its latest run's OpenLineage ``parent`` facet."""
    found: dict[JobRef, JobRef] = {}
    for job in graph.jobs():
        run = graph.latest_run(job)
        facet = (run.facets.get("parent") or {}) if run else {}
        ref = facet.get("job")
        if ref:
            parent = JobRef(str(ref.get("namespace") or ""), str(ref["name"]))
            if parent != job:
                found[job] = parent
    return found


def _labels(datasets: list[DatasetRef], jobs: list[JobRef], parents: dict[JobRef, JobRef]) -> dict[Any, str]:
    """Short, uncut labels (wrapped at dots); the full names stay in the data for hover and panel."""
    short: dict[Any, str] = {}
    by_namespace: dict[str, list[DatasetRef]] = defaultdict(list)
    for d in datasets:
        by_namespace[d.namespace].append(d)
    for namespace, group in by_namespace.items():
        prefix = _shared_prefix([d.name for d in group]) if len(group) > 1 else ""
        for d in group:
            if namespace.startswith("file") and "/" in d.name:
                short[d] = PurePosixPath(d.name).name or d.name
            else:
                short[d] = d.name[len(prefix):]
    taken = [short[d] for d in datasets]
    for d in datasets:  # a shortened name that two datasets share says too little
        if taken.count(short[d]) > 1:
            short[d] = d.name
    for j in jobs:
        parent = parents.get(j)
        step = j.name[len(parent.name) + 1:] if parent and j.name.startswith(parent.name + ".") else ""
        short[j] = step or j.name
    return {node: _wrap(text) for node, text in short.items()}


def _shared_prefix(names: list[str]) -> str:
    """The dotted prefix (``warehouse.``) every name starts with, leaving each at least one part."""
    parts = [name.split(".") for name in names]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    return "".join(part + "." for part in parts[0][:common])


def _wrap(text: str, width: int = LABEL_LINE) -> str:
    """Break a long name after dots, slashes or underscores into lines of about ``width`` characters."""
    if len(text) <= width:
        return text
    lines, line = [], ""
    for piece in re.findall(r"[^./_]+[./_]*|[./_]+", text):
        if line and len(line) + len(piece) > width:
            lines.append(line)
            line = ""
        line += piece
    return "\n".join([*lines, line])


def _label_width(label: str) -> float:
    return max(len(line) for line in label.split("\n")) * CHAR_PX + NODE_PAD


def _table_positions(graph: LineageGraph, nodes: list[Any], labels: dict[Any, str]) -> dict[Any, tuple[float, float]]:
    """Left to right by lineage depth; within a layer, ordered by the mean height of each
    node's upstream (one barycenter pass), which keeps most edges from crossing. Each layer
    is as far from the last as their widest labels need. A job that only reads (a data-quality
    check) stands beside the datasets it reads, not in a layer of its own: it ends no chain,
    and a layer less keeps a long pipeline readable on a laptop screen."""
    shown = set(nodes)
    layers = graph.layers()
    by_layer: dict[int, list[Any]] = defaultdict(list)
    for node, layer in layers.items():
        if node in shown:
            if isinstance(node, JobRef) and not graph.job_outputs(node) and graph.job_inputs(node):
                layer = max(layers[d] for d in graph.job_inputs(node))
            by_layer[layer].append(node)
    pos: dict[Any, tuple[float, float]] = {}
    x, last_width = 0.0, 0.0
    for layer in sorted(by_layer):
        nodes = by_layer[layer]
        width = max(_label_width(labels[n]) for n in nodes)
        if pos:
            x += last_width / 2 + LAYER_GAP + width / 2
        last_width = width

        def weight(node: Any) -> tuple[float, str]:
            ups = graph.job_inputs(node) if isinstance(node, JobRef) else graph.producers(node)
            ys = [pos[u][1] for u in ups if u in pos]
            return (sum(ys) / len(ys) if ys else 0.0, str(node))

        nodes.sort(key=weight)
        mid = (len(nodes) - 1) / 2
        for i, node in enumerate(nodes):
            pos[node] = (round(x, 1), (i - mid) * TABLE_Y)
    return pos


def _column_positions(graph: LineageGraph, table_pos: dict[Any, tuple[float, float]]) -> dict[Any, tuple[float, float]]:
    """Each dataset a block (header, then its columns), blocks stacked per dataset layer."""
    layers: dict[float, list[DatasetRef]] = defaultdict(list)
    for d in graph.datasets():
        layers[table_pos[d][0]].append(d)
    pos: dict[Any, tuple[float, float]] = {}
    for rank, x in enumerate(sorted(layers)):
        blocks = sorted(layers[x], key=lambda d: table_pos[d][1])
        cols = {d: graph.columns(d) for d in blocks}
        height = sum((len(cols[d]) + 1) * ROW + BLOCK_GAP for d in blocks) - BLOCK_GAP
        y = -height / 2
        for d in blocks:
            pos[d] = (rank * COLUMN_X, y)
            for i, c in enumerate(cols[d], start=1):
                pos[c] = (rank * COLUMN_X, y + i * ROW)
            y += (len(cols[d]) + 1) * ROW + BLOCK_GAP
    return pos


# ---------------------------------------------------------------------------- internals


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@lru_cache(maxsize=None)
def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def _safe_inline_script(js: str) -> str:
    """Keep script text from closing its element or opening an HTML comment."""
    return re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE).replace("<!--", "<\\!--")


def _sha256_source(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _version_key(folder: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", folder))


def _owner_text(owner: Any) -> str:
    if isinstance(owner, dict):
        kind = owner.get("type")
        return f"{owner.get('name', '')} ({kind})" if kind else str(owner.get("name", ""))
    return str(owner)


def _tag_text(tag: Any) -> str:
    if isinstance(tag, (tuple, list)) and len(tag) == 2:
        key, value = tag
        return f"{key}:{value}" if value else str(key)
    return str(tag)
