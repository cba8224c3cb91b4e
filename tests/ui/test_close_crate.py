"""Closing a session from its page with "Write ro-crate-metadata.json into s3://...": Chromium
against a real ``minimo serve``. The crate shows up in the session's objects and downloads as the
RO-Crate of exactly those objects; the policy's ``ro_crate_on_close`` pre-ticks the box; a user's
own file of that name makes the close refuse, with the reason next to the button."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.helpers import policy_rule
from tests.servers import Gateway
from tests.ui.helpers import admin_login, prepare, s3, screenshot

BUCKET = "crate-ui"
CRATE = "ro-crate-metadata.json"
FORM = {
    "name": "imaging",
    "title": "Imaging run",
    "fields": [{"name": "operator", "label": "Operator", "type": "text", "required": True}],
}
POLICY = "\n".join([
    policy_rule(BUCKET, ["imaging"], prefix="auto/", ro_crate_on_close=True),
    policy_rule(BUCKET, ["imaging"]),
])  # fmt: skip


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> Gateway:
    return prepare(ui_gateway, buckets=[BUCKET], forms=[FORM], policy=POLICY)


def _open(gw: Gateway, prefix: str) -> tuple[str, Any]:
    """A session opened with the CLI: its id and a boto3 client with its session key."""
    done = gw.cli(
        "session", "open", "--form", "imaging", "--bucket", BUCKET, "--prefix", prefix,
        "--set", "operator=Ada", "--json",
    )  # fmt: skip
    out = json.loads(done.stdout)
    return out["id"], s3(gw, out["access_key"], out["secret_key"])


def _close(page: Page) -> None:
    page.click("#close-session")  # it asks first: the page fixture says yes


def test_close_with_crate_from_the_session_page(site: Gateway, page: Page, tmp_path: Path) -> None:
    gw = site
    session_id, as_session = _open(gw, "run1/")
    data = {"run1/a.tif": b"\x00\x01 pixels", "run1/notes/b.txt": b"notes"}
    for key, body in data.items():
        as_session.put_object(Bucket=BUCKET, Key=key, Body=body)
    admin_login(page, gw)

    # -- the box names where the crate goes; off by default under this rule
    page.goto(f"{gw.endpoint}/_minimo/sessions/{session_id}")
    box = page.locator("#close-ro-crate")
    expect(box).not_to_be_checked()
    expect(page.locator("label", has=box)).to_contain_text(
        f"Write {CRATE} into s3://{BUCKET}/run1/"
    )
    box.check()
    screenshot(page, "close-with-crate")
    _close(page)

    # -- closed, and the page says where the crate was written
    expect(page.locator("#session-state")).to_have_text("closed")
    expect(page.locator("#closed-crate")).to_contain_text(f"s3://{BUCKET}/run1/{CRATE}")
    expect(page.locator("#crate-in-bucket")).to_have_text(f"s3://{BUCKET}/run1/{CRATE}")

    # -- the crate is one of the session's objects; download it from the list
    row = page.locator("#objects tr", has_text=f"run1/{CRATE}")
    expect(row).to_have_count(1)
    shown_hash = row.locator("code.hash").inner_text()
    with page.expect_download() as got:
        row.locator("a.download").click()
    saved = tmp_path / CRATE
    got.value.save_as(saved)
    raw = saved.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == shown_hash
    crate = json.loads(raw)
    files = {e["@id"]: e for e in crate["@graph"] if e["@type"] == "File"}
    assert set(files) == {"a.tif", "notes/b.txt"}
    for key, body in data.items():
        assert files[key.removeprefix("run1/")]["sha256"] == hashlib.sha256(body).hexdigest()
    values = [e for e in crate["@graph"] if e["@type"] == "PropertyValue"]
    assert [(v["name"], v["value"]) for v in values] == [("Operator", "Ada")]


def test_policy_ticks_the_box_and_a_users_file_is_kept(site: Gateway, page: Page) -> None:
    gw = site
    admin_login(page, gw)

    # -- ro_crate_on_close = true pre-ticks the box
    auto_id, _ = _open(gw, "auto/run2/")
    page.goto(f"{gw.endpoint}/_minimo/sessions/{auto_id}")
    expect(page.locator("#close-ro-crate")).to_be_checked()

    # -- a file of the crate's name that the user wrote: the close is refused next to the button
    own_id, as_session = _open(gw, "own/")
    as_session.put_object(Bucket=BUCKET, Key=f"own/{CRATE}", Body=b'{"mine": true}')
    page.goto(f"{gw.endpoint}/_minimo/sessions/{own_id}")
    page.locator("#close-ro-crate").check()
    _close(page)
    expect(page.locator("#close-error")).to_contain_text("never overwrites")
    expect(page.locator("#session-state")).to_have_text("open")
    expect(page.locator("#close-ro-crate")).to_be_checked()
    got = s3(gw).get_object(Bucket=BUCKET, Key=f"own/{CRATE}")
    assert got["Body"].read() == b'{"mine": true}'

    # -- unticked, it closes without a crate
    page.locator("#close-ro-crate").uncheck()
    _close(page)
    expect(page.locator("#session-state")).to_have_text("closed")
    expect(page.locator("#closed-crate")).to_have_count(0)
