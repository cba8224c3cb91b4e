"""A form whose fields are called ``bucket``, ``prefix`` and ``form`` (the names of the
new-session page's own controls, which is why those are ``_bucket``/``_prefix``/``_form``):
opening a session through the page in Chromium puts it at the place chosen on the page, under
the form chosen there, and keeps exactly what was typed into those fields."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.helpers import policy_rule
from tests.servers import Gateway
from tests.ui.helpers import admin_login, field, prepare, s3

BUCKET, PREFIX = "where-ui", "2026/real/"
# Values that name another real place and another allowed form: had the page mixed its own
# controls up with the fields, the session would open there instead, without any error.
DECOY_BUCKET, DECOY_PREFIX = "decoy-ui", "decoy/"
PLACEMENT = {
    "name": "placement",
    "title": "Placement",
    "fields": [
        {"name": "bucket", "label": "Bucket on the run sheet", "type": "text", "required": True},
        {"name": "prefix", "label": "Prefix on the run sheet", "type": "text"},
        {"name": "form", "label": "Form on the run sheet", "type": "text"},
    ],
}
# the other allowed form takes any values, so a mix-up would not be caught by validation
NOTES = {"name": "notes", "title": "Notes", "fields": [{"name": "note", "type": "text"}]}
POLICY = "\n".join(policy_rule(b, ["placement", "notes"]) for b in (BUCKET, DECOY_BUCKET))
TYPED = {"bucket": DECOY_BUCKET, "prefix": DECOY_PREFIX, "form": "notes"}


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> Gateway:
    return prepare(
        ui_gateway, buckets=[BUCKET, DECOY_BUCKET], forms=[PLACEMENT, NOTES], policy=POLICY
    )


def fill_typed(page: Page, values: dict[str, str]) -> None:
    for name, value in values.items():
        page.fill(f"#f-{name}", value)


def expect_typed(page: Page, values: dict[str, str]) -> None:
    for name, value in values.items():
        expect(page.locator(f"#f-{name}")).to_have_value(value)


def test_fields_named_like_the_pages_controls(site: Gateway, page: Page) -> None:
    gw = site
    admin_login(page, gw)

    # -- choose the place, then the form, as a user does
    page.goto(f"{gw.endpoint}/_minimo/sessions/new")
    page.fill("#bucket", BUCKET)
    page.fill("#prefix", PREFIX)
    page.click("form.scope button[type=submit]")
    page.click('ul.forms a:text-is("Placement")')
    expect(page.locator("h2")).to_contain_text("placement v1")
    expect(field(page, "bucket").locator("label")).to_contain_text("Bucket on the run sheet")
    expect(page.locator("#session-form")).to_contain_text(f"s3://{BUCKET}/{PREFIX}")

    # -- a server-side refusal (required bucket left empty) keeps the place, form and values
    fill_typed(page, {"bucket": "", "prefix": DECOY_PREFIX, "form": "notes"})
    page.eval_on_selector("#session-form", "form => { form.noValidate = true; }")
    page.click("#session-form button[type=submit]")
    expect(field(page, "bucket").locator(".field-errors")).to_be_visible()
    expect(field(page, "prefix").locator(".field-errors")).to_have_count(0)
    expect_typed(page, {"bucket": "", "prefix": DECOY_PREFIX, "form": "notes"})
    expect(page.locator("h2")).to_contain_text("placement v1")
    expect(page.locator("#session-form")).to_contain_text(f"s3://{BUCKET}/{PREFIX}")

    # -- filled in: the session opens where the page said, with the values as typed
    fill_typed(page, TYPED)
    page.click("#session-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/_minimo/sessions/[0-9A-Za-z]+$"))
    session_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#scope")).to_have_text(f"s3://{BUCKET}/{PREFIX}")
    expect(page.locator('dt:text-is("Form") + dd')).to_contain_text("placement v1")
    expect(page.locator("#values dt")).to_have_text([f["label"] for f in PLACEMENT["fields"]])
    expect(page.locator("#values dd")).to_have_text(list(TYPED.values()))

    # -- the JSON twin says the same
    answer = page.request.get(f"{gw.endpoint}/_minimo/api/v1/sessions/{session_id}")
    assert answer.status == 200
    session = answer.json()
    assert (session["bucket"], session["prefix"], session["form"]) == (BUCKET, PREFIX, "placement")
    assert session["values"] == TYPED

    # -- the key the page showed writes into that place
    access = page.locator("#access-key").inner_text()
    secret = page.locator("#secret-key").inner_text()
    put = s3(gw, access, secret).put_object(Bucket=BUCKET, Key=f"{PREFIX}sheet.txt", Body=b"x")
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200

    # -- "open another like this" starts from the same place, form and typed values
    page.click("#open-like")
    expect(page.locator("#bucket")).to_have_value(BUCKET)
    expect(page.locator("h2")).to_contain_text("placement v1")
    expect_typed(page, TYPED)
