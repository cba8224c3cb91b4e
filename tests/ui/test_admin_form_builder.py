"""The forms page's field-by-field builder in Chromium: fields added, typed, labelled, given
choices and hints, reordered and removed without writing JSON; the JSON stays there as the
advanced view (the builder writes it, and reads what is typed into it), and saving goes through
the same checks as before."""

from __future__ import annotations

import json

from playwright.sync_api import Locator, Page, expect

from tests.servers import Gateway
from tests.ui.helpers import admin_login, field, fits_both_widths


def card(page: Page, index: int) -> Locator:
    return page.locator(f'#builder-fields .builder-field[data-index="{index}"]')


def definition(page: Page) -> dict:
    return json.loads(page.locator("#form-definition").input_value())


def test_build_a_form_field_by_field(ui_gateway: Gateway, page: Page) -> None:
    gw = ui_gateway
    admin_login(page, gw, start="admin/forms")
    # the example definition, shown field by field
    expect(page.locator("#builder-fields .builder-field")).to_have_count(2)
    expect(card(page, 0).locator(".builder-name input")).to_have_value("operator")
    fits_both_widths(page, "admin-forms")

    page.fill("#builder-form-name", "plates")
    page.fill("#builder-form-title", "Plate reads")
    # the second field becomes a choice with three choices and a hint
    second = card(page, 1)
    second.locator(".builder-name input").fill("reader")
    second.locator(".builder-label input").fill("Plate reader")
    second.locator(".builder-choices").fill("tecan\nbiotek\n\nbmg")
    second.locator(".builder-help input").fill("the instrument used")
    # a third field: an integer with bounds, required
    page.click("#builder-add")
    third = card(page, 2)
    third.locator(".builder-name input").fill("wells")
    third.locator(".builder-label input").fill("Wells read")
    third.locator(".builder-type").select_option("integer")
    third.locator(".builder-min").fill("1")
    third.locator(".builder-max").fill("384")
    third.locator(".builder-required").check()
    # move it to the top, and drop the operator field
    card(page, 2).locator(".up").click()
    card(page, 1).locator(".up").click()
    card(page, 1).locator(".remove").click()
    expect(page.locator("#builder-fields .builder-field")).to_have_count(2)

    # the JSON view holds what was built, and the preview shows it
    built = definition(page)
    assert built["name"] == "plates" and built["title"] == "Plate reads"
    assert built["fields"] == [
        {"name": "wells", "label": "Wells read", "type": "integer", "min": 1, "max": 384,
         "required": True},
        {"name": "reader", "type": "choice", "choices": ["tecan", "biotek", "bmg"],
         "required": True, "label": "Plate reader", "help": "the instrument used"},
    ]  # fmt: skip
    expect(field(page.locator("#form-preview"), "reader")).to_contain_text("Plate reader")

    # typed into the JSON box, the builder follows when asked
    changed = {**built, "fields": [*built["fields"], {"name": "note", "type": "textarea"}]}
    page.fill("#form-definition", json.dumps(changed))
    page.click("#builder-sync-button")
    expect(page.locator("#builder-fields .builder-field")).to_have_count(3)
    expect(card(page, 2).locator(".builder-type")).to_have_value("textarea")

    page.click("#form-save")
    expect(page.locator("#form-saved")).to_contain_text("Saved form plates version 1")
    shown = json.loads(gw.cli("form", "show", "plates").stdout)
    assert [f["name"] for f in shown["fields"]] == ["wells", "reader", "note"]
    assert shown["fields"][1]["choices"] == ["tecan", "biotek", "bmg"]


def test_a_bad_field_name_is_refused_as_in_the_json(ui_gateway: Gateway, page: Page) -> None:
    admin_login(page, ui_gateway, start="admin/forms")
    card(page, 0).locator(".builder-name input").fill("Bad Name")
    page.click("#form-save")
    expect(page.locator("#form-problems")).to_contain_text("Bad Name")
    expect(page.locator("#form-saved")).to_have_count(0)
