"""Object operations: Get/Head/Put/Copy/Delete, DeleteObjects and the object ACL probe."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from gateway.backends.base import (
    ByteRange,
    Conditions,
    KeepChecksum,
    ObjectChecksum,
    ObjectInfo,
    WriteMeta,
)
from gateway.protocol import s3xml
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.protocol.names import validate_key
from gateway.protocol.parts import parse_part_number
from gateway.protocol.safe_serving import apply_download_rule, refuse_as_subresource
from gateway.s3api.handlers.buckets import ACL_DOCUMENT
from gateway.s3api.handlers.common import (
    S3Request,
    check_version_id,
    checksum_answer,
    checksum_mode,
    conditions,
    copy_source,
    read_xml,
    require_length,
    write_condition,
    write_meta,
    xml_response,
)
from gateway.s3api.raw_headers import RawResponse, RawStreamResponse
from gateway.s3api.sendfile import send_body
from gateway.usecases.writes import WritePath, hash_object, refused, stamp
from policy.enforce import Decision, OperationClass, Refusal

log = logging.getLogger("minimo.s3")

#: Bodies up to this size are sent in one write; larger ones stream in pieces.
SMALL_BODY = 256 * 1024
MAX_DELETE_KEYS = 1000
_DELETE_CONCURRENCY = 16

#: ``response-*`` query parameters and the header each one overrides. The names are spelled
#: as the backends report stored headers (lower case, ``STORED_HEADERS``), so an override
#: replaces the stored value in the plain dict below instead of going out beside it.
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}


def object_headers(info: ObjectInfo, r: S3Request) -> dict[str, str]:
    """The headers of a GET/HEAD answer. nosniff and the sandbox CSP are stamped on every S3
    response by gateway.s3api.app; here active types become attachments
    (gateway.protocol.safe_serving)."""
    headers = {
        "ETag": s3xml.quote_etag(info.etag),
        "Last-Modified": s3xml.http_date(info.last_modified),
        "Content-Type": info.content_type or "binary/octet-stream",
        "Accept-Ranges": "bytes",
    }
    for name, value in info.headers.items():
        headers[name] = value
    for name, value in info.metadata.items():
        headers["x-amz-meta-" + name] = value
    whole = "Range" not in r.headers and "partNumber" not in r.query
    if info.checksum is not None and checksum_mode(r) and whole:
        # S3 answers the whole object's checksum only for the whole object
        headers.update(checksum_answer(info.checksum))
    q = r.query
    # Overrides are honoured only on authenticated requests; anonymous ones never get here.
    if q:
        for param, header in RESPONSE_OVERRIDES.items():
            value = q.get(param)
            if value is not None:
                headers[header] = value
    # after the overrides: response-content-type=text/html must not make a page either
    apply_download_rule(headers, headers["Content-Type"])
    return headers


def _part_number(r: S3Request) -> int | None:
    """``partNumber=N`` (GET/HEAD one part of an object), which excludes a Range header."""
    raw = r.query.get("partNumber")
    if raw is None:
        return None
    number = parse_part_number(raw)
    if "Range" in r.headers:
        raise S3Error(
            S3ErrorCode.InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter.",
            resource=r.resource,
        )
    return number


async def _part(r: S3Request, number: int) -> tuple[ObjectInfo, ByteRange | None, dict[str, str]]:
    """The part's info, bytes and the headers S3 adds for a part (its count, its range)."""
    info, span = await r.store.part_range(r.bucket, r.key, number, conditions(r.headers))
    headers = object_headers(info, r)
    if info.parts_count:
        headers["x-amz-mp-parts-count"] = str(info.parts_count)
    if span is not None:
        headers["Content-Range"] = f"bytes {span.start}-{span.end}/{span.total}"
    return info, span, headers


async def head_object(r: S3Request) -> web.StreamResponse:
    check_version_id(r.query, r.resource)
    number = _part_number(r)
    if number is not None:
        _, span, headers = await _part(r, number)
        resp = web.StreamResponse(status=206 if span else 200, headers=headers)
        resp.content_length = span.length if span else 0
        return resp
    info = await r.store.head_object(r.bucket, r.key, conditions(r.headers))
    resp = RawStreamResponse(headers=object_headers(info, r))
    resp.content_length = info.size
    return resp


async def get_object(r: S3Request) -> web.StreamResponse:
    check_version_id(r.query, r.resource)
    refuse_as_subresource(r.headers, r.resource)
    number = _part_number(r)
    range_header = r.headers.get("Range")
    cond = conditions(r.headers)
    part_headers: dict[str, str] | None = None
    if number is not None:
        info, span, part_headers = await _part(r, number)
        if span is None:
            return web.Response(status=200, headers=part_headers)
        range_header = f"bytes={span.start}-{span.end}"
        # the bytes must be of the object whose part sizes were just read
        cond = Conditions(if_match=info.etag)
    reader = await r.store.open_object(r.bucket, r.key, range_header=range_header, conditions=cond)
    try:
        headers = part_headers or object_headers(reader.info, r)
        span = reader.byte_range
        if span is not None:
            status, length = 206, span.length
            headers["Content-Range"] = f"bytes {span.start}-{span.end}/{span.total}"
        else:
            status, length = 200, reader.info.size
        if length <= SMALL_BODY:
            body = b"".join([chunk async for chunk in reader])
            return RawResponse(status=status, body=body, headers=headers)
        return await _stream(r.request, reader, status, length, headers)
    finally:
        # Always release the file or upstream connection, also when the client went away.
        await reader.aclose()


