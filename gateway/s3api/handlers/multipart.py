"""The multipart family: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts."""

from __future__ import annotations

import contextlib
import itertools
from datetime import UTC, datetime
from urllib.parse import quote

from aiohttp import web

from gateway.backends.base import MAX_PART_NUMBER, KeepChecksum, ObjectChecksum
from gateway.protocol import s3xml
from gateway.protocol.checksums import ALGORITHMS
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.protocol.ranges import parse_copy_range
from gateway.protocol.upload_checksums import upload_checksum
from gateway.s3api.handlers.common import (
    S3Request,
    checksum_headers,
    conditions,
    copy_source,
    int_param,
    read_xml,
    require_length,
    write_condition,
    write_meta,
    xml_response,
)
from gateway.usecases.completed import completed_again
from gateway.usecases.writes import WritePath, hash_object, refused, stamp
from policy.enforce import Decision, Refusal
from policy.store.base import MultipartRecord

MAX_PARTS = 1000


def _upload_id(r: S3Request) -> str:
    upload_id = r.query.get("uploadId", "")
    if not upload_id:
        raise S3Error(
            S3ErrorCode.NoSuchUpload, "The uploadId parameter is empty.", resource=r.resource
        )
    return upload_id


def _part_number(r: S3Request) -> int:
    raw = r.query.get("partNumber", "")
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_PART_NUMBER:
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive.",
            resource=r.resource,
            extra={"ArgumentName": "partNumber", "ArgumentValue": raw},
        )
    return number


def _write_context(r: S3Request) -> tuple[Decision, WritePath]:
    assert r.decision is not None and r.writes is not None, "the app enforces before handlers"
    return r.decision, r.writes


async def create_multipart_upload(r: S3Request) -> web.StreamResponse:
    decision, writes = _write_context(r)
    meta = stamp(write_meta(r.headers), decision)
    checksum = upload_checksum(r.headers)
    upload_id = await r.store.create_multipart_upload(r.bucket, r.key, meta, checksum=checksum)
    record = MultipartRecord(
        upload_id=upload_id,
        bucket=r.bucket,
        key=r.key,
        session_id=decision.session_id,
        principal=decision.principal.user if decision.principal else "-",
        created=datetime.now(UTC),
    )
    try:
        # Kept in the metadata store, so any gateway process can take the parts and check
        # that they come from the same user under a still-open session.
        await writes.store.create_multipart(record)
    except BaseException:
        with contextlib.suppress(Exception):
            await r.store.abort_multipart_upload(r.bucket, r.key, upload_id)
        raise
    await writes.accepted(decision, f"s3://{r.bucket}/{r.key}", upload_id=upload_id)
    inner = s3xml.elements([("Bucket", r.bucket), ("Key", r.key), ("UploadId", upload_id)])
    resp = xml_response(s3xml.document("InitiateMultipartUploadResult", inner))
    if checksum is not None:
        resp.headers["x-amz-checksum-algorithm"] = checksum[0].upper()
        resp.headers["x-amz-checksum-type"] = checksum[1]
    return resp


async def upload_part(r: S3Request) -> web.StreamResponse:
    number = _part_number(r)
    upload_id = _upload_id(r)
    require_length(r.headers)
    body = r.body()
    # the part keeps the checksum the client sent (the upload's algorithm, S3 requires)
    algorithm = body.client_algorithm
    keep = KeepChecksum(algorithm, lambda: body.checksum_b64(algorithm)) if algorithm else None
    etag = await r.store.upload_part(r.bucket, r.key, upload_id, number, body, checksum=keep)
    decision, writes = _write_context(r)
    await writes.accepted(decision, f"s3://{r.bucket}/{r.key}", upload_id=upload_id, part=number)
    headers = checksum_headers(r.headers, body)
    headers["ETag"] = s3xml.quote_etag(etag)
    return web.Response(headers=headers)


