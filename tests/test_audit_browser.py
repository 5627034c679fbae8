"""The HTML audit report in headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

from pathlib import Path

import pytest

from browser import BrowserPage
from test_audit_report import XSS, render_xss_report


@pytest.fixture()
def report(tmp_path: Path) -> Path:
    return render_xss_report(tmp_path)


def _click_node(page: BrowserPage, name: str) -> None:
    """A real mouse click on the node, zooming out first (with the wheel) if it is off the canvas."""
    node_id = page.page.evaluate("name => lineageGraph.idOf(name)", name)
    assert node_id, f"no node named {name!r}"
    page.page.locator(".lg-canvas").scroll_into_view_if_needed()
    box = page.page.locator(".lg-canvas").bounding_box()
    for _ in range(10):
        spot = page.page.evaluate("id => lineageGraph.domPosition(id)", node_id)
        if 20 < spot["x"] < box["width"] - 20 and 20 < spot["y"] < box["height"] - 20:
            break
        page.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.page.mouse.wheel(0, 300)
        page.page.wait_for_timeout(100)
    page.page.mouse.click(box["x"] + spot["x"], box["y"] + spot["y"])
    page.page.wait_for_function("id => lineageGraph.selected() === id", arg=node_id, timeout=5_000)


@pytest.mark.browser
def test_report_opens_clean_with_the_provenance_graph(browser_page: BrowserPage, report: Path) -> None:
    browser_page.open(report)
    page = browser_page.page
    page.wait_for_selector("#lineage-graph[data-ready=true]", timeout=20_000)
    # 4 datasets (the feature table and its 3 raw sources) + the 4 jobs writing them
    assert page.get_attribute("#lineage-graph", "data-node-count") == "8"
    assert page.evaluate("lineageGraph.nodeCount()") == 8
    assert page.get_attribute("#audit-report", "data-verdict") == "fail"
    assert page.locator("#ar-findings tr[data-finding]").count() >= 1
    browser_page.screenshot("audit-report", full_page=True)
    browser_page.assert_clean()


@pytest.mark.browser
def test_clicking_a_node_shows_its_columns(browser_page: BrowserPage, report: Path) -> None:
    browser_page.open(report)
    page = browser_page.page
    page.wait_for_selector("#lineage-graph[data-ready=true]", timeout=20_000)
    _click_node(browser_page, "warehouse.raw.users")
    columns = page.evaluate(
        """() => {
            const h = [...document.querySelectorAll('.lg-panel h3')].find(h => h.textContent.startsWith('Columns ('));
            return h ? [...h.nextElementSibling.children].map(li => li.querySelector('.lg-link').textContent) : [];
        }"""
    )
    assert columns == ["user_id", "name", "email", "country"]
    browser_page.screenshot("audit-report-panel")
    browser_page.assert_clean()


@pytest.mark.browser
def test_hostile_names_show_as_text_and_run_nothing(browser_page: BrowserPage, report: Path) -> None:
    browser_page.open(report)
    page = browser_page.page
    page.wait_for_selector("#lineage-graph[data-ready=true]", timeout=20_000)
    upstream = page.locator("#ar-upstream").inner_text()
    assert XSS in upstream
    assert page.locator("img[src=x]").count() == 0
    hostile = f"warehouse.raw.{XSS}"
    _click_node(browser_page, hostile)
    assert page.locator(".lg-panel h2").inner_text() == hostile
    assert page.locator(".lg-panel img").count() == 0
    browser_page.screenshot("audit-report-hostile-names")
    assert browser_page.dialogs == []
    browser_page.assert_clean()


# ------------------------------------------------------------------ readable at first sight


@pytest.mark.browser
def test_findings_table_keeps_severity_id_and_check_on_one_line(browser_page: BrowserPage, report: Path) -> None:
    """Long evidence paths elsewhere in the table must not squeeze the short columns to a letter a line."""
    browser_page.open(report)
    page = browser_page.page
    page.set_viewport_size({"width": 1024, "height": 800})
    cells = page.evaluate(
        """() => [...document.querySelectorAll('#ar-findings tr[data-finding]')].flatMap(row =>
            [0, 1, 2].map(i => {
                const cell = row.cells[i];
                const range = document.createRange();
                range.selectNodeContents(cell);
                const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
                return {text: cell.textContent.trim(), lines: lines.size, fits: cell.scrollWidth <= cell.clientWidth};
            }))"""
    )
    assert cells, "the report has findings"
    squeezed = [c for c in cells if c["lines"] != 1 or not c["fits"]]
    assert not squeezed, f"cells wrapped or cut: {squeezed}"
    headers = page.evaluate("() => [...document.querySelectorAll('#ar-findings th')].map(th => th.getBoundingClientRect().height)")
    assert max(headers) < 2 * min(headers) + 1, "every header on one line"
    browser_page.screenshot("audit-report-findings", full_page=True)
    browser_page.assert_clean()


@pytest.fixture(scope="module")
def demo_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lineage graph `lineage-audit demo` writes (real pipelines, offline)."""
    from click.testing import CliRunner

    from lineage_auditor.cli import cli

    folder = tmp_path_factory.mktemp("demo")
    runner = CliRunner(env={"LINEAGE_AUDIT_HOME": str(folder / "state")})
    with pytest.MonkeyPatch.context() as patch:  # the demo leaves lineage-audit.yml in the cwd
        patch.chdir(folder)
        result = runner.invoke(cli, ["demo", "--out", str(folder / "out"), "--lineage", "none", "--format", "json"])
    assert result.exit_code == 0, result.output
    return folder / "out" / "lineage.html"


