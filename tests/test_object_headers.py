"""Object answers never script the UI's origin (issue 8 item 5, gateway.protocol.safe_serving).

Every S3 answer carries ``X-Content-Type-Options: nosniff`` and the sandboxing CSP; active
types (HTML, XHTML, SVG, XML, JavaScript) go out as ``Content-Disposition: attachment``, also
when ``response-content-type`` makes them active or ``response-content-disposition`` asks for
``inline``; harmless types are served as the client asked. Checked on the raw HTTP answers of
presigned SigV4 and SigV2 URLs (the links a user opens in a browser), on both object backends.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message

import pytest

from gateway.protocol.safe_serving import OBJECT_CSP
from tests.conftest import boto3_client, ssl_context
from tests.servers import Gateway

pytestmark = pytest.mark.parametrize("gateway", ["local-http", "s3-http"], indirect=True)

SIGNATURES = ["s3v4", "s3"]  # presigned SigV4 and SigV2 (boto3's "s3")
HTML = b"<html><script>document.title='pwned'</script></html>"


@dataclass
class Answer:
    status: int
    headers: Message
    body: bytes

    def one(self, name: str) -> str | None:
        """The header's value; fails when it went out more than once."""
        values = self.headers.get_all(name) or []
        assert len(values) <= 1, f"{name} sent {len(values)} times: {values}"
        return values[0] if values else None


def fetch(gw: Gateway, url: str, method: str = "GET", **headers: str) -> Answer:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, context=ssl_context(gw), timeout=60) as resp:
            return Answer(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as err:
        return Answer(err.code, err.headers, err.read())


def presign(gw: Gateway, signature: str, op: str = "get_object", **params: str) -> str:
    signer = boto3_client(gw, signature_version=signature)
    return signer.generate_presigned_url(op, Params=params, ExpiresIn=300)


def assert_sandboxed(answer: Answer) -> None:
    assert answer.one("X-Content-Type-Options") == "nosniff", answer.status
    assert answer.one("Content-Security-Policy") == OBJECT_CSP, answer.status


@pytest.mark.parametrize("signature", SIGNATURES)
def test_every_object_answer_is_sandboxed(
    gateway: Gateway, s3, bucket: str, signature: str
) -> None:
    put = s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"0123456789", ContentType="text/plain")
    etag = put["ETag"]
    url = presign(gateway, signature, Bucket=bucket, Key="doc.txt")
    got = fetch(gateway, url)
    assert (got.status, got.body) == (200, b"0123456789")
    assert_sandboxed(got)
    part = fetch(gateway, url, Range="bytes=2-4")
    assert (part.status, part.body) == (206, b"234")
    assert_sandboxed(part)
    not_modified = fetch(gateway, url, **{"If-None-Match": etag})
    assert not_modified.status == 304
    assert_sandboxed(not_modified)
    failed = fetch(gateway, url, **{"If-Match": '"0000"'})
    assert failed.status == 412
    assert_sandboxed(failed)
    head = fetch(
        gateway, presign(gateway, signature, "head_object", Bucket=bucket, Key="doc.txt"), "HEAD"
    )
    assert head.status == 200
    assert_sandboxed(head)
    # error documents and other answers too: one rule for every S3 response
    missing = fetch(gateway, presign(gateway, signature, Bucket=bucket, Key="absent"))
    assert missing.status == 404
    assert_sandboxed(missing)
    listing = fetch(gateway, presign(gateway, "s3v4", "list_objects_v2", Bucket=bucket))
    assert listing.status == 200
    assert_sandboxed(listing)
    unsigned = fetch(gateway, f"{gateway.endpoint}/{bucket}/doc.txt")
    assert unsigned.status == 403
    assert_sandboxed(unsigned)


