"""The metadata browser as Datasette users expect it, in Chromium: facets with counts, free text
over the values, a column chooser, field labels in headers and errors, human sizes with the
exact bytes in a title, filters applied as they change, and addresses that carry every filter.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from tests.servers import Gateway
from tests.ui.helpers import admin_login, fits_both_widths, prepare, s3

POLICY = """\
[[rule]]
bucket = "lab"
prefix = ""
forms = ["scan"]
"""

SCAN_FORM = {
    "name": "scan",
    "title": "Scan",
    "fields": [
        {"name": "operator", "label": "Operator name", "type": "text", "required": True},
        {"name": "scope", "label": "Microscope", "type": "choice", "choices": ["a", "b", "c"]},
        {"name": "calibrated", "label": "Calibrated?", "type": "boolean"},
        {"name": "temp_c", "label": "Temperature (°C)", "type": "number"},
    ],
}

SESSIONS = (
    ("Ada Lovelace", "a", "yes", "21"),
    ("Grace Hopper", "a", "no", "22"),
    ("Alan Turing", "b", "yes", "37"),
)
BIG = 3 * 1024 * 1024 // 2  # 1.5 MiB


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> dict[str, str]:
    """The three sessions by operator, with 1.5 MiB and 10 bytes in Ada's."""
    gw = prepare(ui_gateway, buckets=["lab"], forms=[SCAN_FORM], policy=POLICY)
    ids = {}
    for operator, scope, calibrated, temp in SESSIONS:
        done = gw.cli(
            "session", "open", "--form", "scan", "--bucket", "lab",
            "--set", f"operator={operator}", "--set", f"scope={scope}",
            "--set", f"calibrated={calibrated}", "--set", f"temp_c={temp}", "--json",
        )  # fmt: skip
        out = json.loads(done.stdout)
        ids[operator] = out["id"]
        if operator == "Ada Lovelace":
            client = s3(gw, out["access_key"], out["secret_key"])
            client.put_object(Bucket="lab", Key=out["prefix"] + "big.bin", Body=b"x" * BIG)
            client.put_object(Bucket="lab", Key=out["prefix"] + "small.txt", Body=b"0123456789")
    return ids


def listed(page: Page) -> list[str]:
    """The ids of the sessions listed (each row links its title to /sessions/ID)."""
    return [
        (link.get_attribute("href") or "").rsplit("/", 1)[-1]
        for link in page.locator("#sessions tbody td:first-child a").all()
    ]


def facet(page: Page, name: str) -> dict[str, str]:
    """A facet as shown: value -> count."""
    items = page.locator(f'#facets .facet[data-field="{name}"] li').all()
    return {
        item.locator(".value").inner_text().strip(): item.locator(".count").inner_text().strip()
        for item in items
    }


def test_facets_text_columns_sizes(ui_gateway: Gateway, site: dict[str, str], page: Page) -> None:
    gw = ui_gateway
    admin_login(page, gw, start="sessions")

    # -- choosing the form applies at once (no Filter click) and shows its facets
    page.select_option("#filter-form", "scan")
    expect(page).to_have_url(re.compile(r"form=scan"))
    expect(page.locator("#facets h2")).to_have_text(["Microscope", "Calibrated?"])
    assert facet(page, "scope") == {"a": "2", "b": "1", "c": "0"}
    assert facet(page, "calibrated") == {"yes": "2", "no": "1"}
    # headers are labels, sizes human with the exact bytes in a title
    expect(page.locator("#sessions thead")).to_contain_text("Temperature (°C)")
    ada = page.locator(f'#sessions tbody tr[data-session="{site["Ada Lovelace"]}"]')
    expect(ada.locator("td.objects")).to_have_text("2")
    expect(ada.locator("td.size")).to_have_text("1.5 MiB")
    expect(ada.locator("td.size")).to_have_attribute("title", f"{BIG + 10:,} bytes")
    fits_both_widths(page, "metadata-browser")
    # at 1,280 px this form's columns fit without scrolling the table's own box either
    page.set_viewport_size({"width": 1280, "height": 900})
    box = page.locator("#sessions").locator("xpath=..")
    assert box.evaluate("e => e.scrollWidth - e.clientWidth") <= 0

    # -- a facet value narrows the search; its address is shareable
    page.locator('#facets .facet[data-field="scope"] a', has_text="a").click()
    expect(page).to_have_url(re.compile(r"where=scope%3Da"))
    expect(page.locator("#total")).to_have_text("2")
    assert facet(page, "calibrated") == {"yes": "1", "no": "1"}
    shared = page.url
    other = page.context.new_page()
    other.goto(shared)
    expect(other.locator("#total")).to_have_text("2")
    other.close()
    page.locator('#facets .facet[data-field="scope"] a.facet-off').click()
    expect(page.locator("#total")).to_have_text("3")

    # -- free text over the values, applied on change
    page.fill("#filter-q", "turing")
    page.press("#filter-q", "Enter")
    expect(page).to_have_url(re.compile(r"q=turing"))
    assert listed(page) == [site["Alan Turing"]]
    page.fill("#filter-q", "")
    page.press("#filter-q", "Enter")
    expect(page.locator("#total")).to_have_text("3")

    # -- the column chooser: untick a column, it goes (and stays gone on the next link)
    page.click("#columns summary")
    page.locator("#columns label", has_text="Temperature (°C)").locator("input").uncheck()
    expect(page).to_have_url(re.compile(r"cols=chosen"))
    expect(page.locator("#sessions thead")).not_to_contain_text("Temperature")
    expect(page.locator("#sessions thead")).to_contain_text("Operator name")
    page.click('#sessions a.sort[data-sort="created"]')
    expect(page.locator("#sessions thead")).not_to_contain_text("Temperature")

    # -- a bad condition: the banner above the form names the field by its label, nothing is
    #    counted and nothing offered for export
    page.goto(f"{gw.endpoint}/_minimo/sessions?form=scan&where=temp_c%3E%3Dwarm")
    banner = page.locator("#filter-problems")
    expect(banner).to_contain_text("Temperature (°C):")
    expect(banner).not_to_contain_text("temp_c")
    expect(page.locator("#total")).to_have_count(0)
    expect(page.locator("#export-csv")).to_have_count(0)
    bad_row = page.locator("#conditions .condition.invalid")
    expect(bad_row).to_have_count(1)
    # the banner says the marked row is below it, and it is
    expect(banner).to_contain_text("below")
    banner_box, row_box = banner.bounding_box(), bad_row.bounding_box()
    assert banner_box is not None and row_box is not None and row_box["y"] > banner_box["y"]
    fits_both_widths(page, "metadata-browser-error")


def test_without_javascript_the_filter_button_applies(
    ui_gateway: Gateway, site: dict[str, str], page_without_js: Page
) -> None:
    page = page_without_js
    admin_login(page, ui_gateway, start="sessions")
    page.select_option("#filter-form", "scan")
    page.fill("#filter-q", "hopper")
    page.click("#apply-filters")
    expect(page).to_have_url(re.compile(r"q=hopper"))
    assert "form=scan" in page.url
    assert listed(page) == [site["Grace Hopper"]]
