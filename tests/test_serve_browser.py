"""The service's pages in headless Chromium: status, a pipeline, a dataset, findings, costs.

Names are hostile on purpose (``<img src=x onerror=alert(1)>``): they must show as text, no
dialog may open, no console error, nothing fetched from outside 127.0.0.1; each page is
screenshotted to test-output/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from browser import BrowserPage
from service_helpers import PRODUCER, SCHEMA_URL, Server, add_token, pipeline_run, start_server

XSS = "<img src=x onerror=alert(1)>"
TABLE = f"wh.mart.{XSS}"
NS = "postgres://wh:5432"


def _lineage_event() -> dict:
    fields = {"amount": {"inputFields": [{"namespace": NS, "name": "wh.raw.orders", "field": "amount"}]},
              XSS: {"inputFields": [{"namespace": NS, "name": "wh.raw.orders", "field": "note"}]}}
    return {"eventType": "COMPLETE", "eventTime": "2024-05-02T00:00:30Z", "producer": PRODUCER, "schemaURL": SCHEMA_URL,
            "run": {"runId": "01900000-0000-7000-9000-000000000001"},
            "job": {"namespace": "lineage-audit", "name": f"{XSS}.build",
                    "facets": {"sql": {"_producer": PRODUCER, "_schemaURL": "s", "query": f"SELECT amount, note AS \"{XSS}\" FROM raw.orders"}}},
            "inputs": [{"namespace": NS, "name": "wh.raw.orders"}],
            "outputs": [{"namespace": NS, "name": TABLE, "facets": {
                "schema": {"_producer": PRODUCER, "_schemaURL": "s", "fields": [{"name": "amount", "type": "int"}, {"name": XSS}]},
                "columnLineage": {"_producer": PRODUCER, "_schemaURL": "s", "fields": fields}}}]}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    root = tmp_path_factory.mktemp("pages")
    token = add_token(root, "<b>eve</b>")
    server = start_server(["--store", f"embedded:{root / 's.db'}", "--tokens", str(root / "tokens.json")], root)
    auth = {"Authorization": f"Bearer {token}"}
    events = [_lineage_event()]
    for i in range(12):
        events += pipeline_run(i, pipeline=XSS, team=f"team {XSS}", failed=i in (4, 11), minute=i % 5)
    for event in events:
        assert httpx.post(f"{server.url}/api/v1/lineage", json=event, headers=auth).status_code == 201
    try:
        yield server, token
    finally:
        server.stop()


def _open(browser_page: BrowserPage, site: tuple[Server, str], path: str) -> None:
    server, token = site
    browser_page.page.set_extra_http_headers({"Authorization": f"Bearer {token}"})
    browser_page.open(f"{server.url}{path}")


@pytest.mark.browser
def test_status_page_shows_hostile_names_as_text(browser_page: BrowserPage, site: tuple[Server, str]) -> None:
    _open(browser_page, site, "/")
    page = browser_page.page
    row = page.locator("#status tbody tr").first
    assert row.locator("td").nth(0).inner_text() == XSS
    assert row.locator("td").nth(1).inner_text() == f"team {XSS}"
    assert row.locator("td").nth(5).inner_text() == "FAIL"
    assert page.locator("img").count() == 0
    browser_page.assert_clean()
    browser_page.screenshot("serve-status")


@pytest.mark.browser
def test_pipeline_page_has_history_plot_steps_and_errors(browser_page: BrowserPage, site: tuple[Server, str]) -> None:
    _open(browser_page, site, f"/pipelines/{quote(XSS, safe='')}")
    page = browser_page.page
    assert page.locator("h1").inner_text() == f"Pipeline {XSS}"
    assert page.locator("#runs tbody tr").count() == 12
    assert page.locator("svg.plot rect").count() == 12
    assert page.locator("svg.plot rect.bad").count() == 2
    assert page.locator("#steps tbody tr td").first.inner_text() == "load"
    assert "load failed: connection refused" in page.locator("#runs").inner_text()
    browser_page.assert_clean()
    browser_page.screenshot("serve-pipeline", full_page=True)


@pytest.mark.browser
def test_dataset_page_draws_the_lineage_graph(browser_page: BrowserPage, site: tuple[Server, str]) -> None:
    _open(browser_page, site, f"/datasets?name={quote(TABLE, safe='')}")
    page = browser_page.page
    page.wait_for_selector("#lineage-graph[data-ready=true]", timeout=20_000)
    assert page.locator("h1").inner_text() == f"Dataset {TABLE}"
    names = page.locator("#columns tbody tr td:first-child").all_inner_texts()
    assert names == ["amount", XSS]
    assert XSS in page.locator("#writers pre").inner_text()
    assert page.evaluate("() => document.querySelectorAll('img').length") == 0
    browser_page.assert_clean()
    browser_page.screenshot("serve-dataset")


@pytest.mark.browser
def test_findings_and_costs_pages_open_clean(browser_page: BrowserPage, site: tuple[Server, str]) -> None:
    for path, name in (("/findings", "serve-findings"), ("/costs", "serve-costs")):
        _open(browser_page, site, path)
        assert browser_page.page.locator("table tbody tr").count() == 1
        browser_page.assert_clean()
        browser_page.screenshot(name)


def test_pages_need_a_token(site: tuple[Server, str]) -> None:
    server, _ = site
    for path in ("/", "/findings", "/costs", f"/pipelines/{quote(XSS, safe='')}"):
        assert httpx.get(f"{server.url}{path}").status_code == 401


@pytest.mark.browser
def test_a_browser_signs_in_with_its_token_and_out_again(browser_page: BrowserPage, site: tuple[Server, str]) -> None:
    """No header in a browser: a page redirects to the sign-in form, a wrong token is refused,
    the right one leads back to the page asked for (a cookie carries it), sign-out forgets it.
    The cookie opens the pages only: ingest and /metrics still need the header."""
    server, token = site
    page = browser_page.page
    browser_page.open(f"{server.url}/findings")
    assert page.url.startswith(f"{server.url}/login?next=")
    page.fill("#token", "la_0000_wrong")
    page.click("button[type=submit]")
    assert page.locator("#error").inner_text() == "unknown or revoked token"
    assert browser_page.console_errors == ["Failed to load resource: the server responded with a status of 401 (Unauthorized)"]
    browser_page.console_errors.clear()  # that refusal is the point; nothing else may complain
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/findings")
    assert page.locator("h1").inner_text() == "Findings"
    assert page.locator("header .who").inner_text().startswith("<b>eve</b>"), "the user's name, as text"
    cookie = next(c for c in page.context.cookies() if c["name"] == "lineage_audit_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    browser_page.open(f"{server.url}/")
    assert page.locator("#status tbody tr").count() > 0
    browser_page.screenshot("serve-signed-in")
    page.click("text=sign out")
    page.wait_for_url(f"{server.url}/login")
    browser_page.open(f"{server.url}/costs")
    assert page.url.startswith(f"{server.url}/login?next="), "signed out: the pages ask again"
    browser_page.assert_clean()

    jar = {"lineage_audit_token": token}
    assert httpx.get(f"{server.url}/metrics", cookies=jar).status_code == 401
    assert httpx.post(f"{server.url}/api/v1/lineage", json=pipeline_run(99)[0], cookies=jar).status_code == 401
    assert httpx.get(f"{server.url}/findings", cookies=jar).status_code == 200
    away = httpx.post(f"{server.url}/login", data={"token": token, "next": "//evil.example/x"})
    assert away.status_code == 303 and away.headers["location"] == "/", "never redirected to another site"
