""":class:`S3ObjectStore`: the ObjectStore operations as requests to an S3 upstream.

Each operation maps the interface onto the S3 API (:mod:`.translate`) and smooths over where
upstreams differ from S3 or from each other (versitygw's date conditions, NoSuchKey on a raced
delete, common prefixes at a page boundary...), so both backends answer alike. The requests
themselves go through :class:`~gateway.backends.s3.upstream.Upstream`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp

from gateway.backends.base import (
    MAX_KEY_BYTES,
    Body,
    BucketInfo,
    ByteRange,
    Conditions,
    CopyResult,
    KeepChecksum,
    ListPage,
    ObjectChecksum,
    ObjectInfo,
    ObjectPartsPage,
    ObjectReader,
    ObjectStore,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
    WriteMeta,
)
from gateway.backends.s3.part_relay import HashedRange, kept_whole_checksum
from gateway.backends.s3.splice_reader import UpstreamReader
from gateway.backends.s3.translate import (
    as_bool,
    bad_answer,
    complete_xml,
    copy_result,
    decoder,
    dig,
    etag_condition_headers,
    etag_of,
    format_http_time,
    forwardable_range,
    is_common_prefix,
    iso_time,
    object_info,
    object_parts_page,
    parse_content_range,
    part_checksum,
    trim_page,
    unquote,
    write_headers,
)
from gateway.backends.s3.upstream import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    SLOW_READ_TIMEOUT,
    Upstream,
    read_body,
)
from gateway.protocol.conditions import check_conditions
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.protocol.parts import no_such_part, parts_of_etag
from gateway.protocol.ranges import copy_range, parse_copy_range
from gateway.protocol.sigv4 import uri_encode

#: asked on every HEAD and GET: the upstream answers the checksum it keeps with the object
CHECKSUM_MODE = {"x-amz-checksum-mode": "ENABLED"}
#: how long the health probe waits for the upstream's answer
CHECK_TIMEOUT = 5.0


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
        self._upstream = Upstream(
            endpoint,
            access_key,
            secret_key,
            region,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            slow_read_timeout=slow_read_timeout,
            max_connections=max_connections,
        )
        self.endpoint = self._upstream.endpoint

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        await self._upstream.start()

    async def close(self) -> None:
        await self._upstream.close()

    async def check(self) -> None:
        resp = await self._upstream.send(
            "GET", timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT), retry=False
        )
        await read_body(resp)

    # -- buckets -------------------------------------------------------------------------------
    async def list_buckets(self) -> list[BucketInfo]:
        doc = await self._upstream.xml("GET")
        buckets = dig(doc, "ListAllMyBucketsResult", "Buckets", "Bucket") or []
        return [BucketInfo(b["Name"], iso_time(b.get("CreationDate"))) for b in buckets]

    async def create_bucket(self, bucket: str) -> None:
        body = b""
        if self._upstream.region != "us-east-1":
            body = (
                "<CreateBucketConfiguration><LocationConstraint>"
                f"{self._upstream.region}</LocationConstraint></CreateBucketConfiguration>"
            ).encode()
        await self._upstream.discard("PUT", bucket, data=body)

    async def delete_bucket(self, bucket: str) -> None:
        # In-flight multipart uploads count as content (the interface says so); not every
        # upstream agrees (versitygw deletes such a bucket), so ask first.
        uploads = await self.list_multipart_uploads(bucket, max_uploads=1)
        if uploads.uploads:
            raise S3Error(S3ErrorCode.BucketNotEmpty, resource=f"/{bucket}")
        await self._upstream.discard("DELETE", bucket)

    async def head_bucket(self, bucket: str) -> None:
        await self._upstream.discard("HEAD", bucket)

    # -- objects -------------------------------------------------------------------------------
    async def put_object(
        self,
        bucket: str,
        key: str,
        body: Body,
        meta: WriteMeta,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        checksum: KeepChecksum | None = None,
    ) -> str:
        check_key(bucket, key)
        headers = write_headers(meta)
        headers.update(await self._write_conditions(bucket, key, if_none_match, if_match))
        resp = await self._upstream.upload(
            "PUT", bucket, key, body, headers=headers, checksum=checksum
        )
        await read_body(resp)
        return etag_of(resp.headers)

    async def head_object(
        self, bucket: str, key: str, conditions: Conditions | None = None
    ) -> ObjectInfo:
        resp = await self._upstream.send("HEAD", bucket, key, headers=dict(CHECKSUM_MODE))
        resp.release()
        info = object_info(key, resp.headers)
        # evaluated here, not upstream: versitygw compares dates with sub-second precision, so
        # an object would look modified since its own Last-Modified
        check_conditions(info, conditions)
        return info

    async def part_range(
        self, bucket: str, key: str, part_number: int, conditions: Conditions | None = None
    ) -> tuple[ObjectInfo, ByteRange | None]:
        query = [("partNumber", str(part_number))]
        try:
            resp = await self._upstream.send(
                "HEAD", bucket, key, query=query, headers=dict(CHECKSUM_MODE)
            )
        except S3Error as exc:
            # versitygw says InvalidRange (a HEAD carries no error code to tell them apart)
            if exc.code in (S3ErrorCode.InvalidRange, S3ErrorCode.InvalidPartNumber):
                raise no_such_part(part_number) from None
            raise
        resp.release()
        info = object_info(key, resp.headers)
        span = parse_content_range(resp.headers.get("Content-Range", ""))
        if span is not None:
            info.size = span.total
        elif info.parts_count or part_number != 1:
            # S3 answers a part with its Content-Range; without one it served no part
            raise no_such_part(part_number)
        check_conditions(info, conditions)
        if info.parts_count is None and span is not None and span.length != span.total:
            raise bad_answer("HeadObject partNumber")
        return info, span

    async def object_parts(
        self,
        bucket: str,
        key: str,
        *,
        part_marker: int = 0,
        max_parts: int = 1000,
        conditions: Conditions | None = None,
    ) -> tuple[ObjectInfo, ObjectPartsPage | None]:
        info = await self.head_object(bucket, key, conditions)
        count = info.parts_count or parts_of_etag(info.etag)
        if not count:
            return info, None
        headers = {
            "x-amz-object-attributes": "ObjectParts",
            "x-amz-max-parts": str(max_parts),
            "x-amz-part-number-marker": str(part_marker),
        }
        try:
            doc = await self._upstream.xml(
                "GET", bucket, key, query=[("attributes", "")], headers=headers
            )
        except S3Error as exc:
            if exc.code not in (S3ErrorCode.NotImplemented, S3ErrorCode.InvalidArgument):
                raise
            doc = {}  # an upstream without GetObjectAttributes: the count is all we know
        return info, object_parts_page(doc, count)

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
        headers = etag_condition_headers(conditions, "")
        headers.update(CHECKSUM_MODE)
        if range_header and forwardable_range(range_header):
            headers["range"] = range_header
        try:
            resp = await self._upstream.send("GET", bucket, key, headers=headers)
        except S3Error as exc:
            if exc.code == S3ErrorCode.NotModified and "ETag" not in exc.headers:
                # a 304 carries the validators; some upstreams leave them out
                info = await self.head_object(bucket, key)
                exc.headers["ETag"] = f'"{info.etag}"'
                exc.headers["Last-Modified"] = format_http_time(info.last_modified)
            raise
        try:
            info = object_info(key, resp.headers)
            byte_range = None
            if resp.status == 206:
                byte_range = parse_content_range(resp.headers.get("Content-Range", ""))
                if byte_range is not None:
                    info.size = byte_range.total
            check_conditions(info, conditions)
        except BaseException:
            resp.close()
            raise
        return UpstreamReader(self._upstream, resp, info, byte_range)

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
        check_key(dst_bucket, dst_key)
        headers = await self._copy_source_headers(src_bucket, src_key, conditions)
        if meta is None:
            headers["x-amz-metadata-directive"] = "COPY"
        else:
            headers["x-amz-metadata-directive"] = "REPLACE"
            headers.update(write_headers(meta))
        doc = await self._copy_xml(dst_bucket, dst_key, headers=headers)
        return copy_result(doc, "CopyObjectResult")

    async def delete_object(self, bucket: str, key: str) -> None:
        try:
            await self._upstream.discard("DELETE", bucket, key)
        except S3Error as exc:
            # S3 answers 204 for a missing key; an upstream may say NoSuchKey when another
            # delete of the key won the race (versitygw under concurrent deletes): same outcome
            if exc.code != S3ErrorCode.NoSuchKey:
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
        skip = start_after if is_common_prefix(start_after, prefix, delimiter) else None
        want = max(0, min(max_keys + (1 if skip else 0), 1000))
        query = [("list-type", "2"), ("encoding-type", "url"), ("max-keys", str(want))]
        if prefix:
            query.append(("prefix", prefix))
        if delimiter:
            query.append(("delimiter", delimiter))
        if start_after:
            query.append(("start-after", start_after))
        doc = await self._upstream.xml("GET", bucket, query=query)
        result = doc.get("ListBucketResult") or {}
        decode = decoder(result)
        objects = [
            ObjectInfo(
                key=decode(item["Key"]),
                size=int(item.get("Size") or 0),
                etag=unquote(item.get("ETag") or ""),
                last_modified=iso_time(item.get("LastModified")),
            )
            for item in result.get("Contents") or []
        ]
        prefixes = [decode(p["Prefix"]) for p in result.get("CommonPrefixes") or []]
        truncated = as_bool(result.get("IsTruncated"))
        if skip is not None:
            prefixes = [p for p in prefixes if p != skip]
            objects = [o for o in objects if not o.key.startswith(skip)]
        return trim_page(objects, prefixes, truncated, max_keys)

    # -- multipart -----------------------------------------------------------------------------
    async def create_multipart_upload(
        self, bucket: str, key: str, meta: WriteMeta, *, checksum: tuple[str, str] | None = None
    ) -> str:
        check_key(bucket, key)
        headers = write_headers(meta)
        if checksum is not None:
            headers["x-amz-checksum-algorithm"] = checksum[0].upper()
            headers["x-amz-checksum-type"] = checksum[1]
        doc = await self._upstream.xml(
            "POST", bucket, key, query=[("uploads", "")], headers=headers
        )
        upload_id = dig(doc, "InitiateMultipartUploadResult", "UploadId")
        if not upload_id:
            raise bad_answer("CreateMultipartUpload")
        return upload_id

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        body: Body,
        *,
        checksum: KeepChecksum | None = None,
    ) -> str:
        query = [("partNumber", str(part_number)), ("uploadId", upload_id)]
        resp = await self._upstream.upload("PUT", bucket, key, body, query=query, checksum=checksum)
        await read_body(resp)
        return etag_of(resp.headers)

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
        source: ObjectInfo | None = None
        if range_header is not None:
            copied, source = await self._copy_range(src_bucket, src_key, range_header)
            headers["x-amz-copy-source-range"] = copied
            headers.setdefault("x-amz-copy-source-if-match", f'"{source.etag}"')
        query = [("partNumber", str(part_number)), ("uploadId", upload_id)]
        doc = await self._copy_xml(bucket, key, query=query, headers=headers)
        result = copy_result(doc, "CopyPartResult")
        if source is None or result.checksum is None:
            return result
        first, last = parse_copy_range(headers["x-amz-copy-source-range"])
        whole = first == 0 and last == source.size - 1
        if not kept_whole_checksum(result.checksum, source.checksum, whole):
            return result
        # the upstream kept the source's checksum for a part of it: send the part again
        reader = await self.open_object(
            src_bucket,
            src_key,
            range_header=headers["x-amz-copy-source-range"],
            conditions=Conditions(if_match=source.etag),
        )
        body = HashedRange(reader, last - first + 1, result.checksum.algorithm)
        keep = KeepChecksum(body.checksum.algorithm, body.checksum.b64)
        etag = await self.upload_part(bucket, key, upload_id, part_number, body, checksum=keep)
        return CopyResult(
            etag, datetime.now(UTC), ObjectChecksum(keep.algorithm, body.checksum.b64())
        )

    async def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[tuple[int, str]],
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        part_checksums: dict[int, tuple[str, str]] | None = None,
    ) -> str:
        body = complete_xml(parts, part_checksums or {})
        headers = {"content-type": "application/xml"}
        if if_none_match or if_match is not None:
            headers.update(
                await self._write_conditions(bucket, key, if_none_match, if_match, completing=True)
            )
        try:
            doc = await self._upstream.xml(
                "POST",
                bucket,
                key,
                query=[("uploadId", upload_id)],
                headers=headers,
                data=body,
                timeout=self._upstream.slow_timeout,
            )
        except S3Error as exc:
            # versitygw checks the parts before the upload: a finished or aborted upload
            # comes back as InvalidPart where S3 says NoSuchUpload
            if exc.code == S3ErrorCode.InvalidPart:
                await self.list_parts(bucket, key, upload_id, max_parts=1)
            raise
        etag = dig(doc, "CompleteMultipartUploadResult", "ETag")
        if etag is None:
            raise bad_answer("CompleteMultipartUpload")
        return unquote(etag)

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self._upstream.discard("DELETE", bucket, key, query=[("uploadId", upload_id)])

    async def list_parts(
        self, bucket: str, key: str, upload_id: str, *, part_marker: int = 0, max_parts: int = 1000
    ) -> PartsPage:
        query = [("uploadId", upload_id), ("max-parts", str(max_parts))]
        if part_marker:
            query.append(("part-number-marker", str(part_marker)))
        doc = await self._upstream.xml("GET", bucket, key, query=query)
        result = doc.get("ListPartsResult") or {}
        parts = [
            PartInfo(
                number=int(p["PartNumber"]),
                etag=unquote(p.get("ETag") or ""),
                size=int(p.get("Size") or 0),
                last_modified=iso_time(p.get("LastModified")),
                checksum=part_checksum(p),
            )
            for p in result.get("Part") or []
        ]
        truncated = as_bool(result.get("IsTruncated"))
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
        doc = await self._upstream.xml("GET", bucket, query=query)
        result = doc.get("ListMultipartUploadsResult") or {}
        decode = decoder(result)
        uploads = [
            UploadInfo(
                key=decode(u["Key"]),
                upload_id=u["UploadId"],
                initiated=iso_time(u.get("Initiated")),
            )
            for u in result.get("Upload") or []
        ]
        prefixes = [decode(p["Prefix"]) for p in result.get("CommonPrefixes") or []]
        truncated = as_bool(result.get("IsTruncated"))
        next_key = result.get("NextKeyMarker")
        next_id = result.get("NextUploadIdMarker")
        return UploadsPage(
            uploads,
            prefixes,
            truncated,
            next_key_marker=decode(next_key) if truncated and next_key else None,
            next_upload_id_marker=next_id if truncated and next_id else None,
        )

    async def _copy_xml(self, bucket: str, key: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return await self._upstream.xml(
                "PUT", bucket, key, timeout=self._upstream.slow_timeout, **kwargs
            )
        except S3Error as exc:
            # S3 answers a failed x-amz-copy-source-if-* with 412, never 304 (versitygw: 304)
            if exc.code == S3ErrorCode.NotModified:
                raise S3Error(
                    S3ErrorCode.PreconditionFailed,
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
        headers.update(etag_condition_headers(conditions, "x-amz-copy-source-"))
        if conditions and (conditions.if_modified_since or conditions.if_unmodified_since):
            info = await self.head_object(bucket, key)
            check_conditions(info, conditions, copy_source=True)
            headers.setdefault("x-amz-copy-source-if-match", f'"{info.etag}"')
        return headers

    async def _write_conditions(
        self,
        bucket: str,
        key: str,
        if_none_match: bool,
        if_match: str | None,
        *,
        completing: bool = False,
    ) -> dict[str, str]:
        """The conditional-write headers for the upstream, which makes them atomic when it
        honours them. Not every upstream does (for CompleteMultipartUpload, or If-Match at
        all), so If-Match, and If-None-Match on a completion, are also checked here on a HEAD
        first: with such an upstream, a writer landing between that HEAD and the write escapes
        the condition (docs/design.md, "The S3 surface in brief")."""
        headers: dict[str, str] = {}
        if if_match is not None:
            info = await self.head_object(bucket, key)  # NoSuchKey without an object, as S3
            check_conditions(info, Conditions(if_match=if_match))
            headers["if-match"] = if_match
        if if_none_match:
            if completing:
                try:
                    await self.head_object(bucket, key)
                except S3Error as err:
                    if err.code != S3ErrorCode.NoSuchKey:
                        raise
                else:
                    raise S3Error(
                        S3ErrorCode.PreconditionFailed,
                        f"{key!r} already exists (If-None-Match: *).",
                        resource=f"/{bucket}/{key}",
                        extra={"Condition": "If-None-Match"},
                    )
            headers["if-none-match"] = "*"
        return headers

    async def _copy_range(self, bucket: str, key: str, range_header: str) -> tuple[str, ObjectInfo]:
        """The client's range, checked against the source's size (a range past its end is
        InvalidRange, whatever the upstream would do), and the source as seen: the caller pins
        the copy to its ETag, so a shorter source put in between cannot be copied instead."""
        parse_copy_range(range_header)  # a malformed range fails before any upstream call
        info = await self.head_object(bucket, key)
        byte_range = copy_range(range_header, info.size)
        return f"bytes={byte_range.start}-{byte_range.end}", info


def check_key(bucket: str, key: str) -> None:
    # S3's limit, which not every upstream enforces (versitygw takes longer keys)
    if len(key.encode()) > MAX_KEY_BYTES:
        raise S3Error(S3ErrorCode.KeyTooLongError, resource=f"/{bucket}/{key[:64]}...")
