"""The data browser and "link existing data" end to end: Chromium against a real ``minimo serve``.

Objects are put into the local object store behind minimo's back (as data copied in before
minimo existed), found in the browser with no metadata, linked into a new session by an admin,
and then shown with their SHA-256 and the session's values; an uploader never gets to link.
"""

from __future__ import annotations

import hashlib
import json
import re
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.helpers import Setup, cli, policy_rule, s3_client
from tests.servers import Gateway, read_initial_admin, run_gateway, run_versitygw
from tests.ui.helpers import admin_login, browse_to, field, login, prepare, s3, screenshot

BUCKET = "legacy-ui"
FORM = {
    "name": "imaging",
    "title": "Imaging run",
    "fields": [
        {"name": "operator", "label": "Operator", "type": "text", "required": True},
        {"name": "instrument", "label": "Instrument", "type": "choice",
         "choices": ["confocal", "widefield"], "required": True},
        {"name": "samples", "label": "Samples", "type": "integer", "min": 1},
    ],
}  # fmt: skip
POLICY = policy_rule(BUCKET, ["imaging"], open_sessions=["uploader"])
UPLOADER = ("uma", "uma-password-for-tests")
# keys as people name folders: spaces, non-ASCII letters, nested folders
OLD = {
    "2019/old runs/a b.bin": b"first old run\n" * 50,
    "2019/old runs/two.bin": b"two",
    "2019/old runs/\u00fcber/c.bin": b"nested, with an umlaut in the folder",
}
ELSEWHERE = "2020/kept/unlinked.bin"


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> Gateway:
    gw = prepare(ui_gateway, buckets=[BUCKET], forms=[FORM], policy=POLICY, uploaders=[UPLOADER])
    # straight into the local object store: no record, no session stamp
    behind_our_back = Setup(gw.data_dir, None)
    for key, body in {**OLD, ELSEWHERE: b"left alone"}.items():
        behind_our_back.put(BUCKET, key, body, {"origin": "old-lab-server"})
    return gw


def object_url(gw: Gateway, key: str) -> str:
    return f"{gw.endpoint}/_minimo/data/{BUCKET}/object?key={quote(key, safe='')}"