def test_boto3_sees_the_headers(s3, bucket: str) -> None:
    """Plain (header-signed) GET, HEAD and ranged GET, as SDKs send them."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"abc", ContentType="text/html")
    for answer in (
        s3.get_object(Bucket=bucket, Key="k"),
        s3.get_object(Bucket=bucket, Key="k", Range="bytes=0-0"),
        s3.head_object(Bucket=bucket, Key="k"),
    ):
        headers = answer["ResponseMetadata"]["HTTPHeaders"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["content-security-policy"] == OBJECT_CSP
        assert headers["content-disposition"] == "attachment"
        assert answer["ContentType"] == "text/html"  # the type is kept; only rendering changes


ACTIVE = [
    "text/html",
    "text/html; charset=utf-8",
    "TEXT/HTML",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/xml",
    "application/xml",
    "application/rss+xml",
    "text/xsl",
    "text/javascript",
    "application/javascript",
    "application/ecmascript",
]


@pytest.mark.parametrize("signature", SIGNATURES)
def test_active_types_are_attachments(gateway: Gateway, s3, bucket: str, signature: str) -> None:
    for i, content_type in enumerate(ACTIVE):
        key = f"active/{i}"
        s3.put_object(Bucket=bucket, Key=key, Body=HTML, ContentType=content_type)
        got = fetch(gateway, presign(gateway, signature, Bucket=bucket, Key=key))
        assert got.status == 200
        assert got.one("Content-Type") == content_type
        assert got.one("Content-Disposition") == "attachment", content_type
        assert_sandboxed(got)
        head = fetch(
            gateway, presign(gateway, signature, "head_object", Bucket=bucket, Key=key), "HEAD"
        )
        assert head.one("Content-Disposition") == "attachment", content_type


@pytest.mark.parametrize("signature", SIGNATURES)
def test_overrides_cannot_make_a_page(gateway: Gateway, s3, bucket: str, signature: str) -> None:
    s3.put_object(Bucket=bucket, Key="plain", Body=HTML, ContentType="text/plain")
    # response-content-type makes it active: it downloads
    url = presign(gateway, signature, Bucket=bucket, Key="plain", ResponseContentType="text/html")
    got = fetch(gateway, url)
    assert got.one("Content-Type") == "text/html"
    assert got.one("Content-Disposition") == "attachment"
    # ... and an explicit inline is overridden, keeping the client's file name
    url = presign(
        gateway,
        signature,
        Bucket=bucket,
        Key="plain",
        ResponseContentType="image/svg+xml; charset=utf-8",
        ResponseContentDisposition='inline; filename="page.svg"',
    )
    got = fetch(gateway, url)
    assert got.one("Content-Disposition") == 'attachment; filename="page.svg"'
    assert_sandboxed(got)
    # an inline disposition stored with the object is overridden too
    s3.put_object(
        Bucket=bucket,
        Key="page",
        Body=HTML,
        ContentType="text/html",
        ContentDisposition='inline; filename="page.html"',
    )
    got = fetch(gateway, presign(gateway, signature, Bucket=bucket, Key="page"))
    assert got.one("Content-Disposition") == 'attachment; filename="page.html"'
    url = presign(
        gateway, signature, Bucket=bucket, Key="page", ResponseContentDisposition="inline"
    )
    assert fetch(gateway, url).one("Content-Disposition") == "attachment"
    # served as text/plain it cannot script anything: the client's choice stands
    url = presign(
        gateway,
        signature,
        Bucket=bucket,
        Key="page",
        ResponseContentType="text/plain",
        ResponseContentDisposition="inline",
    )
    got = fetch(gateway, url)
    assert got.one("Content-Type") == "text/plain"
    assert got.one("Content-Disposition") == "inline"
    assert_sandboxed(got)


@pytest.mark.parametrize("content_type", ["image/png", "text/plain", "application/octet-stream"])
def test_harmless_types_are_not_forced(
    gateway: Gateway, s3, bucket: str, content_type: str
) -> None:
    s3.put_object(Bucket=bucket, Key="h", Body=b"\x89PNG....", ContentType=content_type)
    for signature in SIGNATURES:
        got = fetch(gateway, presign(gateway, signature, Bucket=bucket, Key="h"))
        assert got.status == 200
        assert got.one("Content-Type") == content_type
        assert got.one("Content-Disposition") is None
        assert_sandboxed(got)
        url = presign(
            gateway, signature, Bucket=bucket, Key="h", ResponseContentDisposition="inline"
        )
        assert fetch(gateway, url).one("Content-Disposition") == "inline"


def test_pdf_downloads_unless_asked_inline(gateway: Gateway, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a.pdf", Body=b"%PDF-1.4", ContentType="application/pdf")
    got = fetch(gateway, presign(gateway, "s3v4", Bucket=bucket, Key="a.pdf"))
    assert got.one("Content-Disposition") == "attachment"
    url = presign(gateway, "s3v4", Bucket=bucket, Key="a.pdf", ResponseContentDisposition="inline")
    assert fetch(gateway, url).one("Content-Disposition") == "inline"


def test_an_override_replaces_the_stored_header(gateway: Gateway, s3, bucket: str) -> None:
    """One Content-Disposition/Cache-Control goes out: the override's, not both."""
    s3.put_object(
        Bucket=bucket,
        Key="s",
        Body=b"x",
        ContentType="image/png",
        ContentDisposition='attachment; filename="s.png"',
        CacheControl="max-age=60",
    )
    url = presign(
        gateway,
        "s3v4",
        Bucket=bucket,
        Key="s",
        ResponseContentDisposition="inline",
        ResponseCacheControl="no-store",
    )
    got = fetch(gateway, url)
    assert got.one("Content-Disposition") == "inline"
    assert got.one("Cache-Control") == "no-store"


@pytest.mark.parametrize("signature", SIGNATURES)
def test_no_scripts_for_pages_of_this_origin(
    gateway: Gateway, s3, bucket: str, signature: str
) -> None:
    """<script src=presigned-url> in a page of the gateway's origin gets no script to run."""
    s3.put_object(Bucket=bucket, Key="x.js", Body=b"alert(1)", ContentType="text/javascript")
    url = presign(gateway, signature, Bucket=bucket, Key="x.js")
    for dest in ("script", "worker", "serviceworker", "style"):
        got = fetch(gateway, url, **{"Sec-Fetch-Dest": dest, "Sec-Fetch-Site": "same-origin"})
        assert got.status == 403, dest
        assert b"<Code>AccessDenied</Code>" in got.body
        assert b"alert" not in got.body
        assert_sandboxed(got)
    # opened as a page (it downloads), fetched by another site, or by an S3 client: served
    for headers in (
        {"Sec-Fetch-Dest": "document", "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Dest": "script", "Sec-Fetch-Site": "cross-site"},
        {},
    ):
        got = fetch(gateway, url, **headers)
        assert (got.status, got.body) == (200, b"alert(1)"), headers
