"""The upstream HTTP layer: one pooled ``aiohttp.ClientSession`` to the S3 endpoint, requests
signed with the gateway's own credentials (path-style), a retry where it is safe, bodies
streamed out, and every failure turned into the S3 error the client gets
(:mod:`.upstream_errors`).

Time bounds: a connection attempt gives up after CONNECT_TIMEOUT seconds, and an upstream that
stops sending (no byte for READ_TIMEOUT seconds, counted from the end of the request body) is
cut off. Server-side copies and multipart completion may legitimately take long before the
first byte of the answer, so they wait up to SLOW_READ_TIMEOUT (:attr:`Upstream.slow_timeout`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp
from yarl import URL

from gateway.backends.base import Body, KeepChecksum
from gateway.backends.s3.chunked_feed import ChunkedFeed
from gateway.backends.s3.translate import bad_answer, parse_xml, validator_headers
from gateway.backends.s3.upstream_errors import (
    PASSED_5XX,
    STATUS_CODES,
    UPSTREAM_AUTH_CODES,
    error_from,
)
from gateway.protocol.checksums import HEADER_PREFIX
from gateway.protocol.errors import S3Error, S3ErrorCode, log_outage, store_unavailable
from gateway.protocol.sigv4 import (
    EMPTY_SHA256,
    STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
    sign_request,
    uri_encode,
)

#: aiohttp's per-connection read buffer: big enough to keep large GETs flowing, small enough
#: that 64 idle-but-full connections stay far below the RSS budget.
READ_BUFSIZE = 1 << 19
#: XML answers (listings, errors, multipart results) are small; refuse absurd ones.
MAX_XML_BYTES = 32 << 20
#: Error bodies are read only this far.
MAX_ERROR_BYTES = 64 << 10
#: Bodies up to this size are collected and sent in one piece (see ``Upstream.upload``).
SMALL_BODY = 128 << 10
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 30.0
SLOW_READ_TIMEOUT = 600.0
_RETRYABLE = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


class Upstream:
    """Signed requests to one S3 endpoint over a connection pool (:meth:`start` opens it)."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        slow_read_timeout: float,
        max_connections: int,
    ) -> None:
        url = URL(endpoint)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"S3 endpoint must be an http(s) URL, got {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        origin = url.origin()
        self._scheme = origin.scheme
        self._authority = origin.raw_authority
        self._host = url.host_port_subcomponent or url.host
        # an endpoint may live below a path (a reverse proxy); keys go below it
        self._base_path = url.raw_path.rstrip("/")
        self._access_key = access_key
        self._secret_key = secret_key
        self.region = region
        #: how long a relayed body may stall (the same limit aiohttp applies to reads)
        self.read_timeout_seconds = read_timeout
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        #: for copies and CompleteMultipartUpload, which answer only once the work is done
        self.slow_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=slow_read_timeout
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=0, keepalive_timeout=15
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,
            read_bufsize=READ_BUFSIZE,
            # whatever aiohttp would add is unsigned noise, and a default Content-Type would be
            # stored with objects whose client sent none
            skip_auto_headers=("User-Agent", "Content-Type", "Accept-Encoding"),
        )

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _url(
        self, bucket: str | None, key: str | None, query: list[tuple[str, str]]
    ) -> tuple[URL, str]:
        path = self._base_path + "/"
        if bucket:
            path += uri_encode(bucket, keep_slash=False)
            if key is not None:
                path += "/" + uri_encode(key, keep_slash=True)
        qs = "&".join(
            f"{uri_encode(k, keep_slash=False)}={uri_encode(v, keep_slash=False)}" for k, v in query
        )
        # encoded=True: yarl must neither re-quote nor normalise what is signed; built from its
        # parts, not parsed from a string (a fifth of the cost)
        url = URL.build(
            scheme=self._scheme,
            authority=self._authority,
            path=path,
            query_string=qs,
            encoded=True,
        )
        return url, path

    async def send(
        self,
        method: str,
        bucket: str | None = None,
        key: str | None = None,
        *,
        query: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        retry: bool = True,
        payload_hash: str | None = None,
    ) -> aiohttp.ClientResponse:
        """One signed request with an in-memory (small or empty) body; raises on S3 errors.

        A pooled keep-alive connection the upstream has just closed fails the first write;
        such requests carry no stream, so they are safely sent once more.
        """
        query = query or []
        if payload_hash is None:
            payload_hash = hashlib.sha256(data).hexdigest() if data else EMPTY_SHA256
        # POST (create, complete) is not idempotent: a repeat could start a second upload
        attempts = 2 if retry and method != "POST" else 1
        for attempt in range(attempts):
            try:
                resp = await self.request(
                    method, bucket, key, query, dict(headers or {}), payload_hash, data, timeout
                )
            except _Disconnected:
                if attempt + 1 < attempts:
                    continue
                raise
            break
        await self._raise_for_status(resp, method, bucket, key)
        return resp

    async def upload(
        self,
        method: str,
        bucket: str,
        key: str,
        body: Body,
        *,
        query: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        checksum: KeepChecksum | None = None,
    ) -> aiohttp.ClientResponse:
        """Stream ``body`` upstream; if it fails, the request is cut short and its error raised.

        ``checksum`` goes with the bytes (a header, or the trailer of a streamed body), so the
        upstream checks and keeps it."""
        if body.size is None:
            raise S3Error(S3ErrorCode.MissingContentLength, resource=f"/{bucket}/{key}")
        headers = dict(headers or {})
        if body.size <= SMALL_BODY:
            # Small bodies are collected first (bounded memory): one plain request is far
            # cheaper than a stream, and a body that fails never reaches the upstream at all.
            data = await _collect(body, body.size)
            headers["content-length"] = str(len(data))
            if checksum is not None:
                headers[HEADER_PREFIX + checksum.algorithm] = checksum.value()
            return await self.send(
                method,
                bucket,
                key,
                query=query,
                headers=headers,
                data=data,
                payload_hash=UNSIGNED_PAYLOAD,
            )
        feed = ChunkedFeed(body, body.size, checksum)
        headers["content-length"] = str(feed.encoded_length())
        headers["x-amz-decoded-content-length"] = str(body.size)
        headers["x-amz-trailer"] = feed.trailer
        # No "Content-Encoding: aws-chunked": x-amz-content-sha256 already says how the body is
        # framed, and versitygw would store that coding with the object.
        try:
            resp = await self.request(
                method, bucket, key, query or [], headers, STREAMING_UNSIGNED_TRAILER, feed, None
            )
        except S3Error:
            feed.reraise()
            raise
        feed.reraise()
        try:
            await self._raise_for_status(resp, method, bucket, key)
        except S3Error:
            feed.reraise()
            raise
        return resp

    async def request(
        self,
        method: str,
        bucket: str | None,
        key: str | None,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        payload_hash: str,
        data: Any,
        timeout: aiohttp.ClientTimeout | None,
    ) -> aiohttp.ClientResponse:
        session = self._session
        if session is None:
            raise RuntimeError("S3ObjectStore.start() was not called")
        url, path = self._url(bucket, key, query)
        sign_request(
            method=method,
            raw_path=path,
            query=query,
            headers=headers,
            payload_hash=payload_hash,
            access_key=self._access_key,
            secret_key=self._secret_key,
            region=self.region,
            host=self._host,
        )
        extra: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        try:
            return await session.request(
                method, url, headers=headers, data=data, allow_redirects=False, **extra
            )
        except aiohttp.ClientConnectorError as exc:  # never connected: nothing to retry
            raise self.unreachable(exc) from None
        except _RETRYABLE as exc:
            raise self.unreachable(exc, _Disconnected) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self.unreachable(exc) from None

    def unreachable(self, exc: BaseException, kind: type[S3Error] = S3Error) -> S3Error:
        """503 for the client (no address, no exception text); the detail goes to the log."""
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            detail = f"timed out ({detail})" if str(exc) else "timed out"
        log_outage("object", "unreachable", f"{self.endpoint}: {detail}")
        error = store_unavailable("object")
        if kind is S3Error:
            return error
        return kind(error.code, error.message, status=error.status, headers=error.headers)

    async def _raise_for_status(
        self, resp: aiohttp.ClientResponse, method: str, bucket: str | None, key: str | None
    ) -> None:
        if resp.status < 300:
            return
        resource = "/" + (bucket or "") + (f"/{key}" if key is not None else "")
        try:
            raw = b"" if method == "HEAD" else await _read_capped(resp, MAX_ERROR_BYTES)
        except S3Error:
            raw = b""
        finally:
            resp.close()
        error = error_from(raw, resp.status, resource)
        if error is None:
            error = await self._status_error(resp, method, bucket, key, resource)
        if error.code == S3ErrorCode.NotModified:
            error.headers.update(validator_headers(resp.headers))
        if error.code in UPSTREAM_AUTH_CODES:
            log_outage(
                "object",
                "refused the gateway's credentials",
                f"{self.endpoint} answered {error.code}: {error.message}. Check the "
                "--s3-access-key, --s3-secret-key and --s3-region settings and the clock.",
            )
            error = store_unavailable("object")
            error.message = (
                "The object store is unavailable: it refused the gateway's own credentials. "
                "Nothing is wrong with your request; the operator must fix the gateway's "
                "configuration (the server log says more)."
            )
            error.resource = resource
        raise error

    async def _status_error(
        self,
        resp: aiohttp.ClientResponse,
        method: str,
        bucket: str | None,
        key: str | None,
        resource: str,
    ) -> S3Error:
        """An error from the status alone (HEAD answers and bodies that are not S3 XML)."""
        status = resp.status
        if status == 404:
            if key is None or not bucket:
                return S3Error(S3ErrorCode.NoSuchBucket, resource=resource)
            # a HEAD cannot say whether the key or its bucket is missing: ask
            try:
                await self.discard("HEAD", bucket)
            except S3Error as exc:
                if exc.code == S3ErrorCode.NoSuchBucket:
                    return S3Error(S3ErrorCode.NoSuchBucket, resource=f"/{bucket}")
            return S3Error(S3ErrorCode.NoSuchKey, resource=resource)
        code = STATUS_CODES.get(status)
        if code is None:
            code = "InternalError" if status >= 500 else "InvalidRequest"
        if status >= 500 and code not in PASSED_5XX:
            log_outage("object", "failing", f"upstream answered {status} to {method}")
            outage = store_unavailable("object")
            outage.resource = resource
            return outage
        message = None if code != "InvalidRequest" else f"The object store answered {status}."
        return S3Error(code, message, status=status, resource=resource)

    async def discard(
        self,
        method: str,
        bucket: str | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Send, and read the (small) answer away so the connection goes back to the pool."""
        resp = await self.send(method, bucket, key, **kwargs)
        await read_body(resp)

    async def xml(
        self,
        method: str,
        bucket: str | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Send and parse the XML answer; a 200 carrying ``<Error>`` (Copy, Complete) raises."""
        resp = await self.send(method, bucket, key, **kwargs)
        raw = await read_body(resp, MAX_XML_BYTES)
        resource = "/" + (bucket or "") + (f"/{key}" if key is not None else "")
        doc = parse_xml(raw)
        if doc is None:
            if raw.strip():
                raise bad_answer(method)
            return {}
        if "Error" in doc:
            raise error_from(raw, 200, resource) or bad_answer(method)
        return doc


class _Disconnected(S3Error):
    """A pooled connection dropped before the answer: the request may be sent once more."""


async def _collect(body: Body, size: int) -> bytes:
    pieces: list[bytes] = []
    total = 0
    async for piece in body:
        total += len(piece)
        if total > size:
            raise S3Error(
                S3ErrorCode.IncompleteBody, "The body is longer than its declared length."
            )
        pieces.append(piece)
    if total != size:
        raise S3Error(S3ErrorCode.IncompleteBody)
    return b"".join(pieces)


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := await resp.content.read(65536):
        total += len(chunk)
        if total > limit:
            raise S3Error(S3ErrorCode.InternalError, "The object store sent an oversized answer.")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(resp: aiohttp.ClientResponse, limit: int = MAX_XML_BYTES) -> bytes:
    """Read a small answer whole and give the connection back to the pool."""
    try:
        return await _read_capped(resp, limit)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        resp.close()
        log_outage("object", "stopped answering", f"{resp.url.origin()}: {exc!r}")
        raise store_unavailable("object") from None
    finally:
        resp.release()