def test_walk_to_an_object_link_existing_data_and_back(site: Gateway, page: Page) -> None:
    gw = site
    admin_login(page, gw)
    key = "2019/old runs/a b.bin"

    # -- Data -> bucket -> prefixes -> the object: it has no metadata
    browse_to(page, BUCKET, "2019/old runs/")
    row = page.locator(f'#listing tr.object[data-key="{key}"]')
    expect(row).to_contain_text("no metadata")
    row.locator("a.object-link").click()
    expect(page.locator("#object-name")).to_have_text("a b.bin")
    expect(page.locator("#object-key")).to_have_text(f"s3://{BUCKET}/{key}")
    expect(page.locator("#object-size")).to_have_text(f"{len(OLD[key])} bytes")
    expect(page.locator("#object-type")).to_have_text("application/x-run")
    expect(page.locator("#no-metadata")).to_contain_text("not written through a session")
    expect(page.locator("#record")).to_have_count(0)
    # the crumbs lead back to the folder
    page.locator('#crumbs a:text-is("old runs")').click()
    expect(page.locator(f'#listing tr.object[data-key="{key}"]')).to_be_visible()
    row.locator("a.object-link").click()

    # -- link existing data at its folder: what will happen, and how many objects lack metadata
    page.click("#link-existing")
    expect(page).to_have_url(re.compile(r"/_minimo/data/legacy-ui/adopt\?prefix=2019%2Fold"))
    expect(page.locator("#what-happens")).to_contain_text("SHA-256")
    cli = "minimo adopt --bucket legacy-ui --prefix '2019/old runs/'"  # quoted for a shell
    expect(page.locator("#adopt-cli")).to_contain_text(cli)
    expect(page.locator("#unlinked-count")).to_contain_text("3 of 3 objects")
    for old_key in OLD:
        expect(page.locator("#unlinked-keys")).to_contain_text(old_key)
    # the only form policy allows there is chosen; a required field left empty is refused by
    # the server (the browser's own check switched off) with the error beside that field
    screenshot(page, "link-existing-data")
    page.select_option("#f-instrument", "widefield")
    page.fill("#f-samples", "4")
    page.eval_on_selector("#adopt-form", "form => { form.noValidate = true; }")
    page.click("#adopt-submit")
    expect(field(page, "operator").locator(".field-errors")).to_be_visible()
    expect(field(page, "instrument").locator(".field-errors")).to_have_count(0)
    expect(page.locator("#f-instrument")).to_have_value("widefield")
    expect(page.locator("#f-samples")).to_have_value("4")
    expect(page.locator("#unlinked-count")).to_contain_text("3 of 3 objects")  # nothing adopted
    page.fill("#f-operator", "Grace Hopper")
    page.click("#adopt-submit")
    expect(page.locator("#adopted-count")).to_have_text("3 objects")
    expect(page.locator("#adopted-bytes")).to_have_text(str(sum(len(b) for b in OLD.values())))
    session_id = page.locator("#adopted-session").inner_text()

    # -- the listing now names the session; the object page shows the record and the values
    page.click("#browse-adopted")
    row = page.locator(f'#listing tr.object[data-key="{key}"]')
    expect(row.locator("a.session-link")).to_contain_text("imaging")
    row.locator("a.object-link").click()
    expect(page.locator("#record-sha256")).to_have_text(hashlib.sha256(OLD[key]).hexdigest())
    expect(page.locator("#record-principal")).to_have_text(read_initial_admin(gw.data_dir)["user"])
    expect(page.locator("#session-form")).to_contain_text("imaging v1")
    expect(page.locator("#session-scope")).to_have_text(f"s3://{BUCKET}/2019/old runs/")
    expect(page.locator("#session-state")).to_have_text("closed")
    expect(page.locator('#values dt[data-field="operator"]')).to_have_text("Operator")
    expect(page.locator('#values dd[data-field="operator"]')).to_have_text("Grace Hopper")
    expect(page.locator('#values dd[data-field="samples"]')).to_have_text("4")
    expect(page.locator("#no-metadata")).to_have_count(0)
    screenshot(page, "data-object")

    # -- its JSON twin says the same
    twin_href = page.locator("#object-json").get_attribute("href") or ""
    twin = page.request.get(gw.endpoint + twin_href)
    assert twin.ok
    body = twin.json()
    assert body["metadata"] is True
    assert body["record"]["sha256"] == hashlib.sha256(OLD[key]).hexdigest()
    assert {"name": "operator", "label": "Operator", "value": "Grace Hopper"} in body["fields"]
    record_href = page.locator("#record-json").get_attribute("href") or ""
    record = page.request.get(gw.endpoint + record_href)
    assert record.ok and record.json()["sha256"] == body["record"]["sha256"]

    # -- download from the object page gives the bytes
    with page.expect_download() as got:
        page.click("#download")
    assert Path(got.value.path()).read_bytes() == OLD[key]
    assert got.value.suggested_filename == "a b.bin"

    # -- and its session link leads to the session page
    page.click("#session-link")
    expect(page).to_have_url(f"{gw.endpoint}/_minimo/sessions/{session_id}")
    expect(page.locator("#values")).to_contain_text("Grace Hopper")

    # -- the nested object was adopted too; the page then has nothing left to link
    page.goto(object_url(gw, "2019/old runs/\u00fcber/c.bin"))
    expect(page.locator("#record-sha256")).to_have_text(
        hashlib.sha256(OLD["2019/old runs/\u00fcber/c.bin"]).hexdigest()
    )
    page.goto(f"{gw.endpoint}/_minimo/data/{BUCKET}/adopt?prefix=2019/")
    expect(page.locator("#unlinked-count")).to_contain_text("0 of 3 objects")
    # nothing left to link: no form, so no empty session can be opened by mistake
    expect(page.locator("#nothing-to-link")).to_be_visible()
    expect(page.locator("#adopt-form")).to_have_count(0)