async def _stream(
    request: web.Request, reader, status: int, length: int, headers: dict[str, str]
) -> web.StreamResponse:
    resp = RawStreamResponse(status=status, headers=headers)
    resp.content_length = length
    await resp.prepare(request)
    # a reader that can hand its file to the kernel (local backend) skips the copies
    send_file = getattr(reader, "send_file", None)
    try:
        if send_file is None or not await send_body(request, resp, send_file):
            async for chunk in reader:
                await resp.write(chunk)
    except ConnectionError:
        # The client went away: nothing to tell it. The caller's finally closes the reader and
        # aiohttp drops the connection quietly.
        return resp
    except Exception:
        # Headers are out, so no error document can follow: cut the connection so the client
        # sees a short body instead of a silently truncated object.
        log.exception("error while streaming %s", request.raw_path)
        resp.force_close()
        if request.transport is not None:
            request.transport.close()
        return resp
    await resp.write_eof()
    return resp


async def put_object(r: S3Request) -> web.StreamResponse:
    require_length(r.headers)
    condition = write_condition(r)
    decision, writes = _write_context(r)
    meta = stamp(write_meta(r.headers), decision)
    body = r.body(sha256=True)
    # The client's checksum is kept with the object; without one, minimo's own SHA-256 (which
    # the record keeps anyway) is, so every object answers a checksum (docs/compatibility.md).
    algorithm = body.client_algorithm or "sha256"
    keep = KeepChecksum(algorithm, lambda: body.checksum_b64(algorithm))
    write = writes.begin(decision, r.bucket, r.key)
    await write.start()
    try:
        # Under write-once the claim already keeps minimo's own writers apart; asking the
        # store for If-None-Match too refuses an object that exists without a claim (written
        # while overwrites were allowed, or before minimo), at no extra round trip.
        etag = await r.store.put_object(
            r.bucket,
            r.key,
            body,
            meta,
            if_none_match=condition.if_none_match or decision.write_once,
            if_match=condition.if_match,
            checksum=keep,
        )
    except BaseException as exc:
        await write.fail(r.store, exc)
        if (busy := await write.overtaken(exc)) is not None:
            raise busy from exc
        if (
            isinstance(exc, S3Error)
            and exc.code == S3ErrorCode.PreconditionFailed
            and decision.write_once
            and not condition.if_none_match
        ):
            # an object is there and the rule keeps it (whatever If-Match said of it)
            raise await write.overwrite_refused() from None
        raise
    await write.commit(
        r.store,
        size=body.received,
        etag=etag,
        sha256=body.sha256_hex,
        content_type=meta.content_type,
    )
    headers = checksum_answer(ObjectChecksum(algorithm, keep.value()))
    headers["ETag"] = s3xml.quote_etag(etag)
    return web.Response(headers=headers)


def _write_context(r: S3Request) -> tuple[Decision, WritePath]:
    assert r.decision is not None and r.writes is not None, "the app enforces before handlers"
    return r.decision, r.writes


def _directive(r: S3Request) -> str:
    value = r.headers.get("x-amz-metadata-directive", "COPY").upper()
    if value not in ("COPY", "REPLACE"):
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            f"Unknown metadata directive {value!r}: use COPY or REPLACE.",
            extra={"ArgumentName": "x-amz-metadata-directive", "ArgumentValue": value},
        )
    return value


