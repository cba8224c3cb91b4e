"""The policy, keys and audit pages end to end: Chromium against a real ``minimo serve``.

An admin sets a broken policy (problems shown, the text kept) and then a good one, creates and
revokes a key (which S3 then refuses), and finds the policy change in the audit log; an uploader
is refused on the admin pages but manages their own keys.
"""

from __future__ import annotations

import re
import time

import pytest
from botocore.exceptions import ClientError
from playwright.sync_api import Page, expect

from tests.helpers import policy_rule
from tests.servers import Gateway, read_initial_admin
from tests.ui.helpers import admin_login, login, prepare, s3

BUCKET = "raw-admin"
FORM = {"name": "runs", "title": "Runs", "fields": [{"name": "operator", "type": "text"}]}
GOOD_POLICY = policy_rule(BUCKET, ["runs"], prefix="incoming/", open_sessions=["uploader"])
# a key no rule has
BAD_POLICY = f"""\
[[rule]]
bucket = "{BUCKET}"
prefix = ""
colour = "blue"
"""
# well-formed, but naming a form that does not exist
UNKNOWN_FORM_POLICY = GOOD_POLICY.replace('"runs"', '"no-such-form"')
UPLOADER = ("erin", "erin-password-for-tests")


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> Gateway:
    return prepare(ui_gateway, forms=[FORM], uploaders=[UPLOADER])


def create_key(page: Page) -> tuple[str, str]:
    page.click("#create-key")
    expect(page.locator("#key-created")).to_be_visible()
    return (
        page.locator("#new-access-key").inner_text(),
        page.locator("#new-secret-key").inner_text(),
    )


def refused_within_5s(gw: Gateway, access: str, secret: str) -> str:
    """The S3 error code once the key stops working, polled for at most 5 s."""
    client = s3(gw, access, secret)
    deadline = time.monotonic() + 5
    while True:
        try:
            client.list_buckets()
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        assert time.monotonic() < deadline, f"{access} still works 5 s after its revocation"
        time.sleep(0.2)


