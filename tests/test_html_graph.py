"""The self-contained HTML lineage graph: offline, escaped, and working in real Chromium."""

from __future__ import annotations

import base64
import hashlib
import html as html_lib
import re
from pathlib import Path

import pytest

from browser import BrowserPage
from lineage_auditor.errors import LineageAuditError
from lineage_auditor.graph import JobRef, LineageGraph
from lineage_auditor.model import (
    AGGREGATION,
    DIRECT,
    FILTER,
    IDENTITY,
    INDIRECT,
    TRANSFORMATION,
    ColumnRef,
    DatasetLineage,
    DatasetRef,
    InputField,
    OutputField,
    Transformation,
)
from reports.html_graph import graph_view_data, render_graph_html, vis_network_js, write_graph_html

NS = "duckdb://shop"
XSS = "<img src=x onerror=alert(1)>"
RAW_ORDERS = DatasetRef(NS, "raw.orders")
RAW_USERS = DatasetRef(NS, "raw.users")
STG = DatasetRef(NS, "stg.orders")
MART = DatasetRef(NS, "mart.revenue")
EVIL = DatasetRef(NS, XSS)
LOAD = JobRef("etl", "load_orders")
BUILD = JobRef("etl", "build_revenue")


def _field(name: str, pos: int, source: ColumnRef, subtype: str, masking: bool = False) -> OutputField:
    return OutputField(name, pos, [InputField(source, [Transformation(DIRECT, subtype, masking)])])


def make_graph() -> LineageGraph:
    """5 datasets and 2 jobs (7 table nodes); 10 columns (15 column-view nodes)."""
    g = LineageGraph()
    g.add_column(ColumnRef(RAW_ORDERS, "id"), position=0, type="INT")
    g.add_dataset(RAW_ORDERS, owners=[{"name": "team:ingest", "type": "MAINTAINER"}], tags=[("tier", "raw")])
    g.add_job(LOAD, sql="INSERT INTO stg.orders SELECT id, amount * 1.1 FROM raw.orders WHERE status = 'ok'")
    g.add_dataset_lineage(LOAD, DatasetLineage(
        STG,
        [
            _field("id", 0, ColumnRef(RAW_ORDERS, "id"), IDENTITY),
            _field("amount", 1, ColumnRef(RAW_ORDERS, "amount"), TRANSFORMATION),
        ],
        [InputField(ColumnRef(RAW_ORDERS, "status"), [Transformation(INDIRECT, FILTER)])],
    ))
    g.add_dataset_lineage(BUILD, DatasetLineage(
        MART,
        [
            _field("user_email", 0, ColumnRef(RAW_USERS, "email"), TRANSFORMATION, masking=True),
            _field("revenue", 1, ColumnRef(STG, "amount"), AGGREGATION),
            _field(XSS, 2, ColumnRef(EVIL, XSS), IDENTITY),
        ],
    ))
    return g


@pytest.fixture(scope="module")
def html_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("graph") / "nested" / "lineage.html"
    return write_graph_html(make_graph(), path, title="Shop lineage <script>alert(2)</script>")


# ------------------------------------------------------------------ the file itself


def test_the_page_needs_no_network(html_file: Path) -> None:
    html = html_file.read_text(encoding="utf-8")
    tags = re.findall(r"<(script|link|img|iframe|object|embed)\b[^>]*>", html, flags=re.IGNORECASE)
    assert sorted(set(t.lower() for t in tags)) == ["script"]
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", html, flags=re.IGNORECASE)
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", html, flags=re.IGNORECASE)
    assert "@import" not in html
    assert "bootstrap" not in html.lower()


def test_names_never_reach_the_markup_unescaped(html_file: Path) -> None:
    html = html_file.read_text(encoding="utf-8")
    assert "<img" not in html
    assert "<script>alert(2)" not in html
    assert "<title>Shop lineage &lt;script&gt;alert(2)&lt;/script&gt;</title>" in html
    # The graph travels as JSON in which "<" can never open a tag.
    data_block = re.search(r'<script type="application/json" id="lineage-data">(.*?)</script>', html, re.S).group(1)
    assert "<" not in data_block and "\\u003cimg src=x onerror=alert(1)\\u003e" in data_block


