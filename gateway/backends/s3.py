"""The ``s3`` object store: forwards every operation to an upstream S3 endpoint.

The gateway talks to the upstream with its own credentials, path-style, over one pooled
``aiohttp.ClientSession``. Object bodies stream both ways and are never held whole in memory:
uploads (the client's body, already decoded and being verified by the gateway) go out re-framed
as unsigned ``aws-chunked`` with a CRC32C trailer and an exact ``Content-Length`` (see
:class:`_ChunkedFeed` for why), downloads are handed to the handler piece by piece. Upstream
S3 errors come back as the same :class:`S3Error`; an unreachable upstream is a 503
``ServiceUnavailable`` that says the object store is unavailable (the endpoint and the
connection error go to the server log, never to the client: docs/failures.md).

Time bounds: a connection attempt gives up after CONNECT_TIMEOUT seconds, and an upstream that
stops sending (no byte for READ_TIMEOUT seconds, counted from the end of the request body) is
cut off. Server-side copies and multipart completion may legitimately take long before the
first byte of the answer, so they wait up to SLOW_READ_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

import aiohttp
import xmltodict
from awscrt.checksums import crc32c
from multidict import CIMultiDictProxy
from yarl import URL

from gateway.backends.base import (
    MAX_KEY_BYTES,
    STORED_HEADERS,
    Body,
    BucketInfo,
    ByteRange,
    Conditions,
    CopyResult,
    ListPage,
    ObjectInfo,
    ObjectReader,
    ObjectStore,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
    WriteMeta,
)
from gateway.protocol.conditions import check_conditions
from gateway.protocol.errors import S3Error, log_outage, store_unavailable
from gateway.protocol.sigv4 import (
    EMPTY_SHA256,
    STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
    sign_request,
    uri_encode,
)

#: Downloads are handed on as the upstream socket delivers them (up to 256 KiB with uvloop):
#: joining them into bigger pieces costs more CPU than it saves (measured). Pieces smaller than
#: MIN_PIECE are topped up from the buffer to at most READ_PIECE.
MIN_PIECE = 64 << 10
READ_PIECE = 1 << 20
#: aiohttp's per-connection read buffer: big enough to keep large GETs flowing, small enough
#: that 64 idle-but-full connections stay far below the RSS budget.
READ_BUFSIZE = 1 << 19
#: XML answers (listings, errors, multipart results) are small; refuse absurd ones.
MAX_XML_BYTES = 32 << 20
#: Error bodies are read only this far.
MAX_ERROR_BYTES = 64 << 10
#: aws-chunked chunk size for uploads (what botocore uses; S3 wants >= 8 KiB but the last).
UPLOAD_CHUNK = 1 << 20
#: The checksum trailer sent with every upload: CRC32C is hardware-accelerated on both ends.
TRAILER = "x-amz-checksum-crc32c"
#: Bodies up to this size are collected and sent in one piece (see ``_upload``).
SMALL_BODY = 128 << 10
#: pipe size for relaying GET bodies with splice (the kernel may grant less)
SPLICE_PIPE = 1 << 20
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
CHECK_TIMEOUT = 5.0
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 30.0
SLOW_READ_TIMEOUT = 600.0
META_PREFIX = "x-amz-meta-"

#: Upstream codes that mean the *gateway's* credentials or clock are wrong. Passing them on
#: would make clients believe their own key is bad, so they become ServiceUnavailable.
_UPSTREAM_AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "RequestTimeTooSkewed",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidToken",
    }
)
#: Elements that repeat in S3 listings; xmltodict makes them lists even when there is one.
_LIST_ELEMENTS = ("Bucket", "Contents", "CommonPrefixes", "Part", "Upload")
_STATUS_CODES = {
    304: "NotModified",
    400: "InvalidRequest",
    403: "AccessDenied",
    405: "MethodNotAllowed",
    409: "InvalidRequest",
    411: "MissingContentLength",
    412: "PreconditionFailed",
    416: "InvalidRange",
    501: "NotImplemented",
    503: "ServiceUnavailable",
}
_SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_RETRYABLE = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


class S3ObjectStore(ObjectStore):
    """An upstream S3 endpoint (MinIO, versitygw, Ceph RGW, Garage, AWS) as the object store."""

    kind = "s3"

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        slow_read_timeout: float = SLOW_READ_TIMEOUT,
        max_connections: int = 64,
    ) -> None:
        url = URL(endpoint)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"S3 endpoint must be an http(s) URL, got {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        self._origin = str(url.origin())
        self._host = url.host_port_subcomponent or url.host
        # an endpoint may live below a path (a reverse proxy); keys go below it
        self._base_path = url.raw_path.rstrip("/")
        self._access_key = access_key
        self._secret_key = secret_key
        self._region = region
        #: how long a relayed body may stall (the same limit aiohttp applies to reads)
        self.read_timeout_seconds = read_timeout
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        #: for copies and CompleteMultipartUpload, which answer only once the work is done
        self._slow_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=slow_read_timeout
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle -------------------------------------------------------------------------------
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

    async def check(self) -> None:
        resp = await self._send(
            "GET", timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT), retry=False
        )
        await _read_body(resp)

    # -- buckets -------------------------------------------------------------------------------
    async def list_buckets(self) -> list[BucketInfo]:
        doc = await self._xml("GET")
        buckets = _dig(doc, "ListAllMyBucketsResult", "Buckets", "Bucket") or []
        return [BucketInfo(b["Name"], _iso_time(b.get("CreationDate"))) for b in buckets]

    async def create_bucket(self, bucket: str) -> None:
        body = b""
        if self._region != "us-east-1":
            body = (
                "<CreateBucketConfiguration><LocationConstraint>"
                f"{self._region}</LocationConstraint></CreateBucketConfiguration>"
            ).encode()
        await self._discard("PUT", bucket, data=body)

    async def delete_bucket(self, bucket: str) -> None:
        # In-flight multipart uploads count as content (the interface says so); not every
        # upstream agrees (versitygw deletes such a bucket), so ask first.
        uploads = await self.list_multipart_uploads(bucket, max_uploads=1)
        if uploads.uploads:
            raise S3Error("BucketNotEmpty", resource=f"/{bucket}")
        await self._discard("DELETE", bucket)

    async def head_bucket(self, bucket: str) -> None:
        await self._discard("HEAD", bucket)

    # -- objects -------------------------------------------------------------------------------
    async def put_object(
        self, bucket: str, key: str, body: Body, meta: WriteMeta, *, if_none_match: bool = False
    ) -> str:
        _check_key(bucket, key)
        headers = _write_headers(meta)
        if if_none_match:
            headers["if-none-match"] = "*"
        resp = await self._upload("PUT", bucket, key, body, headers=headers)
        await _read_body(resp)
        return _etag(resp.headers)

    async def head_object(
        self, bucket: str, key: str, conditions: Conditions | None = None
    ) -> ObjectInfo:
        resp = await self._send("HEAD", bucket, key)
        resp.release()
        info = _object_info(key, resp.headers)
        # evaluated here, not upstream: versitygw compares dates with sub-second precision, so
        # an object would look modified since its own Last-Modified
        check_conditions(info, conditions)
        return info

    async def open_object(
        self,
        bucket: str,
        key: str,
        *,
        range_header: str | None = None,
        conditions: Conditions | None = None,
    ) -> ObjectReader:
        # ETag conditions go upstream (it answers 304/412 without a body); date conditions are
        # checked here on the answer's headers, at the one-second resolution S3 uses
        headers = _etag_condition_headers(conditions, "")
        if range_header and _forwardable_range(range_header):
            headers["range"] = range_header
        try:
            resp = await self._send("GET", bucket, key, headers=headers)
        except S3Error as exc:
            if exc.code == "NotModified" and "ETag" not in exc.headers:
                # a 304 carries the validators; some upstreams leave them out
                info = await self.head_object(bucket, key)
                exc.headers["ETag"] = f'"{info.etag}"'
                exc.headers["Last-Modified"] = _format_http_time(info.last_modified)
            raise
        try:
            info = _object_info(key, resp.headers)
            byte_range = None
            if resp.status == 206:
                byte_range = _parse_content_range(resp.headers.get("Content-Range", ""))
                if byte_range is not None:
                    info.size = byte_range.total
            check_conditions(info, conditions)
        except BaseException:
            resp.close()
            raise
        return _UpstreamReader(self, resp, info, byte_range)

    async def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        *,
        meta: WriteMeta | None,
        conditions: Conditions | None = None,
    ) -> CopyResult:
        _check_key(dst_bucket, dst_key)
        headers = await self._copy_source_headers(src_bucket, src_key, conditions)
        if meta is None:
            headers["x-amz-metadata-directive"] = "COPY"
        else:
            headers["x-amz-metadata-directive"] = "REPLACE"
            headers.update(_write_headers(meta))
        doc = await self._copy_xml(dst_bucket, dst_key, headers=headers)
        return _copy_result(doc, "CopyObjectResult")

    async def delete_object(self, bucket: str, key: str) -> None:
        try:
            await self._discard("DELETE", bucket, key)
        except S3Error as exc:
            # S3 answers 204 for a missing key; an upstream may say NoSuchKey when another
            # delete of the key won the race (versitygw under concurrent deletes): same outcome
            if exc.code != "NoSuchKey":
                raise

    async def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        # When start_after is itself a common prefix (the last entry of the previous page), it
        # must be skipped whole. Upstreams differ on that, so ask for one entry more and drop it.
        skip = start_after if _is_common_prefix(start_after, prefix, delimiter) else None
        want = max(0, min(max_keys + (1 if skip else 0), 1000))
        query = [("list-type", "2"), ("encoding-type", "url"), ("max-keys", str(want))]
        if prefix:
            query.append(("prefix", prefix))
        if delimiter:
            query.append(("delimiter", delimiter))
        if start_after:
            query.append(("start-after", start_after))
        doc = await self._xml("GET", bucket, query=query)
        result = doc.get("ListBucketResult") or {}
        decode = _decoder(result)
        objects = [
            ObjectInfo(
                key=decode(item["Key"]),
                size=int(item.get("Size") or 0),
                etag=_unquote(item.get("ETag") or ""),
                last_modified=_iso_time(item.get("LastModified")),
            )
            for item in result.get("Contents") or []
        ]
        prefixes = [decode(p["Prefix"]) for p in result.get("CommonPrefixes") or []]
        truncated = _bool(result.get("IsTruncated"))
        if skip is not None:
            prefixes = [p for p in prefixes if p != skip]
            objects = [o for o in objects if not o.key.startswith(skip)]
        return _trim_page(objects, prefixes, truncated, max_keys)

    # -- multipart -----------------------------------------------------------------------------
    async def create_multipart_upload(self, bucket: str, key: str, meta: WriteMeta) -> str:
        _check_key(bucket, key)
        doc = await self._xml(
            "POST", bucket, key, query=[("uploads", "")], headers=_write_headers(meta)
        )
        upload_id = _dig(doc, "InitiateMultipartUploadResult", "UploadId")
        if not upload_id:
            raise _bad_answer("CreateMultipartUpload")
        return upload_id

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, part_number: int, body: Body
    ) -> str:
        query = [("partNumber", str(part_number)), ("uploadId", upload_id)]
        resp = await self._upload("PUT", bucket, key, body, query=query)
        await _read_body(resp)
        return _etag(resp.headers)

    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        src_bucket: str,
        src_key: str,
        *,
        range_header: str | None = None,
        conditions: Conditions | None = None,
    ) -> CopyResult:
        headers = await self._copy_source_headers(src_bucket, src_key, conditions)
        if range_header:
            headers["x-amz-copy-source-range"] = await self._copy_range(
                src_bucket, src_key, range_header
            )
        query = [("partNumber", str(part_number)), ("uploadId", upload_id)]
        doc = await self._copy_xml(bucket, key, query=query, headers=headers)
        return _copy_result(doc, "CopyPartResult")

    async def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> str:
        body = _complete_xml(parts)
        try:
            doc = await self._xml(
                "POST",
                bucket,
                key,
                query=[("uploadId", upload_id)],
                headers={"content-type": "application/xml"},
                data=body,
                timeout=self._slow_timeout,
            )
        except S3Error as exc:
            # versitygw checks the parts before the upload: a finished or aborted upload
            # comes back as InvalidPart where S3 says NoSuchUpload
            if exc.code == "InvalidPart":
                await self.list_parts(bucket, key, upload_id, max_parts=1)
            raise
        etag = _dig(doc, "CompleteMultipartUploadResult", "ETag")
        if etag is None:
            raise _bad_answer("CompleteMultipartUpload")
        return _unquote(etag)

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self._discard("DELETE", bucket, key, query=[("uploadId", upload_id)])

    async def list_parts(
        self, bucket: str, key: str, upload_id: str, *, part_marker: int = 0, max_parts: int = 1000
    ) -> PartsPage:
        query = [("uploadId", upload_id), ("max-parts", str(max_parts))]
        if part_marker:
            query.append(("part-number-marker", str(part_marker)))
        doc = await self._xml("GET", bucket, key, query=query)
        result = doc.get("ListPartsResult") or {}
        parts = [
            PartInfo(
                number=int(p["PartNumber"]),
                etag=_unquote(p.get("ETag") or ""),
                size=int(p.get("Size") or 0),
                last_modified=_iso_time(p.get("LastModified")),
            )
            for p in result.get("Part") or []
        ]
        truncated = _bool(result.get("IsTruncated"))
        marker = result.get("NextPartNumberMarker")
        next_marker = int(marker) if truncated and marker else None
        if truncated and next_marker is None and parts:
            next_marker = parts[-1].number
        return PartsPage(parts, truncated, next_marker)

    async def list_multipart_uploads(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadsPage:
        query = [("uploads", ""), ("encoding-type", "url"), ("max-uploads", str(max_uploads))]
        for name, value in (
            ("prefix", prefix),
            ("delimiter", delimiter),
            ("key-marker", key_marker),
            ("upload-id-marker", upload_id_marker),
        ):
            if value:
                query.append((name, value))
        doc = await self._xml("GET", bucket, query=query)
        result = doc.get("ListMultipartUploadsResult") or {}
        decode = _decoder(result)
        uploads = [
            UploadInfo(
                key=decode(u["Key"]),
                upload_id=u["UploadId"],
                initiated=_iso_time(u.get("Initiated")),
            )
            for u in result.get("Upload") or []
        ]
        prefixes = [decode(p["Prefix"]) for p in result.get("CommonPrefixes") or []]
        truncated = _bool(result.get("IsTruncated"))
        next_key = result.get("NextKeyMarker")
        next_id = result.get("NextUploadIdMarker")
        return UploadsPage(
            uploads,
            prefixes,
            truncated,
            next_key_marker=decode(next_key) if truncated and next_key else None,
            next_upload_id_marker=next_id if truncated and next_id else None,
        )

    # -- the wire --------------------------------------------------------------------------------
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
        # encoded=True: yarl must neither re-quote nor normalise what is signed
        url = URL(self._origin + path + ("?" + qs if qs else ""), encoded=True)
        return url, path

    async def _send(
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
                resp = await self._request(
                    method, bucket, key, query, dict(headers or {}), payload_hash, data, timeout
                )
            except _Disconnected:
                if attempt + 1 < attempts:
                    continue
                raise
            break
        await self._raise_for_status(resp, method, bucket, key)
        return resp

    async def _upload(
        self,
        method: str,
        bucket: str,
        key: str,
        body: Body,
        *,
        query: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """Stream ``body`` upstream; if it fails, the request is cut short and its error raised."""
        if body.size is None:
            raise S3Error("MissingContentLength", resource=f"/{bucket}/{key}")
        headers = dict(headers or {})
        if body.size <= SMALL_BODY:
            # Small bodies are collected first (bounded memory): one plain request is far
            # cheaper than a stream, and a body that fails never reaches the upstream at all.
            data = await _collect(body, body.size)
            headers["content-length"] = str(len(data))
            return await self._send(
                method,
                bucket,
                key,
                query=query,
                headers=headers,
                data=data,
                payload_hash=UNSIGNED_PAYLOAD,
            )
        feed = _ChunkedFeed(body, body.size)
        headers["content-length"] = str(feed.encoded_length(body.size))
        headers["x-amz-decoded-content-length"] = str(body.size)
        headers["x-amz-trailer"] = TRAILER
        # No "Content-Encoding: aws-chunked": x-amz-content-sha256 already says how the body is
        # framed, and versitygw would store that coding with the object.
        try:
            resp = await self._request(
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

    async def _request(
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
            region=self._region,
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
        error = _error_from(raw, resp.status, resource)
        if error is None:
            error = await self._status_error(resp, method, bucket, key, resource)
        if error.code == "NotModified":
            error.headers.update(_validator_headers(resp.headers))
        if error.code in _UPSTREAM_AUTH_CODES:
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
                return S3Error("NoSuchBucket", resource=resource)
            # a HEAD cannot say whether the key or its bucket is missing: ask
            try:
                await self.head_bucket(bucket)
            except S3Error as exc:
                if exc.code == "NoSuchBucket":
                    return S3Error("NoSuchBucket", resource=f"/{bucket}")
            return S3Error("NoSuchKey", resource=resource)
        code = _STATUS_CODES.get(status)
        if code is None:
            code = "InternalError" if status >= 500 else "InvalidRequest"
        if status >= 500 and code not in _PASSED_5XX:
            log_outage("object", "failing", f"upstream answered {status} to {method}")
            outage = store_unavailable("object")
            outage.resource = resource
            return outage
        message = None if code != "InvalidRequest" else f"The object store answered {status}."
        return S3Error(code, message, status=status, resource=resource)

    async def _discard(
        self,
        method: str,
        bucket: str | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> None:
        resp = await self._send(method, bucket, key, **kwargs)
        await _read_body(resp)

    async def _xml(
        self,
        method: str,
        bucket: str | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Send and parse the XML answer; a 200 carrying ``<Error>`` (Copy, Complete) raises."""
        resp = await self._send(method, bucket, key, **kwargs)
        raw = await _read_body(resp, MAX_XML_BYTES)
        resource = "/" + (bucket or "") + (f"/{key}" if key is not None else "")
        doc = _parse_xml(raw)
        if doc is None:
            if raw.strip():
                raise _bad_answer(method)
            return {}
        if "Error" in doc:
            raise _error_from(raw, 200, resource) or _bad_answer(method)
        return doc

    async def _copy_xml(self, bucket: str, key: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return await self._xml("PUT", bucket, key, timeout=self._slow_timeout, **kwargs)
        except S3Error as exc:
            # S3 answers a failed x-amz-copy-source-if-* with 412, never 304 (versitygw: 304)
            if exc.code == "NotModified":
                raise S3Error(
                    "PreconditionFailed",
                    "The copy source's x-amz-copy-source-if-none-match or "
                    "x-amz-copy-source-if-modified-since condition does not hold.",
                    resource=f"/{bucket}/{key}",
                ) from None
            raise

    async def _copy_source_headers(
        self, bucket: str, key: str, conditions: Conditions | None
    ) -> dict[str, str]:
        """``x-amz-copy-source`` and its conditions.

        Date conditions are checked here on a HEAD of the source (see ``head_object``); the
        copy is then pinned to the ETag that was checked, so it cannot copy a newer version.
        """
        headers = {
            "x-amz-copy-source": "/"
            + uri_encode(bucket, keep_slash=False)
            + "/"
            + uri_encode(key, keep_slash=True)
        }
        headers.update(_etag_condition_headers(conditions, "x-amz-copy-source-"))
        if conditions and (conditions.if_modified_since or conditions.if_unmodified_since):
            info = await self.head_object(bucket, key)
            check_conditions(info, conditions, copy_source=True)
            headers.setdefault("x-amz-copy-source-if-match", f'"{info.etag}"')
        return headers

    async def _copy_range(self, bucket: str, key: str, range_header: str) -> str:
        """The client's ``bytes=a-b`` as x-amz-copy-source-range; open ranges need the size."""
        match = _SINGLE_RANGE.match(range_header.strip())
        if not match or not (match.group(1) or match.group(2)):
            raise S3Error(
                "InvalidArgument",
                "The x-amz-copy-source-range value must be of the form bytes=first-last where "
                "first and last are the zero-based offsets of the first and last bytes to copy.",
            )
        first, last = match.groups()
        if first and last:
            if int(first) > int(last):
                raise S3Error("InvalidArgument", f"Invalid copy source range {range_header}.")
            return f"bytes={first}-{last}"
        size = (await self.head_object(bucket, key)).size
        if first:
            start, end = int(first), size - 1
        else:
            start, end = max(0, size - int(last)), size - 1
        if start > end:
            raise S3Error("InvalidRange", resource=f"/{bucket}/{key}")
        return f"bytes={start}-{end}"


class _ChunkedFeed:
    """The client's body re-framed as ``aws-chunked`` (unsigned, CRC32C trailer) for upstream.

    Why not a plain body: some upstreams (versitygw) store whatever arrived when a connection
    closes before Content-Length bytes, so a client that fails half-way would leave a torn
    object. With aws-chunked framing a cut stream lacks its final chunk and trailer, which every
    S3 server refuses; the CRC32C trailer also checks the bytes between gateway and store.

    Chunks have a fixed size (the last one is shorter), so the encoded length is known up front
    and the request keeps a plain Content-Length: nothing is buffered, pieces are only sliced
    where they straddle a chunk boundary. If the body raises, the exception is kept, aiohttp
    cuts the request, and the original exception is raised from ``reraise``.
    """

    __slots__ = ("body", "error", "size")

    def __init__(self, body: Body, size: int) -> None:
        self.body = body
        self.size = size
        self.error: BaseException | None = None

    @staticmethod
    def encoded_length(size: int) -> int:
        full, rest = divmod(size, UPLOAD_CHUNK)
        length = full * (len(f"{UPLOAD_CHUNK:x}") + 4 + UPLOAD_CHUNK)
        if rest:
            length += len(f"{rest:x}") + 4 + rest
        return length + _CHUNKED_END_LENGTH

    async def __aiter__(self) -> AsyncIterator[bytes | memoryview]:
        try:
            async for piece in self._frames():
                yield piece
        except Exception as exc:
            # Only the body's own failures. aiohttp cancels the task feeding the upload when
            # the upstream connection breaks; that CancelledError is not the request's, and
            # raising it from reraise() made the gateway drop the client's connection without
            # an answer instead of the object store's 503.
            self.error = exc
            raise

    async def _frames(self) -> AsyncIterator[bytes | memoryview]:
        remaining = self.size  # bytes not yet framed
        left = 0  # bytes still due in the current chunk
        crc = 0
        async for piece in self.body:
            view = memoryview(piece)
            while view.nbytes:
                if left == 0:
                    if remaining == 0:
                        raise S3Error("IncompleteBody", "The body is longer than its length.")
                    left = min(UPLOAD_CHUNK, remaining)
                    lead = b"\r\n" if remaining != self.size else b""
                    yield lead + f"{left:x}\r\n".encode()
                take = view if view.nbytes <= left else view[:left]
                view = view[take.nbytes :]
                crc = crc32c(take, crc)
                left -= take.nbytes
                remaining -= take.nbytes
                yield take
        if remaining or left:
            raise S3Error("IncompleteBody")
        yield (b"\r\n" if self.size else b"") + _chunked_end(crc)

    def reraise(self) -> None:
        if self.error is not None:
            raise self.error


def _chunked_end(crc: int) -> bytes:
    """The last (empty) chunk and the checksum trailer; its length does not depend on ``crc``."""
    digest = base64.b64encode(crc.to_bytes(4, "big"))
    return b"0\r\n" + TRAILER.encode() + b":" + digest + b"\r\n\r\n"


class _UpstreamReader(ObjectReader):
    """An upstream GET being relayed: yields the body in large pieces, then frees the socket."""

    def __init__(
        self,
        store: S3ObjectStore,
        resp: aiohttp.ClientResponse,
        info: ObjectInfo,
        byte_range: ByteRange | None,
    ) -> None:
        self._store = store
        self._resp = resp
        self.info = info
        self.byte_range = byte_range

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._resp.content
        try:
            while True:
                # Pieces as the socket delivered them (no copy); only small ones are topped up
                # from what is already buffered, so the client side gets few, large writes.
                piece, _ = await content.readchunk()
                if not piece:
                    if content.at_eof():
                        break
                    continue
                if len(piece) < MIN_PIECE:
                    more = content.read_nowait(READ_PIECE - len(piece))
                    if more:
                        piece += more
                yield piece
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._resp.close()
            raise self._store.unreachable(exc) from None

    async def send_file(self, sock: int, writable: Callable[[], Awaitable[None]]) -> bool:
        """Relay the body with splice(2): upstream socket -> pipe -> client socket ``sock``.

        Reading the upstream socket into Python and writing the client's costs two copies and
        a pass through the event loop per piece; splice moves the pages inside the kernel.
        Declines (False, nothing sent) unless upstream is plain TCP and answered with exactly
        the Content-Length the client was promised. Upstream reading is paused first, and what
        aiohttp had already buffered goes out before the spliced rest. The connection cannot
        be reused afterwards (its parser never saw the body end): aclose() closes it.
        """
        resp = self._resp
        conn = resp.connection
        transport = conn.transport if conn is not None else None
        protocol = conn.protocol if conn is not None else None
        expected = self.byte_range.length if self.byte_range is not None else self.info.size
        if (
            not hasattr(os, "splice")
            or transport is None
            or protocol is None
            or transport.is_closing()
            or transport.get_extra_info("sslcontext") is not None
            or transport.get_extra_info("socket") is None
            or resp.content_length != expected
            or resp.content.exception() is not None
        ):
            return False
        content = resp.content
        # Take everything aiohttp holds, then pause. Draining the buffer resumes a parser that
        # paused with bytes of its own, which it hands over at once, so drain until nothing
        # comes; pausing right after (no loop iteration in between) means no further byte
        # reaches aiohttp. The protocol's pause also stops its read timeout.
        pieces: list[bytes] = []
        while piece := content.read_nowait(-1):
            pieces.append(piece)
        buffered = b"".join(pieces)
        # A busy loop may get here only after the whole answer arrived: aiohttp's parser is
        # done (and gone, so pausing it fails) and there is nothing left to splice.
        whole = content.is_eof() or len(buffered) >= expected
        if not whole:
            protocol.pause_reading()
        upstream = os.dup(transport.get_extra_info("socket").fileno())
        pipe_r, pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            with contextlib.suppress(OSError):  # a bigger pipe means fewer calls; optional
                fcntl.fcntl(pipe_w, fcntl.F_SETPIPE_SZ, SPLICE_PIPE)
            view = memoryview(buffered)
            while view:
                try:
                    view = view[os.write(sock, view) :]
                except (BlockingIOError, InterruptedError):
                    await writable()
            remaining = 0 if whole else expected - len(buffered)
            in_pipe = 0
            while remaining or in_pipe:
                moved = False
                if remaining and in_pipe < SPLICE_PIPE:
                    try:
                        n = _splice(upstream, pipe_w, min(remaining, SPLICE_PIPE - in_pipe))
                    except OSError as exc:
                        raise self._store.unreachable(exc) from None
                    if n == 0:
                        raise self._store.unreachable(
                            ConnectionResetError("upstream closed the connection mid-body")
                        )
                    if n is not None:
                        remaining -= n
                        in_pipe += n
                        moved = True
                if in_pipe:
                    m = _splice(pipe_r, sock, in_pipe)  # client errors propagate as they are
                    if m:
                        in_pipe -= m
                        moved = True
                if not moved:
                    if in_pipe:
                        await writable()  # the client is full; upstream can wait
                    else:
                        await self._readable(upstream)
        finally:
            for fd in (pipe_r, pipe_w, upstream):
                os.close(fd)
        return True

    async def _readable(self, fd: int) -> None:
        """Wait until upstream has bytes, within the read timeout aiohttp would apply."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def ready() -> None:
            if not done.done():
                done.set_result(None)

        loop.add_reader(fd, ready)
        try:
            async with asyncio.timeout(self._store.read_timeout_seconds):
                await done
        except TimeoutError as exc:
            raise self._store.unreachable(exc) from None
        finally:
            loop.remove_reader(fd)

    async def aclose(self) -> None:
        resp = self._resp
        if resp.content.is_eof():
            resp.release()
        else:
            # part of the body is unread: the connection cannot be reused
            resp.close()


# -- helpers -----------------------------------------------------------------------------------
def _splice(src: int, dst: int, count: int) -> int | None:
    """One non-blocking splice(2): bytes moved, or None when it would block."""
    try:
        return os.splice(src, dst, count, flags=_SPLICE_FLAGS)
    except (BlockingIOError, InterruptedError):
        return None


async def _collect(body: Body, size: int) -> bytes:
    pieces: list[bytes] = []
    total = 0
    async for piece in body:
        total += len(piece)
        if total > size:
            raise S3Error("IncompleteBody", "The body is longer than its declared length.")
        pieces.append(piece)
    if total != size:
        raise S3Error("IncompleteBody")
    return b"".join(pieces)


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := await resp.content.read(65536):
        total += len(chunk)
        if total > limit:
            raise S3Error("InternalError", "The object store sent an oversized answer.")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_body(resp: aiohttp.ClientResponse, limit: int = MAX_XML_BYTES) -> bytes:
    """Read a small answer whole and give the connection back to the pool."""
    try:
        return await _read_capped(resp, limit)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        resp.close()
        log_outage("object", "stopped answering", f"{resp.url.origin()}: {exc!r}")
        raise store_unavailable("object") from None
    finally:
        resp.release()


def _parse_xml(raw: bytes) -> dict[str, Any] | None:
    # S3 may send whitespace first (keep-alive during long Copy/Complete operations)
    raw = raw.strip()
    if not raw:
        return None
    try:
        # keep whitespace: keys may begin or end with spaces (layout text lands in "#text")
        doc = xmltodict.parse(raw, force_list=_LIST_ELEMENTS, strip_whitespace=False)
    except Exception:  # expat errors come in several types; any of them means "not S3 XML"
        return None
    return doc if isinstance(doc, dict) else None


#: upstream 5xx codes passed on as they are (the others mean the object store is failing)
_PASSED_5XX = frozenset({"NotImplemented", "SlowDown"})


def _error_from(raw: bytes, status: int, resource: str) -> S3Error | None:
    error = _s3_error_from(raw, status, resource)
    if error is not None and error.status >= 500 and error.code not in _PASSED_5XX:
        # InternalError, ServiceUnavailable, a 502/504 of a proxy in front of it: the object
        # store is failing (versitygw answers 500 while it shuts down). A 503 naming the
        # store, as for one that does not answer at all (docs/failures.md).
        log_outage("object", "failing", f"upstream {error.code}: {error.message}")
        outage = store_unavailable("object")
        outage.resource = resource
        return outage
    return error


def _s3_error_from(raw: bytes, status: int, resource: str) -> S3Error | None:
    doc = _parse_xml(raw)
    if not doc or not isinstance(doc.get("Error"), dict):
        return None
    err = doc["Error"]
    code = err.get("Code")
    if not isinstance(code, str) or not code:
        return None
    message = err.get("Message") if isinstance(err.get("Message"), str) else None
    if code.isdigit():  # some servers put the HTTP status in Code
        return None
    if status < 300:  # 200-with-Error: take the table's status for the code
        return S3Error.relayed(code, message, status=None, resource=resource)
    return S3Error.relayed(code, message, status=status, resource=resource)


def _bad_answer(operation: str) -> S3Error:
    return S3Error("InternalError", f"The object store sent an unexpected answer to {operation}.")


def _dig(doc: Mapping[str, Any], *path: str) -> Any:
    node: Any = doc
    for name in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(name)
    return node


def _bool(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == "true"


def _decoder(result: Mapping[str, Any]):
    """Keys come back URL-encoded only when the upstream honoured ``encoding-type=url``."""
    if str(result.get("EncodingType") or "").lower() == "url":
        return unquote_plus
    return lambda value: value or ""


def _unquote(etag: str) -> str:
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


def _etag(headers: Mapping[str, str]) -> str:
    return _unquote(headers.get("ETag", ""))


def _iso_time(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return datetime.now(UTC)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _http_time(value: str | None) -> datetime:
    parsed = _parse_http_time(value) if value else None
    return parsed if parsed is not None else datetime.now(UTC)


@lru_cache(maxsize=4096)
def _parse_http_time(value: str) -> datetime | None:
    """Cached: the same Last-Modified values come back again and again."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _check_key(bucket: str, key: str) -> None:
    # S3's limit, which not every upstream enforces (versitygw takes longer keys)
    if len(key.encode()) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", resource=f"/{bucket}/{key[:64]}...")


def _format_http_time(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


def _object_info(key: str, headers: CIMultiDictProxy[str]) -> ObjectInfo:
    metadata: dict[str, str] = {}
    stored: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith(META_PREFIX):
            metadata[lower[len(META_PREFIX) :]] = value
        elif lower in STORED_HEADERS:
            stored[lower] = value
    return ObjectInfo(
        key=key,
        size=int(headers.get("Content-Length") or 0),
        etag=_etag(headers),
        last_modified=_http_time(headers.get("Last-Modified")),
        content_type=headers.get("Content-Type"),
        metadata=metadata,
        headers=stored,
    )


def _validator_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in ("ETag", "Last-Modified") if name in headers}


def _write_headers(meta: WriteMeta) -> dict[str, str]:
    headers: dict[str, str] = {}
    if meta.content_type:
        headers["content-type"] = meta.content_type
    for name, value in meta.metadata.items():
        headers[META_PREFIX + name.lower()] = value
    for name, value in meta.headers.items():
        if name.lower() in STORED_HEADERS:
            headers[name.lower()] = value
    return headers


def _etag_condition_headers(conditions: Conditions | None, prefix: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    if conditions and conditions.if_match is not None:
        headers[prefix + "if-match"] = conditions.if_match
    if conditions and conditions.if_none_match is not None:
        headers[prefix + "if-none-match"] = conditions.if_none_match
    return headers


def _copy_result(doc: Mapping[str, Any], root: str) -> CopyResult:
    result = doc.get(root)
    if not isinstance(result, Mapping) or result.get("ETag") is None:
        raise _bad_answer(root)
    return CopyResult(_unquote(result["ETag"]), _iso_time(result.get("LastModified")))


def _complete_xml(parts: list[tuple[int, str]]) -> bytes:
    items = "".join(
        f"<Part><PartNumber>{number}</PartNumber><ETag>&quot;{_xml_escape(_unquote(etag))}"
        "&quot;</ETag></Part>"
        for number, etag in parts
    )
    return f"<CompleteMultipartUpload>{items}</CompleteMultipartUpload>".encode()


def _xml_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _forwardable_range(value: str) -> bool:
    """Only a single, syntactically valid range goes upstream; anything else means the whole
    object (RFC 9110), and upstreams disagree on how to treat it, so it is dropped here."""
    match = _SINGLE_RANGE.match(value.strip())
    if not match:
        return False
    first, last = match.groups()
    if not first and not last:
        return False
    return not (first and last and int(first) > int(last))


def _parse_content_range(value: str) -> ByteRange | None:
    match = _CONTENT_RANGE.match(value.strip())
    if not match:
        return None
    start, end, total = (int(g) for g in match.groups())
    return ByteRange(start, end, total)


def _is_common_prefix(name: str, prefix: str, delimiter: str) -> bool:
    """Whether ``name`` is a common prefix a listing with ``prefix``/``delimiter`` would show."""
    if not name or not delimiter or not name.startswith(prefix):
        return False
    rest = name[len(prefix) :]
    return rest.endswith(delimiter) and rest.find(delimiter) == len(rest) - len(delimiter)


def _trim_page(
    objects: list[ObjectInfo], prefixes: list[str], truncated: bool, max_keys: int
) -> ListPage:
    """Keep the first ``max_keys`` entries (keys and prefixes merged in UTF-8 byte order)."""
    entries: list[tuple[bytes, ObjectInfo | str]] = [(o.key.encode(), o) for o in objects]
    entries += [(p.encode(), p) for p in prefixes]
    entries.sort(key=lambda e: e[0])
    if len(entries) > max_keys:
        entries = entries[:max_keys]
        truncated = True
    kept_objects = [e for _, e in entries if isinstance(e, ObjectInfo)]
    kept_prefixes = [e for _, e in entries if isinstance(e, str)]
    next_marker = None
    if entries:
        last = entries[-1][1]
        next_marker = last.key if isinstance(last, ObjectInfo) else last
    return ListPage(kept_objects, kept_prefixes, truncated, next_marker)


class _Disconnected(S3Error):
    """A pooled connection dropped before the answer: the request may be sent once more."""


_CHUNKED_END_LENGTH = len(_chunked_end(0))
