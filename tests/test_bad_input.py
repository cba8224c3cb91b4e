"""The bad-input table (issue 2, item 8), on every gateway of the matrix.

Each case is a real request signed with botocore's SigV4 signer and sent over raw HTTP, so the
test controls every byte the server sees. Each must be answered with the right S3 code and
status in an S3 XML error whose RequestId matches ``x-amz-request-id``, must never leak a
traceback, and must write nothing (checked afterwards through boto3 with the admin key).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import secrets
import socket
import ssl
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from unittest import mock
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import pytest
from awscrt import checksums as crt_checksums
from botocore.auth import HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.servers import Gateway

REGION = "us-east-1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
BODY = b"bytes that must never land in the store\n" * 64


# --------------------------------------------------------------------------------------------
# Signing and sending


class _Signer(S3SigV4Auth):
    """botocore's S3 signer with the payload hash chosen by the test (it normally hashes)."""

    def __init__(self, credentials: Credentials, region: str, payload_hash: str) -> None:
        super().__init__(credentials, "s3", region)
        self._payload_hash = payload_hash

    def payload(self, request: AWSRequest) -> str:
        return self._payload_hash


@dataclass
class Signed:
    """A signed request's headers and what chunk signatures are derived from."""

    headers: dict[str, str]
    signer: _Signer
    request: AWSRequest

    @property
    def seed_signature(self) -> str:
        return self.headers["Authorization"].rsplit("Signature=", 1)[1]

    def chunk_signature(self, previous: str, data: bytes) -> str:
        """The signature of one aws-chunked chunk, chained to the previous one."""
        string_to_sign = "\n".join(
            (
                "AWS4-HMAC-SHA256-PAYLOAD",
                self.request.context["timestamp"],
                self.signer.credential_scope(self.request),
                previous,
                EMPTY_SHA256,
                hashlib.sha256(data).hexdigest(),
            )
        )
        return self.signer.signature(string_to_sign, self.request)

    def trailer_signature(self, previous: str, trailer: bytes) -> str:
        """The signature of the trailing headers (canonical form: ``name:value\\n`` lines)."""
        string_to_sign = "\n".join(
            (
                "AWS4-HMAC-SHA256-TRAILER",
                self.request.context["timestamp"],
                self.signer.credential_scope(self.request),
                previous,
                hashlib.sha256(trailer).hexdigest(),
            )
        )
        return self.signer.signature(string_to_sign, self.request)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def http_chunk(body: bytes, size: int = 16 * 1024) -> bytes:
    """``body`` in HTTP/1.1 chunked transfer coding."""
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"


def canonical_path(path: str) -> str:
    """The path as SigV4 canonicalises it: each segment decoded, then encoded once."""
    return "/".join(quote(unquote(part), safe="-_.~") for part in path.split("/"))


def _clock(when: dt.datetime | None):
    """Pin botocore's signing clock (only the client's clock; the server is untouched)."""
    if when is None:
        return contextlib.nullcontext()
    naive = when.astimezone(dt.UTC).replace(tzinfo=None)
    return mock.patch("botocore.auth.get_current_datetime", return_value=naive)


class Client:
    """Signed raw HTTP requests to one gateway; a fresh connection for every request."""

    def __init__(self, gw: Gateway) -> None:
        url = urlsplit(gw.endpoint)
        self.gw = gw
        self.scheme = url.scheme
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.netloc = f"{self.host}:{self.port}"
        self.ssl_context: ssl.SSLContext | None = None
        if url.scheme == "https":
            self.ssl_context = ssl.create_default_context(cafile=str(gw.ca_file))

    def connection(self) -> http.client.HTTPConnection:
        if self.ssl_context is not None:
            return http.client.HTTPSConnection(
                self.host, self.port, context=self.ssl_context, timeout=60
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def sign(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        payload_hash: str = EMPTY_SHA256,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str = REGION,
        when: dt.datetime | None = None,
    ) -> Signed:
        creds = Credentials(access_key or self.gw.access_key, secret_key or self.gw.secret_key)
        signer = _Signer(creds, region, payload_hash)
        request = AWSRequest(
            method=method,
            url=f"{self.scheme}://{self.netloc}{canonical_path(path)}",
            headers={"Host": self.netloc, "X-Amz-Content-SHA256": payload_hash, **(headers or {})},
            params=dict(query or {}),
        )
        with _clock(when):
            signer.add_auth(request)
        return Signed(dict(request.headers.items()), signer, request)

    def send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        *,
        query: Mapping[str, str] | None = None,
        content_length: bool = True,
        http_chunked: bool = False,
    ) -> Reply:
        """Send exactly these headers (plus Content-Length unless told not to).

        ``http_chunked`` frames the body with ``Transfer-Encoding: chunked`` instead of a length,
        as boto3 does for its trailer uploads over HTTPS.
        """
        if http_chunked:
            content_length = False
            headers = {**headers, "Transfer-Encoding": "chunked"}
            body = http_chunk(body or b"")
        target = path + (f"?{urlencode(query, quote_via=quote)}" if query else "")
        conn = self.connection()
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            if not any(name.lower() == "host" for name in headers):
                conn.putheader("Host", self.netloc)
            for name, value in headers.items():
                if name.lower() != "content-length":
                    conn.putheader(name, value)
            if content_length:
                conn.putheader("Content-Length", str(len(body or b"")))
            conn.endheaders()
            if body:
                conn.send(body)
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        payload_hash: str | None = None,
        **sign_args: object,
    ) -> Reply:
        """Sign (hex SHA-256 of the body unless told otherwise) and send."""
        if payload_hash is None:
            payload_hash = hashlib.sha256(body).hexdigest()
        signed = self.sign(
            method, path, query=query, headers=headers, payload_hash=payload_hash, **sign_args
        )
        return self.send(method, path, signed.headers, body, query=query)