def test_the_policy_admits_exactly_the_inline_scripts(html_file: Path) -> None:
    html = html_file.read_text(encoding="utf-8")
    policy = html_lib.unescape(re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html).group(1))
    assert "default-src 'none'" in policy and "connect-src" not in policy
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    assert len(scripts) == 2
    for body in scripts:
        digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode()
        assert f"'sha256-{digest}'" in policy


def test_vis_network_is_read_from_the_installed_pyvis() -> None:
    import pyvis

    shipped = sorted(Path(pyvis.__file__).parent.glob("lib/vis-*/vis-network.min.js"))[-1]
    assert vis_network_js() == shipped.read_text(encoding="utf-8")
    repo = Path(__file__).resolve().parent.parent
    assert not [p for p in (repo / "reports").rglob("vis-network*")]


def test_layout_is_left_to_right_by_lineage_depth() -> None:
    data = graph_view_data(make_graph())
    x = {d["name"]: d["x"] for d in data["datasets"]}
    assert x["raw.orders"] == x["raw.users"] == x[XSS] < x["stg.orders"] < x["mart.revenue"]
    jx = {j["name"]: j["x"] for j in data["jobs"]}
    assert x["raw.orders"] < jx["load_orders"] < x["stg.orders"] < jx["build_revenue"] < x["mart.revenue"]
    # Column view: a dataset's columns sit under its header, in column order.
    mart = next(d for d in data["datasets"] if d["name"] == "mart.revenue")
    cols = {c["id"]: c for c in data["columns"]}
    assert [cols[c]["name"] for c in mart["cols"]] == ["user_email", "revenue", XSS]
    assert [cols[c]["y"] for c in mart["cols"]] == sorted(cols[c]["y"] for c in mart["cols"])
    assert all(cols[c]["x"] == mart["cx"] and cols[c]["y"] > mart["cy"] for c in mart["cols"])
    assert all(re.fullmatch(r"[djc]\d+", n["id"]) for n in data["datasets"] + data["jobs"] + data["columns"])


def _run(job: str, inputs: list[tuple[str, str]], outputs: list[tuple[str, str]], parent: str | None = None) -> list[dict]:
    facets = {"parent": {"job": {"namespace": "lineage-audit", "name": parent}, "run": {"runId": "p-1"}}} if parent else {}
    return [{"eventType": "COMPLETE", "eventTime": "2024-06-01T00:00:00Z", "producer": "p",
             "run": {"runId": f"run-{job}", "facets": facets}, "job": {"namespace": "lineage-audit", "name": job},
             "inputs": [{"namespace": ns, "name": n} for ns, n in inputs],
             "outputs": [{"namespace": ns, "name": n} for ns, n in outputs]}]


def pipeline_graph() -> LineageGraph:
    """A pipeline (a parent job reading and writing nothing) whose steps read a file and a table."""
    wh = "duckdb:///srv/warehouse.duckdb"
    return LineageGraph.from_events([
        *_run("users_orders", [], []),
        *_run("users_orders.extract_orders", [("file", "/srv/data/incoming/orders_2024.csv")],
              [(wh, "warehouse.staging.orders")], parent="users_orders"),
        *_run("users_orders.build_user_orders", [(wh, "warehouse.staging.orders")],
              [(wh, "warehouse.analytics.user_orders_with_a_long_name")], parent="users_orders"),
    ])


def test_labels_are_short_whole_and_wrapped_and_parent_jobs_are_not_nodes() -> None:
    data = graph_view_data(pipeline_graph())
    labels = {item["name"]: item["label"] for item in data["datasets"] + data["jobs"]}
    assert labels == {
        "/srv/data/incoming/orders_2024.csv": "orders_2024.\ncsv",  # a file by its basename
        "warehouse.staging.orders": "staging.\norders",  # the prefix all of its namespace shares
        "warehouse.analytics.user_orders_with_a_long_name": "analytics.\nuser_orders_\nwith_a_long_\nname",
        "users_orders.extract_orders": "extract_\norders",  # a step without its pipeline's name
        "users_orders.build_user_orders": "build_user_\norders",
    }, "the parent job users_orders is not drawn: it has no edge to draw"
    assert {j["name"]: j["group"] for j in data["jobs"]} == {
        "users_orders.extract_orders": "users_orders", "users_orders.build_user_orders": "users_orders"}
    for label, item in zip(labels.values(), data["datasets"] + data["jobs"]):
        assert "\u2026" not in label and label.replace("\n", "") in item["name"] + item["name"].rsplit("/", 1)[-1]
    # Layers are as far apart as their labels need, not a fixed grid; left to right still.
    x = {item["name"]: item["x"] for item in data["datasets"] + data["jobs"]}
    order = ["/srv/data/incoming/orders_2024.csv", "users_orders.extract_orders", "warehouse.staging.orders",
             "users_orders.build_user_orders", "warehouse.analytics.user_orders_with_a_long_name"]
    assert [x[n] for n in order] == sorted(x[n] for n in order) and len(set(x.values())) == 5