async def upload_part_copy(r: S3Request) -> web.StreamResponse:
    number = _part_number(r)
    upload_id = _upload_id(r)
    src_bucket, src_key = copy_source(r.headers)
    range_header = r.headers.get("x-amz-copy-source-range")
    if range_header is not None:
        parse_copy_range(range_header)  # malformed: 400 before the source is even looked at
    decision, writes = _write_context(r)
    try:
        await writes.enforcer.check_read(decision.principal, src_bucket)
    except Refusal as refusal:
        raise refused(refusal, r.resource) from None
    result = await r.store.upload_part_copy(
        r.bucket,
        r.key,
        upload_id,
        number,
        src_bucket,
        src_key,
        range_header=range_header,
        conditions=conditions(r.headers, "x-amz-copy-source-"),
    )
    await writes.accepted(
        decision,
        f"s3://{r.bucket}/{r.key}",
        upload_id=upload_id,
        part=number,
        source=f"s3://{src_bucket}/{src_key}",
    )
    pairs: list[tuple[str, str | int | None]] = [
        ("LastModified", s3xml.iso8601(result.last_modified)),
        ("ETag", s3xml.quote_etag(result.etag)),
    ]
    if result.checksum is not None:
        # the upload keeps a checksum: the copied part's, to name in CompleteMultipartUpload
        pairs.append(("Checksum" + result.checksum.algorithm.upper(), result.checksum.value))
    return xml_response(s3xml.document("CopyPartResult", s3xml.elements(pairs)))


def _part_checksums(doc: dict) -> dict[int, tuple[str, str]]:
    """The ``<ChecksumCRC32>`` (or other algorithm) each ``<Part>`` names, by part number."""
    found: dict[int, tuple[str, str]] = {}
    for part in s3xml.as_list(doc.get("Part")):
        if not isinstance(part, dict):
            continue
        for algorithm in ALGORITHMS:
            value = s3xml.text(part.get("Checksum" + algorithm.upper()))
            number = s3xml.text(part.get("PartNumber")) or ""
            if value and number.strip().isdigit():
                found[int(number)] = (algorithm, value.strip())
    return found


def _parts(doc: dict) -> list[tuple[int, str]]:
    parts = []
    for part in s3xml.as_list(doc.get("Part")):
        number_text = s3xml.text(s3xml.child(part, "PartNumber"))
        etag = s3xml.text(s3xml.child(part, "ETag"))
        try:
            number = int((number_text or "").strip())
        except ValueError as exc:
            raise S3Error(
                S3ErrorCode.MalformedXML, "Every <Part> needs a numeric <PartNumber>."
            ) from exc
        if etag is None:
            raise S3Error(S3ErrorCode.MalformedXML, "Every <Part> needs an <ETag>.")
        parts.append((number, etag.strip().strip('"')))
    if not parts:
        raise S3Error(
            S3ErrorCode.MalformedXML, "The <CompleteMultipartUpload> document lists no parts."
        )
    for (a, _), (b, _) in itertools.pairwise(parts):
        if b <= a:
            raise S3Error(
                S3ErrorCode.InvalidPartOrder,
                "The list of parts was not in ascending order: part numbers must increase.",
            )
    return parts


async def complete_multipart_upload(r: S3Request) -> web.StreamResponse:
    upload_id = _upload_id(r)
    doc = await read_xml(r, "CompleteMultipartUpload")
    assert doc is not None
    parts = _parts(doc)
    condition = write_condition(r)
    decision, writes = _write_context(r)
    if decision.upload is None:
        # no upload in flight under this id: answered again only when it was this completion
        etag = await completed_again(
            r.store, writes.store, decision.principal, r.bucket, r.key, upload_id, parts
        )
        if etag is None:
            message = (
                "The specified multipart upload does not exist. The upload ID may be invalid, "
                "or the upload may have been aborted or completed."
            )
            await writes.auditor.refused(
                decision.principal, r.op, f"s3://{r.bucket}/{r.key}", message, upload_id=upload_id
            )
            raise S3Error(S3ErrorCode.NoSuchUpload, message, resource=r.resource)
        return await _completed_answer(r, etag)
    write = writes.begin(decision, r.bucket, r.key, upload_id)
    await write.start()
    try:
        await write.refuse_if_exists(r.store)
    except BaseException:
        await write.abort()
        raise
    try:
        # under write-once, If-None-Match also closes the window after refuse_if_exists where
        # the store allows it
        etag = await r.store.complete_multipart_upload(
            r.bucket,
            r.key,
            upload_id,
            parts,
            if_none_match=condition.if_none_match or decision.write_once,
            if_match=condition.if_match,
            part_checksums=_part_checksums(doc),
        )
    except BaseException as exc:
        await write.fail(r.store, exc)
        if (
            isinstance(exc, S3Error)
            and exc.code == S3ErrorCode.PreconditionFailed
            and decision.write_once
            and not condition.if_none_match
        ):
            raise await write.overwrite_refused() from None
        raise
    try:
        # Part hashes cannot be combined into the whole object's SHA-256 (unlike CRCs), so
        # the completed object is read back once, as a stream, to hash it.
        sha256, size, content_type = await hash_object(r.store, r.bucket, r.key, etag)
    except S3Error as err:
        if err.code != S3ErrorCode.PreconditionFailed:
            await write.abort(r.store, etag=etag)
            raise
        # Overwritten (overwrite = allow) before it could be hashed: the newer write owns
        # the key and its record; this one leaves none.
        await write.abort()
    except BaseException:
        await write.abort(r.store, etag=etag)
        raise
    else:
        await write.commit(
            r.store,
            size=size,
            etag=etag,
            sha256=sha256,
            content_type=content_type,
            upload_id=upload_id,
            parts=len(parts),
        )
    await writes.store.delete_multipart(upload_id)
    return await _completed_answer(r, etag)


