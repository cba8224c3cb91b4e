"""The data browser as MinIO console users expect it, in Chromium against a real ``minimo
serve``: previews on the object page (a CSV's first rows as a table, a text file's head, an
image), served so that stored bytes never run on the UI's origin; "copy S3 URI" and download
snippets; folder object counts and sizes in listings; admins creating buckets with clear errors.
"""

from __future__ import annotations

import re
import struct
import zlib
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.servers import Gateway
from tests.ui.helpers import admin_login, fits_both_widths, login, prepare, s3

BUCKET = "lab"
POLICY = f"""\
[[rule]]
bucket = "{BUCKET}"
prefix = ""
require_session = false
"""
READER = ("rosa", "rosa-password-for-tests")


def png(width: int, height: int) -> bytes:
    """A real PNG of one red colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


CSV_ROWS = ["sample,well,<b>value</b>"] + [f"S{n},A{n},{n * 1.5}" for n in range(1, 31)]
OBJECTS = {
    "run1/plate.csv": ("\n".join(CSV_ROWS) + "\n").encode(),
    "run1/notes.txt": b"Plate read at 37 C.\n<script>alert(1)</script> stays text\n",
    "run1/cells.png": png(40, 30),
    # an HTML page named like an image: never served as one
    "run1/trap.png": b"<html><script>alert(document.cookie)</script></html>",
    "run1/deep/raw.bin": b"\x00\x01" * 1024,
}


@pytest.fixture(scope="module")
def site(ui_gateway: Gateway) -> Gateway:
    gw = prepare(ui_gateway, buckets=[BUCKET], policy=POLICY)
    gw.cli("user", "add", READER[0], "--role", "reader", "--password-stdin",
           input=READER[1] + "\n")  # fmt: skip
    client = s3(gw)
    for key, body in OBJECTS.items():
        # stored as most clients store files: without a content type of their own
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
    client.put_object(Bucket=BUCKET, Key="top.txt", Body=b"at the top")
    return gw


def object_url(gw: Gateway, key: str) -> str:
    return f"{gw.endpoint}/_minimo/data/{BUCKET}/object?key={quote(key, safe='')}"


def test_listing_counts_and_sizes_folders(site: Gateway, page: Page) -> None:
    admin_login(page, site, start=f"data/{BUCKET}")
    folder = page.locator('#listing tr.prefix[data-prefix="run1/"]')
    total = sum(len(body) for body in OBJECTS.values())
    expect(folder.locator(".folder-count")).to_have_text(f"{len(OBJECTS)} objects")
    expect(folder.locator(".folder-size")).to_have_attribute("title", f"{total:,} bytes")
    expect(folder.locator(".folder-size")).to_have_text(re.compile(r"^\d+(\.\d)? KiB$"))
    top = page.locator('#listing tr.object[data-key="top.txt"]')
    expect(top.locator(".object-size")).to_have_text("10 bytes")
    fits_both_widths(page, "data-browser-listing")
    page.click('#listing tr.prefix[data-prefix="run1/"] a')
    deep = page.locator('#listing tr.prefix[data-prefix="run1/deep/"]')
    expect(deep.locator(".folder-count")).to_have_text("1 object")
    expect(deep.locator(".folder-size")).to_have_text("2.0 KiB")


def test_csv_preview_is_a_table_of_the_first_rows(site: Gateway, page: Page) -> None:
    admin_login(page, site, start="data/")
    page.goto(object_url(site, "run1/plate.csv"))
    table = page.locator("#preview-csv")
    # the header row as headers, markup in a cell shown as text
    expect(table.locator("thead th")).to_have_text(["sample", "well", "<b>value</b>"])
    expect(table.locator("tbody tr")).to_have_count(20)
    expect(table.locator("tbody tr").first.locator("td")).to_have_text(["S1", "A1", "1.5"])
    expect(page.locator("#preview-cut")).to_be_visible()
    # copy the S3 URI; the download snippets name this object
    expect(page.locator("#object-key")).to_have_text(f"s3://{BUCKET}/run1/plate.csv")
    page.click("#copy-uri")
    expect(page.locator("#copy-uri")).to_have_text(re.compile("Copied|Selected"))
    page.click("#download-snippets summary")
    expect(page.locator("#snippet-aws")).to_have_text(
        f"aws --endpoint-url {site.endpoint} s3 cp s3://{BUCKET}/run1/plate.csv ./plate.csv"
    )
    expect(page.locator("#snippet-rclone")).to_contain_text(
        f"rclone copy minimo:{BUCKET}/run1/plate.csv ./"
    )
    fits_both_widths(page, "data-browser-object-csv")


def test_text_preview_is_escaped_text(site: Gateway, page: Page) -> None:
    admin_login(page, site, start="data/")
    page.goto(object_url(site, "run1/notes.txt"))
    expect(page.locator("#preview-text")).to_have_text(
        OBJECTS["run1/notes.txt"].decode(), use_inner_text=True
    )
    expect(page.locator("#preview-text script")).to_have_count(0)
    expect(page.locator("#preview-cut")).to_have_count(0)
    # binary content gets no preview at all
    page.goto(object_url(site, "run1/deep/raw.bin"))
    expect(page.locator("#preview")).to_have_count(0)


def test_image_preview_is_served_only_as_an_image(site: Gateway, page: Page) -> None:
    login(page, site, *READER, start="data/")  # every role may look
    page.goto(object_url(site, "run1/cells.png"))
    image = page.locator("#preview-image")
    expect(image).to_be_visible()
    page.wait_for_function("() => document.getElementById('preview-image').complete")
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [40, 30]
    served = page.request.get(image.evaluate("img => img.src"))
    assert served.ok and served.body() == OBJECTS["run1/cells.png"]
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in served.headers["content-security-policy"]
    fits_both_widths(page, "data-browser-object-image")
    # an HTML page named .png is not served as an image, nor is a text file asked for as one
    for key in ("run1/trap.png", "run1/notes.txt"):
        refused = page.request.get(
            f"{site.endpoint}/_minimo/preview/{BUCKET}?key={quote(key, safe='')}"
        )
        assert refused.status == 415, key
        assert "alert" not in refused.text()


def test_admins_create_buckets_with_clear_errors(site: Gateway, page: Page) -> None:
    admin_login(page, site, start="data/")
    name = page.locator("#bucket-name")
    errors = page.locator('.field[data-field="name"] .field-errors')
    name.fill("Raw_Data")
    page.click("#create-bucket")
    expect(errors).to_contain_text("lowercase letters, digits, dots (.) and hyphens (-)")
    expect(name).to_have_value("Raw_Data")  # kept as typed, to correct
    name.fill(BUCKET)
    page.click("#create-bucket")
    expect(errors).to_contain_text(f"There is a bucket {BUCKET} already.")
    # Chromium logs the refused form's 400 answer as a console error: that one is intended
    page.console_errors.clear()  # type: ignore[attr-defined]
    fits_both_widths(page, "data-browser-new-bucket-error")
    name.fill("raw-2026")
    page.click("#create-bucket")
    expect(page).to_have_url(f"{site.endpoint}/_minimo/data/raw-2026")
    expect(page.locator("#listing")).to_contain_text("Nothing here.")
    page.goto(f"{site.endpoint}/_minimo/data/")
    expect(page.locator("#buckets")).to_contain_text("raw-2026")
    fits_both_widths(page, "data-browser-buckets")


def test_readers_see_no_bucket_form(site: Gateway, page: Page) -> None:
    login(page, site, *READER, start="data/")
    expect(page.locator("#buckets")).to_contain_text(BUCKET)
    expect(page.locator("#new-bucket")).to_have_count(0)