def test_a_shortened_name_two_datasets_share_stays_whole() -> None:
    g = LineageGraph.from_events([
        *_run("a", [("postgres://db1", "prod.sales.orders")], [("postgres://db1", "prod.sales.totals")]),
        *_run("b", [("postgres://db2", "test.sales.orders")], [("postgres://db2", "test.sales.totals")]),
    ])
    labels = sorted(d["label"].replace("\n", "") for d in graph_view_data(g)["datasets"])
    assert labels == ["prod.sales.orders", "prod.sales.totals", "test.sales.orders", "test.sales.totals"]


def test_edges_carry_merged_transformations() -> None:
    data = graph_view_data(make_graph())
    names = {c["id"]: c["name"] for c in data["columns"]}
    edges = {(names[a], names[b]): (how, direct, masked) for a, b, how, direct, masked in data["columnEdges"]}
    assert edges[("email", "user_email")] == ("DIRECT/TRANSFORMATION (masked)", 1, 1)
    assert edges[("status", "amount")] == ("INDIRECT/FILTER", 0, 0)
    assert len(edges) == 7


def test_focus_must_be_in_the_graph() -> None:
    with pytest.raises(LineageAuditError, match="not in the graph"):
        render_graph_html(make_graph(), title="x", focus=DatasetRef(NS, "missing"))
    assert graph_view_data(make_graph(), focus=MART)["focus"].startswith("d")


def test_an_empty_graph_still_renders() -> None:
    assert "lineage-data" in render_graph_html(LineageGraph(), title="empty")


# ------------------------------------------------------------------ in Chromium


def _open(page: BrowserPage, path: Path) -> None:
    page.open(path)
    page.page.wait_for_selector("#lineage-graph[data-ready=true]", timeout=20_000)


def _click_node(page: BrowserPage, name: str) -> None:
    """A real mouse click on the node's spot of the canvas."""
    node_id = page.page.evaluate("name => lineageGraph.idOf(name)", name)
    assert node_id, f"no node named {name!r}"
    spot = page.page.evaluate("id => lineageGraph.domPosition(id)", node_id)
    box = page.page.locator(".lg-canvas").bounding_box()
    page.page.mouse.click(box["x"] + spot["x"], box["y"] + spot["y"])
    page.page.wait_for_function("id => lineageGraph.selected() === id", arg=node_id, timeout=5_000)


def _panel_list(page: BrowserPage, title: str) -> list[str]:
    return page.page.evaluate(
        """title => {
            const h = [...document.querySelectorAll('.lg-panel h3')].find(h => h.textContent.startsWith(title + ' ('));
            const list = h && h.nextElementSibling;
            return list && list.tagName === 'UL' ? [...list.children].map(li => li.textContent) : [];
        }""",
        title,
    )


@pytest.mark.browser
def test_page_loads_clean_with_expected_nodes(browser_page: BrowserPage, html_file: Path) -> None:
    _open(browser_page, html_file)
    page = browser_page.page
    assert page.get_attribute("#lineage-graph", "data-node-count") == "7"
    assert page.evaluate("lineageGraph.nodeCount()") == 7
    assert page.evaluate("lineageGraph.edgeCount()") == 6
    assert page.text_content(".lg-count") == "7 nodes"
    browser_page.screenshot("lineage-graph-tables")
    page.click(".lg-toggle button[value=column]")
    assert page.evaluate("[lineageGraph.view(), lineageGraph.nodeCount(), lineageGraph.edgeCount()]") == ["column", 15, 7]
    browser_page.screenshot("lineage-graph-columns")
    browser_page.assert_clean()