# --------------------------------------------------------------------------------------------
# Assertions


def s3_error(reply: Reply, code: str | set[str], status: int) -> dict[str, str | None]:
    """Assert ``reply`` is an S3 XML error with this code and status; return its fields."""
    text = reply.body.decode("utf-8", "replace")
    assert "Traceback" not in text and 'File "' not in text, text
    assert reply.status == status, f"expected {status} {code}, got {reply.status}: {text[:1000]}"
    try:
        root = ET.fromstring(reply.body)
    except ET.ParseError as exc:
        raise AssertionError(f"not an S3 XML error: {text[:1000]!r}") from exc
    fields = {child.tag.rsplit("}", 1)[-1]: child.text for child in root}
    assert root.tag.rsplit("}", 1)[-1] == "Error", text
    codes = {code} if isinstance(code, str) else code
    assert fields.get("Code") in codes, text
    assert fields.get("Message"), text
    request_id = reply.headers.get("x-amz-request-id")
    assert request_id, f"no x-amz-request-id header: {dict(reply.headers)}"
    assert fields.get("RequestId") == request_id, text
    return fields


def assert_absent(s3, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key=key)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key[:200])
    assert [o["Key"] for o in listed.get("Contents", [])] == []


def assert_bucket_empty(s3, bucket: str) -> None:
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed.get("Contents", [])] == []


def bucket_names(s3) -> set[str]:
    return {b["Name"] for b in s3.list_buckets()["Buckets"]}


@pytest.fixture
def raw(gateway: Gateway) -> Client:
    return Client(gateway)


def new_key() -> str:
    return f"bad/{secrets.token_hex(6)}.bin"


# --------------------------------------------------------------------------------------------
# Authentication


@pytest.mark.parametrize(
    "make_header",
    [
        pytest.param(lambda ak: "AWS4-HMAC-SHA256", id="no-components"),
        pytest.param(
            lambda ak: f"AWS4-HMAC-SHA256 Credential={ak}/20260101/us-east-1/s3/aws4_request",
            id="no-signature",
        ),
        pytest.param(
            lambda ak: f"AWS4-HMAC-SHA256 Credential={ak}, SignedHeaders=host, Signature=00ff",
            id="credential-without-scope",
        ),
        pytest.param(
            lambda ak: (
                f"AWS4-HMAC-SHA256 Credential={ak}/2026/us-east-1/s3, "
                "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
            ),
            id="short-scope",
        ),
    ],
)
def test_malformed_authorization(
    raw: Client, s3, bucket: str, make_header: Callable[[str], str]
) -> None:
    key = new_key()
    signed = raw.sign("PUT", f"/{bucket}/{key}", payload_hash=hashlib.sha256(BODY).hexdigest())
    headers = {**signed.headers, "Authorization": make_header(raw.gw.access_key)}
    reply = raw.send("PUT", f"/{bucket}/{key}", headers, BODY)
    s3_error(reply, "AuthorizationHeaderMalformed", 400)
    assert_absent(s3, bucket, key)


def test_wrong_region(raw: Client, s3, bucket: str) -> None:
    key = new_key()
    reply = raw.request("PUT", f"/{bucket}/{key}", BODY, region="eu-west-1")
    fields = s3_error(reply, "AuthorizationHeaderMalformed", 400)
    assert fields.get("Region") == REGION
    assert_absent(s3, bucket, key)


