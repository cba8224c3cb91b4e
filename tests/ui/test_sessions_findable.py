"""Sessions people can find, opening a session, several experiments at once: in Chromium against
a real ``minimo serve``. Titles instead of ids, my open sessions on the home page, the expiry
warning, Extend (and its refusal past the rule's maximum), "Open another like this" with the
next prefix (never for readers), the new-session page checking the prefix at its first step, and
one page opening a session per experiment and uploading each experiment's files in one go."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.servers import Gateway
from tests.ui.helpers import admin_login, field, fits_both_widths, login, prepare, s3

BUCKET = "lab"
FORM = {
    "name": "mouse",
    "title": "Mouse imaging",
    "session_title": ["mouse_id", "day"],
    "fields": [
        {"name": "mouse_id", "label": "Mouse", "type": "text", "required": True,
         "pattern": "^M[0-9]{4}$"},
        {"name": "day", "label": "Day", "type": "text"},
        {"name": "anaesthetised", "label": "Anaesthetised", "type": "boolean"},
    ],
}  # fmt: skip
POLICY = """\
[[rule]]
bucket = "lab"
prefix = "mice/"
forms = ["mouse"]
session_ttl = "1d"
max_session_ttl = "3d"
"""
UPLOADER = ("ulla", "ulla-password-for-tests")
READER = ("rita", "rita-password-for-tests")


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> Gateway:
    gw = prepare(ui_gateway, buckets=[BUCKET], forms=[FORM], policy=POLICY, uploaders=[UPLOADER])
    gw.cli("user", "add", READER[0], "--role", "reader", "--password-stdin",
           input=READER[1] + "\n")  # fmt: skip
    return gw


def answered_400(page: Page) -> None:
    """The page on screen was answered 400 (a refusal shown next to its field), which Chromium
    logs as a console error; that one is expected, so fits_both_widths checks for others only."""
    errors = page.console_errors  # type: ignore[attr-defined]
    assert errors[-1:] == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
    errors.clear()


def open_session(gw: Gateway, prefix: str, *sets: str, ttl: str = "1d") -> dict:
    """A session of ulla's opened with the CLI, as JSON (with its key)."""
    out = gw.cli(
        "session", "open", "--form", "mouse", "--bucket", BUCKET, "--prefix", prefix,
        "--owner", UPLOADER[0], "--ttl", ttl, "--json", *(f"--set={s}" for s in sets),
    ).stdout  # fmt: skip
    return json.loads(out)


def test_home_lists_my_open_sessions_and_warns_before_they_expire(
    site: Gateway, page: Page
) -> None:
    gw = site
    soon = open_session(gw, "mice/m1/day1/", "mouse_id=M0001", "day=day1", ttl="30m")
    later = open_session(gw, "mice/m2/", "mouse_id=M0002")
    s3(gw, soon["access_key"], soon["secret_key"]).put_object(
        Bucket=BUCKET, Key="mice/m1/day1/a.tif", Body=b"x" * 2048
    )
    login(page, gw, *UPLOADER)
    mine = page.locator("#my-sessions")
    first = mine.locator(f'tr[data-session="{soon["id"]}"]')
    expect(first.locator(".session-title")).to_have_text("M0001 · day1")
    expect(first).to_contain_text(f"s3://{BUCKET}/mice/m1/day1/")
    expect(first.locator(".usage")).to_have_text("1 · 2.0 KiB")
    expect(first.locator(".expires")).to_contain_text("in 29 min")
    expect(first).to_have_class("expiring")
    second = mine.locator(f'tr[data-session="{later["id"]}"]')
    expect(second.locator(".session-title")).to_have_text("M0002")
    expect(second.locator(".usage")).to_have_text("0 · 0 bytes")
    # soonest to expire first, and one warning above the table
    expect(mine.locator("tbody tr").first).to_have_attribute("data-session", soon["id"])
    expect(page.locator("#expiry-warning")).to_contain_text("1 of your sessions expires soon")
    fits_both_widths(page, "home")