@pytest.mark.browser
def test_demo_graph_is_readable_without_zooming(browser_page: BrowserPage, demo_graph: Path) -> None:
    """The first view of the demo's graph, on a laptop-sized window, measured on the page and its screenshot."""
    from io import BytesIO

    from PIL import Image

    page = browser_page.page
    page.set_viewport_size({"width": 1280, "height": 800})
    browser_page.open(demo_graph)
    page.wait_for_selector("#lineage-graph[data-ready=true]", timeout=20_000)
    canvas = page.locator(".lg-canvas").bounding_box()
    nodes = page.evaluate("() => lineageGraph.nodes()")
    # Labels: whole (never cut with an ellipsis), files by basename, steps without their pipeline.
    labels = {n["label"].replace("\n", "") for n in nodes}
    assert not [n for n in nodes if "\u2026" in n["label"]]
    assert {"orders_sample.csv", "staging.orders", "analytics.user_orders", "features.churn_features",
            "extract_orders", "build_user_orders", "load_hourly"} <= labels
    assert not [n for n in nodes if n["label"].startswith("/") and n["label"].count("/") > 2], "no absolute paths"
    # No floating nodes: the parent jobs (users_orders, weather) are not drawn on their own.
    assert {"users_orders", "weather"} & {n["name"] for n in nodes} == set()
    assert all(n["links"] for n in nodes), [n["name"] for n in nodes if not n["links"]]
    # Big enough to read, all in view, filling the canvas rather than a band of it.
    assert min(n["fontPx"] for n in nodes) >= 11, sorted(round(n["fontPx"], 1) for n in nodes)
    assert all(n["left"] >= 0 and n["top"] >= 0 and n["right"] <= canvas["width"] and n["bottom"] <= canvas["height"]
               for n in nodes)
    width = (max(n["right"] for n in nodes) - min(n["left"] for n in nodes)) / canvas["width"]
    height = (max(n["bottom"] for n in nodes) - min(n["top"] for n in nodes)) / canvas["height"]
    assert width >= 0.8 and height >= 0.5, (width, height)
    # The same from the pixels: what is drawn (not background) spans most of the canvas.
    shot = Image.open(BytesIO(page.screenshot(clip=canvas))).convert("L")
    browser_page.screenshot("demo-lineage-graph")
    ink = shot.point(lambda v: 255 if v < 200 else 0).getbbox()
    assert ink is not None
    assert (ink[2] - ink[0]) / shot.width >= 0.8 and (ink[3] - ink[1]) / shot.height >= 0.5, (ink, shot.size)
    # The full name is on hover.
    orders = next(n for n in nodes if n["label"].replace("\n", "") == "orders_sample.csv")
    page.mouse.move(canvas["x"] + (orders["left"] + orders["right"]) / 2, canvas["y"] + (orders["top"] + orders["bottom"]) / 2)
    tooltip = page.locator(".vis-tooltip")
    tooltip.wait_for(state="visible", timeout=5_000)
    assert orders["name"] in tooltip.inner_text() and orders["name"].endswith("/pipelines/fixtures/orders_sample.csv")
    browser_page.assert_clean()
