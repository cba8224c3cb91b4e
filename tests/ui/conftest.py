"""Fixtures for the browser tests: a real ``minimo serve`` and Chromium driven by Playwright.

Chromium is the distribution's (``apt-get install chromium``; scripts/test installs it when
missing), never a browser downloaded by ``playwright install``: CI machines have the package
mirror, not necessarily Playwright's CDN.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


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


def screenshot(page: object, name: str) -> None:
    """Save docs/screenshots/NAME.png, only when MINIMO_SCREENSHOTS=1 (the committed ones are
    refreshed on purpose, not by every test run)."""
    if os.environ.get("MINIMO_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