def test_unknown_object_and_bucket_are_friendly(site: Gateway, page: Page) -> None:
    gw = site
    admin_login(page, gw)
    response = page.goto(object_url(gw, "2019/no such thing.bin"))
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    expect(page.locator(".error-page")).to_contain_text("There is no object")
    response = page.goto(f"{gw.endpoint}/_minimo/data/no-such-bucket/adopt?prefix=x/")
    assert response is not None and response.status == 404
    expect(page.locator(".error-page")).to_contain_text("There is no bucket no-such-bucket")
    response = page.goto(f"{gw.endpoint}/_minimo/data/{BUCKET}/object")
    assert response is not None and response.status == 400
    # a key no object can have (a ".." part) is not there either, on the page and in download
    for path in ("data/" + BUCKET + "/object", "download/" + BUCKET):
        response = page.goto(f"{gw.endpoint}/_minimo/{path}?key=a/../b")
        assert response is not None and response.status == 404
    for bad in ("Not_A_Bucket", "no-such-bucket"):
        response = page.goto(f"{gw.endpoint}/_minimo/data/{bad}/object?key=a")
        assert response is not None and response.status == 404
        response = page.goto(f"{gw.endpoint}/_minimo/data/{bad}")
        assert response is not None and response.status == 404
        expect(page.locator(".error-page")).to_contain_text(f"There is no bucket {bad}")

    csrf = page.locator("header form.logout input[name=csrf_token]").get_attribute("value")
    for bad in ("Not_A_Bucket", "no-such-bucket"):
        answer = page.request.post(
            f"{gw.endpoint}/_minimo/data/{bad}/adopt",
            form={"csrf_token": csrf or "", "_prefix": "x/", "_form": "imaging",
                  "operator": "Ada", "instrument": "confocal"},
        )  # fmt: skip
        assert answer.status == 404 and f"There is no bucket {bad}" in answer.text()

    # at a bucket's top the link asks for a prefix first
    page.goto(f"{gw.endpoint}/_minimo/data/{BUCKET}")
    page.click("#link-existing")
    expect(page.locator("#unlinked")).to_have_count(0)
    expect(page.locator("#adopt-form")).to_have_count(0)
    page.fill("#prefix", "2020/kept")
    page.click("#what-happens button[type=submit]")
    expect(page.locator("#unlinked-count")).to_contain_text("1 of 1 object under 2020/kept/ has")
    expect(page.locator("#unlinked-keys")).to_contain_text(ELSEWHERE)


def test_uploader_sees_no_link_and_may_not_adopt(site: Gateway, page: Page) -> None:
    gw = site
    login(page, gw, *UPLOADER)
    page.goto(f"{gw.endpoint}/_minimo/data/{BUCKET}?prefix=2020/kept/")
    expect(page.locator(f'#listing tr.object[data-key="{ELSEWHERE}"]')).to_contain_text(
        "no metadata"
    )
    expect(page.locator("#link-existing")).to_have_count(0)
    page.goto(object_url(gw, ELSEWHERE))
    expect(page.locator("#no-metadata")).to_be_visible()
    expect(page.locator("#link-existing")).to_have_count(0)
    csrf = page.locator("header form.logout input[name=csrf_token]").get_attribute("value")

    adopt_url = f"{gw.endpoint}/_minimo/data/{BUCKET}/adopt?prefix=2020/kept/"
    response = page.goto(adopt_url)
    assert response is not None and response.status == 403
    expect(page.locator(".error-page")).to_contain_text("needs the admin role")
    # a well-formed POST with this login's own CSRF token is refused all the same
    refused = page.request.post(
        adopt_url,
        form={"csrf_token": csrf or "", "_prefix": "2020/kept/", "_form": "imaging",
              "operator": "Uma", "instrument": "confocal"},
    )  # fmt: skip
    assert refused.status == 403
    page.goto(object_url(gw, ELSEWHERE))
    expect(page.locator("#no-metadata")).to_be_visible()  # still unlinked