def test_wrong_signature(raw: Client, s3, bucket: str) -> None:
    key = new_key()
    reply = raw.request("PUT", f"/{bucket}/{key}", BODY, secret_key=raw.gw.secret_key + "x")
    s3_error(reply, "SignatureDoesNotMatch", 403)
    assert_absent(s3, bucket, key)


def test_unknown_access_key(raw: Client, s3, bucket: str) -> None:
    key = new_key()
    reply = raw.request("PUT", f"/{bucket}/{key}", BODY, access_key="AKNOSUCHKEY0000000000")
    s3_error(reply, "InvalidAccessKeyId", 403)
    assert_absent(s3, bucket, key)


def test_anonymous_write_refused(raw: Client, s3, bucket: str) -> None:
    key = new_key()
    reply = raw.send("PUT", f"/{bucket}/{key}", {}, BODY)
    s3_error(reply, "AccessDenied", 403)
    assert_absent(s3, bucket, key)


def test_head_error_has_no_body(raw: Client, s3, bucket: str) -> None:
    """HEAD errors carry the status and request id but no body (there is none to send)."""
    s3.put_object(Bucket=bucket, Key="there", Body=b"x")
    reply = raw.request("HEAD", f"/{bucket}/there", secret_key=raw.gw.secret_key + "x")
    assert reply.status == 403
    assert reply.body == b""
    assert reply.headers.get("x-amz-request-id")


def test_revoked_key(raw: Client, s3, bucket: str) -> None:
    created = raw.gw.cli("key", "create", "admin", "--json")
    pair = json.loads(created.stdout)
    access, secret = pair["access_key"], pair["secret_key"]
    ok = raw.request("GET", f"/{bucket}", access_key=access, secret_key=secret)
    assert ok.status == 200, ok.body

    raw.gw.cli("key", "revoke", access)
    # The gateway may cache keys for a bounded time; 5 s is the most we accept.
    deadline = time.monotonic() + 5
    while True:
        reply = raw.request("GET", f"/{bucket}", access_key=access, secret_key=secret)
        if reply.status != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    s3_error(reply, "InvalidAccessKeyId", 403)

    key = new_key()
    reply = raw.request("PUT", f"/{bucket}/{key}", BODY, access_key=access, secret_key=secret)
    s3_error(reply, "InvalidAccessKeyId", 403)
    assert_absent(s3, bucket, key)


def presign(
    raw: Client, method: str, path: str, *, expires: int, when: dt.datetime | None = None
) -> str:
    """A presigned SigV4 URL (path and query) made by botocore's query signer."""
    creds = Credentials(raw.gw.access_key, raw.gw.secret_key)
    signer = S3SigV4QueryAuth(creds, "s3", REGION, expires=expires)
    request = AWSRequest(
        method=method, url=f"{raw.scheme}://{raw.netloc}{path}", headers={"Host": raw.netloc}
    )
    with _clock(when):
        signer.add_auth(request)
    url = urlsplit(request.url)
    return f"{url.path}?{url.query}"


def test_expired_presign(raw: Client, s3, bucket: str) -> None:
    key = new_key()
    s3.put_object(Bucket=bucket, Key=key, Body=b"readable")
    # Control: the same presign made now works, so only the expiry can refuse the next ones.
    fresh = raw.send("GET", presign(raw, "GET", f"/{bucket}/{key}", expires=300), {})
    assert fresh.status == 200 and fresh.body == b"readable", fresh.body

    two_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    url = presign(raw, "GET", f"/{bucket}/{key}", expires=60, when=two_hours_ago)
    s3_error(raw.send("GET", url, {}), "AccessDenied", 403)

    other = new_key()
    url = presign(raw, "PUT", f"/{bucket}/{other}", expires=60, when=two_hours_ago)
    s3_error(raw.send("PUT", url, {}, BODY), "AccessDenied", 403)
    assert_absent(s3, bucket, other)


def presign_v2(raw: Client, method: str, path: str, *, expires: int) -> str:
    """A presigned SigV2 query URL (path and query), as boto3 and aws cli v1 make by default."""
    signer = HmacV1QueryAuth(Credentials(raw.gw.access_key, raw.gw.secret_key), expires=expires)
    request = AWSRequest(method=method, url=f"{raw.scheme}://{raw.netloc}{path}")
    signer.add_auth(request)
    url = urlsplit(request.url)
    return f"{url.path}?{url.query}"