async def _completed_answer(r: S3Request, etag: str) -> web.Response:
    pairs: list[tuple[str, str | int | None]] = [
        ("Location", f"{r.config.base_url}/{r.bucket}/{quote(r.key)}"),
        ("Bucket", r.bucket),
        ("Key", r.key),
        ("ETag", s3xml.quote_etag(etag)),
    ]
    kept = await _kept_checksum(r, etag)
    if kept is not None:
        pairs += [("Checksum" + kept.algorithm.upper(), kept.value), ("ChecksumType", kept.type)]
    return xml_response(s3xml.document("CompleteMultipartUploadResult", s3xml.elements(pairs)))


async def _kept_checksum(r: S3Request, etag: str) -> ObjectChecksum | None:
    """The checksum the completed object keeps (None when none, or already replaced)."""
    try:
        info = await r.store.head_object(r.bucket, r.key)
    except S3Error:
        return None
    return info.checksum if info.etag == etag else None


async def abort_multipart_upload(r: S3Request) -> web.StreamResponse:
    upload_id = _upload_id(r)
    decision, writes = _write_context(r)
    await r.store.abort_multipart_upload(r.bucket, r.key, upload_id)
    await writes.store.delete_multipart(upload_id)
    await writes.accepted(decision, f"s3://{r.bucket}/{r.key}", upload_id=upload_id)
    return web.Response(status=204)


def _part_checksum_xml(checksum: ObjectChecksum | None) -> str:
    if checksum is None:
        return ""
    name = "Checksum" + checksum.algorithm.upper()
    return f"<{name}>{s3xml.esc(checksum.value)}</{name}>"


async def list_parts(r: S3Request) -> web.StreamResponse:
    upload_id = _upload_id(r)
    q = r.query
    marker = int_param(q, "part-number-marker", 0)
    max_parts = int_param(q, "max-parts", MAX_PARTS, cap=MAX_PARTS)
    page = await r.store.list_parts(
        r.bucket, r.key, upload_id, part_marker=marker, max_parts=max_parts
    )
    head = s3xml.elements(
        [
            ("Bucket", r.bucket),
            ("Key", r.key),
            ("UploadId", upload_id),
        ]
    )
    head += (
        f"<Initiator><ID>{s3xml.OWNER_ID}</ID><DisplayName>{s3xml.OWNER_NAME}</DisplayName>"
        f"</Initiator>{s3xml.OWNER_XML}<StorageClass>STANDARD</StorageClass>"
    )
    head += s3xml.elements(
        [
            ("PartNumberMarker", marker),
            ("NextPartNumberMarker", page.next_marker if page.truncated else None),
            ("MaxParts", max_parts),
            ("IsTruncated", page.truncated),
        ]
    )
    iso = s3xml.iso8601
    parts = "".join(
        f"<Part><PartNumber>{p.number}</PartNumber><LastModified>{iso(p.last_modified)}"
        f'</LastModified><ETag>"{s3xml.esc(p.etag)}"</ETag><Size>{p.size}</Size>'
        f"{_part_checksum_xml(p.checksum)}</Part>"
        for p in page.parts
    )
    return xml_response(s3xml.document("ListPartsResult", head + parts))
