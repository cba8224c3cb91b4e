"""GetObjectAttributes (``GET /bucket/key?attributes``): what S3 knows about an object
without its bytes, the attributes named in ``x-amz-object-attributes``."""

from __future__ import annotations

from aiohttp import web

from gateway.backends.base import ObjectPartsPage
from gateway.protocol import s3xml
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.s3api.handlers.common import S3Request, check_version_id, conditions, xml_response

#: the attributes a client may ask for, as AWS spells them
ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")


def asked_attributes(r: S3Request) -> set[str]:
    """``x-amz-object-attributes``: a comma-separated list (the header may also repeat)."""
    names = {
        name.strip()
        for value in r.headers.getall("x-amz-object-attributes", [])
        for name in value.split(",")
        if name.strip()
    }
    if not names:
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            "The x-amz-object-attributes header specifying the attributes to be retrieved is "
            "either missing or empty.",
            resource=r.resource,
            extra={"ArgumentName": "x-amz-object-attributes", "ArgumentValue": ""},
        )
    unknown = sorted(names - set(ATTRIBUTES))
    if unknown:
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            f"Invalid attribute name specified: {unknown[0]!r}; use {', '.join(ATTRIBUTES)}.",
            resource=r.resource,
            extra={"ArgumentName": "x-amz-object-attributes", "ArgumentValue": unknown[0]},
        )
    return names


#: the most parts one answer lists (and what it lists when not told), as S3
MAX_PARTS = 1000


def _header_int(r: S3Request, name: str, default: int) -> int:
    """A non-negative integer header (``x-amz-max-parts``, ``x-amz-part-number-marker``)."""
    raw = r.headers.get(name)
    if raw is None:
        return default
    if not raw.strip().isdigit():
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            f"{name} must be a non-negative integer.",
            resource=r.resource,
            extra={"ArgumentName": name, "ArgumentValue": raw},
        )
    return int(raw)


def object_parts_xml(page: ObjectPartsPage, has_checksum: bool, marker: int, max_parts: int) -> str:
    """``<ObjectParts>``. As S3 does for a general-purpose bucket, the parts themselves are
    listed only when the upload kept part checksums; otherwise the count says it all (the
    element is PartsCount on the wire, TotalPartsCount in the SDKs)."""
    if page.parts is None or not has_checksum:
        return f"<ObjectParts><PartsCount>{page.count}</PartsCount></ObjectParts>"
    pairs: list[tuple[str, str | int | None]] = [
        ("IsTruncated", "true" if page.truncated else "false"),
        ("MaxParts", max_parts),
    ]
    if page.next_marker is not None:
        pairs.append(("NextPartNumberMarker", page.next_marker))
    pairs.append(("PartNumberMarker", marker))
    inner = s3xml.elements(pairs)
    for part in page.parts:
        fields: list[tuple[str, str | int | None]] = [("PartNumber", part.number)]
        if part.checksum is not None:
            fields.insert(0, ("Checksum" + part.checksum.algorithm.upper(), part.checksum.value))
        fields.append(("Size", part.size))
        inner += "<Part>" + s3xml.elements(fields) + "</Part>"
    inner += s3xml.elements([("PartsCount", page.count)])
    return f"<ObjectParts>{inner}</ObjectParts>"


async def get_object_attributes(r: S3Request) -> web.StreamResponse:
    check_version_id(r.query, r.resource)
    asked = asked_attributes(r)
    when = conditions(r.headers)
    page: ObjectPartsPage | None = None
    if "ObjectParts" in asked:
        max_parts = min(_header_int(r, "x-amz-max-parts", MAX_PARTS), MAX_PARTS)
        marker = _header_int(r, "x-amz-part-number-marker", 0)
        info, page = await r.store.object_parts(
            r.bucket, r.key, part_marker=marker, max_parts=max_parts, conditions=when
        )
    else:
        info = await r.store.head_object(r.bucket, r.key, when)
    pairs: list[tuple[str, str | int | None]] = []
    if "ETag" in asked:
        pairs.append(("ETag", info.etag))  # unquoted, as S3 answers it here
    inner = s3xml.elements(pairs)
    if "Checksum" in asked and info.checksum is not None:
        ck = info.checksum
        name = "Checksum" + ck.algorithm.upper()
        inner += "<Checksum>" + s3xml.elements([(name, ck.value), ("ChecksumType", ck.type)])
        inner += "</Checksum>"
    if page is not None:
        # part checksums kept: the upload named an algorithm (objects completed before part
        # checksums were kept have the object's checksum but not the parts')
        kept = info.checksum is not None and all(p.checksum for p in page.parts or [])
        inner += object_parts_xml(page, kept, marker, max_parts)
    tail = []
    if "StorageClass" in asked:
        tail.append(("StorageClass", "STANDARD"))
    if "ObjectSize" in asked:
        tail.append(("ObjectSize", info.size))
    inner += s3xml.elements(tail)
    resp = xml_response(s3xml.document("GetObjectAttributesResponse", inner))
    resp.headers["Last-Modified"] = s3xml.http_date(info.last_modified)
    return resp