def test_expired_presign_v2(raw: Client, s3, bucket: str) -> None:
    key = new_key()
    s3.put_object(Bucket=bucket, Key=key, Body=b"readable")
    fresh = raw.send("GET", presign_v2(raw, "GET", f"/{bucket}/{key}", expires=300), {})
    assert fresh.status == 200 and fresh.body == b"readable", fresh.body
    # A negative lifetime puts Expires an hour in the past.
    expired = presign_v2(raw, "GET", f"/{bucket}/{key}", expires=-3600)
    s3_error(raw.send("GET", expired, {}), "AccessDenied", 403)


@pytest.mark.parametrize("minutes", [-20, 20])
def test_clock_skew(raw: Client, s3, bucket: str, minutes: int) -> None:
    key = new_key()
    when = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    reply = raw.request("PUT", f"/{bucket}/{key}", BODY, when=when)
    s3_error(reply, "RequestTimeTooSkewed", 403)
    assert_absent(s3, bucket, key)


# --------------------------------------------------------------------------------------------
# Signed chunks and broken bodies

CHUNKS = [secrets.token_bytes(64 * 1024), secrets.token_bytes(64 * 1024), b"tail" * 1000]


def chunked_upload(
    raw: Client, path: str, chunks: list[bytes], *, corrupt: int | None = None
) -> tuple[dict[str, str], bytes]:
    """Headers and an aws-chunked body with signed chunks (one signature flipped if asked)."""
    decoded = sum(len(c) for c in chunks)
    pieces = [*chunks, b""]  # the final zero-length chunk is signed too
    # Chunk headers have a fixed size, so the encoded length is known before signing.
    encoded = sum(len(f"{len(p):x};chunk-signature=") + 64 + 2 + len(p) + 2 for p in pieces)
    signed = raw.sign(
        "PUT",
        path,
        payload_hash=STREAMING,
        headers={
            "Content-Encoding": "aws-chunked",
            "X-Amz-Decoded-Content-Length": str(decoded),
            "Content-Length": str(encoded),
        },
    )
    body = bytearray()
    previous = signed.seed_signature
    for index, piece in enumerate(pieces):
        signature = signed.chunk_signature(previous, piece)
        sent = signature
        if index == corrupt:
            sent = signature[:-1] + ("0" if signature[-1] != "0" else "1")
        body += f"{len(piece):x};chunk-signature={sent}\r\n".encode() + piece + b"\r\n"
        previous = signature
    assert len(body) == encoded
    return signed.headers, bytes(body)


def test_signed_chunks_control(raw: Client, s3, bucket: str) -> None:
    """The hand-built aws-chunked upload is accepted, so the corrupted ones fail for cause."""
    key = new_key()
    headers, body = chunked_upload(raw, f"/{bucket}/{key}", CHUNKS)
    reply = raw.send("PUT", f"/{bucket}/{key}", headers, body)
    assert reply.status == 200, reply.body
    got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert got == b"".join(CHUNKS)


@pytest.mark.parametrize("corrupt", [0, 1, 3], ids=["first", "middle", "final"])
def test_bad_chunk_signature(raw: Client, s3, bucket: str, corrupt: int) -> None:
    key = new_key()
    headers, body = chunked_upload(raw, f"/{bucket}/{key}", CHUNKS, corrupt=corrupt)
    reply = raw.send("PUT", f"/{bucket}/{key}", headers, body)
    s3_error(reply, "SignatureDoesNotMatch", 403)
    assert_absent(s3, bucket, key)


def _send_and_hang_up(raw: Client, head: bytes, partial_body: bytes) -> None:
    """Send a request head and part of its body over a raw socket, then close the socket."""
    sock = socket.create_connection((raw.host, raw.port), timeout=30)
    if raw.ssl_context is not None:
        sock = raw.ssl_context.wrap_socket(sock, server_hostname=raw.host)
    try:
        sock.sendall(head + partial_body)
    finally:
        sock.close()


