"""Fixtures for the browser tests: a real ``minimo serve`` and Chromium driven by Playwright.

Chromium is the distribution's (``apt-get install chromium``; scripts/test installs it when
missing), never a browser downloaded by ``playwright install``: CI machines have the package
mirror, not necessarily Playwright's CDN.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.servers import Gateway, run_gateway

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root in containers, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def ui_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with run_gateway(tmp_path_factory.mktemp("ui-gateway")) as gw:
        yield gw


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        # Fail, never skip: a missing browser must turn CI red, not silently drop the UI tests.
        raise RuntimeError(
            f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test does)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Page]]:
    """Opens pages, each in a fresh context (its own cookies): ``new_page(width=1300)``,
    ``new_page(javascript=False)``. At teardown every page's Content-Security-Policy violations
    (collected in ``page.csp_errors``) must be none, so no browser test can forget that check."""
    opened: list[Page] = []

    def open_page(width: int = 1200, height: int = 900, javascript: bool = True) -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": height},
            java_script_enabled=javascript,
            accept_downloads=True,
        )
        page = context.new_page()
        page.csp_errors = []  # type: ignore[attr-defined]
        # Every console error, for helpers.fits_both_widths (which asserts none); not checked
        # here, as some tests provoke refusals the browser logs on purpose.
        page.console_errors = []  # type: ignore[attr-defined]
        page.on(
            "console",
            lambda msg: msg.type == "error" and page.console_errors.append(msg.text),  # type: ignore[attr-defined]
        )
        page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))  # type: ignore[attr-defined]
        # A CSP violation shows up only as a console error: collect them.
        page.on(
            "console",
            lambda msg: "Content Security Policy" in msg.text and page.csp_errors.append(msg.text),  # type: ignore[attr-defined]
        )
        # Pages ask "are you sure?" before closing a session or revoking a key: say yes.
        page.on("dialog", lambda dialog: dialog.accept())
        opened.append(page)
        return page

    yield open_page
    violations = {page.url: page.csp_errors for page in opened if page.csp_errors}  # type: ignore[attr-defined]
    for page in opened:
        page.context.close()
    assert not violations, f"Content-Security-Policy violations, by page: {violations}"


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page()


@pytest.fixture
def page_without_js(new_page: Callable[..., Page]) -> Page:
    return new_page(javascript=False)
