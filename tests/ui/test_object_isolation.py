"""An uploaded HTML file cannot act as the admin who opens it (issue 8 item 5), in Chromium.

An uploader stores an HTML page whose script would, on the UI's origin, read the CSRF token from
``/_minimo/api/v1/me`` and add a user, retitle the page and write localStorage. An admin signed
in to the UI in the same browser opens it by a presigned URL (SigV4 and SigV2, as boto3 makes
them), with ``response-content-disposition=inline`` and ``response-content-type`` overrides, and
by the data browser's download link. Nothing may run: the browser downloads instead of
rendering, and no user appears. The same script, run on purpose in the UI page, does add a
user: the payload is real, so its silence is meaningful.

Harmless types still display: a PNG opens as an image, a text/plain object that holds HTML opens
as text (nosniff: never guessed to be HTML).
"""

from __future__ import annotations

import base64
import contextlib
from urllib.parse import quote

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from tests.conftest import boto3_client
from tests.servers import Gateway
from tests.ui.helpers import admin_login, s3

BUCKET = "isolation"


def payload(user: str) -> str:
    """JavaScript that acts as whoever is signed in to the UI on this origin."""
    return f"""
document.title = "PWNED";
try {{ localStorage.setItem("pwned", "{user}"); }} catch (e) {{}}
return fetch("/_minimo/api/v1/me", {{credentials: "same-origin"}})
  .then(r => r.json())
  .then(me => fetch("/_minimo/api/v1/users", {{
    method: "POST",
    credentials: "same-origin",
    headers: {{"Content-Type": "application/json", "X-CSRF-Token": me.csrf_token}},
    body: JSON.stringify({{name: "{user}", role: "admin", password: "pwned-password-1234"}}),
  }}))
  .then(r => r.status);
"""


def attack_html(user: str) -> bytes:
    return (
        "<!doctype html><html><head><title>quarterly report</title></head><body>"
        f"<p>report</p><script>(() => {{ {payload(user)} }})()</script></body></html>"
    ).encode()


def attack_svg(user: str) -> bytes:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        f"<script>(() => {{ {payload(user)} }})()</script></svg>"
    ).encode()


# a 1x1 PNG
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> Gateway:
    s3(ui_gateway).create_bucket(Bucket=BUCKET)
    return ui_gateway


def users(page: Page, gw: Gateway) -> set[str]:
    """The user names the store holds, read through the API with the page's admin login."""
    reply = page.request.get(f"{gw.endpoint}/_minimo/api/v1/users")
    assert reply.ok, reply.text()
    return {u["name"] for u in reply.json()["users"]}


def open_expecting_download(page: Page, url: str) -> str:
    """Navigate to ``url``; it must download, not render. Returns the suggested file name."""
    # a navigation that turns into a download aborts the goto: that is the point
    with page.expect_download() as download, contextlib.suppress(PlaywrightError):
        page.goto(url)
    return download.value.suggested_filename


def assert_nothing_ran(page: Page, gw: Gateway, marker: str) -> None:
    """No user ``marker``, and the UI page the admin is on was neither retitled nor touched."""
    # back on a UI page of this origin: the one a script would have reached
    page.goto(f"{gw.endpoint}/_minimo/")
    expect(page.locator(".who")).to_be_visible()
    assert "PWNED" not in page.title()
    assert page.evaluate("localStorage.getItem('pwned')") is None
    assert marker not in users(page, gw)


def test_the_payload_works_on_the_ui_origin(site: Gateway, page: Page) -> None:
    """The control: run as a script of the UI origin, the payload does add a user."""
    admin_login(page, site)
    marker = "control-user"
    # evaluate() waits for the promise the payload returns: the answer to its POST
    assert page.evaluate(f"() => {{ {payload(marker)} }}") == 201
    assert marker in users(page, site)
    assert page.evaluate("localStorage.getItem('pwned')") == marker
    page.evaluate("localStorage.removeItem('pwned')")


