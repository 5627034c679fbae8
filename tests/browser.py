"""Headless Chromium for browser tests: Debian's package driven by Playwright for Python.

Playwright never downloads a browser here: it launches the binary named by
``LINEAGE_AUDIT_CHROMIUM`` (default ``/usr/bin/chromium``, installed by
``scripts/chromium.sh``). If Chromium cannot start the test FAILS with the reason; a
skipped browser test would hide a broken page.

Use the fixtures by importing them into a test module::

    from browser import browser_page, chromium  # noqa: F401  (fixtures)

    @pytest.mark.browser
    def test_report_opens(browser_page):
        browser_page.open(path)           # file path or URL; waits for the load event
        ...
        browser_page.assert_clean()       # no console errors, page errors or dialogs
        browser_page.screenshot("report")  # test-output/report.png

``browser_page.page`` is the Playwright ``Page``. Pages run offline: any request that is
not ``file:``, ``data:`` or ``about:`` or to 127.0.0.1/localhost is aborted and recorded,
so a page that reaches for a CDN fails ``assert_clean``.

Pages with a Content-Security-Policy (our reports have one) refuse string evaluation: give
``page.wait_for_function`` a function (``"() => window.ready === true"``), not a bare
expression.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "test-output"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
LOCAL_SCHEMES = {"file", "data", "about", "blob"}


def chromium_path() -> str:
    return os.environ.get("LINEAGE_AUDIT_CHROMIUM") or "/usr/bin/chromium"


def launch_chromium(playwright):  # -> playwright.sync_api.Browser
    """Launch Debian's Chromium, or fail the test with what went wrong and how to fix it."""
    path = chromium_path()
    if not Path(path).exists():
        pytest.fail(
            f"Chromium not found at {path}: run scripts/chromium.sh (as root) to install the "
            "Debian package, or set LINEAGE_AUDIT_CHROMIUM to a Chromium binary",
            pytrace=False,
        )
    try:
        return playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
    except Exception as exc:  # Playwright raises its own Error types with the browser's log
        pytest.fail(f"Chromium at {path} did not start: {exc}", pytrace=False)


@dataclass
class BrowserPage:
    """A page plus everything it complained about."""

    page: object
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)

    def open(self, target: str | Path, *, timeout_ms: int = 30_000) -> None:
        """Navigate to a file (path) or URL and wait for the load event."""
        url = Path(target).resolve().as_uri() if isinstance(target, Path) or "://" not in str(target) else str(target)
        self.page.goto(url, wait_until="load", timeout=timeout_ms)

    def problems(self) -> list[str]:
        return (
            [f"console error: {m}" for m in self.console_errors]
            + [f"page error: {m}" for m in self.page_errors]
            + [f"dialog opened: {m}" for m in self.dialogs]
            + [f"network request blocked (page must work offline): {u}" for u in self.blocked_requests]
        )

    def assert_clean(self) -> None:
        """Fail listing every console error, uncaught exception, dialog and blocked request."""
        found = self.problems()
        assert not found, "the page was not clean:\n  " + "\n  ".join(found)

    def screenshot(self, name: str, *, full_page: bool = False) -> Path:
        """Save ``test-output/<name>.png`` and return its path."""
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


def watch(page) -> BrowserPage:
    """Record console errors, page errors and dialogs (dismissed) and keep the page offline."""
    watched = BrowserPage(page)
    page.on("console", lambda msg: watched.console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: watched.page_errors.append(str(err)))

    def on_dialog(dialog) -> None:
        watched.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)

    def route(r) -> None:
        url = urlparse(r.request.url)
        if url.scheme in LOCAL_SCHEMES or url.hostname in LOCAL_HOSTS:
            r.continue_()
        else:
            watched.blocked_requests.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return watched


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """One Chromium for the whole test run."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def browser_page(chromium) -> Iterator[BrowserPage]:
    """A fresh page (own context, 1400x900) with its console, errors and dialogs recorded."""
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    try:
        yield watch(context.new_page())
    finally:
        context.close()
