"""Plain helpers for the browser tests (the fixtures are in conftest.py): setting a module's site
up, signing in, finding a form field, walking the data browser, a screenshot for the docs, and
boto3 against the gateway under test."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.helpers import s3_client as s3
from tests.servers import Gateway, read_initial_admin

__all__ = [
    "admin_login",
    "browse_to",
    "field",
    "fits_both_widths",
    "login",
    "prepare",
    "s3",
    "screenshot",
    "submit_login",
]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def submit_login(page: Page, gw: Gateway, user: str, password: str, start: str = "") -> None:
    """Visit /_minimo/START signed out, get sent to the login page, and submit it (right or
    wrong: the caller checks what the page then says)."""
    page.goto(f"{gw.endpoint}/_minimo/{start}")
    expect(page).to_have_url(re.compile(r"/_minimo/login\?next="))
    page.fill("#user", user)
    page.fill("#password", password)
    page.click("button[type=submit].primary")


def login(page: Page, gw: Gateway, user: str, password: str, start: str = "") -> None:
    """Sign in from /_minimo/START: back on that page, the header names the user."""
    submit_login(page, gw, user, password, start)
    expect(page).to_have_url(f"{gw.endpoint}/_minimo/{start}")
    expect(page.locator(".who")).to_contain_text(user)


def admin_login(page: Page, gw: Gateway, start: str = "") -> str:
    """Sign in as the admin ``minimo serve`` created; returns that user's name."""
    admin = read_initial_admin(gw.data_dir)["user"]
    login(page, gw, admin, gw.admin_password, start)
    return admin


def field(page: Page, name: str) -> Locator:
    """A form field as _fields.html renders it: label, input, hint and errors."""
    return page.locator(f'.field[data-field="{name}"]')


def screenshot(page: Page, name: str) -> None:
    """Save docs/screenshots/NAME.png, only when MINIMO_SCREENSHOTS=1 (the committed ones are
    refreshed on purpose, not by every test run)."""
    if os.environ.get("MINIMO_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


WIDTHS = (1280, 390)  # a laptop and a phone: every page must fit both


def fits_both_widths(page: Page, name: str, height: int = 900) -> None:
    """The page as it stands, at 1,280 and 390 px wide: no horizontal overflow (the document is
    no wider than the window) and no console error since the page opened. Saves
    docs/screenshots/NAME-1280.png and NAME-390.png when MINIMO_SCREENSHOTS=1."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(50)  # one layout pass after the resize
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} at {width} px: {overflow} px wider than the window"
        screenshot(page, f"{name}-{width}")
    errors = getattr(page, "console_errors", [])
    assert not errors, f"{name}: console errors {errors}"


def prepare(
    gw: Gateway,
    *,
    buckets: Iterable[str] = (),
    forms: Iterable[dict[str, Any]] = (),
    policy: str | None = None,
    uploaders: Iterable[tuple[str, str]] = (),
) -> Gateway:
    """Set a module's site up as an admin would with the CLI: buckets, forms, then the policy
    (which may name only forms that exist), and users with the uploader role."""
    for bucket in buckets:
        s3(gw).create_bucket(Bucket=bucket)
    with tempfile.TemporaryDirectory() as work:
        for definition in forms:
            form_file = Path(work) / f"{definition['name']}.json"
            form_file.write_text(json.dumps(definition))
            gw.cli("form", "create", "--file", str(form_file))
        if policy is not None:
            policy_file = Path(work) / "policy.toml"
            policy_file.write_text(policy)
            gw.cli("policy", "set", str(policy_file))
    for user, password in uploaders:
        gw.cli("user", "add", user, "--role", "uploader", "--password-stdin",
               input=password + "\n")  # fmt: skip
    return gw


def browse_to(page: Page, bucket: str, prefix: str) -> None:
    """Walk the data browser as a user clicks: Data, the bucket, then each folder of PREFIX;
    the crumbs then name that path."""
    page.click('header nav a:text-is("Data")')
    page.click(f'#buckets a:text-is("{bucket}")')
    folders = prefix.strip("/").split("/")
    for folder in folders:
        page.click(f'#listing a:text-is("{folder}/")')
    expect(page.locator("#crumbs")).to_contain_text(" / ".join(["Data", bucket, *folders]))
