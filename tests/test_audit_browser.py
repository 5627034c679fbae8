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