@pytest.mark.browser
def test_clicking_a_dataset_shows_its_columns_and_lineage(browser_page: BrowserPage, html_file: Path) -> None:
    _open(browser_page, html_file)
    _click_node(browser_page, "stg.orders")
    page = browser_page.page
    assert page.text_content(".lg-panel h2") == "stg.orders"
    assert page.eval_on_selector_all(".lg-panel .lg-column .lg-link", "els => els.map(e => e.textContent)") == ["id", "amount"]
    assert _panel_list(browser_page, "Upstream") == ["raw.orders"]
    assert _panel_list(browser_page, "Downstream") == ["mart.revenue"]
    assert _panel_list(browser_page, "Written by") == ["load_orders"]
    # Following a link in the panel selects that node.
    page.click(".lg-panel .lg-link[data-node] >> text=raw.orders")
    assert page.text_content(".lg-panel h2") == "raw.orders"
    assert page.text_content(".lg-panel") .count("team:ingest (MAINTAINER)") == 1
    browser_page.screenshot("lineage-graph-panel")
    browser_page.assert_clean()


@pytest.mark.browser
def test_clicking_a_column_shows_its_sources_with_transformations(browser_page: BrowserPage, html_file: Path) -> None:
    _open(browser_page, html_file)
    browser_page.page.click(".lg-toggle button[value=column]")
    _click_node(browser_page, "stg.orders.amount")
    assert _panel_list(browser_page, "Upstream columns") == [
        "raw.orders.amount DIRECT/TRANSFORMATION",
        "raw.orders.status INDIRECT/FILTER",
    ]
    assert _panel_list(browser_page, "Downstream columns") == ["mart.revenue.revenue DIRECT/AGGREGATION"]
    # Hiding indirect edges leaves the 5 DIRECT ones (the two WHERE-status edges go).
    assert browser_page.page.evaluate("lineageGraph.edgeCount()") == 7
    browser_page.page.uncheck(".lg-show-indirect")
    assert browser_page.page.evaluate("lineageGraph.edgeCount()") == 5
    browser_page.assert_clean()


@pytest.mark.browser
def test_hostile_names_show_as_text_and_run_nothing(browser_page: BrowserPage, html_file: Path) -> None:
    _open(browser_page, html_file)
    page = browser_page.page
    _click_node(browser_page, XSS)
    assert page.text_content(".lg-panel h2") == XSS
    assert page.eval_on_selector_all(".lg-panel .lg-column .lg-link", "els => els.map(e => e.textContent)") == [XSS]
    page.fill(".lg-search input", "onerror")
    page.wait_for_function("() => lineageGraph.matchCount() === 1")
    assert page.eval_on_selector_all(".lg-results li", "els => els.map(e => e.textContent)") == [XSS]
    page.click(".lg-toggle button[value=column]")
    page.wait_for_function("() => lineageGraph.matchCount() === 3")  # the dataset and its two columns
    assert sorted(page.eval_on_selector_all(".lg-results li", "els => els.map(e => e.textContent)")) == sorted(
        [XSS, f"{XSS}.{XSS}", f"mart.revenue.{XSS}"]
    )
    page.click(".lg-results li >> nth=0")
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.title() == "Shop lineage <script>alert(2)</script>"
    browser_page.screenshot("lineage-graph-hostile-names")
    assert browser_page.dialogs == []
    browser_page.assert_clean()


@pytest.mark.browser
def test_search_filters_by_name(browser_page: BrowserPage, html_file: Path) -> None:
    _open(browser_page, html_file)
    page = browser_page.page
    page.fill(".lg-search input", "ORDERS")
    page.wait_for_function("() => lineageGraph.matchCount() === 3")
    assert page.eval_on_selector_all(".lg-results li", "els => els.map(e => e.textContent)") == [
        "raw.orders", "stg.orders", "load_orders",
    ]
    assert page.text_content(".lg-count") == "3 of 7 match"
    page.press(".lg-search input", "Enter")
    assert page.text_content(".lg-panel h2") == "raw.orders"
    page.fill(".lg-search input", "")
    page.wait_for_function("() => lineageGraph.matchCount() === 0")
    assert page.text_content(".lg-count") == "7 nodes"
    browser_page.assert_clean()


@pytest.mark.browser
def test_focus_opens_on_the_dataset(browser_page: BrowserPage, tmp_path: Path) -> None:
    path = write_graph_html(make_graph(), tmp_path / "focus.html", title="focus", focus=MART)
    _open(browser_page, path)
    assert browser_page.page.text_content(".lg-panel h2") == "mart.revenue"
    assert _panel_list(browser_page, "Upstream") == [XSS, "raw.users", "stg.orders"]
    browser_page.assert_clean()
