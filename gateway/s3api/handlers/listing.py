"""Listings: ListObjects v1 and v2, ListObjectVersions (unversioned view), ListMultipartUploads."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from aiohttp import web

from gateway.backends.base import ObjectInfo
from gateway.protocol import s3xml
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.s3api.handlers.common import S3Request, int_param, url_encoding, xml_response

MAX_KEYS = 1000
_STORAGE = "<StorageClass>STANDARD</StorageClass>"


def _encoder(url: bool) -> Callable[[str], str]:
    return s3xml.url_encode if url else s3xml.esc


def _contents(objects: list[ObjectInfo], enc: Callable[[str], str], owner: bool) -> str:
    owner_xml = s3xml.OWNER_XML if owner else ""
    iso = s3xml.iso8601
    return "".join(
        f"<Contents><Key>{enc(o.key)}</Key><LastModified>{iso(o.last_modified)}</LastModified>"
        f'<ETag>"{s3xml.esc(o.etag)}"</ETag><Size>{o.size}</Size>{owner_xml}{_STORAGE}</Contents>'
        for o in objects
    )


def _prefixes(prefixes: list[str], enc: Callable[[str], str]) -> str:
    return "".join(f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>" for p in prefixes)


def _common_params(r: S3Request) -> tuple[str, str, int, bool]:
    q = r.query
    return (
        q.get("prefix", ""),
        q.get("delimiter", ""),
        int_param(q, "max-keys", MAX_KEYS, cap=MAX_KEYS),
        url_encoding(q),
    )


async def list_objects(r: S3Request) -> web.StreamResponse:
    prefix, delimiter, max_keys, url = _common_params(r)
    marker = r.query.get("marker", "")
    page = await r.store.list_objects(
        r.bucket, prefix=prefix, delimiter=delimiter, start_after=marker, max_keys=max_keys
    )
    enc = _encoder(url)
    # Marker and Delimiter are url-encoded when encoding-type=url, but S3 echoes v1's Prefix
    # as sent whatever the encoding (botocore, which adds encoding-type=url itself, decodes
    # Marker and Delimiter but not Prefix: encoding it would hand boto3 users "a%20b/").
    head = (
        f"<Name>{s3xml.esc(r.bucket)}</Name><Prefix>{s3xml.esc(prefix)}</Prefix>"
        f"<Marker>{enc(marker)}</Marker><MaxKeys>{max_keys}</MaxKeys>"
    )
    if delimiter:
        head += f"<Delimiter>{enc(delimiter)}</Delimiter>"
    head += f"<IsTruncated>{'true' if page.truncated else 'false'}</IsTruncated>"
    # S3 sends NextMarker only with a delimiter; without one clients continue from the last key.
    if page.truncated and delimiter and page.next_marker is not None:
        head += f"<NextMarker>{enc(page.next_marker)}</NextMarker>"
    if url:
        head += "<EncodingType>url</EncodingType>"
    body = head + _contents(page.objects, enc, owner=True) + _prefixes(page.prefixes, enc)
    return xml_response(s3xml.document("ListBucketResult", body))


def encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode("utf-8", "surrogatepass")).decode("ascii")


def decode_token(token: str) -> str:
    try:
        raw = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
        return raw.decode("utf-8", "surrogatepass")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            "The continuation token provided is incorrect.",
            extra={"ArgumentName": "continuation-token", "ArgumentValue": token},
        ) from exc


async def list_objects_v2(r: S3Request) -> web.StreamResponse:
    prefix, delimiter, max_keys, url = _common_params(r)
    q = r.query
    token = q.get("continuation-token")
    start_after = q.get("start-after", "")
    start = decode_token(token) if token else start_after
    fetch_owner = q.get("fetch-owner", "").lower() == "true"
    page = await r.store.list_objects(
        r.bucket, prefix=prefix, delimiter=delimiter, start_after=start, max_keys=max_keys
    )
    enc = _encoder(url)
    head = f"<Name>{s3xml.esc(r.bucket)}</Name><Prefix>{enc(prefix)}</Prefix>"
    if delimiter:
        head += f"<Delimiter>{enc(delimiter)}</Delimiter>"
    head += (
        f"<MaxKeys>{max_keys}</MaxKeys>"
        f"<KeyCount>{len(page.objects) + len(page.prefixes)}</KeyCount>"
        f"<IsTruncated>{'true' if page.truncated else 'false'}</IsTruncated>"
    )
    if token is not None:  # echoed even when sent empty, as S3 does
        head += f"<ContinuationToken>{s3xml.esc(token)}</ContinuationToken>"
    if page.truncated and page.next_marker is not None:
        head += f"<NextContinuationToken>{encode_token(page.next_marker)}</NextContinuationToken>"
    if start_after:
        head += f"<StartAfter>{enc(start_after)}</StartAfter>"
    if url:
        head += "<EncodingType>url</EncodingType>"
    body = head + _contents(page.objects, enc, owner=fetch_owner) + _prefixes(page.prefixes, enc)
    return xml_response(s3xml.document("ListBucketResult", body))


async def list_object_versions(r: S3Request) -> web.StreamResponse:
    """The unversioned view: every object is its only version, "null", and the latest."""
    prefix, delimiter, max_keys, url = _common_params(r)
    q = r.query
    key_marker = q.get("key-marker", "")
    version_marker = q.get("version-id-marker", "")
    if version_marker and not key_marker:
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            "A version-id marker cannot be specified without a key marker.",
            extra={"ArgumentName": "version-id-marker", "ArgumentValue": version_marker},
        )
    # Each key has exactly one version, so "after key-marker" is right with or without a
    # version-id marker.
    page = await r.store.list_objects(
        r.bucket, prefix=prefix, delimiter=delimiter, start_after=key_marker, max_keys=max_keys
    )
    enc = _encoder(url)
    head = (
        f"<Name>{s3xml.esc(r.bucket)}</Name><Prefix>{enc(prefix)}</Prefix>"
        f"<KeyMarker>{enc(key_marker)}</KeyMarker>"
        f"<VersionIdMarker>{s3xml.esc(version_marker)}</VersionIdMarker>"
        f"<MaxKeys>{max_keys}</MaxKeys>"
    )
    if delimiter:
        head += f"<Delimiter>{enc(delimiter)}</Delimiter>"
    head += f"<IsTruncated>{'true' if page.truncated else 'false'}</IsTruncated>"
    if page.truncated and page.next_marker is not None:
        head += (
            f"<NextKeyMarker>{enc(page.next_marker)}</NextKeyMarker>"
            "<NextVersionIdMarker>null</NextVersionIdMarker>"
        )
    if url:
        head += "<EncodingType>url</EncodingType>"
    iso = s3xml.iso8601
    versions = "".join(
        f"<Version><Key>{enc(o.key)}</Key><VersionId>null</VersionId><IsLatest>true</IsLatest>"
        f"<LastModified>{iso(o.last_modified)}</LastModified>"
        f'<ETag>"{s3xml.esc(o.etag)}"</ETag><Size>{o.size}</Size>{s3xml.OWNER_XML}{_STORAGE}'
        "</Version>"
        for o in page.objects
    )
    body = head + versions + _prefixes(page.prefixes, enc)
    return xml_response(s3xml.document("ListVersionsResult", body))


async def list_multipart_uploads(r: S3Request) -> web.StreamResponse:
    q = r.query
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter", "")
    key_marker = q.get("key-marker", "")
    upload_marker = q.get("upload-id-marker", "")
    max_uploads = int_param(q, "max-uploads", MAX_KEYS, cap=MAX_KEYS)
    url = url_encoding(q)
    page = await r.store.list_multipart_uploads(
        r.bucket,
        prefix=prefix,
        delimiter=delimiter,
        key_marker=key_marker,
        upload_id_marker=upload_marker if key_marker else "",
        max_uploads=max_uploads,
    )
    enc = _encoder(url)
    head = (
        f"<Bucket>{s3xml.esc(r.bucket)}</Bucket><KeyMarker>{enc(key_marker)}</KeyMarker>"
        f"<UploadIdMarker>{s3xml.esc(upload_marker)}</UploadIdMarker>"
    )
    if page.truncated:
        head += (
            f"<NextKeyMarker>{enc(page.next_key_marker or '')}</NextKeyMarker>"
            f"<NextUploadIdMarker>{s3xml.esc(page.next_upload_id_marker or '')}"
            "</NextUploadIdMarker>"
        )
    head += f"<Prefix>{enc(prefix)}</Prefix>"
    if delimiter:
        head += f"<Delimiter>{enc(delimiter)}</Delimiter>"
    head += (
        f"<MaxUploads>{max_uploads}</MaxUploads>"
        f"<IsTruncated>{'true' if page.truncated else 'false'}</IsTruncated>"
    )
    if url:
        head += "<EncodingType>url</EncodingType>"
    initiator = (
        f"<Initiator><ID>{s3xml.OWNER_ID}</ID><DisplayName>{s3xml.OWNER_NAME}</DisplayName>"
        "</Initiator>"
    )
    uploads = "".join(
        f"<Upload><Key>{enc(u.key)}</Key><UploadId>{s3xml.esc(u.upload_id)}</UploadId>"
        f"{initiator}{s3xml.OWNER_XML}{_STORAGE}"
        f"<Initiated>{s3xml.iso8601(u.initiated)}</Initiated></Upload>"
        for u in page.uploads
    )
    body = head + uploads + _prefixes(page.prefixes, enc)
    return xml_response(s3xml.document("ListMultipartUploadsResult", body))
