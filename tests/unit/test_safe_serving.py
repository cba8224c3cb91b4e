"""gateway.protocol.safe_serving: which Content-Types become downloads, and how a disposition is
forced."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.protocol.safe_serving import (
    DOWNLOAD_BY_DEFAULT,
    FORCE_DOWNLOAD,
    OBJECT_CSP,
    RENDER,
    apply_download_rule,
    as_attachment,
    download_rule,
)

ACTIVE = [
    "text/html",
    "TEXT/HTML",
    "text/html; charset=utf-8",
    "  text/html ;charset=utf-8",
    "\ttext/html\t",
    'text/html; charset="utf-8"; foo=bar',
    "application/xhtml+xml",
    "image/svg+xml",
    "Image/SVG+XML; charset=utf-8",
    "text/xml",
    "application/xml",
    "application/atom+xml",
    "application/rss+xml",
    "application/mathml+xml",
    "application/xslt+xml",
    "text/xsl",
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "text/ecmascript",
    "application/ecmascript",
    "text/jscript",
    "text/livescript",
    "text/javascript1.5",
    "multipart/x-mixed-replace; boundary=x",
    # browsers take the last valid type of a comma-separated list: judge every one
    "text/plain, text/html",
    "text/html, text/plain",
    "image/png,image/svg+xml",
    # no valid type at all: a browser would guess, so it is never rendered
    "",
    " ",
    "html",
    "text/",
    "/html",
    "text/ht ml",
    "text/html\x00",
]
HARMLESS = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "text/plain",
    "text/plain; charset=utf-8",
    "text/csv",
    "application/octet-stream",
    "binary/octet-stream",
    "application/json",
    "application/zip",
    "video/mp4",
    "audio/mpeg",
    "text/plain, application/json",
]


@pytest.mark.parametrize("content_type", ACTIVE)
def test_active_types_are_forced_downloads(content_type: str) -> None:
    assert download_rule(content_type) == FORCE_DOWNLOAD


@pytest.mark.parametrize("content_type", HARMLESS)
def test_harmless_types_render(content_type: str) -> None:
    assert download_rule(content_type) == RENDER


@pytest.mark.parametrize("content_type", ["application/pdf", "Application/PDF; x=1"])
def test_pdf_downloads_unless_the_client_chose(content_type: str) -> None:
    assert download_rule(content_type) == DOWNLOAD_BY_DEFAULT
    headers: dict[str, str] = {}
    apply_download_rule(headers, content_type)
    assert headers == {"content-disposition": "attachment"}
    headers = {"content-disposition": 'inline; filename="a.pdf"'}
    apply_download_rule(headers, content_type)
    assert headers == {"content-disposition": 'inline; filename="a.pdf"'}


@pytest.mark.parametrize(
    ("given", "forced"),
    [
        (None, "attachment"),
        ("inline", "attachment"),
        ("INLINE", "attachment"),
        (" inline ", "attachment"),
        ('inline; filename="page.html"', 'attachment; filename="page.html"'),
        ("inline;filename=page.html", "attachment;filename=page.html"),
        ("attachment", "attachment"),
        ('Attachment; filename="x.svg"', 'Attachment; filename="x.svg"'),
        ('filename="x.html"', 'attachment; filename="x.html"'),
        ("; filename=x.html", "attachment; filename=x.html"),
        ("", "attachment"),
        ("other; filename*=UTF-8''%C3%A9.html", "attachment; filename*=UTF-8''%C3%A9.html"),
    ],
)
def test_as_attachment_keeps_the_file_name(given: str | None, forced: str) -> None:
    assert as_attachment(given) == forced


def test_forced_disposition_replaces_the_clients() -> None:
    headers = {"content-disposition": 'inline; filename="evil.html"'}
    apply_download_rule(headers, "text/html")
    assert headers == {"content-disposition": 'attachment; filename="evil.html"'}


def test_harmless_disposition_is_left_alone() -> None:
    headers = {"content-disposition": "inline"}
    apply_download_rule(headers, "image/png")
    assert headers == {"content-disposition": "inline"}
    headers = {}
    apply_download_rule(headers, "text/plain")
    assert headers == {}


def test_csp_sandboxes_and_forbids_scripts() -> None:
    directives = {d.strip().split(" ")[0]: d.strip() for d in OBJECT_CSP.split(";")}
    assert directives["sandbox"] == "sandbox"  # no allow-scripts, no allow-same-origin
    assert directives["default-src"] == "default-src 'none'"
    assert "script-src" not in directives  # so scripts fall back to default-src 'none'


def test_the_docs_quote_the_csp() -> None:
    """docs/deploy.md says what object answers carry: it must not drift from the code."""
    deploy = (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text()
    assert f"Content-Security-Policy: {OBJECT_CSP}" in deploy