def _request_head(method: str, path: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    "shape", ["raw-body", "chunked-mid-chunk", "chunked-no-final-chunk", "http-chunked-trailer"]
)
def test_truncated_body(raw: Client, s3, bucket: str, shape: str) -> None:
    key = new_key()
    path = f"/{bucket}/{key}"
    if shape == "raw-body":
        data = secrets.token_bytes(1 << 20)
        signed = raw.sign(
            "PUT", path, payload_hash="UNSIGNED-PAYLOAD", headers={"Content-Length": str(len(data))}
        )
        headers, partial = signed.headers, data[: len(data) // 2]
    elif shape == "http-chunked-trailer":
        # boto3's HTTPS form: no Content-Length at all, so only the framing says it is cut short.
        data = secrets.token_bytes(1 << 20)
        headers, body = trailer_upload(
            raw, path, data, CHECKSUMS["crc32"](data), signed=False, length=False
        )
        headers = {**headers, "Transfer-Encoding": "chunked"}
        partial = http_chunk(body)[: len(body) // 2]
    else:
        headers, body = chunked_upload(raw, path, CHUNKS)
        if shape == "chunked-mid-chunk":
            partial = body[: len(body) // 2]
        else:
            # Every data chunk arrives whole; only the signed zero-length final chunk is missing.
            partial = body[: body.rindex(b"\r\n0;chunk-signature=") + 2]
    _send_and_hang_up(raw, _request_head("PUT", path, headers), partial)
    # The server learns of the hang-up asynchronously: watch for a while that nothing appears.
    for _ in range(10):
        assert_absent(s3, bucket, key)
        time.sleep(0.1)
    # The gateway is still serving.
    assert raw.request("GET", f"/{bucket}").status == 200


# --------------------------------------------------------------------------------------------
# Checksums and digests


def _b64(raw_digest: bytes) -> str:
    return base64.b64encode(raw_digest).decode()


CHECKSUMS: dict[str, Callable[[bytes], str]] = {
    "crc32": lambda d: _b64(zlib.crc32(d).to_bytes(4, "big")),
    "crc32c": lambda d: _b64(crt_checksums.crc32c(d).to_bytes(4, "big")),
    "crc64nvme": lambda d: _b64(crt_checksums.crc64nvme(d).to_bytes(8, "big")),
    "sha1": lambda d: _b64(hashlib.sha1(d).digest()),
    "sha256": lambda d: _b64(hashlib.sha256(d).digest()),
}


@pytest.mark.parametrize("algorithm", list(CHECKSUMS))
def test_checksum_control(raw: Client, s3, bucket: str, algorithm: str) -> None:
    """A correct checksum header is accepted (so the mismatch test fails for cause)."""
    key = new_key()
    headers = {f"x-amz-checksum-{algorithm}": CHECKSUMS[algorithm](BODY)}
    reply = raw.request("PUT", f"/{bucket}/{key}", BODY, headers=headers)
    assert reply.status == 200, reply.body
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == BODY


@pytest.mark.parametrize("algorithm", list(CHECKSUMS))
def test_checksum_mismatch(raw: Client, s3, bucket: str, algorithm: str) -> None:
    key = new_key()
    headers = {f"x-amz-checksum-{algorithm}": CHECKSUMS[algorithm](b"some other bytes")}
    reply = raw.request("PUT", f"/{bucket}/{key}", BODY, headers=headers)
    s3_error(reply, "BadDigest", 400)
    assert_absent(s3, bucket, key)


def test_content_md5_mismatch(raw: Client, s3, bucket: str) -> None:
    key = new_key()
    headers = {"Content-MD5": _b64(hashlib.md5(b"some other bytes").digest())}
    reply = raw.request("PUT", f"/{bucket}/{key}", BODY, headers=headers)
    s3_error(reply, "BadDigest", 400)
    assert_absent(s3, bucket, key)


@pytest.mark.parametrize(
    "value", ["not base64!", _b64(b"fifteen bytes!!"), hashlib.md5(BODY).hexdigest()]
)
def test_content_md5_malformed(raw: Client, s3, bucket: str, value: str) -> None:
    key = new_key()
    reply = raw.request("PUT", f"/{bucket}/{key}", BODY, headers={"Content-MD5": value})
    s3_error(reply, "InvalidDigest", 400)
    assert_absent(s3, bucket, key)


def test_content_sha256_mismatch(raw: Client, s3, bucket: str) -> None:
    key = new_key()
    claimed = hashlib.sha256(b"some other bytes").hexdigest()
    reply = raw.request("PUT", f"/{bucket}/{key}", BODY, payload_hash=claimed)
    s3_error(reply, "XAmzContentSHA256Mismatch", 400)
    assert_absent(s3, bucket, key)


def trailer_upload(
    raw: Client,
    path: str,
    data: bytes,
    checksum: str,
    *,
    signed: bool,
    length: bool = True,
    corrupt_trailer_signature: bool = False,
) -> tuple[dict[str, str], bytes]:
    """An aws-chunked body whose x-amz-checksum-crc32 arrives as a trailer.

    ``signed`` picks STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER (chunks and trailer signed)
    over STREAMING-UNSIGNED-PAYLOAD-TRAILER. Without ``length`` the request carries no
    Content-Length (the caller sends it HTTP-chunked, like boto3 over HTTPS).
    """
    trailer = f"x-amz-checksum-crc32:{checksum}".encode()
    chunks = [data[i : i + 64 * 1024] for i in range(0, len(data), 64 * 1024)]
    headers = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(data)),
        "X-Amz-Trailer": "x-amz-checksum-crc32",
    }
    if not signed:
        body = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks)
        body += b"0\r\n" + trailer + b"\r\n\r\n"
        if length:
            headers["Content-Length"] = str(len(body))
        sig = raw.sign("PUT", path, payload_hash=UNSIGNED_TRAILER, headers=headers)
        return sig.headers, body

    # Signed: the encoded length is fixed by the signature sizes, so compute it first.
    pieces = [*chunks, b""]
    encoded = sum(len(f"{len(p):x};chunk-signature=") + 64 + 2 + len(p) + 2 for p in pieces)
    encoded -= 2  # the final chunk's data CRLF is replaced by the trailer section
    encoded += len(trailer) + 2 + len("x-amz-trailer-signature:") + 64 + 2 + 2
    if length:
        headers["Content-Length"] = str(encoded)
    sig = raw.sign("PUT", path, payload_hash=STREAMING + "-TRAILER", headers=headers)
    out = bytearray()
    previous = sig.seed_signature
    for piece in pieces:
        previous = sig.chunk_signature(previous, piece)
        out += f"{len(piece):x};chunk-signature={previous}\r\n".encode() + piece
        if piece:
            out += b"\r\n"
    trailer_sig = sig.trailer_signature(previous, trailer + b"\n")
    if corrupt_trailer_signature:
        trailer_sig = trailer_sig[:-1] + ("0" if trailer_sig[-1] != "0" else "1")
    out += trailer + b"\r\n" + f"x-amz-trailer-signature:{trailer_sig}\r\n\r\n".encode()
    assert len(out) == encoded
    return sig.headers, bytes(out)


