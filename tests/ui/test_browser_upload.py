"""The browser upload on a session page reports honestly, in Chromium against a real gateway.

What a user checks: the upload comes first on the page; a refusal (write-once) is shown in red
with the S3 message as text and is not sent again; a server error or a dropped connection is
retried; total progress shows bytes, speed and time left while bytes move; the objects list
shows what was uploaded without a reload; leaving mid-upload asks first; after a reload the same
file resumes its multipart upload; files dropped on the box upload like picked ones.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from playwright.sync_api import Page, Request, Route, expect

from tests.api.client import Browser
from tests.helpers import policy_rule
from tests.servers import Gateway
from tests.ui.helpers import fits_both_widths, login, prepare, s3

BUCKET = "lab-uploads"
FORM = {
    "name": "batch",
    "title": "A batch of files",
    "fields": [{"name": "sample", "label": "Sample", "type": "text", "required": True}],
}
POLICY = policy_rule(BUCKET, ["batch"], open_sessions=["uploader"])
USER, PASSWORD = "una", "una-password-for-tests"
MiB = 1024 * 1024
#: what Chromium logs for a refused request: expected where a test provokes refusals
REFUSED_IN_CONSOLE = re.compile(r"Failed to load resource: .* status of \d+")


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> Gateway:
    return prepare(ui_gateway, buckets=[BUCKET], forms=[FORM], policy=POLICY,
                   uploaders=[(USER, PASSWORD)])  # fmt: skip


def open_session(gw: Gateway, prefix: str) -> str:
    """Open a session as the uploader through the JSON API; its id."""
    api = Browser(gw.endpoint)
    assert api.login(USER, PASSWORD).status == 200
    opened = api.call(
        "POST",
        "/sessions",
        {"form": "batch", "bucket": BUCKET, "prefix": prefix, "values": {"sample": prefix}},
    )
    assert opened.status == 201, opened.body
    return opened.body["session"]["id"]


def on_session_page(page: Page, gw: Gateway, prefix: str) -> str:
    session_id = open_session(gw, prefix)
    login(page, gw, USER, PASSWORD, start=f"sessions/{session_id}")
    return session_id


def requests_to(page: Page, method: str, key: str) -> list[Request]:
    """Every request the page sends from now on with METHOD to the object KEY."""
    path = f"/{BUCKET}/{quote(key)}"
    seen: list[Request] = []
    page.on(
        "request",
        lambda r: r.method == method and urlsplit(r.url).path == path and seen.append(r),
    )
    return seen


def refused_responses(page: Page) -> list[str]:
    """The path of every response from now on that refuses (4xx, 5xx)."""
    seen: list[str] = []
    page.on("response", lambda r: r.status >= 400 and seen.append(urlsplit(r.url).path))
    return seen


def only_expected_console_errors(page: Page, refused: list[str], expected: set[str]) -> None:
    """Chromium logs every refused request as a console error: allow those of the EXPECTED
    paths (and /favicon.ico, which the gateway's S3 side answers), nothing else, and forget
    them so that fits_both_widths checks the rest."""
    assert set(refused) <= expected | {"/favicon.ico"}, refused
    errors = page.console_errors  # type: ignore[attr-defined]
    unexpected = [e for e in errors if not REFUSED_IN_CONSOLE.search(e)]
    assert not unexpected, unexpected
    errors.clear()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_refusal_is_shown_readably_once_and_the_list_refreshes(site: Gateway, page: Page) -> None:
    prefix = "refusal/"
    refused = refused_responses(page)
    on_session_page(page, site, prefix)
    # the upload comes before the key and the session's details
    assert page.locator("main section.card").first.get_attribute("id") == "upload"
    tricky = "R&D <1>.txt"  # markup and an ampersand: shown as typed, never as &amp;
    page.set_input_files(
        "#upload-files",
        [
            {"name": tricky, "mimeType": "text/plain", "buffer": b"first"},
            {"name": "b.txt", "mimeType": "text/plain", "buffer": b"bee"},
        ],
    )
    expect(page.locator("#upload-chosen")).to_have_text("2 files, 8 bytes chosen.")
    page.click("#upload-start")
    expect(page.locator("#upload-status")).to_have_text("All 2 files uploaded.")
    # the list on the page was refreshed: no "uploaded" above "Objects written: 0"
    expect(page.locator("#objects-card h2")).to_contain_text("2 objects")
    expect(page.locator("#objects", has_text=prefix + tricky)).to_contain_text(sha256(b"first"))
    only_expected_console_errors(page, refused, set())
    fits_both_widths(page, "session-uploaded")

    # the same name again: write-once refuses it, and a refusal is final (one request)
    puts = requests_to(page, "PUT", prefix + tricky)
    page.set_input_files(
        "#upload-files",
        [
            {"name": tricky, "mimeType": "text/plain", "buffer": b"second"},
            {"name": "c.txt", "mimeType": "text/plain", "buffer": b"sea"},
        ],
    )
    page.click("#upload-start")
    status = page.locator("#upload-status")
    expect(status).to_have_text("1 of 2 files failed (in red below); 1 uploaded.")
    failed = page.locator("#upload-list li.failed")
    expect(failed).to_have_count(1)
    note = failed.locator(".note")
    expect(note).to_contain_text(f"s3://{BUCKET}/{prefix}{tricky} already exists")
    expect(note).to_contain_text("write-once")
    expect(note).not_to_contain_text("&amp;")
    expect(failed.locator("progress")).to_have_count(0)  # no full blue bar on a failure
    assert note.evaluate("e => getComputedStyle(e).color") == "rgb(179, 38, 30)"  # --bad
    assert len(puts) == 1
    expect(page.locator("#objects-card h2")).to_contain_text("3 objects")
    assert s3(site).get_object(Bucket=BUCKET, Key=prefix + tricky)["Body"].read() == b"first"
    only_expected_console_errors(page, refused, {f"/{BUCKET}/{quote(prefix + tricky)}"})
    fits_both_widths(page, "session-upload-refused")


def test_server_errors_and_dropped_connections_are_retried(site: Gateway, page: Page) -> None:
    prefix = "retry/"
    on_session_page(page, site, prefix)
    key = prefix + "flaky.txt"
    puts = requests_to(page, "PUT", key)
    # the first attempt gets a 503 from "the server", the second loses its connection, the
    # third goes through to the gateway
    faults = ["503", "drop"]

    def flaky(route: Route) -> None:
        if route.request.method != "PUT" or not faults:
            route.continue_()
        elif faults.pop(0) == "503":
            route.fulfill(
                status=503,
                content_type="application/xml",
                body="<Error><Code>SlowDown</Code><Message>Please slow down</Message></Error>",
            )
        else:
            route.abort("connectionreset")

    page.route(re.compile(rf"/{BUCKET}/{re.escape(quote(key))}\?"), flaky)
    page.set_input_files(
        "#upload-files", [{"name": "flaky.txt", "mimeType": "text/plain", "buffer": b"third time"}]
    )
    page.click("#upload-start")
    expect(page.locator("#upload-status")).to_have_text("All 1 file uploaded.", timeout=30000)
    assert len(puts) == 3
    assert s3(site).get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"third time"


@pytest.fixture
def slow_uploads(page: Page) -> Iterator[object]:
    """Chromium's own network throttling (DevTools protocol): request bodies go at 4 MiB/s, so
    a test can watch an upload while it runs. Yields the DevTools session."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    conditions = {"offline": False, "latency": 0, "downloadThroughput": -1}
    cdp.send("Network.emulateNetworkConditions", {**conditions, "uploadThroughput": 4 * MiB})
    yield cdp
    cdp.send("Network.emulateNetworkConditions", {**conditions, "uploadThroughput": -1})


def test_progress_leave_warning_and_resume_after_reload(
    site: Gateway, page: Page, slow_uploads: object, tmp_path: Path
) -> None:
    prefix = "resume/"
    refused = refused_responses(page)
    session_id = on_session_page(page, site, prefix)
    data = os.urandom(40 * MiB)  # 5 parts of 8 MiB
    big = tmp_path / "stack.raw"
    big.write_bytes(data)
    key = prefix + "stack.raw"
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.type))  # conftest accepts them
    # every text the total progress line shows, as the user would see it change
    page.evaluate("""() => {
        window.totalTexts = [];
        const line = document.getElementById("upload-total-text");
        new MutationObserver(() => window.totalTexts.push(line.textContent))
            .observe(line, { childList: true, characterData: true, subtree: true });
    }""")
    page.set_input_files("#upload-files", str(big))
    page.click("#upload-start")
    expect(page.locator("#upload-status")).to_have_text("Uploading 1 file: 0 done.")
    # bytes, speed and time left while the bytes move
    expect(page.locator("#upload-total-text")).to_have_text(
        re.compile(r"MiB of 40\.0 MiB · [\d.]+ (KiB|MiB)/s · about .+ left")
    )
    expect(page.locator("#upload-list li .note")).to_have_text(re.compile(r"MiB of 40\.0 MiB"))
    only_expected_console_errors(page, refused, set())
    fits_both_widths(page, "session-uploading")
    # wait (in the browser) until two parts are done and remembered for a resume
    page.wait_for_function(
        """() => Object.keys(localStorage).some((k) => k.startsWith("minimo-upload:")
            && Object.keys(JSON.parse(localStorage.getItem(k)).parts).length >= 2)""",
        timeout=60000,
    )
    texts = page.evaluate("window.totalTexts")
    assert len(set(texts)) >= 2, texts  # the display moved with the bytes

    # leaving now asks first; the user leaves anyway (reload)
    page.reload()
    assert "beforeunload" in dialogs
    slow_uploads.send(  # type: ignore[attr-defined]
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    expect(page).to_have_url(f"{site.endpoint}/_minimo/sessions/{session_id}")
    parts = requests_to(page, "PUT", key)
    listed = requests_to(page, "GET", key)
    created = requests_to(page, "POST", key)

    # the user chooses the same file again: the upload goes on where it stopped
    page.set_input_files("#upload-files", str(big))
    page.click("#upload-start")
    expect(page.locator("#upload-status")).to_have_text("All 1 file uploaded.", timeout=60000)
    done = page.locator("#upload-list li.done .note")
    expect(done).to_contain_text(re.compile(r"resumed: [2-5] parts were already there"))
    resumed = int(re.search(r"resumed: (\d)", done.inner_text())[1])  # type: ignore[index]
    assert len(listed) == 1  # ListParts, to learn what the gateway has
    assert len(parts) == 5 - resumed  # only the missing parts were sent again
    asked = [parse_qs(urlsplit(r.url).query, keep_blank_values=True) for r in created]
    assert ["uploads" in query for query in asked] == [False]  # the completion, no new upload
    assert not page.evaluate(
        "() => Object.keys(localStorage).filter((k) => k.startsWith('minimo-upload:'))"
    )
    head = s3(site).head_object(Bucket=BUCKET, Key=key)
    assert head["ETag"].strip('"').endswith("-5")
    body = s3(site).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert sha256(body) == sha256(data)
    expect(page.locator("#objects", has_text=key)).to_contain_text(sha256(data))


def test_dropped_files_upload_like_picked_ones(site: Gateway, page: Page) -> None:
    prefix = "dropped/"
    on_session_page(page, site, prefix)
    dropped = page.evaluate_handle("""() => {
        const transfer = new DataTransfer();
        transfer.items.add(new File(["dropped one"], "drop-1.txt", { type: "text/plain" }));
        transfer.items.add(new File(["dropped two"], "drop-2.txt", { type: "text/plain" }));
        return transfer;
    }""")
    page.dispatch_event("#upload-drop", "drop", {"dataTransfer": dropped})
    expect(page.locator("#upload-chosen")).to_have_text("2 files, 22 bytes chosen.")
    page.click("#upload-start")
    expect(page.locator("#upload-status")).to_have_text("All 2 files uploaded.")
    for name in ("drop-1.txt", "drop-2.txt"):
        expect(page.locator("#objects", has_text=prefix + name)).to_be_visible()
    expect(page.locator("#upload-chosen")).to_have_text("")  # nothing left to send twice