async def copy_object(r: S3Request) -> web.StreamResponse:
    src_bucket, src_key = copy_source(r.headers)
    replace = _directive(r) == "REPLACE"
    if not replace and (src_bucket, src_key) == (r.bucket, r.key):
        raise S3Error(
            S3ErrorCode.InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect location "
            "or encryption attributes.",
            resource=r.resource,
        )
    decision, writes = _write_context(r)
    try:
        await writes.enforcer.check_read(decision.principal, src_bucket)
    except Refusal as refusal:
        raise refused(refusal, r.resource) from None
    source = await r.store.head_object(src_bucket, src_key)
    if replace:
        meta = write_meta(r.headers)
    else:
        # Directive COPY keeps the source's metadata, but never its session stamp: the copy
        # belongs to the session this request names. So the metadata is copied here.
        meta = WriteMeta(
            content_type=source.content_type,
            metadata=dict(source.metadata),
            headers=dict(source.headers),
        )
    stamp(meta, decision)
    # The copy must be of the object just looked at (its record's SHA-256 is reused below):
    # pin it by ETag unless the client set its own condition.
    cond = conditions(r.headers, "x-amz-copy-source-") or Conditions()
    if cond.if_match is None:
        cond.if_match = source.etag
    write = writes.begin(decision, r.bucket, r.key)
    await write.start()
    try:
        await write.refuse_if_exists(r.store)
        source_record = await writes.store.get_object_record(src_bucket, src_key)
    except BaseException:
        await write.abort()
        raise
    try:
        result = await r.store.copy_object(
            src_bucket, src_key, r.bucket, r.key, meta=meta, conditions=cond
        )
    except BaseException as exc:
        await write.fail(r.store, exc)
        raise
    try:
        if source_record is not None and source_record.etag == source.etag:
            sha256, size = source_record.sha256, source.size
        else:
            # No trusted record of the source: hash the copy once as it is now stored.
            sha256, size, _ = await hash_object(r.store, r.bucket, r.key, result.etag)
    except BaseException:
        await write.abort(r.store, etag=result.etag)
        raise
    await write.commit(
        r.store,
        size=size,
        etag=result.etag,
        sha256=sha256,
        content_type=meta.content_type,
        source=f"s3://{src_bucket}/{src_key}",
    )
    inner = s3xml.elements(
        [
            ("LastModified", s3xml.iso8601(result.last_modified)),
            ("ETag", s3xml.quote_etag(result.etag)),
        ]
    )
    return xml_response(s3xml.document("CopyObjectResult", inner))


async def delete_object(r: S3Request) -> web.StreamResponse:
    check_version_id(r.query, r.resource)
    decision, writes = _write_context(r)
    await _delete(r, writes, decision, r.key)
    return web.Response(status=204)


async def _delete(r: S3Request, writes: WritePath, decision: Decision, key: str) -> None:
    # The record goes (and the write-once claim with it); the history keeps every write.
    await writes.deleted(r.store, decision, r.bucket, key)


async def get_object_acl(r: S3Request) -> web.StreamResponse:
    check_version_id(r.query, r.resource)
    await r.store.head_object(r.bucket, r.key)
    return xml_response(ACL_DOCUMENT)


def _delete_request(doc: dict) -> tuple[bool, list[tuple[str, str | None]]]:
    quiet = (s3xml.text(doc.get("Quiet")) or "").strip().lower() == "true"
    objects = s3xml.as_list(doc.get("Object"))
    if not objects:
        raise S3Error(
            S3ErrorCode.MalformedXML, "A <Delete> document must name at least one <Object>."
        )
    if len(objects) > MAX_DELETE_KEYS:
        raise S3Error(
            S3ErrorCode.MalformedXML,
            f"A <Delete> document names at most {MAX_DELETE_KEYS} objects; "
            f"this one names {len(objects)}.",
        )
    items = []
    for obj in objects:
        key = s3xml.text(s3xml.child(obj, "Key"))
        if key is None:
            raise S3Error(S3ErrorCode.MalformedXML, "Every <Object> needs a <Key>.")
        version = s3xml.text(s3xml.child(obj, "VersionId"))
        items.append((key, version))
    return quiet, items


async def _delete_one(r: S3Request, key: str, version: str | None) -> str:
    _, writes = _write_context(r)
    try:
        if version is not None and version not in ("", "null"):
            raise S3Error(
                S3ErrorCode.NoSuchVersion, "This server keeps one version per key ('null')."
            )
        validate_key(r.bucket, key)
        try:
            # Each key is judged on its own (its rule, its owner), refusals audited.
            decision = await writes.enforcer.decide(
                r.auth.principal, "DeleteObject", OperationClass.DELETE, r.bucket, key
            )
        except Refusal as refusal:
            raise refused(refusal) from None
        await _delete(r, writes, decision, key)
    except S3Error as err:
        return (
            f"<Error><Key>{s3xml.esc(key)}</Key><Code>{s3xml.esc(err.code)}</Code>"
            f"<Message>{s3xml.esc(err.message)}</Message></Error>"
        )
    return ""


async def delete_objects(r: S3Request) -> web.StreamResponse:
    doc = await read_xml(r, "Delete")
    assert doc is not None
    quiet, items = _delete_request(doc)
    await r.store.head_bucket(r.bucket)
    sem = asyncio.Semaphore(_DELETE_CONCURRENCY)

    async def one(key: str, version: str | None) -> str:
        async with sem:
            return await _delete_one(r, key, version)

    errors = await asyncio.gather(*(one(k, v) for k, v in items))
    out = []
    for (key, version), error in zip(items, errors, strict=True):
        if error:
            out.append(error)
        elif not quiet:
            vid = f"<VersionId>{s3xml.esc(version)}</VersionId>" if version else ""
            out.append(f"<Deleted><Key>{s3xml.esc(key)}</Key>{vid}</Deleted>")
    return xml_response(s3xml.document("DeleteResult", "".join(out)))