TRAILER_DATA = secrets.token_bytes(100 * 1024)
TRAILER_FORMS = [
    pytest.param(True, True, id="signed"),
    pytest.param(False, True, id="unsigned"),
    pytest.param(False, False, id="unsigned-http-chunked"),
]


@pytest.mark.parametrize(("signed", "length"), TRAILER_FORMS)
def test_trailer_control(raw: Client, s3, bucket: str, signed: bool, length: bool) -> None:
    """The hand-built trailer uploads are accepted, so the broken ones fail for cause."""
    key = new_key()
    good = CHECKSUMS["crc32"](TRAILER_DATA)
    headers, body = trailer_upload(
        raw, f"/{bucket}/{key}", TRAILER_DATA, good, signed=signed, length=length
    )
    reply = raw.send("PUT", f"/{bucket}/{key}", headers, body, http_chunked=not length)
    assert reply.status == 200, reply.body
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == TRAILER_DATA


@pytest.mark.parametrize(("signed", "length"), TRAILER_FORMS)
def test_trailer_checksum_mismatch(
    raw: Client, s3, bucket: str, signed: bool, length: bool
) -> None:
    key = new_key()
    wrong = CHECKSUMS["crc32"](b"some other bytes")
    headers, body = trailer_upload(
        raw, f"/{bucket}/{key}", TRAILER_DATA, wrong, signed=signed, length=length
    )
    reply = raw.send("PUT", f"/{bucket}/{key}", headers, body, http_chunked=not length)
    s3_error(reply, "BadDigest", 400)
    assert_absent(s3, bucket, key)


def test_bad_trailer_signature(raw: Client, s3, bucket: str) -> None:
    key = new_key()
    good = CHECKSUMS["crc32"](TRAILER_DATA)
    headers, body = trailer_upload(
        raw, f"/{bucket}/{key}", TRAILER_DATA, good, signed=True, corrupt_trailer_signature=True
    )
    reply = raw.send("PUT", f"/{bucket}/{key}", headers, body)
    s3_error(reply, "SignatureDoesNotMatch", 403)
    assert_absent(s3, bucket, key)


# --------------------------------------------------------------------------------------------
# Malformed XML

BAD_XML = [
    pytest.param(b"", id="empty"),
    pytest.param(b"this is not xml", id="not-xml"),
    pytest.param(b"<CompleteMultipartUpload><Part><PartNumber>1", id="truncated"),
    pytest.param(b"<Delete><Object><Key>a</Key></Object></Wrong>", id="mismatched-tags"),
]


