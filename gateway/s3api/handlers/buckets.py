"""Service and bucket operations: ListBuckets, Create/Delete/HeadBucket, location, probes."""

from __future__ import annotations

from aiohttp import web

from gateway.protocol import s3xml
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.s3api.handlers.common import S3Request, read_xml, xml_response
from gateway.s3api.handlers.listing import decode_token, encode_token
from gateway.usecases import buckets

_ACL_INNER = (
    f"{s3xml.OWNER_XML}<AccessControlList><Grant>"
    '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">'
    f"<ID>{s3xml.OWNER_ID}</ID><DisplayName>{s3xml.OWNER_NAME}</DisplayName></Grantee>"
    "<Permission>FULL_CONTROL</Permission></Grant></AccessControlList>"
)
ACL_DOCUMENT = s3xml.document("AccessControlPolicy", _ACL_INNER)


#: AWS's page size when paging parameters are sent, and the most max-buckets may ask for
MAX_BUCKETS = 10000
_PAGING_PARAMS = ("max-buckets", "continuation-token", "prefix", "bucket-region")


async def list_buckets(r: S3Request) -> web.StreamResponse:
    """ListBuckets, with AWS's optional paging: ``prefix``, ``max-buckets`` (1..10000),
    ``continuation-token`` (answered as ``ContinuationToken`` while more remain) and
    ``bucket-region`` (every bucket here is in the configured region)."""
    q = r.query
    prefix = q.get("prefix")
    token = q.get("continuation-token")
    region = q.get("bucket-region")
    # Without any paging parameter S3 answers every bucket in one page, as before paging existed.
    paged = any(name in q for name in _PAGING_PARAMS)
    limit = _max_buckets(q.get("max-buckets")) if paged else None
    after = decode_token(token) if token else ""
    buckets = await r.store.list_buckets()
    buckets.sort(key=lambda b: b.name)
    selected = [
        b
        for b in buckets
        if b.name > after
        and (not prefix or b.name.startswith(prefix))
        and (not region or region == r.config.region)
    ]
    more = limit is not None and len(selected) > limit
    if limit is not None:
        selected = selected[:limit]
    items = "".join(
        f"<Bucket><Name>{s3xml.esc(b.name)}</Name>"
        f"<CreationDate>{s3xml.iso8601(b.created)}</CreationDate>"
        f"<BucketRegion>{s3xml.esc(r.config.region)}</BucketRegion></Bucket>"
        for b in selected
    )
    tail = ""
    if more:
        tail += f"<ContinuationToken>{encode_token(selected[-1].name)}</ContinuationToken>"
    if prefix is not None:
        tail += f"<Prefix>{s3xml.esc(prefix)}</Prefix>"
    return xml_response(
        s3xml.document(
            "ListAllMyBucketsResult", f"{s3xml.OWNER_XML}<Buckets>{items}</Buckets>{tail}"
        )
    )


def _max_buckets(raw: str | None) -> int:
    if raw is None:
        return MAX_BUCKETS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_BUCKETS:
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            f"Argument max-buckets must be an integer between 1 and {MAX_BUCKETS}.",
            extra={"ArgumentName": "max-buckets", "ArgumentValue": raw},
        )
    return value


async def create_bucket(r: S3Request) -> web.StreamResponse:
    doc = await read_xml(r, "CreateBucketConfiguration", required=False)
    if doc:
        constraint = (s3xml.text(s3xml.child(doc, "LocationConstraint")) or "").strip()
        if constraint and constraint != r.config.region:
            raise S3Error(
                S3ErrorCode.IllegalLocationConstraintException,
                f"The {constraint} location constraint is incompatible with the region of this "
                f"server ({r.config.region}). Omit the constraint or use {r.config.region}.",
                resource=r.resource,
            )
    await r.store.create_bucket(r.bucket)
    await _audit(r)
    return web.Response(headers={"Location": f"/{r.bucket}"})


async def delete_bucket(r: S3Request) -> web.StreamResponse:
    if r.writes is None or r.decision is None:
        await r.store.delete_bucket(r.bucket)
        return web.Response(status=204)
    # in-flight multipart uploads are aborted, as on S3; objects still keep the bucket
    aborted = await buckets.delete_bucket(r.store, r.writes.store, r.bucket)
    details = {"aborted_uploads": aborted} if aborted else {}
    await r.writes.accepted(r.decision, f"s3://{r.bucket}/", **details)
    return web.Response(status=204)


async def _audit(r: S3Request) -> None:
    if r.writes is not None and r.decision is not None:
        await r.writes.accepted(r.decision, f"s3://{r.bucket}/")


async def head_bucket(r: S3Request) -> web.StreamResponse:
    await r.store.head_bucket(r.bucket)
    return web.Response(headers={"x-amz-bucket-region": r.config.region})


async def get_bucket_location(r: S3Request) -> web.StreamResponse:
    await r.store.head_bucket(r.bucket)
    # S3 answers an empty constraint for us-east-1 (the historical "US Standard" region).
    region = "" if r.config.region == "us-east-1" else s3xml.esc(r.config.region)
    return xml_response(
        f'{s3xml.XML_DECL}<LocationConstraint xmlns="{s3xml.S3_NS}">{region}'
        "</LocationConstraint>".encode()
    )


async def get_bucket_versioning(r: S3Request) -> web.StreamResponse:
    await r.store.head_bucket(r.bucket)
    return xml_response(s3xml.document("VersioningConfiguration", ""))


async def get_bucket_acl(r: S3Request) -> web.StreamResponse:
    await r.store.head_bucket(r.bucket)
    return xml_response(ACL_DOCUMENT)
