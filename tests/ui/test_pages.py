"""The server-rendered pages end to end: Chromium against a real ``minimo serve``.

One walk through the first slice of issue 4's pages, as a lab member and an admin would do it:
sign in, open a session (server-side errors shown next to the fields, then fixed), copy the
session key, upload with boto3, see the object with its SHA-256, find the session in the
metadata browser, close it, and an uploader refused on the admin page.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from playwright.sync_api import Page, expect

from tests.helpers import policy_rule
from tests.servers import Gateway, read_initial_admin
from tests.ui.helpers import (
    admin_login,
    browse_to,
    field,
    login,
    prepare,
    s3,
    screenshot,
    submit_login,
)

BUCKET = "raw-ui"
PREFIX = "2026/run7/"
FORM = {
    "name": "imaging",
    "title": "Imaging run",
    "description": "One microscope run.",
    "fields": [
        {"name": "operator", "label": "Operator", "type": "text", "required": True,
         "pattern": "^[A-Z]", "max_length": 40, "help": "Capitalised name"},
        {"name": "samples", "label": "Samples", "type": "integer", "required": True,
         "min": 1, "max": 96},
        {"name": "instrument", "type": "choice", "choices": ["confocal", "widefield"],
         "required": True},
        # markup in a choice must come out as text, never as HTML
        {"name": "stains", "type": "multichoice", "choices": ["DAPI", "GFP", "<b>RFP</b>"]},
        {"name": "notes", "type": "textarea", "max_length": 500},
        {"name": "calibrated", "type": "boolean"},
        {"name": "run_date", "label": "Run date", "type": "date", "required": True},
        {"name": "started", "type": "datetime"},
    ],
}  # fmt: skip
POLICY = policy_rule(BUCKET, ["imaging"], open_sessions=["uploader"])
UPLOADER = ("carol", "carol-password-for-tests")
BIG = os.urandom(20 * 1024 * 1024 + 1)  # over the 16 MiB multipart threshold: 3 parts


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> Gateway:
    return prepare(ui_gateway, buckets=[BUCKET], forms=[FORM], policy=POLICY, uploaders=[UPLOADER])


def test_open_session_upload_browse_close(site: Gateway, page: Page, tmp_path: Path) -> None:
    gw = site
    admin = read_initial_admin(gw.data_dir)["user"]

    # -- sign in: a wrong password is refused on the page, then the right one lands on home
    page.goto(f"{gw.endpoint}/_minimo/")
    screenshot(page, "login")
    submit_login(page, gw, admin, "not-the-password")
    expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    expect(page.locator("#user")).to_have_value(admin)
    login(page, gw, admin, gw.admin_password)
    expect(page).to_have_url(f"{gw.endpoint}/_minimo/")
    expect(page.locator("h1")).to_have_text(f"Hello, {admin}")

    # -- the URL a refusal prints: the only allowed form is chosen, fields rendered by type
    page.goto(f"{gw.endpoint}/_minimo/sessions/new?bucket={BUCKET}&prefix={PREFIX}")
    expect(page.locator("h2")).to_contain_text("Imaging run")
    operator = page.locator("#f-operator")
    expect(operator).to_have_attribute("maxlength", "40")
    expect(operator).to_have_attribute("required", "")
    expect(page.locator("#f-samples")).to_have_attribute("max", "96")
    expect(page.locator("#f-run_date")).to_have_attribute("type", "date")
    expect(page.locator("#f-started")).to_have_attribute("type", "datetime-local")
    expect(page.locator("#f-notes")).to_have_js_property("tagName", "TEXTAREA")
    expect(page.locator('input[name="stains"]')).to_have_count(3)
    expect(field(page, "stains")).to_contain_text("<b>RFP</b>")  # shown as text, not bold

    # The browser checks these constraints itself; switch that off once to prove the server
    # checks them too and answers with errors next to each field, keeping what was typed.
    page.fill("#f-operator", "ada")
    page.fill("#f-samples", "500")
    page.select_option("#f-instrument", "confocal")
    page.check('input[name="stains"][value="<b>RFP</b>"]')
    page.fill("#f-notes", "first try")
    page.eval_on_selector("#session-form", "form => { form.noValidate = true; }")
    page.click("#session-form button[type=submit]")
    expect(page.locator("#general-errors")).to_be_visible()
    expect(field(page, "operator").locator(".field-errors")).to_be_visible()
    expect(field(page, "samples").locator(".field-errors")).to_contain_text("96")
    expect(field(page, "run_date").locator(".field-errors")).to_be_visible()
    expect(field(page, "instrument").locator(".field-errors")).to_have_count(0)
    expect(page.locator("#f-operator")).to_have_value("ada")
    expect(page.locator("#f-samples")).to_have_value("500")
    expect(page.locator("#f-instrument")).to_have_value("confocal")
    expect(page.locator('input[name="stains"][value="<b>RFP</b>"]')).to_be_checked()
    expect(page.locator("#f-notes")).to_have_value("first try")
    screenshot(page, "new-session-errors")

    # -- fixed (with the browser's own checks back on): the session page with the key
    page.fill("#f-operator", "Ada Lovelace")
    page.fill("#f-samples", "12")
    page.fill("#f-run_date", "2026-11-20")
    page.check("#f-calibrated")
    page.fill("#f-started", "2026-11-20T09:30")
    page.click("#session-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/_minimo/sessions/[0-9A-Za-z]+$"))
    session_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#session-state")).to_have_text("open")
    expect(page.locator("#scope")).to_have_text(f"s3://{BUCKET}/{PREFIX}")
    expect(page.locator("#values")).to_contain_text("Ada Lovelace")
    expect(page.locator("#values")).to_contain_text("<b>RFP</b>")
    # datetime-local has no zone: the page sent the browser's offset (UTC here), stored as UTC
    expect(page.locator("#values")).to_contain_text("2026-11-20T09:30:00Z")
    access = page.locator("#access-key").inner_text()
    secret = page.locator("#secret-key").inner_text()
    expect(page.locator("#snippet-aws")).to_contain_text(f"aws_secret_access_key = {secret}")
    expect(page.locator("#snippet-rclone")).to_contain_text(f"access_key_id = {access}")
    expect(page.locator("#snippet-minio")).to_contain_text(f'secret_key="{secret}"')
    screenshot(page, "session")

    # -- upload with the key the page showed; after a reload the object is listed, the key not
    body = b"pixels\n" * 100
    s3(gw, access, secret).put_object(Bucket=BUCKET, Key=f"{PREFIX}image-001.tif", Body=body)
    page.reload()
    expect(page.locator("#session-key")).to_have_count(0)  # shown once
    csrf = page.locator("#upload input[name=csrf_token]").get_attribute("value")
    row = page.locator("#objects tbody tr", has_text=f"{PREFIX}image-001.tif")
    expect(row).to_contain_text(hashlib.sha256(body).hexdigest())
    expect(row).to_contain_text(str(len(body)))

    # -- browser upload: two files and a folder whose relative paths are kept under the prefix
    folder = tmp_path / "plate1"
    (folder / "wells").mkdir(parents=True)
    (folder / "wells" / "A1.csv").write_text("a,b\n1,2\n")
    (folder / "notes.txt").write_text("plate one")
    page.set_input_files(
        "#upload-files",
        [
            {"name": "BIG.bin", "mimeType": "application/octet-stream", "buffer": BIG},
            {"name": "small <i>.txt", "mimeType": "text/plain", "buffer": b"hello"},
        ],
    )
    page.set_input_files("#upload-folder", str(folder))
    page.click("#upload-start")
    expect(page.locator("#upload-status")).to_contain_text("All 4 files uploaded", timeout=60000)
    expect(page.locator("#upload-list li.done")).to_have_count(4)
    # the objects list was fetched again when the uploads ended: no reload needed
    for key, data in (
        ("BIG.bin", BIG),
        ("small <i>.txt", b"hello"),
        ("plate1/wells/A1.csv", b"a,b\n1,2\n"),
        ("plate1/notes.txt", b"plate one"),
    ):
        row = page.locator("#objects tbody tr", has_text=PREFIX + key)
        expect(row).to_contain_text(hashlib.sha256(data).hexdigest())
    # download one object back through the page's link
    with page.expect_download() as got:
        page.locator("#objects a.download", has_text=PREFIX + "plate1/notes.txt").click()
    saved = got.value.path()
    assert Path(saved).read_bytes() == b"plate one"
    assert got.value.suggested_filename == "notes.txt"
    # the big file went in parts (a multipart ETag names its part count)
    head = s3(gw).head_object(Bucket=BUCKET, Key=PREFIX + "BIG.bin")
    assert head["ETag"].strip('"').endswith("-3")
    # a key outside the scope cannot even be asked for
    refused = page.request.post(
        f"{gw.endpoint}/_minimo/sessions/{session_id}/upload-urls",
        data=json.dumps({"paths": ["../escape.txt"]}),
        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
    )
    assert refused.status == 400

    # -- the data browser walks bucket -> prefixes -> the object, and back to its session
    browse_to(page, BUCKET, PREFIX)
    obj = page.locator(f'#listing tr.object[data-key="{PREFIX}image-001.tif"]')
    expect(obj).to_contain_text(hashlib.sha256(body).hexdigest())
    obj.locator("a.session-link").click()
    expect(page).to_have_url(f"{gw.endpoint}/_minimo/sessions/{session_id}")

    # -- the metadata browser finds it by form; the export links carry the filter
    page.goto(f"{gw.endpoint}/_minimo/sessions")
    page.select_option("#filter-form", "imaging")
    page.click("#apply-filters")
    expect(page).to_have_url(re.compile(r"form=imaging"))
    expect(page.locator("#total")).to_have_text("1")
    # listed by its title (the form has no session_title: form · prefix), linking to its page
    expect(page.locator(f'table.list a[href$="/sessions/{session_id}"]')).to_have_text(
        "imaging · 2026/run7"
    )
    # a field's value finds it too, and the form's fields become sortable columns
    condition = page.locator("#conditions .condition").first
    condition.locator(".where-field").select_option("operator")
    condition.locator(".where-op").select_option("~")
    condition.locator(".where-value").fill("lovelace")
    page.click("#apply-filters")
    expect(page.locator("#total")).to_have_text("1")
    expect(page.locator("#sessions thead")).to_contain_text("Operator")
    expect(page.locator("#sessions tbody")).to_contain_text("Ada Lovelace")
    page.click('a.sort[data-sort="samples"]')
    expect(page).to_have_url(re.compile(r"sort=-samples"))
    expect(page.locator("#total")).to_have_text("1")
    condition.locator(".where-field").select_option("samples")
    condition.locator(".where-op").select_option(">=")
    condition.locator(".where-value").fill("13")
    page.click("#apply-filters")
    expect(page.locator("#total")).to_have_text("0")
    condition.locator(".where-field").select_option("operator")
    condition.locator(".where-op").select_option("~")
    condition.locator(".where-value").fill("lovelace")
    page.click("#apply-filters")
    csv_href = page.locator("#export-csv").get_attribute("href") or ""
    exported = page.request.get(gw.endpoint + csv_href)
    assert exported.ok and session_id in exported.text() and "Ada Lovelace" in exported.text()
    screenshot(page, "sessions")

    # -- "open another like this" starts from this session's values
    page.goto(f"{gw.endpoint}/_minimo/sessions/{session_id}")
    page.click("#open-like")
    expect(page.locator("#f-operator")).to_have_value("Ada Lovelace")
    expect(page.locator("#f-samples")).to_have_value("12")
    expect(page.locator("#f-calibrated")).to_be_checked()

    # -- close it (the page asks first); the key stops working
    page.goto(f"{gw.endpoint}/_minimo/sessions/{session_id}")
    page.click("#close-session")  # the page fixture says yes
    expect(page.locator("#session-state")).to_have_text("closed")
    expect(page.locator("#close-session")).to_have_count(0)
    with pytest.raises(ClientError) as refused_write:
        s3(gw, access, secret).put_object(Bucket=BUCKET, Key=f"{PREFIX}late.tif", Body=b"x")
    assert refused_write.value.response["Error"]["Code"] in ("AccessDenied", "InvalidAccessKeyId")

    # -- a POST without the form's CSRF token is refused
    refused = page.request.post(f"{gw.endpoint}/_minimo/logout", form={"csrf_token": "forged"})
    assert refused.status == 403

    # -- sign out: back to the login page, and pages need a login again
    page.click("header form.logout button")
    expect(page).to_have_url(f"{gw.endpoint}/_minimo/login")
    page.goto(f"{gw.endpoint}/_minimo/sessions")
    expect(page).to_have_url(re.compile(r"/_minimo/login\?next="))


def test_uploader_refused_on_admin_page(site: Gateway, page: Page) -> None:
    gw = site
    login(page, gw, *UPLOADER)
    expect(page.locator("h1")).to_have_text(f"Hello, {UPLOADER[0]}")
    expect(page.locator("header nav")).not_to_contain_text("Admin")
    response = page.goto(f"{gw.endpoint}/_minimo/admin/")
    assert response is not None and response.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")
    expect(page.locator(".error-page")).to_contain_text("needs the admin role")
    # the uploader may open sessions where policy lets uploaders open them
    page.goto(f"{gw.endpoint}/_minimo/sessions/new?bucket={BUCKET}&prefix=other/")
    expect(page.locator("#session-form")).to_be_visible()
    page.click("header form.logout button")
    expect(page).to_have_url(f"{gw.endpoint}/_minimo/login")


def test_admin_forms_and_users(site: Gateway, page: Page, new_page: Callable[..., Page]) -> None:
    gw = site
    admin_login(page, gw)
    page.goto(f"{gw.endpoint}/_minimo/admin/")
    page.click("#admin-forms")
    # a bad definition: every problem listed, the text kept for fixing
    bad = json.dumps({"name": "survey", "title": "S", "fields": [{"name": "x", "type": "nope"}]})
    page.fill("#form-definition", bad)
    page.click("#form-save")
    expect(page.locator("#form-problems")).to_contain_text("nope")
    expect(page.locator("#form-definition")).to_have_value(bad)
    good = {"name": "survey", "title": "Survey", "fields": [{"name": "site", "type": "text"}]}
    page.fill("#form-definition", json.dumps(good))
    page.click("#form-save")
    expect(page.locator("#form-saved")).to_have_text("Saved form survey version 1.")
    page.fill("#form-definition", json.dumps({**good, "title": "Field survey"}))
    page.click("#form-save")
    expect(page.locator("#form-saved")).to_have_text("Saved form survey version 2.")
    # the original minimo's text format
    page.fill("#import-name", "legacy")
    page.fill("#import-text", "Legacy form\n\nsample\nSample name\ntext\n")
    page.click("#import-save")
    expect(page.locator("#form-saved")).to_contain_text("legacy version 1")
    expect(page.locator("#forms")).to_contain_text("Field survey")

    # users: add one (password shown once), who can then sign in
    page.goto(f"{gw.endpoint}/_minimo/admin/users")
    page.fill("#new-user", "dora")
    page.select_option("#new-role", "reader")
    page.click("#add-user")
    password = page.locator("#new-password").inner_text()
    row = page.locator('#users tr[data-user="dora"]')
    expect(row).to_contain_text("dora")
    row.locator("select[name=role]").select_option("uploader")
    row.get_by_role("button", name="Set", exact=True).click()
    expect(page.locator('#users tr[data-user="dora"] select[name=role]')).to_have_value("uploader")
    page.click("header form.logout button")
    login(page, gw, "dora", password)
    expect(page.locator("h1")).to_have_text("Hello, dora")
    expect(page.locator(".who")).to_have_text("dora (uploader)")

    # the admin resets dora's password from another browser: the new one is shown once, dora's
    # login made with the old one ends, and only the new password signs in
    admin_page = new_page()
    admin_login(admin_page, gw, "admin/users")
    admin_page.locator('#users tr[data-user="dora"] button.reset-password').click()
    new_password = admin_page.locator("#reset-password").inner_text()
    assert new_password and new_password != password
    expect(admin_page.locator("#user-reset")).to_contain_text("dora")
    page.reload()
    expect(page).to_have_url(re.compile(r"/_minimo/login\?next="))
    submit_login(page, gw, "dora", password)
    expect(page.locator("#login-error")).to_be_visible()
    login(page, gw, "dora", new_password)


def test_login_rate_limit(site: Gateway, page: Page) -> None:
    # Five failures per (user, address) are allowed; the sixth attempt waits, even when right.
    for _ in range(5):
        submit_login(page, site, UPLOADER[0] + "x", "wrong")
        expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    submit_login(page, site, UPLOADER[0] + "x", "wrong")
    expect(page.locator("#login-error")).to_contain_text("Too many failed sign-ins")


def test_unknown_page_is_a_friendly_404(site: Gateway, page: Page) -> None:
    response = page.goto(f"{site.endpoint}/_minimo/no-such-page")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    page.goto(f"{site.endpoint}/_minimo")  # what people type: the home page (here: its login)
    expect(page).to_have_url(re.compile(r"/_minimo/login\?next="))
