"""GetObjectAttributes (``GET /bucket/key?attributes``): what S3 knows about an object
without its bytes, the attributes named in ``x-amz-object-attributes``."""

from __future__ import annotations

from aiohttp import web

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


def parts_of_etag(etag: str) -> int | None:
    """A multipart ETag ends in ``-N``, N its parts (an upstream's HEAD says no more)."""
    _, dash, count = etag.strip('"').rpartition("-")
    return int(count) if dash and count.isdigit() else None


async def get_object_attributes(r: S3Request) -> web.StreamResponse:
    check_version_id(r.query, r.resource)
    asked = asked_attributes(r)
    info = await r.store.head_object(r.bucket, r.key, conditions(r.headers))
    pairs: list[tuple[str, str | int | None]] = []
    if "ETag" in asked:
        pairs.append(("ETag", info.etag))  # unquoted, as S3 answers it here
    inner = s3xml.elements(pairs)
    if "Checksum" in asked and info.checksum is not None:
        ck = info.checksum
        name = "Checksum" + ck.algorithm.upper()
        inner += "<Checksum>" + s3xml.elements([(name, ck.value), ("ChecksumType", ck.type)])
        inner += "</Checksum>"
    parts = info.parts_count or parts_of_etag(info.etag)
    if "ObjectParts" in asked and parts:
        # S3 lists the parts themselves only for uploads that kept part checksums; the count
        # is what every multipart object has (its element is PartsCount on the wire)
        inner += f"<ObjectParts><PartsCount>{parts}</PartsCount>"
        inner += "</ObjectParts>"
    tail = []
    if "StorageClass" in asked:
        tail.append(("StorageClass", "STANDARD"))
    if "ObjectSize" in asked:
        tail.append(("ObjectSize", info.size))
    inner += s3xml.elements(tail)
    resp = xml_response(s3xml.document("GetObjectAttributesResponse", inner))
    resp.headers["Last-Modified"] = s3xml.http_date(info.last_modified)
    return resp
