"""Large GETs leave from the kernel side (gateway/s3api/sendfile.py): sendfile(2) from the local
backend's files, splice(2) from the s3 backend's upstream socket.

The byte-for-byte and range checks live in test_s3_api.py; these cover what only the sendfile
path can get wrong: clients that vanish mid-body (no descriptor may stay open, the server must
keep serving) and keep-alive reuse of a connection right after such a body. Over HTTPS the
copy path serves the same requests (TLS cannot use either).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import secrets
import socket
import ssl
import time
from urllib.parse import urlsplit

import pytest

from gateway.protocol.sigv4 import UNSIGNED_PAYLOAD, sign_request
from tests.servers import Gateway

pytestmark = pytest.mark.parametrize(
    "gateway", ["local-http", "local-https", "s3-http", "s3-https"], indirect=True
)

MiB = 1 << 20
SIZE = 24 * MiB + 5


def _headers(gw: Gateway, path: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return sign_request(
        method="GET",
        raw_path=path,
        query=[],
        headers=dict(extra or {}),
        payload_hash=UNSIGNED_PAYLOAD,
        access_key=gw.access_key,
        secret_key=gw.secret_key,
        region="us-east-1",
        host=urlsplit(gw.endpoint).netloc,
    )


def _context(gw: Gateway) -> ssl.SSLContext | None:
    if not gw.endpoint.startswith("https"):
        return None
    return ssl.create_default_context(cafile=str(gw.ca_file))


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def big(s3, bucket: str) -> tuple[str, bytes]:
    body = secrets.token_bytes(SIZE)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=body)
    return f"/{bucket}/big.bin", body


def test_clients_leaving_mid_body(gateway: Gateway, big: tuple[str, bytes]) -> None:
    path, body = big
    url = urlsplit(gateway.endpoint)
    before = _open_fds(gateway.proc.pid)
    for i in range(8):
        raw = socket.create_connection((url.hostname, url.port))
        ctx = _context(gateway)
        sock = ctx.wrap_socket(raw, server_hostname=url.hostname) if ctx else raw
        head = "".join(f"{k}: {v}\r\n" for k, v in _headers(gateway, path).items())
        sock.sendall(f"GET {path} HTTP/1.1\r\n{head}\r\n".encode())
        got = 0
        while got < (i % 3 + 1) * MiB:
            got += len(sock.recv(1 << 16))
        sock.close()  # gone with most of the body unsent
    # the server keeps serving, and every descriptor of those requests gets closed
    conn = _connection(gateway)
    conn.request("GET", path, headers=_headers(gateway, path))
    resp = conn.getresponse()
    assert resp.status == 200
    assert hashlib.sha256(resp.read()).digest() == hashlib.sha256(body).digest()
    conn.close()
    deadline = time.monotonic() + 10
    while _open_fds(gateway.proc.pid) > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _open_fds(gateway.proc.pid) <= before


def _connection(gw: Gateway) -> http.client.HTTPConnection:
    url = urlsplit(gw.endpoint)
    ctx = _context(gw)
    if ctx is not None:
        return http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=60)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=60)


def test_keep_alive_after_a_large_body(gateway: Gateway, big: tuple[str, bytes]) -> None:
    path, body = big
    conn = _connection(gateway)
    ranges = [None, "bytes=1000-9000000", "bytes=-300000", None]
    for spec in ranges:
        extra = {"range": spec} if spec else None
        conn.request("GET", path, headers=_headers(gateway, path, extra))
        resp = conn.getresponse()
        data = resp.read()
        if spec is None:
            assert resp.status == 200
            assert data == body
        elif spec.startswith("bytes=-"):
            assert resp.status == 206
            assert data == body[-300000:]
        else:
            assert resp.status == 206
            assert data == body[1000:9000001]
    # one connection served them all
    assert conn.sock is not None
    conn.close()