def test_object_written_through_a_session_shows_its_metadata(site: Gateway, page: Page) -> None:
    gw = site
    login(page, gw, *UPLOADER)
    page.goto(f"{gw.endpoint}/_minimo/sessions/new?bucket={BUCKET}&prefix=2026/fresh/")
    page.fill("#f-operator", "Uma Upload")
    page.select_option("#f-instrument", "confocal")
    page.click("#session-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/_minimo/sessions/[0-9A-Za-z]+$"))
    session_id = page.url.rsplit("/", 1)[1]
    access = page.locator("#access-key").inner_text()
    secret = page.locator("#secret-key").inner_text()
    data = b"written the proper way"
    key = "2026/fresh/run 1/image.tif"
    s3(gw, access, secret).put_object(Bucket=BUCKET, Key=key, Body=data)

    page.goto(f"{gw.endpoint}/_minimo/data/{BUCKET}?prefix=2026/fresh/run 1/")
    page.locator(f'#listing tr.object[data-key="{key}"] a.object-link').click()
    expect(page.locator("#object-size")).to_have_text(f"{len(data)} bytes")
    expect(page.locator("#record-sha256")).to_have_text(hashlib.sha256(data).hexdigest())
    expect(page.locator("#record-principal")).to_contain_text(UPLOADER[0])
    expect(page.locator("#session-owner")).to_have_text(UPLOADER[0])
    expect(page.locator('#values dd[data-field="operator"]')).to_have_text("Uma Upload")
    expect(page.locator('#values dt[data-field="instrument"]')).to_have_text("Instrument")
    page.click("#record-session")
    expect(page).to_have_url(f"{gw.endpoint}/_minimo/sessions/{session_id}")


def test_object_store_down_is_a_clear_page(
    browser: Any, page: Page, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """minimo in front of a real S3 server that then stops: every page says so, none fails."""
    upstream_stack = ExitStack()
    try:
        upstream = upstream_stack.enter_context(
            run_versitygw(tmp_path_factory.mktemp("down-upstream") / "root")
        )
        data_dir = tmp_path_factory.mktemp("down-gw")
        (data_dir / "form.json").write_text(json.dumps(FORM))
        # the form exists before serve puts the policy naming it in force
        cli(data_dir, "form", "create", "--file", str(data_dir / "form.json"))
        with run_gateway(data_dir, upstream=upstream, policy=POLICY) as gw:
            s3(gw).create_bucket(Bucket=BUCKET)
            # one object written straight to the S3 server: something to link
            s3_client(upstream).put_object(Bucket=BUCKET, Key="old/a.bin", Body=b"old")
            admin_login(page, gw)
            page.goto(f"{gw.endpoint}/_minimo/data/{BUCKET}/adopt?prefix=old/")
            expect(page.locator("#adopt-form")).to_be_visible()
            upstream_stack.close()  # the S3 server goes away

            for path in (f"data/{BUCKET}/object?key=old/a.bin", f"data/{BUCKET}", "data/"):
                response = page.goto(f"{gw.endpoint}/_minimo/{path}")
                # an outage, not a bad gateway: 503 with Retry-After (docs/failures.md)
                assert response is not None and response.status == 503
                assert response.headers["retry-after"].isdigit()
                expect(page.locator(".error-page")).to_contain_text(
                    "The object store is unavailable"
                )
                assert upstream.endpoint not in page.content()
            page.goto(f"{gw.endpoint}/_minimo/")
            csrf = page.locator("header form.logout input[name=csrf_token]").get_attribute("value")
            response = page.request.post(
                f"{gw.endpoint}/_minimo/data/{BUCKET}/adopt",
                form={"csrf_token": csrf or "", "_prefix": "old/", "_form": "imaging",
                      "operator": "Ada", "instrument": "confocal"},
            )  # fmt: skip
            assert response.status == 503
            assert "The object store failed while linking" in response.text()
    finally:
        upstream_stack.close()