def test_session_page_title_extend_and_open_another(site: Gateway, page: Page) -> None:
    gw = site
    session = open_session(gw, "mice/m42/day1/", "mouse_id=M0042", "day=day1", ttl="30m")
    login(page, gw, *UPLOADER, start=f"sessions/{session['id']}")
    expect(page.locator("#session-title")).to_have_text("M0042 · day1")
    expect(page.locator("#session-id")).to_have_text(session["id"])
    expect(page).to_have_title("M0042 · day1 · minimo")
    expect(page.locator("#expiry-warning")).to_contain_text("This session expires in 29 min")
    fits_both_widths(page, "session-expiring")

    # -- Extend by a day: the warning goes, the expiry moves
    page.select_option("#extend-by", "1d")
    page.click("#extend-session")
    expect(page.locator("#expiry-warning")).to_have_count(0)
    expect(page.locator("#session-expires")).to_contain_text("(in 1 d")
    # -- past the rule's 3 days: refused next to the button, nothing changed
    page.select_option("#extend-by", "7d")
    page.click("#extend-session")
    expect(page.locator("#extend-error")).to_contain_text(
        "A session may live at most 3d (policy rule 1 at s3://lab/mice/m42/day1/)"
    )
    expect(page.locator("#extend-by")).to_have_attribute("aria-invalid", "true")
    answered_400(page)
    fits_both_widths(page, "session-extend-refused")

    # -- open another like this: the next prefix, the same values
    page.goto(f"{gw.endpoint}/_minimo/sessions/{session['id']}")
    expect(page.locator("#open-like")).to_contain_text("Open another like this")
    page.click("#open-like")
    expect(page.locator("#prefix")).to_have_value("mice/m42/day2/")
    expect(page.locator("#target-scope")).to_have_text(f"s3://{BUCKET}/mice/m42/day2/")
    expect(page.locator("#f-mouse_id")).to_have_value("M0042")
    page.fill("#f-day", "day2")
    page.click("#session-form button[type=submit]")
    expect(page.locator("#session-title")).to_have_text("M0042 · day2")
    # the unticked checkbox is stored as "no", as the CLI stores a boolean left out
    expect(page.locator("#values")).to_contain_text("no")


def test_readers_see_no_open_another_nor_extend(site: Gateway, page: Page) -> None:
    gw = site
    session = open_session(gw, "mice/m7/", "mouse_id=M0007")
    login(page, gw, *READER, start=f"sessions/{session['id']}")
    expect(page.locator("#session-title")).to_have_text("M0007")
    expect(page.locator("#open-like")).to_have_count(0)
    expect(page.locator("#extend-form")).to_have_count(0)


def test_new_session_checks_and_normalises_the_prefix_at_the_first_step(
    site: Gateway, page: Page
) -> None:
    gw = site
    login(page, gw, *UPLOADER, start="sessions/new")
    # the places the policy lets ulla write: a bucket to pick, a rule prefix to start from
    expect(page.locator("#place-buckets option")).to_have_count(1)
    expect(page.locator("#place-buckets option")).to_have_attribute("value", BUCKET)
    expect(page.locator("#places")).to_contain_text(f"s3://{BUCKET}/mice/")
    fits_both_widths(page, "session-new-place")

    page.fill("#bucket", BUCKET)
    page.fill("#prefix", "/2026//x/../y")
    page.click("#place-submit")
    expect(field(page, "prefix").locator(".field-errors")).to_have_text(
        "must not start with '/' (keys are relative to the bucket)"
    )
    expect(page.locator("#session-form")).to_have_count(0)
    page.fill("#prefix", "mice/2026//x/../y")
    page.click("#place-submit")
    expect(field(page, "prefix").locator(".field-errors")).to_contain_text("'//'")
    answered_400(page)
    fits_both_widths(page, "session-new-bad-prefix")

    page.fill("#prefix", "mice/day1")
    page.click("#place-submit")
    expect(page.locator("#prefix")).to_have_value("mice/day1/")
    expect(page.locator("#target-scope")).to_have_text(f"s3://{BUCKET}/mice/day1/")
    fits_both_widths(page, "session-new-form")


