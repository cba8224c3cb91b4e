"""The metadata browser in Chromium: two field conditions built with the condition rows, a field
column sorted by clicking it twice, the next page, and the CSV export of the filtered set.

The sessions are the known population of ``tests/test_many_sessions.py`` (400 of them), written
into the gateway's store before the browser starts.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from policy.store import open_metadata_store
from tests.servers import Gateway
from tests.test_many_sessions import newest_first, planted, populate, sorted_by
from tests.ui.helpers import admin_login, screenshot

COUNT = 400
PAGE = 25


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> Gateway:
    async def fill() -> None:
        store = await open_metadata_store(ui_gateway.data_dir / "minimo.sqlite3")
        try:
            await populate(store, planted(COUNT))
        finally:
            await store.close()

    asyncio.run(fill())
    return ui_gateway


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page(width=1300)  # the table with the form's field columns


def listed(page: Page) -> list[str]:
    """The ids of the sessions listed (each row links its title to /sessions/ID)."""
    return [
        (link.get_attribute("href") or "").rsplit("/", 1)[-1]
        for link in page.locator("#sessions tbody td:first-child a").all()
    ]


def set_condition(row: Any, field: str, op: str, value: str) -> None:
    row.locator(".where-field").select_option(field)
    row.locator(".where-op").select_option(op)
    row.locator(".where-value").fill(value)


def test_two_conditions_sort_page_and_export(site: Gateway, page: Page) -> None:
    gw = site
    matching = [
        s
        for s in planted(COUNT)
        if s.form_name == "assay" and "n" in s.values["operator"] and s.values["samples"] >= 300
    ]
    assert len(matching) > 2 * PAGE  # enough for a second page
    admin_login(page, gw, start="sessions")

    # -- choosing a form turns the field boxes into lists of its fields
    page.select_option("#filter-form", "assay")
    rows = page.locator("#conditions .condition")
    expect(rows).to_have_count(1)  # with JavaScript: one empty row, more on demand
    expect(rows.first.locator("select.where-field option")).to_have_text(
        ["—", "Operator", "Samples", "Plate"]
    )
    set_condition(rows.first, "operator", "~", "n")
    page.click("#add-condition")
    expect(rows).to_have_count(2)
    set_condition(rows.nth(1), "samples", ">=", "lots")
    page.click("#apply-filters")
    # a bad value is reported beside its own row, the good row is kept as typed
    expect(rows.nth(1).locator(".condition-error")).to_contain_text("not a number")
    expect(rows.first.locator(".where-value")).to_have_value("n")
    # nothing is counted (or offered for export) while the search is invalid
    expect(page.locator("#filter-problems")).to_contain_text("Samples: ")
    expect(page.locator("#total")).to_have_count(0)
    rows.nth(1).locator(".where-value").fill("300")
    page.click("#apply-filters")
    # the form sends the rows as the API spells conditions
    expect(page).to_have_url(re.compile(r"where=operator(~|%7E)n&where=samples%3E%3D300"))
    expect(page.locator("#total")).to_have_text(str(len(matching)))
    expect(page.locator(".condition-error")).to_have_count(0)
    assert listed(page) == [s.id for s in newest_first(matching)][:PAGE]

    # -- a field column sorts descending on the first click, ascending on the second
    page.click('#sessions a.sort[data-sort="samples"]')
    expect(page).to_have_url(re.compile(r"sort=-samples"))
    descending = sorted_by(matching, lambda s: -s.values["samples"])
    assert listed(page) == descending[:PAGE]
    page.click('#sessions a.sort[data-sort="samples"]')
    expect(page).to_have_url(re.compile(r"sort=samples"))
    expect(page.locator('#sessions a.sort[data-sort="samples"]')).to_contain_text("▲")
    ascending = sorted_by(matching, lambda s: s.values["samples"])
    assert listed(page) == ascending[:PAGE]
    expect(page.locator("#total")).to_have_text(str(len(matching)))

    # -- the next page keeps both conditions and the sort
    page.click('nav.pager a[rel="next"]')
    expect(page).to_have_url(re.compile(r"page=2"))
    expect(page.locator(".pager")).to_contain_text("page 2 of")
    assert listed(page) == ascending[PAGE : 2 * PAGE]
    expect(page.locator("#conditions .where-value").first).to_have_value("n")
    screenshot(page, "metadata-browser")

    # -- the CSV export holds exactly the filtered set, in the page's order
    href = page.locator("#export-csv").get_attribute("href") or ""
    exported = page.request.get(gw.endpoint + href)
    assert exported.ok
    table = list(csv.DictReader(io.StringIO(exported.text())))
    assert [r["id"] for r in table] == ascending
    assert all(r["form"] == "assay" and "n" in r["operator"] for r in table)
    assert min(int(r["samples"]) for r in table) >= 300