@pytest.mark.parametrize("signature", ["s3v4", "s3"], ids=["sigv4", "sigv2"])
def test_presigned_html_runs_nothing(site: Gateway, page: Page, signature: str) -> None:
    gw = site
    admin_login(page, gw)
    signer = boto3_client(gw, signature_version=signature)
    cases = [
        # (key, body, stored type, extra presign params)
        ("report.html", attack_html, "text/html", {}),
        ("report2.html", attack_html, "text/html", {"ResponseContentDisposition": "inline"}),
        ("logo.svg", attack_svg, "image/svg+xml", {}),
        ("page.xhtml", attack_html, "application/xhtml+xml", {}),
        # stored harmless, made HTML by the link: still a download
        ("notes.txt", attack_html, "text/plain", {"ResponseContentType": "text/html"}),
    ]
    for i, (key, body, content_type, extra) in enumerate(cases):
        marker = f"mallory-{signature}-{i}"
        s3(gw).put_object(Bucket=BUCKET, Key=key, Body=body(marker), ContentType=content_type)
        url = signer.generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": key, **extra}, ExpiresIn=300
        )
        page.goto(f"{gw.endpoint}/_minimo/")
        name = open_expecting_download(page, url)
        # Chromium may fix the extension to match the type (notes.txt served as text/html)
        assert name.rsplit(".", 1)[0] == key.rsplit(".", 1)[0], (key, name)
        assert_nothing_ran(page, gw, marker)


@pytest.mark.parametrize("signature", ["s3v4", "s3"], ids=["sigv4", "sigv2"])
def test_a_script_tag_in_a_ui_page_gets_nothing(site: Gateway, page: Page, signature: str) -> None:
    """Content-Disposition does not stop ``<script src>``, and the UI's CSP allows scripts of
    its origin: were a UI page ever to take an injected tag, the object is still refused."""
    gw = site
    admin_login(page, gw)
    marker = f"mallory-tag-{signature}"
    key = f"lib/{signature}.js"
    s3(gw).put_object(
        Bucket=BUCKET, Key=key, Body=payload(marker).encode(), ContentType="text/javascript"
    )
    url = boto3_client(gw, signature_version=signature).generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300
    )
    page.goto(f"{gw.endpoint}/_minimo/")
    # what an HTML injection into a UI page would add (evaluate() itself is not page script)
    loaded = page.evaluate(
        """url => new Promise(done => {
            const tag = document.createElement("script");
            tag.src = url;
            tag.onload = () => done("loaded");
            tag.onerror = () => done("refused");
            document.head.appendChild(tag);
        })""",
        url,
    )
    assert loaded == "refused"
    assert_nothing_ran(page, gw, marker)


def test_data_browser_download_runs_nothing(site: Gateway, page: Page) -> None:
    gw = site
    admin_login(page, gw)
    marker = "mallory-browser"
    s3(gw).put_object(
        Bucket=BUCKET, Key="browse/report.html", Body=attack_html(marker), ContentType="text/html"
    )
    page.goto(f"{gw.endpoint}/_minimo/data/{BUCKET}?prefix=browse/")
    link = page.locator("#listing a.download").first
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "report.html"
    # opening the link directly (not as a download attribute click) downloads too
    url = f"{gw.endpoint}/_minimo/download/{BUCKET}?key={quote('browse/report.html', safe='')}"
    assert open_expecting_download(page, url) == "report.html"
    assert_nothing_ran(page, gw, marker)


def test_harmless_types_still_display(site: Gateway, page: Page) -> None:
    gw = site
    admin_login(page, gw)
    signer = boto3_client(gw)
    marker = "mallory-text"
    s3(gw).put_object(Bucket=BUCKET, Key="show/pixel.png", Body=PNG, ContentType="image/png")
    s3(gw).put_object(
        Bucket=BUCKET, Key="show/notes.txt", Body=attack_html(marker), ContentType="text/plain"
    )

    def url(key: str) -> str:
        return signer.generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300
        )

    page.goto(url("show/pixel.png"))
    image = page.locator("img")
    expect(image).to_have_count(1)
    assert page.evaluate("document.images[0].naturalWidth") == 1
    # text/plain holding HTML shows as text: the markup is visible, the script is not run
    page.goto(url("show/notes.txt"))
    expect(page.locator("body")).to_contain_text("<script>")
    assert "PWNED" not in page.title()
    assert_nothing_ran(page, gw, marker)