def test_several_experiments_open_together_and_upload_in_one_go(
    site: Gateway, page: Page, tmp_path: Path
) -> None:
    gw = site
    login(page, gw, *UPLOADER)
    page.click("#several-sessions")
    page.fill("#bucket", BUCKET)
    page.fill("#folder", "mice/2026-12-02")
    page.click("#several-show")
    expect(page.locator("#several-form fieldset.experiment")).to_have_count(2)
    page.fill("#f-e1-folder", "mouse1")
    page.fill("#f-e1-mouse_id", "M0101")
    page.fill("#f-e2-folder", "mouse2")
    page.fill("#f-e2-mouse_id", "not a mouse")
    page.click("#add-experiment")
    expect(page.locator("#several-form fieldset.experiment")).to_have_count(3)
    expect(page.locator("#f-e1-mouse_id")).to_have_value("M0101")  # kept
    page.fill("#f-e3-folder", "mouse1")
    page.fill("#f-e3-mouse_id", "M0103")
    # past the browser's own checks (the pattern), as a script or an old browser would send it
    page.eval_on_selector("#several-form", "form => { form.noValidate = true; }")
    page.click("#open-several")
    # -- each problem next to its experiment's field; nothing opened
    expect(field(page, "e2-mouse_id").locator(".field-errors")).to_have_text(
        "must match the pattern ^M[0-9]{4}$"
    )
    expect(field(page, "e3-folder").locator(".field-errors")).to_have_text(
        "the same sub-folder as experiment 1"
    )
    expect(field(page, "e1-mouse_id").locator(".field-errors")).to_have_count(0)
    expect(page.locator("#several-errors")).to_have_text(
        "Nothing was opened: fix the 2 experiments marked below."
    )
    listed = s3(gw).list_objects_v2(Bucket=BUCKET, Prefix="mice/2026-12-02/")
    assert listed["KeyCount"] == 0
    mine = page.request.get(f"{gw.endpoint}/_minimo/api/v1/sessions?owner={UPLOADER[0]}")
    assert "M0101" not in [s["title"] for s in mine.json()["sessions"]]
    answered_400(page)
    fits_both_widths(page, "several-errors")

    page.fill("#f-e2-mouse_id", "M0102")
    page.fill("#f-e3-folder", "mouse3/")
    page.click("#open-several")
    expect(page.locator("#several-opened")).to_contain_text("3 sessions open")
    sections = page.locator("section.experiment-upload")
    expect(sections).to_have_count(3)
    expect(sections.locator(".session-title")).to_have_text(["M0101", "M0102", "M0103"])

    # -- files for two experiments, one button
    for n, name in ((1, "a.txt"), (2, "b.txt")):
        path = tmp_path / name
        path.write_text(f"experiment {n}")
        page.set_input_files(f"#e{n}-upload-files", str(path))
    fits_both_widths(page, "several-uploads")
    page.click("#upload-all")
    expect(page.locator("#e1-upload-status")).to_contain_text("All 1 file uploaded.")
    expect(page.locator("#e2-upload-status")).to_contain_text("All 1 file uploaded.")
    expect(page.locator("#e3-upload-status")).to_have_text("")
    keys = [
        o["Key"]
        for o in s3(gw).list_objects_v2(Bucket=BUCKET, Prefix="mice/2026-12-02/")["Contents"]
    ]
    assert keys == ["mice/2026-12-02/mouse1/a.txt", "mice/2026-12-02/mouse2/b.txt"]


def test_object_page_and_audit_name_the_session_by_its_title(site: Gateway, page: Page) -> None:
    gw = site
    session = open_session(gw, "mice/m9/day3/", "mouse_id=M0009", "day=day3")
    s3(gw, session["access_key"], session["secret_key"]).put_object(
        Bucket=BUCKET, Key="mice/m9/day3/b.tif", Body=b"b"
    )
    gw.cli("session", "close", session["id"], "--as", UPLOADER[0])
    admin_login(page, gw, f"data/{BUCKET}/object?key=mice/m9/day3/b.tif")
    expect(page.locator("#record-session")).to_have_text("M0009 · day3")
    expect(page.locator("#session-link")).to_have_text("M0009 · day3")
    page.goto(f"{gw.endpoint}/_minimo/admin/audit?action=session.close")
    closed = page.locator("#audit tbody tr").first
    expect(closed.locator("a.session-title")).to_have_text("M0009 · day3")
    expect(closed.locator("a.session-title")).to_have_attribute(
        "href", f"/_minimo/sessions/{session['id']}"
    )
