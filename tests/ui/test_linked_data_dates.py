"""Linked data keeps its modification time: Chromium against a real ``minimo serve``.

A file last changed in 2019 is put into the local object store behind minimo's back and linked
("Link existing data") by an admin. Linking stamps it by copying it onto itself, which gives it
today's date in the object store; the object page, the listing and the JSON API still say it
was modified in 2019, and say separately when it was linked.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.api.client import Browser
from tests.helpers import Setup, policy_rule
from tests.servers import Gateway, read_initial_admin
from tests.ui.helpers import admin_login, fits_both_widths, prepare, s3

BUCKET = "archive-dates"
FORM = {
    "name": "legacy",
    "title": "Legacy data",
    "fields": [{"name": "source", "label": "Source", "type": "text", "required": True}],
}
KEY = "2019/scan-0001.tif"
MODIFIED = datetime(2019, 3, 14, 15, 9, 26, tzinfo=UTC)


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> Gateway:
    gw = prepare(ui_gateway, buckets=[BUCKET], forms=[FORM], policy=policy_rule(BUCKET, ["legacy"]))
    Setup(gw.data_dir, None).put(BUCKET, KEY, b"an old scan", {})
    # as a file copied in with its dates kept (cp -p, rsync -t): last changed in 2019
    path = gw.data_dir / "objects" / BUCKET / KEY
    assert path.is_file(), path
    os.utime(path, (MODIFIED.timestamp(), MODIFIED.timestamp()))
    return gw


def test_a_linked_2019_file_still_says_2019_and_when_it_was_linked(
    site: Gateway, page: Page
) -> None:
    before = s3(site).head_object(Bucket=BUCKET, Key=KEY)["LastModified"]
    assert before == MODIFIED
    admin_login(page, site)
    page.goto(f"{site.endpoint}/_minimo/data/{BUCKET}/adopt?prefix=2019/")
    page.fill("#f-source", "old lab server")
    page.click("#adopt-submit")
    expect(page.locator("#adopted-count")).to_have_text("1 object")
    linked_about = datetime.now(UTC)

    # the stamping copy moved the object store's own date to today...
    after = s3(site).head_object(Bucket=BUCKET, Key=KEY)["LastModified"]
    assert after.year == linked_about.year and after > MODIFIED

    # ...the object page shows the original as "Modified" and the link time beside it
    page.goto(f"{site.endpoint}/_minimo/data/{BUCKET}/object?key={quote(KEY, safe='')}")
    expect(page.locator("#object-modified")).to_have_text("2019-03-14 15:09:26 UTC")
    expect(page.locator("#object-linked")).to_contain_text(linked_about.strftime("%Y-%m-%d"))
    expect(page.locator("#object-linked")).to_contain_text("linked as existing data")
    expect(page.locator("#record-time")).to_contain_text(linked_about.strftime("%Y-%m-%d"))
    expect(page.locator("#record")).to_contain_text("Linked")
    fits_both_widths(page, "data-object-linked")

    # the JSON twin and the record say the same
    twin = page.request.get(
        f"{site.endpoint}/_minimo/api/v1/buckets/{BUCKET}/object?key={quote(KEY, safe='')}"
    ).json()
    assert twin["modified"].startswith("2019-03-14T15:09:26")
    assert twin["linked"].startswith(linked_about.strftime("%Y-%m-%d"))
    assert twin["record"]["modified"].startswith("2019-03-14T15:09:26")
    assert twin["record"]["linked"] == twin["linked"]
    record = page.request.get(
        f"{site.endpoint}/_minimo/api/v1/objects/{BUCKET}/{quote(KEY, safe='')}"
    ).json()
    assert record["modified"].startswith("2019-03-14T15:09:26")

    # so does the session's RO-Crate
    session_id = twin["record"]["session_id"]
    crate = page.request.get(f"{site.endpoint}/_minimo/api/v1/sessions/{session_id}/ro-crate")
    (scan,) = [e for e in crate.json()["@graph"] if e.get("@type") == "File"]
    assert scan["dateModified"].startswith("2019-03-14T15:09:26")

    # the listing (page and API) shows the data's own date too
    page.goto(f"{site.endpoint}/_minimo/data/{BUCKET}?prefix=2019/")
    expect(page.locator(f'#listing tr.object[data-key="{KEY}"]')).to_contain_text(
        "2019-03-14 15:09 UTC"
    )
    listing = page.request.get(
        f"{site.endpoint}/_minimo/api/v1/buckets/{BUCKET}?prefix=2019/"
    ).json()
    (entry,) = listing["objects"]
    assert entry["last_modified"].startswith("2019-03-14T15:09:26")


def test_a_write_through_minimo_has_no_link_time(site: Gateway, page: Page) -> None:
    admin = Browser(site.endpoint)
    assert admin.login(read_initial_admin(site.data_dir)["user"], site.admin_password).status == 200
    opened = admin.call(
        "POST",
        "/sessions",
        {"form": "legacy", "bucket": BUCKET, "prefix": "new/", "values": {"source": "here"}},
    )
    assert opened.status == 201, opened.body
    key = opened.body["session_key"]
    s3(site, key["access_key"], key["secret_key"]).put_object(
        Bucket=BUCKET, Key="new/today.txt", Body=b"written today"
    )
    record = admin.call("GET", f"/objects/{BUCKET}/new/today.txt").body
    assert record["linked"] is None and record["modified"] == record["time"]
    admin_login(page, site)
    page.goto(f"{site.endpoint}/_minimo/data/{BUCKET}/object?key=new%2Ftoday.txt")
    expect(page.locator("#object-modified")).to_contain_text(datetime.now(UTC).strftime("%Y-"))
    expect(page.locator("#object-linked")).to_have_count(0)
    expect(page.locator("#record")).to_contain_text("When")
