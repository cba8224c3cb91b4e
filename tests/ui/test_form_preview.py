"""The admin's live form preview end to end: Chromium against a real ``minimo serve``.

The admin types a definition and sees it rendered as the new-session page will render it,
breaks it and sees what is wrong and where, tries values against the draft, saves, and previews
an import of the original minimo's format. Without JavaScript the "Preview" buttons and the
pane's "Check these values" do the same with page loads. Only admins may ask for a preview.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.servers import Gateway
from tests.ui.helpers import admin_login, field, login, prepare, screenshot

UPLOADER = ("uma", "uma-password-for-tests")
DRAFT = {
    "name": "dive",
    "title": "Dive log",
    "description": "One dive, one session",
    "fields": [
        {"name": "diver", "label": "Diver", "type": "text", "required": True,
         "help": "Who dived"},
        {"name": "site", "label": "Dive site", "type": "choice", "choices": ["reef", "wreck"]},
        {"name": "depth_m", "label": "Depth (m)", "type": "integer", "min": 0, "max": 60},
    ],
}  # fmt: skip
EVERY_TYPE = {
    "name": "every",
    "fields": [
        {"name": "line", "type": "text", "pattern": "^[A-Z]"},
        {"name": "note", "type": "textarea", "max_length": 50},
        {"name": "kind", "type": "choice", "choices": ["a", "b"]},
        {"name": "tags", "type": "multichoice", "choices": ["a", "b"], "max": 2},
        {"name": "count", "type": "integer"},
        {"name": "ratio", "type": "number", "min": 0.5},
        {"name": "flag", "type": "boolean"},
        {"name": "day", "type": "date", "min": "2026-01-01"},
        {"name": "when", "type": "datetime"},
    ],
}
OLD_FORMAT = (
    "Imaging run\n\nSample ID\nWhich sample was imaged?\ntext\n\n"
    "Objective\nWhich objective?\ndropdown\n10x\n63x oil\n"
)


def pretty(definition: dict[str, Any]) -> str:
    return json.dumps(definition, indent=2)


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> Gateway:
    return prepare(ui_gateway, uploaders=[UPLOADER])


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page(width=1300, height=1000)  # room for the preview beside the definition


def test_live_preview_while_typing(site: Gateway, page: Page) -> None:
    gw = site
    admin_login(page, gw)
    page.goto(f"{gw.endpoint}/_minimo/admin/forms")
    # the example definition is previewed as soon as the page opens
    expect(page.locator("#preview-title")).to_contain_text("My form")

    page.fill("#form-definition", pretty(DRAFT))
    title = page.locator("#preview-title")
    expect(title).to_contain_text("Dive log")
    expect(title).to_contain_text("dive v1")
    expect(page.locator("#preview-description")).to_have_text("One dive, one session")
    expect(page.locator("#preview-note")).to_contain_text("Saving creates the form dive")
    # each field as the new-session page shows it: label, required marker, help, input type
    expect(field(page, "diver").locator("label")).to_have_text("Diver *")
    expect(field(page, "diver").locator(".hint")).to_have_text("Who dived")
    expect(field(page, "site").locator("label")).to_have_text("Dive site")
    expect(page.locator("#f-site option")).to_have_text(["— choose —", "reef", "wreck"])
    depth = page.locator("#f-depth_m")
    expect(depth).to_have_attribute("type", "number")
    expect(depth).to_have_attribute("min", "0")
    expect(depth).to_have_attribute("max", "60")
    expect(page.locator("#f-diver")).to_have_attribute("required", "")

    # broken JSON: what is wrong, and where
    broken = pretty(DRAFT).replace('"title": "Dive log",', '"title": "Dive log"')
    page.fill("#form-definition", broken)
    problems = page.locator("#preview-problems")
    expect(problems).to_contain_text("cannot be saved yet")
    expect(problems).to_contain_text("not JSON: line 4, column 3: Expecting ',' delimiter")
    expect(page.locator("#preview-form")).to_have_count(0)
    # valid JSON, invalid definition: the problems by field
    bad_fields = {**DRAFT, "fields": [{**DRAFT["fields"][2], "min": 70}, {"name": "x"}]}
    page.fill("#form-definition", pretty(bad_fields))
    expect(problems.locator('[data-where="Field 1 (depth_m)"]')).to_contain_text(
        "min: 70 is greater than max 60"
    )
    expect(problems.locator('[data-where="Field 2 (x)"]')).to_contain_text("type: None")

    # fixed: try values that break the rules
    page.fill("#form-definition", pretty(DRAFT))
    expect(title).to_contain_text("Dive log")
    depth.fill("-3")
    # the browser's own constraints work as on the real page
    assert depth.evaluate("input => input.validity.rangeUnderflow") is True
    assert page.locator("#f-diver").evaluate("input => input.validity.valueMissing") is True
    page.click("#preview-check")
    expect(page.locator("#preview-verdict")).to_contain_text("Some values need fixing")
    expect(field(page, "depth_m").locator(".field-errors")).to_have_text("must be at least 0")
    expect(field(page, "diver").locator(".field-errors")).to_have_text("is required")
    expect(field(page, "site").locator(".field-errors")).to_have_count(0)
    expect(depth).to_have_value("-3")
    screenshot(page, "form-preview")
    # typed values survive further edits of the definition
    page.fill("#form-definition", pretty({**DRAFT, "title": "Dive log (2026)"}))
    expect(title).to_contain_text("Dive log (2026)")
    expect(page.locator("#f-depth_m")).to_have_value("-3")
    # good values pass
    page.fill("#f-diver", "Ann")
    page.select_option("#f-site", "wreck")
    page.fill("#f-depth_m", "18")
    page.click("#preview-check")
    expect(page.locator("#preview-verdict")).to_have_text("These values are valid for this draft.")
    expect(page.locator("#preview-form .field-errors")).to_have_count(0)

    # saving still works, and the preview then says what a new version would be
    page.click("#form-save")
    expect(page.locator("#form-saved")).to_have_text("Saved form dive version 1.")
    expect(page.locator("#forms")).to_contain_text("Dive log (2026)")
    expect(page.locator("#preview-note")).to_contain_text("Same as the stored version 1")
    page.fill("#form-definition", pretty({**DRAFT, "title": "Dive log, second"}))
    expect(page.locator("#preview-note")).to_contain_text("Saving makes version 2 of dive")
    expect(title).to_contain_text("dive v2")
    page.click("#form-save")
    expect(page.locator("#form-saved")).to_have_text("Saved form dive version 2.")
    row = page.locator("#forms tr", has_text="Dive log, second")
    expect(row.locator("td").nth(1)).to_have_text("2")


def test_import_preview(site: Gateway, page: Page) -> None:
    gw = site
    admin_login(page, gw)
    page.goto(f"{gw.endpoint}/_minimo/admin/forms")
    page.fill("#import-name", "imaging")
    page.fill("#import-text", OLD_FORMAT)
    expect(page.locator("#preview-body")).to_have_attribute("data-source", "import")
    expect(page.locator("#preview-title")).to_contain_text("Imaging run")
    expect(page.locator("#preview-title")).to_contain_text("imaging v1")
    expect(field(page, "sample_id").locator("label")).to_have_text("Which sample was imaged?")
    expect(page.locator("#f-objective option")).to_have_text(["— choose —", "10x", "63x oil"])
    page.select_option("#f-objective", "63x oil")
    page.click("#preview-check")
    expect(page.locator("#preview-verdict")).to_have_text("These values are valid for this draft.")
    # a type the old tool did not have: the line is named
    page.fill("#import-text", OLD_FORMAT.replace("dropdown", "slider"))
    expect(page.locator("#preview-problems")).to_contain_text("cannot be imported yet")
    expect(page.locator("#preview-problems")).to_contain_text("line 9: unknown type 'slider'")
    # editing the definition box switches the pane back to it
    page.fill("#form-definition", pretty(DRAFT))
    expect(page.locator("#preview-body")).to_have_attribute("data-source", "json")
    # nothing was imported by previewing
    expect(page.locator("#forms")).not_to_contain_text("imaging")


def test_preview_beside_the_box_or_under_it(site: Gateway, page: Page) -> None:
    admin_login(page, site)
    page.goto(f"{site.endpoint}/_minimo/admin/forms")
    box, pane = page.locator("#form-definition"), page.locator("#form-preview")
    expect(page.locator("#preview-title")).to_be_visible()
    wide_box, wide_pane = box.bounding_box(), pane.bounding_box()
    assert wide_box and wide_pane
    assert wide_pane["x"] >= wide_box["x"] + wide_box["width"], "beside the box"
    page.set_viewport_size({"width": 600, "height": 1000})
    expect(page.locator("#preview-title")).to_be_visible()
    narrow_box, narrow_pane = box.bounding_box(), pane.bounding_box()
    assert narrow_box and narrow_pane
    assert narrow_pane["y"] >= narrow_box["y"] + narrow_box["height"], "under it"


def test_preview_without_javascript(site: Gateway, page_without_js: Page) -> None:
    gw, page = site, page_without_js
    admin_login(page, gw)
    page.goto(f"{gw.endpoint}/_minimo/admin/forms")
    draft = pretty({**DRAFT, "name": "dive-nojs"})
    page.fill("#form-definition", draft)
    page.click("#form-preview-button")
    expect(page.locator("#preview-title")).to_contain_text("dive-nojs v1")
    expect(page.locator("#form-definition")).to_have_value(draft)
    page.fill("#f-depth_m", "99")
    page.click("#preview-check")
    expect(field(page, "depth_m").locator(".field-errors")).to_have_text("must be at most 60")
    expect(page.locator("#f-depth_m")).to_have_value("99")
    expect(page.locator("#form-definition")).to_have_value(draft)
    # the import box too
    page.fill("#import-name", "imaging-nojs")
    page.fill("#import-text", OLD_FORMAT)
    page.click("#import-preview-button")
    expect(page.locator("#preview-title")).to_contain_text("Imaging run")
    expect(page.locator("#import-text")).to_have_value(OLD_FORMAT)
    page.click("#preview-check")
    expect(page.locator("#preview-verdict")).to_contain_text("valid for this draft")
    expect(page.locator("#import-name")).to_have_value("imaging-nojs")
    expect(page.locator("#forms")).not_to_contain_text("dive-nojs")


def test_only_admins_get_a_preview(site: Gateway, page: Page) -> None:
    gw = site
    url = f"{gw.endpoint}/_minimo/admin/forms/preview"
    form = {"_source": "json", "_definition": pretty(DRAFT)}
    api = page.context.request
    # signed out: sent to the login page
    signed_out = api.post(url, form=form, max_redirects=0)
    assert signed_out.status == 302
    assert "/_minimo/login" in signed_out.headers["location"]

    login(page, gw, *UPLOADER)
    token = page.locator("header form.logout input[name=csrf_token]").input_value()
    refused = api.post(url, form=form, headers={"X-CSRF-Token": token})
    assert refused.status == 403
    assert "needs the admin role" in refused.text()
    assert "Dive log" not in refused.text()

    page.click("header form.logout button")
    admin_login(page, gw)
    token = page.locator("header form.logout input[name=csrf_token]").input_value()
    # an admin without the CSRF header is refused too
    no_csrf = api.post(url, form=form)
    assert no_csrf.status == 403 and "CSRF" in no_csrf.text()
    answer = api.post(url, form=form, headers={"X-CSRF-Token": token})
    assert answer.status == 200
    assert re.search(r'id="preview-title">Dive log', answer.text())
    # every field type renders, keeps what was typed, and is checked
    every_type = {**form, "_definition": pretty(EVERY_TYPE), "_keep": "1", "_check": "1",
                  "_tz": "+02:00", "count": "x", "when": "2026-11-25T14:30", "flag": "on",
                  "tags": "b"}  # fmt: skip
    answer = api.post(url, form=every_type, headers={"X-CSRF-Token": token})
    assert answer.status == 200
    html = answer.text()
    for name, tag in (("note", "textarea"), ("kind", "select"), ("tags", "fieldset")):
        assert f'<{tag} id="f-{name}"' in html or f'<{tag} class="choices" id="f-{name}"' in html
    assert 'id="f-when" name="when" type="datetime-local" value="2026-11-25T14:30' in html
    assert 'name="flag" value="true" checked' in html
    assert 'name="tags" value="b" checked' in html
    assert "must be a whole number" in html  # count = "x"
    # nested too deeply for any form: a problem, not a crash
    deep = {**form, "_definition": "[" * 100_000}
    answer = api.post(url, form=deep, headers={"X-CSRF-Token": token})
    assert answer.status == 200 and "nested too deeply" in answer.text()
    saved = api.post(
        f"{gw.endpoint}/_minimo/admin/forms",
        form={"csrf_token": token, "action": "save", "definition": "[" * 100_000},
    )
    assert saved.status == 400 and "nested too deeply" in saved.text()