@pytest.mark.parametrize("body", BAD_XML)
def test_malformed_complete_multipart(raw: Client, s3, bucket: str, body: bytes) -> None:
    key = new_key()
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"part one")
    reply = raw.request("POST", f"/{bucket}/{key}", body, query={"uploadId": upload})
    s3_error(reply, "MalformedXML", 400)
    assert_absent(s3, bucket, key)
    # A refused Complete leaves the upload in flight, as S3 does.
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1]
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)


@pytest.mark.parametrize("body", BAD_XML)
def test_malformed_delete_objects(raw: Client, s3, bucket: str, body: bytes) -> None:
    keys = ["keep/a", "keep/b"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"stay")
    headers = {"Content-MD5": _b64(hashlib.md5(body).digest())}
    reply = raw.request("POST", f"/{bucket}", body, query={"delete": ""}, headers=headers)
    s3_error(reply, "MalformedXML", 400)
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == keys


# --------------------------------------------------------------------------------------------
# Names

INVALID_BUCKETS = [
    "AB",
    "a",
    "-abc",
    "abc-",
    "192.168.1.1",
    "_bucket",
    "UpperCase",
    "ab..cd",
    "x" * 64,
    "under_score",
]


@pytest.mark.parametrize("name", INVALID_BUCKETS)
def test_invalid_bucket_name_create(raw: Client, s3, name: str) -> None:
    reply = raw.request("PUT", f"/{name}")
    s3_error(reply, "InvalidBucketName", 400)
    assert name not in bucket_names(s3)


@pytest.mark.parametrize("name", ["AB", "-abc", "192.168.1.1", "_bucket"])
def test_invalid_bucket_name_put_object(raw: Client, s3, name: str) -> None:
    reply = raw.request("PUT", f"/{name}/key", BODY)
    s3_error(reply, "InvalidBucketName", 400)
    assert name not in bucket_names(s3)


def test_reserved_ui_namespace_is_no_bucket(raw: Client, s3) -> None:
    """``/_minimo`` belongs to the UI: a signed CreateBucket there never makes a bucket."""
    reply = raw.request("PUT", "/_minimo")
    assert reply.status >= 400, reply.body
    assert b"Traceback" not in reply.body
    assert "_minimo" not in bucket_names(s3)


# (wire path, decoded key): what a client sends and the key the server must refuse.
DOT_KEYS = [
    pytest.param("a/../k", id="dotdot-middle"),
    pytest.param("../k", id="dotdot-first"),
    pytest.param("a/..", id="dotdot-last"),
    pytest.param("a/%2E%2E/k", id="dotdot-encoded"),
    pytest.param("%2e%2e/%2e%2e/etc/passwd", id="dotdot-encoded-lower"),
    pytest.param("a/./k", id="dot"),
]


@pytest.mark.parametrize("wire_key", DOT_KEYS)
def test_dot_segment_keys_refused(raw: Client, s3, bucket: str, wire_key: str) -> None:
    before = bucket_names(s3)
    reply = raw.request("PUT", f"/{bucket}/{wire_key}", BODY)
    s3_error(reply, "InvalidObjectName", 400)
    assert_bucket_empty(s3, bucket)
    # Nothing escaped into a neighbouring bucket either (``/b/../k`` must not become ``/k``).
    assert bucket_names(s3) == before


def test_dot_segments_cannot_read_another_bucket(raw: Client, s3, bucket: str) -> None:
    other = f"t-{secrets.token_hex(6)}"
    s3.create_bucket(Bucket=other)
    s3.put_object(Bucket=other, Key="secret", Body=b"not for you")
    reply = raw.request("GET", f"/{bucket}/../{other}/secret")
    s3_error(reply, "InvalidObjectName", 400)
    assert b"not for you" not in reply.body


