"""Self-service in Chromium against a real ``minimo serve``: every role changes its own password
and manages its own keys. A reader's keys are read-only (boto3 lists and downloads with one and
is refused a write); an admin may ask for a read-only key too; a key carries a label; a new key
comes with aws cli, rclone and minio-py snippets and copy buttons.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import requests
from botocore.exceptions import ClientError
from playwright.sync_api import Page, expect

from tests.helpers import policy_rule
from tests.servers import Gateway
from tests.ui.helpers import admin_login, fits_both_widths, login, prepare, s3

BUCKET = "shared"
# a scratch area: admins and uploaders write without a session, so only the key can refuse
POLICY = policy_rule(BUCKET, [], require_session=False)
READER = ("rosa", "rosa-reads-everything")


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> Gateway:
    gw = prepare(ui_gateway, buckets=[BUCKET], policy=POLICY)
    gw.cli("user", "add", READER[0], "--role", "reader", "--password-stdin",
           input=READER[1] + "\n")  # fmt: skip
    s3(gw).put_object(Bucket=BUCKET, Key="results/table.csv", Body=b"a,b\n1,2\n")
    return gw


def created_key(page: Page) -> tuple[str, str]:
    return (
        page.locator("#new-access-key").inner_text(),
        page.locator("#new-secret-key").inner_text(),
    )


def test_a_reader_makes_a_labelled_read_only_key_that_reads_and_never_writes(
    site: Gateway, page: Page
) -> None:
    login(page, site, *READER, start="keys")
    expect(page.locator("#new-key-read-only-note")).to_contain_text("read-only")
    expect(page.locator("#new-key-read-only")).to_have_count(0)  # no choice for a reader

    # a label that is too long is refused next to its field, the typed value kept
    page.fill("#new-key-label", "x" * 70)
    page.click("#create-key")
    expect(page.locator("#new-key-label-error")).to_contain_text("at most 64 characters")
    expect(page.locator("#new-key-label")).to_have_value("x" * 70)
    expect(page.locator("#key-created")).to_have_count(0)

    # (the browser logs that 400 answer as a console error: provoked on purpose, so forgotten)
    page.console_errors.clear()  # type: ignore[attr-defined]
    page.fill("#new-key-label", "analysis <laptop>")
    page.click("#create-key")
    expect(page.locator("#key-created")).to_contain_text("Read-only key for rosa")
    expect(page.locator("#key-created")).to_contain_text("(analysis <laptop>)")  # escaped text
    access, secret = created_key(page)
    assert re.fullmatch(r"MK[A-Z0-9]{18}", access)
    # the snippets name this key and the page's own origin
    for snippet in ("#snippet-aws", "#snippet-rclone", "#snippet-minio"):
        expect(page.locator(snippet)).to_contain_text(access)
        expect(page.locator(snippet)).to_contain_text(secret)
        expect(page.locator(snippet)).to_contain_text(site.endpoint)
    expect(page.locator("#snippet-aws")).to_contain_text(f"aws --profile minimo-{access.lower()}")
    row = page.locator(f'#keys tr[data-key="{access}"]')
    expect(row.locator(".key-label")).to_have_text("analysis <laptop>")
    expect(row.locator(".key-access")).to_have_text("read-only")
    fits_both_widths(page, "keys-created")

    # the copy button puts the secret on the clipboard (or selects it where that is refused)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy = page.locator('button.js-copy[data-copy="new-secret-key"]')
    copy.click()
    expect(copy).to_have_text(re.compile("Copied|Selected"))
    if copy.inner_text() == "Copied":
        assert page.evaluate("navigator.clipboard.readText()") == secret

    # the key reads, and is refused a write like its owner
    client = s3(site, access, secret)
    body = client.get_object(Bucket=BUCKET, Key="results/table.csv")["Body"].read()
    assert body == b"a,b\n1,2\n"
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=BUCKET, Key="results/mine.csv", Body=b"no")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"

    # revoked from the same page: this gateway forgets it at once
    row.locator("button.danger-link").click()
    expect(row.locator(".state")).to_contain_text("revoked")
    with pytest.raises(ClientError) as gone:
        client.list_objects_v2(Bucket=BUCKET)
    assert gone.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_an_admin_may_ask_for_a_read_only_key(site: Gateway, page: Page) -> None:
    admin_login(page, site, "keys")
    page.fill("#new-key-label", "dashboard")
    page.check("#new-key-read-only")
    page.click("#create-key")
    expect(page.locator("#key-created")).to_contain_text("Read-only key for")
    access, secret = created_key(page)
    expect(page.locator(f'#keys tr[data-key="{access}"] .key-access')).to_have_text("read-only")
    with pytest.raises(ClientError) as refused:
        s3(site, access, secret).put_object(Bucket=BUCKET, Key="dash.txt", Body=b"no")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # an ordinary key of the admin still writes there
    page.fill("#new-key-label", "writer")
    page.click("#create-key")
    access, secret = created_key(page)
    expect(page.locator(f'#keys tr[data-key="{access}"] .key-access')).to_have_text(
        "read and write"
    )
    s3(site, access, secret).put_object(Bucket=BUCKET, Key="admin.txt", Body=b"yes")
    # an admin's keys page: everyone's keys, the user filter and the create form, both widths
    page.goto(f"{site.endpoint}/_minimo/keys")
    expect(page.locator(f'#keys tr[data-key="{access}"]')).to_be_visible()
    fits_both_widths(page, "keys-admin")


def test_changing_my_password_keeps_this_login_and_ends_the_others(
    site: Gateway, new_page: Callable[..., Page]
) -> None:
    name, old = "otto", "otto-first-password"
    new = "otto-second-password"
    site.cli("user", "add", name, "--role", "reader", "--password-stdin", input=old + "\n")
    elsewhere = new_page()
    login(elsewhere, site, name, old)
    page = new_page()
    login(page, site, name, old)
    page.click("#account-link")
    expect(page.locator("#account-user")).to_have_text(name)
    expect(page.locator("#account-role")).to_have_text("reader")

    # a wrong current password is an error next to that field, and nothing changes
    page.fill("#old_password", "not my password")
    page.fill("#new_password", new)
    page.fill("#confirm_password", new)
    page.click("#change-password")
    expect(page.locator("#err-old_password")).to_have_text("the current password is wrong")
    expect(page.locator("#err-new_password")).to_have_count(0)
    # a new password too short for the store's rules: next to the new one
    page.fill("#old_password", old)
    page.fill("#new_password", "short")
    page.fill("#confirm_password", "short")
    page.eval_on_selector("#password-form", "form => { form.noValidate = true; }")
    page.click("#change-password")
    expect(page.locator("#err-new_password")).to_contain_text("at least")
    # two different new ones: next to the second
    page.fill("#old_password", old)
    page.fill("#new_password", new)
    page.fill("#confirm_password", new + "!")
    page.click("#change-password")
    expect(page.locator("#err-confirm_password")).to_contain_text("differ")
    # the three 400 answers above are logged by the browser as console errors, on purpose
    page.console_errors.clear()  # type: ignore[attr-defined]

    page.fill("#old_password", old)
    page.fill("#new_password", new)
    page.fill("#confirm_password", new)
    page.click("#change-password")
    expect(page.locator("#password-changed")).to_contain_text("every other sign-in")
    fits_both_widths(page, "account")

    # this login goes on; the other browser is signed out
    page.click('header nav a:text-is("Keys")')
    expect(page.locator(".who")).to_contain_text(name)
    elsewhere.reload()
    expect(elsewhere).to_have_url(re.compile(r"/_minimo/login\?next="))
    # the old password no longer signs in, the new one does
    assert not _signs_in(site, name, old)
    assert _signs_in(site, name, new)


def _signs_in(gw: Gateway, user: str, password: str) -> bool:
    reply = requests.post(
        gw.endpoint + "/_minimo/api/v1/login", json={"user": user, "password": password}
    )
    return reply.status_code == 200
