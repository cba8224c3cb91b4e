"""The policy page's rule editor in Chromium: every option of every rule as a field, saved
through the same checks as the TOML (problems beside the option they are about), rules added,
moved and removed without writing TOML."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.servers import Gateway
from tests.ui.helpers import admin_login, fits_both_widths, prepare

FORMS = [
    {"name": "runs", "title": "Runs", "fields": [{"name": "operator", "type": "text"}]},
    {"name": "cells", "title": "Cells", "fields": [{"name": "line", "type": "text"}]},
]
POLICY = """\
[[rule]]
bucket = "raw"
prefix = "2026/"
forms = ["runs"]
"""


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> Gateway:
    return prepare(ui_gateway, forms=FORMS, policy=POLICY)


def rule(page: Page, index: int) -> Locator:
    return page.locator(f'#rule-editor fieldset.rule-editor[data-rule="{index}"]')


def option(page: Page, index: int, key: str) -> Locator:
    return rule(page, index).locator(f'[name="rule-{index}-{key}"]')


def test_every_option_edited_and_checked(site: Gateway, page: Page) -> None:
    gw = site
    admin_login(page, gw, start="admin/policy")
    # the rule in force, option by option (defaults shown as what they are)
    expect(option(page, 0, "bucket")).to_have_value("raw")
    expect(option(page, 0, "prefix")).to_have_value("2026/")
    expect(option(page, 0, "forms").and_(page.locator("[value=runs]"))).to_be_checked()
    expect(option(page, 0, "forms").and_(page.locator("[value=cells]"))).not_to_be_checked()
    expect(option(page, 0, "open_sessions")).to_have_value("admin, uploader")
    expect(option(page, 0, "require_session")).to_be_checked()
    expect(option(page, 0, "overwrite")).to_have_value("deny")
    expect(option(page, 0, "delete")).to_have_value("deny")
    expect(option(page, 0, "session_ttl")).to_have_value("7d")
    expect(option(page, 0, "max_session_ttl")).to_have_value("30d")
    expect(option(page, 0, "ro_crate_on_close")).not_to_be_checked()
    fits_both_widths(page, "admin-policy")

    # -- bad options: each problem beside its option, nothing saved
    option(page, 0, "session_ttl").fill("40d")
    option(page, 1, "bucket").fill("Bad_Bucket")
    page.click("#rules-save")
    expect(rule(page, 0).locator('[data-field="session_ttl"] .field-errors')).to_contain_text(
        "longer than max_session_ttl 30d"
    )
    expect(rule(page, 1).locator('[data-field="bucket"] .field-errors')).to_contain_text(
        "can never match"
    )
    expect(option(page, 0, "session_ttl")).to_have_value("40d")  # kept as entered
    expect(page.locator("#rules-problems")).to_be_visible()
    expect(page.locator("#policy-saved")).to_have_count(0)
    assert "40d" not in gw.cli("policy", "show").stdout

    # -- every option changed, a scratch rule added in front of it
    option(page, 0, "session_ttl").fill("2d")
    option(page, 0, "max_session_ttl").fill("10d")
    rule(page, 0).locator("[value=cells]").check()
    option(page, 0, "open_sessions").fill("uploader, alice")
    option(page, 0, "overwrite").select_option("allow")
    option(page, 0, "delete").select_option("owner")
    option(page, 0, "ro_crate_on_close").check()
    option(page, 1, "bucket").fill("scratch-*")
    option(page, 1, "require_session").uncheck()
    option(page, 1, "position").fill("0")
    page.click("#rules-save")
    expect(page.locator("#policy-saved")).to_contain_text("is in force")
    rows = page.locator("#policy-rules tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("s3://scratch-*/")
    expect(rows.nth(1)).to_contain_text("s3://raw/2026/")
    shown = gw.cli("policy", "show").stdout
    for text in ('overwrite = "allow"', 'delete = "owner"', 'session_ttl = "2d"',
                 'max_session_ttl = "10d"', "ro_crate_on_close = true",
                 'forms = ["cells", "runs"]', 'open_sessions = ["uploader", "alice"]',
                 "require_session = false"):  # fmt: skip
        assert text in shown, (text, shown)
    # the TOML view shows the same rules
    expect(page.locator("#policy-toml")).to_contain_text('bucket = "scratch-*"')

    # -- remove the scratch rule
    option(page, 0, "remove").check()
    page.click("#rules-save")
    expect(page.locator("#policy-saved")).to_be_visible()
    expect(rows).to_have_count(1)
    assert "scratch-*" not in gw.cli("policy", "show").stdout