def test_admin_sets_policy(site: Gateway, page: Page) -> None:
    gw = site
    admin = admin_login(page, gw)
    page.goto(f"{gw.endpoint}/_minimo/admin/")
    page.click("#admin-policy")
    expect(page).to_have_url(f"{gw.endpoint}/_minimo/admin/policy")
    page.fill("#policy-toml", BAD_POLICY)
    page.click("#policy-save")
    problems = page.locator("#policy-problems")
    expect(problems).to_contain_text("colour")
    expect(page.locator("#policy-toml")).to_have_value(BAD_POLICY)
    expect(page.locator("#policy-saved")).to_have_count(0)
    page.fill("#policy-toml", UNKNOWN_FORM_POLICY)
    page.click("#policy-save")
    expect(problems).to_contain_text("no-such-form")
    expect(page.locator("#policy-toml")).to_have_value(UNKNOWN_FORM_POLICY)
    # broken TOML is a problem listed the same way
    page.fill("#policy-toml", "[[rule]\nbucket =")
    page.click("#policy-save")
    expect(page.locator("#policy-problems")).to_be_visible()
    expect(page.locator("#policy-toml")).to_have_value("[[rule]\nbucket =")

    page.fill("#policy-toml", GOOD_POLICY)
    page.click("#policy-save")
    expect(page.locator("#policy-saved")).to_contain_text("is in force")
    expect(page.locator("#policy-problems")).to_have_count(0)
    expect(page.locator("#policy-rules")).to_contain_text(f"s3://{BUCKET}/incoming/")
    expect(page.locator("#policy-rules")).to_contain_text("runs")
    expect(page.locator("#policy-version")).to_contain_text(f"set by {admin}")
    # the page shows what is stored: a reload has the same text and rules
    page.reload()
    expect(page.locator("#policy-toml")).to_have_value(GOOD_POLICY)
    # the CLI sees the same policy
    shown = gw.cli("policy", "show").stdout
    assert BUCKET in shown and "incoming/" in shown

    # the audit log lists the change, newest first, and filters by action and user
    page.goto(f"{gw.endpoint}/_minimo/admin/")
    page.click("#admin-audit")
    expect(page.locator("#audit tbody tr").first).to_be_visible()
    page.select_option("#audit-action", "policy.set")
    page.fill("#audit-user", admin)
    page.click("#audit-filter")
    rows = page.locator("#audit tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("policy.set")
    expect(rows.first).to_contain_text(admin)
    # nothing before the epoch of the log; a bad time is a problem, not a crash
    page.fill("#audit-until", "2000-01-01")
    page.click("#audit-filter")
    expect(page.locator("#audit")).to_contain_text("No events match.")
    page.fill("#audit-until", "yesterday")
    page.click("#audit-filter")
    expect(page.locator("#audit-problems")).to_contain_text("until")


def test_audit_pages(site: Gateway, page: Page) -> None:
    gw = site
    admin_login(page, gw)
    # more logins than one page holds (50), so the log has a second page
    api = page.context.request
    for _ in range(55):
        answer = api.post(
            f"{gw.endpoint}/_minimo/api/v1/login",
            data={"user": "nobody-here", "password": "wrong"},
        )
        assert answer.status in (401, 429)
    page.goto(f"{gw.endpoint}/_minimo/admin/audit?action=login")
    rows = page.locator("#audit tbody tr")
    expect(rows).to_have_count(50)
    first_page = rows.all_inner_texts()
    times = [row.split("\t")[0] for row in first_page]
    assert times == sorted(times, reverse=True), "newest first"
    page.click("#audit-next")
    expect(page).to_have_url(re.compile(r"action=login.*cursor=|cursor=.*action=login"))
    expect(page.locator("#audit-action")).to_have_value("login")
    assert rows.count() >= 5
    assert set(rows.all_inner_texts()).isdisjoint(first_page)
    page.click("#audit-first")
    expect(rows).to_have_count(50)


def test_admin_creates_and_revokes_key(site: Gateway, page: Page) -> None:
    gw = site
    admin = admin_login(page, gw)
    page.goto(f"{gw.endpoint}/_minimo/admin/")
    page.click("#admin-keys")
    # an admin sees everyone's keys: the bootstrap key is there
    expect(page.locator(f'#keys tr[data-key="{gw.access_key}"]')).to_be_visible()
    page.select_option("#new-key-user", admin)
    access, secret = create_key(page)
    assert s3(gw, access, secret).list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    page.goto(f"{gw.endpoint}/_minimo/keys")
    # the secret is shown once: not on the list
    expect(page.locator("body")).not_to_contain_text(secret)
    row = page.locator(f'#keys tr[data-key="{access}"]')
    expect(row).to_contain_text("active")
    row.locator("button", has_text="Revoke").click()
    expect(page).to_have_url(f"{gw.endpoint}/_minimo/keys")
    expect(page.locator(f'#keys tr[data-key="{access}"]')).to_contain_text("revoked")
    assert refused_within_5s(gw, access, secret) == "InvalidAccessKeyId"

    # a key made for the uploader; the user filter shows only theirs
    page.select_option("#new-key-user", UPLOADER[0])
    erin_key, _ = create_key(page)
    page.select_option("#key-user-filter", UPLOADER[0])
    page.click("#key-filter")
    expect(page).to_have_url(f"{gw.endpoint}/_minimo/keys?user={UPLOADER[0]}")
    expect(page.locator(f'#keys tr[data-key="{erin_key}"]')).to_be_visible()
    expect(page.locator(f'#keys tr[data-key="{gw.access_key}"]')).to_have_count(0)
    # a POST without the CSRF token changes nothing
    answer = page.context.request.post(
        f"{gw.endpoint}/_minimo/keys", form={"action": "revoke", "access_key": erin_key}
    )
    assert answer.status == 403
    page.reload()
    expect(page.locator(f'#keys tr[data-key="{erin_key}"]')).to_contain_text("active")


def test_uploader_refused_on_admin_pages_but_manages_own_keys(site: Gateway, page: Page) -> None:
    gw = site
    login(page, gw, *UPLOADER)
    for path in ("admin/policy", "admin/audit"):
        response = page.goto(f"{gw.endpoint}/_minimo/{path}")
        assert response is not None and response.status == 403
        expect(page.locator("h1")).to_have_text("Not allowed")
        expect(page.locator(".error-page")).to_contain_text("needs the admin role")
    admin = read_initial_admin(gw.data_dir)["user"]

    # the keys page is in everyone's navigation
    page.goto(f"{gw.endpoint}/_minimo/")
    page.locator("header nav a", has_text="Keys").click()
    expect(page).to_have_url(f"{gw.endpoint}/_minimo/keys")
    # a POST with a good token is refused too: the role is checked before anything
    token = page.locator("header form.logout input[name=csrf_token]").get_attribute("value")
    answer = page.context.request.post(
        f"{gw.endpoint}/_minimo/admin/policy", form={"csrf_token": token or "", "toml": ""}
    )
    assert answer.status == 403
    # their own keys only, even when asking for someone else's
    page.goto(f"{gw.endpoint}/_minimo/keys?user={admin}")
    expect(page.locator(f'#keys tr[data-key="{gw.access_key}"]')).to_have_count(0)
    expect(page.locator("#key-user-filter")).to_have_count(0)
    access, secret = create_key(page)
    expect(page.locator("#key-created")).to_contain_text(UPLOADER[0])
    assert s3(gw, access, secret).list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    row = page.locator(f'#keys tr[data-key="{access}"]')
    expect(row).to_contain_text(UPLOADER[0])
    row.locator("button", has_text="Revoke").click()
    expect(page.locator(f'#keys tr[data-key="{access}"]')).to_contain_text("revoked")
    assert refused_within_5s(gw, access, secret) == "InvalidAccessKeyId"
    # someone else's key cannot be revoked by naming it
    token = page.locator("header form.logout input[name=csrf_token]").get_attribute("value")
    answer = page.context.request.post(
        f"{gw.endpoint}/_minimo/keys",
        form={"csrf_token": token or "", "action": "revoke", "access_key": gw.access_key},
    )
    assert answer.status == 400
    assert s3(gw, gw.access_key, gw.secret_key).list_buckets()
