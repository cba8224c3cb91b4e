"""The benchmark's S3 client: as little work per byte and per request as Python allows.

Every target gets exactly the same client, so ratios compare servers, not clients:

* large objects go through ``http.client`` on one blocking socket: a PUT body is one in-memory
  1 MiB block sent again and again with ``sendall`` (no file reads, no hashing), a GET body is
  read with ``readinto`` into one reused buffer and dropped. Nothing is held whole in memory.
* small objects go through an aiohttp client on uvloop with a bounded pool of workers.

Requests are signed with SigV4 and ``UNSIGNED-PAYLOAD`` (``gateway.protocol.sigv4.sign_request``),
so the
client never hashes payloads; the bare server ignores the signature.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from gateway.protocol.sigv4 import UNSIGNED_PAYLOAD, sign_request

BLOCK = 1 << 20
REGION = "us-east-1"


class BenchError(RuntimeError):
    """A request the benchmark relies on failed; the message carries the server's answer."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a target listens and the credentials it accepts."""

    url: str
    access_key: str
    secret_key: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80

    def signed_headers(
        self, method: str, path: str, extra: dict[str, str] | None = None
    ) -> dict[str, str]:
        """Headers for one request, signed for UNSIGNED-PAYLOAD (``extra`` is signed too)."""
        headers = dict(extra or {})
        return sign_request(
            method=method,
            raw_path=path,
            query=[],
            headers=headers,
            payload_hash=UNSIGNED_PAYLOAD,
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=REGION,
            host=self.host,
        )


def _connect(ep: Endpoint) -> http.client.HTTPConnection:
    # The timeout only stops a hung server; a 5 GiB PUT answers well within it (fsync included).
    conn = http.client.HTTPConnection(ep.host.split(":")[0], ep.port, timeout=120)
    conn.connect()
    return conn


def _send_headers(
    conn: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str]
) -> None:
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()


def _check(resp: http.client.HTTPResponse, what: str, ok: tuple[int, ...] = (200,)) -> None:
    if resp.status not in ok:
        body = resp.read(4096).decode(errors="replace")
        raise BenchError(f"{what}: HTTP {resp.status}: {body}")


def _raise_early_answer(conn: http.client.HTTPConnection, what: str, exc: OSError) -> None:
    try:
        resp = conn.getresponse()
        body = resp.read(4096).decode(errors="replace")
    except (OSError, http.client.HTTPException):
        raise BenchError(f"{what}: connection lost: {exc!r}") from exc
    raise BenchError(f"{what}: HTTP {resp.status} before the body was sent: {body}") from exc


def request(ep: Endpoint, method: str, path: str, ok: tuple[int, ...] = (200, 204)) -> None:
    """A bodiless request (create bucket, delete object) that must succeed."""
    conn = _connect(ep)
    try:
        headers = ep.signed_headers(method, path, {"content-length": "0"})
        _send_headers(conn, method, path, headers)
        resp = conn.getresponse()
        _check(resp, f"{method} {path}", ok)
        resp.read()
    finally:
        conn.close()


def make_block() -> bytes:
    """Random bytes, so nothing on the way could get a free ride from compression."""
    return os.urandom(BLOCK)


def put_large(ep: Endpoint, path: str, size: int, block: bytes) -> float:
    """PUT ``size`` bytes made of ``block`` repeated; returns the seconds it took."""
    conn = _connect(ep)
    view = memoryview(block)
    try:
        headers = ep.signed_headers("PUT", path)
        headers["content-length"] = str(size)
        headers["content-type"] = "application/octet-stream"
        start = time.perf_counter()
        _send_headers(conn, "PUT", path, headers)
        sent = 0
        try:
            while sent < size:
                n = min(len(view), size - sent)
                conn.send(view[:n])
                sent += n
        except (BrokenPipeError, ConnectionResetError) as exc:
            # A server refusing the upload answers early and closes: report its answer.
            _raise_early_answer(conn, f"PUT {path} after {sent} bytes", exc)
        resp = conn.getresponse()
        _check(resp, f"PUT {path}")
        resp.read()
        return time.perf_counter() - start
    finally:
        conn.close()


def get_large(ep: Endpoint, path: str, expected: int) -> float:
    """GET an object, dropping its bytes; returns the seconds it took."""
    conn = _connect(ep)
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    try:
        headers = ep.signed_headers("GET", path)
        start = time.perf_counter()
        _send_headers(conn, "GET", path, headers)
        resp = conn.getresponse()
        _check(resp, f"GET {path}")
        received = 0
        while True:
            n = resp.readinto(view)
            if not n:
                break
            received += n
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    if received != expected:
        raise BenchError(f"GET {path}: received {received} bytes, expected {expected}")
    return elapsed


@dataclass(slots=True)
class OpsResult:
    ops: int
    errors: int
    seconds: float
    first_error: str | None = None

    @property
    def per_second(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0


async def _small_ops(
    ep: Endpoint,
    method: str,
    prefix: str,
    count: int,
    max_seconds: float,
    concurrency: int,
    body: bytes,
) -> OpsResult:
    """Run up to ``count`` requests (stopping after ``max_seconds``) with ``concurrency`` workers.

    Keys are ``prefix + index``, so a GET run after a PUT run of the same count finds them all.
    """
    next_index = 0
    done = errors = 0
    first_error: str | None = None
    deadline = time.perf_counter() + max_seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_index, done, errors, first_error
        while next_index < count and time.perf_counter() < deadline:
            path = f"{prefix}{next_index}"
            next_index += 1
            headers = ep.signed_headers(method, path)
            data = body if method == "PUT" else None
            try:
                async with session.request(method, ep.url + path, data=data, headers=headers) as r:
                    payload = await r.read()
                    ok = r.status == 200 and (method == "PUT" or len(payload) == len(body))
                    if not ok and first_error is None:
                        first_error = f"{method} {path}: HTTP {r.status}: {payload[:300]!r}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                ok = False
                first_error = first_error or f"{method} {path}: {exc!r}"
            done += 1
            errors += not ok

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, skip_auto_headers=["Content-Type"]
    ) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return OpsResult(done, errors, elapsed, first_error)


def small_ops(
    ep: Endpoint,
    method: str,
    prefix: str,
    *,
    count: int,
    max_seconds: float,
    concurrency: int,
    body: bytes,
) -> OpsResult:
    """Blocking wrapper around the small-object loop, on uvloop like the servers."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    return runner(_small_ops(ep, method, prefix, count, max_seconds, concurrency, body))