def _long_key(unit: str, min_bytes: int) -> str:
    """A key of more than ``min_bytes`` UTF-8 bytes, in segments a filesystem could hold."""
    segment = unit * (100 // len(unit.encode()))
    parts: list[str] = []
    while len("/".join(parts).encode()) <= min_bytes:
        parts.append(segment)
    return "/".join(parts)


@pytest.mark.parametrize("unit", ["k", "é", "😀"], ids=["ascii", "two-byte", "four-byte"])
def test_key_too_long(raw: Client, s3, bucket: str, unit: str) -> None:
    key = _long_key(unit, 1024)
    assert len(key.encode()) > 1024
    reply = raw.request("PUT", f"/{bucket}/{quote(key, safe='/')}", BODY)
    s3_error(reply, "KeyTooLongError", 400)
    assert_bucket_empty(s3, bucket)


def test_key_of_1024_bytes_accepted(raw: Client, s3, bucket: str) -> None:
    """The limit is exactly 1024 bytes: the longest legal key is stored."""
    key = _long_key("k", 900)
    key = key + "/" + "k" * (1024 - len(key) - 1)
    assert len(key.encode()) == 1024
    reply = raw.request("PUT", f"/{bucket}/{key}", BODY)
    assert reply.status == 200, reply.body
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(BODY)


# --------------------------------------------------------------------------------------------
# Headers and lengths

OVERSIZED = [
    pytest.param({"x-amz-meta-big": "m" * 20 * 1024}, id="one-20KiB-meta-header"),
    pytest.param({f"x-amz-meta-m{i}": "m" * 512 for i in range(40)}, id="40-meta-headers"),
    pytest.param({f"x-pad-{i}": "p" * 512 for i in range(40)}, id="20KiB-of-headers"),
]


@pytest.mark.parametrize("headers", OVERSIZED)
def test_oversized_headers(raw: Client, s3, bucket: str, headers: dict[str, str]) -> None:
    key = new_key()
    reply = raw.request("PUT", f"/{bucket}/{key}", BODY, headers=headers)
    s3_error(reply, {"MetadataTooLarge", "RequestHeaderSectionTooLarge"}, 400)
    assert_absent(s3, bucket, key)


def test_metadata_over_2KiB(raw: Client, s3, bucket: str) -> None:
    """S3 caps user metadata at 2 KiB even when the header section itself is small."""
    key = new_key()
    headers = {f"x-amz-meta-m{i}": "m" * 1000 for i in range(3)}
    reply = raw.request("PUT", f"/{bucket}/{key}", BODY, headers=headers)
    s3_error(reply, "MetadataTooLarge", 400)
    assert_absent(s3, bucket, key)


def test_put_without_length(raw: Client, s3, bucket: str) -> None:
    key = new_key()
    signed = raw.sign("PUT", f"/{bucket}/{key}", payload_hash="UNSIGNED-PAYLOAD")
    reply = raw.send("PUT", f"/{bucket}/{key}", signed.headers, None, content_length=False)
    s3_error(reply, "MissingContentLength", 411)
    assert_absent(s3, bucket, key)


def test_put_http_chunked_without_decoded_length(raw: Client, s3, bucket: str) -> None:
    """Plain HTTP chunking gives no length up front; S3 wants one (x-amz-decoded-content-length)."""
    key = new_key()
    signed = raw.sign("PUT", f"/{bucket}/{key}", payload_hash="UNSIGNED-PAYLOAD")
    reply = raw.send("PUT", f"/{bucket}/{key}", signed.headers, BODY, http_chunked=True)
    s3_error(reply, "MissingContentLength", 411)
    assert_absent(s3, bucket, key)


def test_upload_part_without_length(raw: Client, s3, bucket: str) -> None:
    key = new_key()
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    query = {"partNumber": "1", "uploadId": upload}
    signed = raw.sign("PUT", f"/{bucket}/{key}", query=query, payload_hash="UNSIGNED-PAYLOAD")
    reply = raw.send(
        "PUT", f"/{bucket}/{key}", signed.headers, None, query=query, content_length=False
    )
    s3_error(reply, "MissingContentLength", 411)
    assert s3.list_parts(Bucket=bucket, Key=key, UploadId=upload).get("Parts", []) == []
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)


@pytest.mark.parametrize("number", ["\u00b2", "9" * 5000])
def test_numbers_int_cannot_read(raw: Client, s3, bucket: str, number: str) -> None:
    """A "²" passes str.isdigit() but not int(), nor do 5000 digits (int's limit is 4300):
    presign lifetimes and SigV2's Expires answered 500."""
    key = new_key()
    s3.put_object(Bucket=bucket, Key=key, Body=b"readable")
    v4 = presign(raw, "GET", f"/{bucket}/{key}", expires=300).replace(
        "X-Amz-Expires=300", "X-Amz-Expires=" + quote(number)
    )
    s3_error(raw.send("GET", v4, {}), "AuthorizationQueryParametersError", 400)
    path, _, query = presign_v2(raw, "GET", f"/{bucket}/{key}", expires=300).partition("?")
    params = [(k, number if k == "Expires" else v) for k, v in parse_qsl(query)]
    v2 = f"{path}?{urlencode(params)}"
    s3_error(raw.send("GET", v2, {}), "AccessDenied", 403)
