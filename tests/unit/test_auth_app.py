"""A tiny real S3-ish server for auth tests, and the checks that it answers like one.

:class:`AuthServer` runs an aiohttp app on 127.0.0.1 (HTTP or HTTPS with a throw-away
certificate) in a background thread, so synchronous clients (boto3, urllib3, raw sockets) can
talk to it. Its one handler does what the gateway's front end does with a request:
``authenticate`` + ``request_body``, reads the body like a backend would, and records what it
saw (principal, payload hash, decoded bytes, digests, or the S3 error and how many bytes had
been handed out before it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import ssl
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import urllib3
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.protocol.errors import S3Error
from gateway.s3api.auth import authenticate
from gateway.s3api.body import request_body, require_length
from policy.principal import Credential, Principal, Role

REGION = "us-east-1"
ACCESS = "AKIDTESTADMIN"
SECRET = "secret/with+odd=chars-0123456789"
READER_ACCESS = "AKIDTESTREADER"
READER_SECRET = "reader-secret"
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
GET_BODY = b"hello from the auth test server\n"


class DictIdentity:
    """The Identity interface over a dict; ``revoke`` makes a key unknown."""

    def __init__(self) -> None:
        self.keys = {
            ACCESS: Credential(ACCESS, SECRET, Principal("alice", Role.ADMIN, ACCESS)),
            READER_ACCESS: Credential(
                READER_ACCESS, READER_SECRET, Principal("rita", Role.READER, READER_ACCESS)
            ),
        }

    async def credential(self, access_key: str) -> Credential | None:
        return self.keys.get(access_key)

    def revoke(self, access_key: str) -> None:
        self.keys.pop(access_key, None)


@dataclass
class Seen:
    """What the handler observed for one request."""

    method: str
    path: str
    user: str | None = None
    auth_method: str | None = None
    payload_hash: str | None = None
    size: int | None = None
    data: bytes = b""
    md5_hex: str | None = None
    sha256_hex: str | None = None
    checksums: dict[str, str] = field(default_factory=dict)
    trailers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    message: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def error_xml(err: S3Error) -> bytes:
    extra = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in err.extra.items())
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{err.code}</Code>'
        f"<Message>{escape(err.message)}</Message>{extra}<RequestId>test</RequestId></Error>"
    ).encode()


class AuthServer:
    def __init__(self, *, tls_dir: Path | None = None) -> None:
        self.identity = DictIdentity()
        self.now: dt.datetime | None = None
        self.domain: str | None = None
        self.seen: list[Seen] = []
        self.cert_file: Path | None = None
        self._ssl: ssl.SSLContext | None = None
        if tls_dir is not None:
            self.cert_file, key_file = make_certificate(tls_dir)
            self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ssl.load_cert_chain(self.cert_file, key_file)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"{'https' if self._ssl else 'http'}://127.0.0.1:{self.port}"

    @property
    def last(self) -> Seen:
        return self.seen[-1]

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(request.method, request.path)
        self.seen.append(seen)
        try:
            auth = await authenticate(
                request, self.identity, region=REGION, now=self.now, domain=self.domain
            )
            seen.user = auth.principal.user if auth.principal else None
            seen.auth_method = auth.method
            seen.payload_hash = auth.payload_hash
            body = request_body(request, auth, sha256=True)
            seen.size = body.size
            if request.method == "PUT":
                require_length(body)
            async for piece in body:
                seen.data += piece
            seen.md5_hex, seen.sha256_hex = body.md5_hex, body.sha256_hex
            seen.checksums, seen.trailers = body.checksums, body.trailers
        except S3Error as err:
            seen.error, seen.message, seen.extra = err.code, err.message, err.extra
            text = b"" if request.method == "HEAD" else error_xml(err)
            return web.Response(status=err.status, body=text, content_type="application/xml")
        except Exception:
            # a traceback must never be the answer: make it loud in the test
            seen.error, seen.message = "Traceback", traceback.format_exc()
            print(seen.message)
            return web.Response(status=500, text=seen.message)
        headers = {"ETag": f'"{seen.md5_hex}"', "x-test-user": seen.user or "-"}
        bucket_level = request.path.strip("/").count("/") == 0
        if request.method == "GET" and bucket_level:  # what boto3 parses for a listing
            return web.Response(body=f"<ListBucketResult {NS}/>".encode(), headers=headers)
        if request.method == "POST":
            return web.Response(body=f"<DeleteResult {NS}/>".encode(), headers=headers)
        if request.method in ("GET", "HEAD"):
            return web.Response(body=GET_BODY, headers=headers)
        return web.Response(body=b"", headers=headers)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for 127.0.0.1 and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minimo auth tests")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(name="server")
def server_fixture() -> Iterator[AuthServer]:
    srv = AuthServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(name="tls_server")
def tls_server_fixture(tmp_path: Path) -> Iterator[AuthServer]:
    srv = AuthServer(tls_dir=tmp_path / "certs")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def send(
    srv: AuthServer,
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    chunked: bool = False,
) -> urllib3.BaseHTTPResponse:
    """Send one request exactly as given (urllib3 adds only Host and, if needed, lengths)."""
    kwargs: dict[str, Any] = {}
    if srv.cert_file is not None:
        kwargs = {"cert_reqs": "CERT_REQUIRED", "ca_certs": str(srv.cert_file)}
    with urllib3.PoolManager(retries=False, **kwargs) as pool:
        return pool.request(
            method,
            srv.endpoint + path,
            body=body,
            headers=headers or {},
            chunked=chunked,
            preload_content=True,
        )


def test_anonymous_request_is_anonymous(server: AuthServer) -> None:
    response = send(server, "GET", "/bucket/key")
    assert response.status == 200
    assert server.last.user is None
    assert server.last.auth_method == "anonymous"


def test_unknown_authorization_scheme_is_access_denied(server: AuthServer) -> None:
    response = send(server, "GET", "/bucket", headers={"Authorization": "Bearer abc"})
    assert response.status == 403
    assert b"<Code>AccessDenied</Code>" in response.data


def test_body_digests_are_exposed(server: AuthServer) -> None:
    payload = b"x" * 300_000
    response = send(server, "PUT", "/bucket/key", body=payload)
    assert response.status == 200
    assert server.last.data == payload
    assert server.last.md5_hex == hashlib.md5(payload).hexdigest()
    assert server.last.sha256_hex == hashlib.sha256(payload).hexdigest()


def test_large_body_digests_in_order(server: AuthServer) -> None:
    """Enough pieces that hashing runs on worker threads with a backlog: order must hold."""
    payload = b"".join(i.to_bytes(4, "big") * 65536 for i in range(64))  # 16 MiB, no repeats
    response = send(server, "PUT", "/bucket/key", body=payload)
    assert response.status == 200, server.last.message
    assert server.last.md5_hex == hashlib.md5(payload).hexdigest()
    assert server.last.sha256_hex == hashlib.sha256(payload).hexdigest()
    assert server.last.data == payload


def test_digest_pipeline_keeps_order_under_backlog() -> None:
    from gateway.s3api.body import THREAD_MIN, _Digests, _Pipeline

    pieces = [bytes([i]) * (THREAD_MIN + i) for i in range(60)] + [b"small", b"tail"]

    async def run() -> _Digests:
        digests = _Digests(md5=True, sha256=True, algorithms={"crc32c"})
        pipeline = _Pipeline(digests)
        for piece in pieces:
            await pipeline.feed(piece)
        await pipeline.drain()
        return digests

    digests = asyncio.run(run())
    whole = b"".join(pieces)
    assert digests.md5 is not None and digests.md5.hexdigest() == hashlib.md5(whole).hexdigest()
    assert digests.sha256 is not None
    assert digests.sha256.hexdigest() == hashlib.sha256(whole).hexdigest()
