"""The audit page's filters in Chromium: the action chosen from the actions the log holds,
"refused only", and a table that fits the window with long refusal messages in it."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from playwright.sync_api import Page, expect

from tests.servers import Gateway
from tests.ui.helpers import admin_login, fits_both_widths, prepare, s3

POLICY = """\
[[rule]]
bucket = "kept"
prefix = "raw/"
forms = ["runs"]
"""
FORM = {"name": "runs", "title": "Runs", "fields": [{"name": "operator", "type": "text"}]}


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> Gateway:
    gw = prepare(ui_gateway, buckets=["kept"], forms=[FORM], policy=POLICY)
    client = s3(gw)
    # refused: no session for this place (the message teaches, so it is long)
    for n in range(3):
        with pytest.raises(ClientError):
            client.put_object(Bucket="kept", Key=f"raw/2026/run{n}/a-rather-long-name.bin",
                              Body=b"x")  # fmt: skip
    return gw


def test_action_list_and_refused_only(site: Gateway, page: Page) -> None:
    admin_login(page, site, start="admin/audit")
    actions = page.locator("#audit-action option").all_inner_texts()
    assert actions[0] == "any"
    assert {"PutObject", "login", "policy.set", "form.create"} <= set(actions[1:]), actions
    assert actions[1:] == sorted(actions[1:])

    page.check("#audit-refused")
    page.click("#audit-filter")
    rows = page.locator("#audit tbody tr")
    expect(rows).to_have_count(3)
    assert {r.get_attribute("data-outcome") for r in rows.all()} == {"refused"}
    expect(rows.first).to_contain_text("No open metadata session")
    fits_both_widths(page, "admin-audit")

    # both filters together, kept by the address
    page.select_option("#audit-action", "login")
    page.click("#audit-filter")
    expect(page.locator("#audit")).to_contain_text("No events match.")
    assert "outcome=refused" in page.url and "action=login" in page.url
    expect(page.locator("#audit-refused")).to_be_checked()
    page.uncheck("#audit-refused")
    page.click("#audit-filter")
    expect(rows.first).to_have_attribute("data-action", "login")
    expect(rows.first).to_have_attribute("data-outcome", "ok")
