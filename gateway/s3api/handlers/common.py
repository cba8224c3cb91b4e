"""What every S3 handler shares: the parsed request and header/parameter helpers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDictProxy, MultiDictProxy

from gateway.backends.base import (
    STORED_HEADERS,
    Conditions,
    ObjectChecksum,
    ObjectStore,
    WriteMeta,
)
from gateway.config import Config
from gateway.protocol import s3xml
from gateway.protocol.checksums import HEADER_PREFIX
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.protocol.names import validate_bucket, validate_key
from gateway.s3api.auth import AuthContext
from gateway.s3api.body import request_body
from gateway.usecases.writes import WritePath
from policy.enforce import Decision

MAX_METADATA_BYTES = 2048
META_PREFIX = "x-amz-meta-"
CHECKSUM_HEADERS = (
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
)
_XML_HEADERS = {"Content-Type": s3xml.CONTENT_TYPE}


@dataclass(slots=True)
class S3Request:
    """One S3 request after routing and authentication."""

    request: web.Request
    config: Config
    store: ObjectStore
    op: str
    bucket: str
    key: str
    auth: AuthContext
    #: what policy.enforce decided for this request (None only in handler unit tests)
    decision: Decision | None = None
    #: the write protocol's services (records, claims, audit)
    writes: WritePath | None = None

    @property
    def query(self) -> MultiDictProxy[str]:
        return self.request.query

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self.request.headers

    @property
    def resource(self) -> str:
        return f"/{self.bucket}/{self.key}" if self.key else f"/{self.bucket}"

    def body(self, *, sha256: bool = False) -> Any:
        """The decoded, verified request body (gateway.backends.base.Body); ``sha256`` makes
        it compute ``sha256_hex`` (for the object record) as it streams."""
        md5 = self.store.needs_body_md5
        return request_body(self.request, self.auth, md5=md5, sha256=sha256)


def xml_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, headers=_XML_HEADERS)


def int_param(
    query: MultiDictProxy[str], name: str, default: int, *, low: int = 0, cap: int | None = None
) -> int:
    """An integer query parameter; InvalidArgument when not an integer >= low."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low:
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            f"Argument {name} must be an integer between {low} and 2147483647.",
            extra={"ArgumentName": name, "ArgumentValue": raw},
        )
    return min(value, cap) if cap is not None else value


def url_encoding(query: MultiDictProxy[str]) -> bool:
    """True when ``encoding-type=url`` was asked for; InvalidArgument for other values."""
    value = query.get("encoding-type")
    if value is None or value == "":
        return False
    if value.lower() != "url":
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            "Invalid Encoding Method specified in Request: only 'url' is supported.",
            extra={"ArgumentName": "encoding-type", "ArgumentValue": value},
        )
    return True


def check_version_id(query: MultiDictProxy[str], resource: str) -> None:
    """Objects are unversioned: the only version is "null"."""
    version = query.get("versionId")
    if version is not None and version != "null":
        raise S3Error(
            S3ErrorCode.NoSuchVersion,
            "The specified version does not exist: this server keeps one version per key "
            "(version id 'null').",
            resource=resource,
            extra={"VersionId": version},
        )


def write_meta(headers: CIMultiDictProxy[str]) -> WriteMeta:
    """Content-Type, x-amz-meta-* and the stored headers of a write; MetadataTooLarge over 2 KiB."""
    meta = WriteMeta(content_type=headers.get("Content-Type"))
    size = 0
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith(META_PREFIX):
            short = lower[len(META_PREFIX) :]
            if short in meta.metadata:  # repeated header: S3 joins the values
                meta.metadata[short] += "," + value
            else:
                meta.metadata[short] = value
            size += len(short.encode()) + len(value.encode("utf-8", "surrogateescape"))
        elif lower == "content-encoding":
            stored = stored_content_encoding(value)
            if stored:
                meta.headers[lower] = stored
        elif lower in STORED_HEADERS:
            meta.headers[lower] = value
    if size > MAX_METADATA_BYTES:
        raise S3Error(
            S3ErrorCode.MetadataTooLarge,
            f"Your metadata headers are {size} bytes; user metadata (x-amz-meta-* names and "
            f"values) is limited to {MAX_METADATA_BYTES} bytes.",
            extra={"Size": str(size), "MaxSizeAllowed": str(MAX_METADATA_BYTES)},
        )
    return meta


def stored_content_encoding(value: str) -> str | None:
    """The Content-Encoding kept with the object: as sent, byte for byte, less ``aws-chunked``
    (it describes this request's framing, not the object; S3 drops it too)."""
    codings = value.split(",")
    kept = [c for c in codings if c.strip().lower() != "aws-chunked"]
    if len(kept) == len(codings):
        return value
    return ",".join(kept).strip() or None


def _http_date(value: str | None) -> datetime | None:
    """S3 ignores conditional dates it cannot parse, so do we."""
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def conditions(headers: CIMultiDictProxy[str], prefix: str = "") -> Conditions | None:
    """If-* headers (``prefix="x-amz-copy-source-"`` for a copy's source conditions)."""
    cond = Conditions(
        if_match=headers.get(prefix + "if-match"),
        if_none_match=headers.get(prefix + "if-none-match"),
        if_modified_since=_http_date(headers.get(prefix + "if-modified-since")),
        if_unmodified_since=_http_date(headers.get(prefix + "if-unmodified-since")),
    )
    return cond if cond else None


def require_length(headers: CIMultiDictProxy[str]) -> None:
    """Writes must announce their size, directly or as aws-chunked's decoded length."""
    if "Content-Length" not in headers and "x-amz-decoded-content-length" not in headers:
        raise S3Error(
            S3ErrorCode.MissingContentLength,
            "You must provide the Content-Length HTTP header (or, for aws-chunked uploads, "
            "x-amz-decoded-content-length).",
        )


def copy_source(headers: CIMultiDictProxy[str]) -> tuple[str, str]:
    """``x-amz-copy-source: [/]bucket/key[?versionId=null]``, URL-encoded; validated."""
    raw = headers.get("x-amz-copy-source", "")
    path, _, query = raw.partition("?")
    if query:
        for pair in query.split("&"):
            name, _, value = pair.partition("=")
            if name == "versionId" and unquote(value) != "null":
                raise S3Error(
                    S3ErrorCode.NoSuchVersion,
                    "The specified version does not exist: this server keeps one version per "
                    "key (version id 'null').",
                )
    path = unquote(path)
    if path.startswith("/"):
        path = path[1:]
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey.",
            extra={"ArgumentName": "x-amz-copy-source", "ArgumentValue": raw},
        )
    validate_bucket(bucket)
    validate_key(bucket, key)
    return bucket, key


def checksum_headers(headers: CIMultiDictProxy[str], body: Any) -> dict[str, str]:
    """Echo the checksums the client sent (header or trailer) as S3 does."""
    out = {}
    for name in CHECKSUM_HEADERS:
        value = headers.get(name)
        if value:
            out[name] = value
    # After the body was read, RequestBody.checksums maps algorithm -> base64 for every
    # checksum the client sent, including those that came in the trailer.
    computed = getattr(body, "checksums", None)
    if isinstance(computed, dict):
        for algorithm, value in computed.items():
            if value:
                out["x-amz-checksum-" + algorithm] = value
    return out


def checksum_answer(checksum: ObjectChecksum) -> dict[str, str]:
    """The headers that tell a client an object's (or a part's) kept checksum."""
    return {
        HEADER_PREFIX + checksum.algorithm: checksum.value,
        HEADER_PREFIX + "type": checksum.type,
    }


def checksum_mode(r: S3Request) -> bool:
    """``x-amz-checksum-mode: ENABLED``: the client asks for the kept checksum on GET/HEAD."""
    return r.headers.get("x-amz-checksum-mode", "").strip().upper() == "ENABLED"


async def read_xml(r: S3Request, root: str, *, required: bool = True) -> dict[str, Any] | None:
    """Read (at most 1 MiB) and parse a request document."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in r.body():
        total += len(chunk)
        if total > s3xml.MAX_REQUEST_XML:
            raise S3Error(
                S3ErrorCode.MalformedXML,
                f"The XML document is larger than {s3xml.MAX_REQUEST_XML} bytes.",
                resource=r.resource,
            )
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data.strip():
        if required:
            raise S3Error(
                S3ErrorCode.MalformedXML, f"A <{root}> document is required.", resource=r.resource
            )
        return None
    return s3xml.parse(data, root)


@dataclass(frozen=True, slots=True)
class WriteCondition:
    """What a conditional write (PutObject, CompleteMultipartUpload) asked for."""

    #: ``If-None-Match: *``: only when no object is there
    if_none_match: bool = False
    #: ``If-Match: "etag"``: only over the object with that ETag
    if_match: str | None = None


def write_condition(r: S3Request) -> WriteCondition:
    """The conditional-write headers as S3 takes them: ``If-None-Match: *`` or ``If-Match``
    with an ETag; other forms (and both at once) are refused rather than ignored, so a client
    never believes a condition held that was not checked."""
    none_match = r.headers.get("If-None-Match")
    match = r.headers.get("If-Match")
    if (none_match is not None and none_match.strip() != "*") or (
        none_match is not None and match is not None
    ):
        raise S3Error(
            S3ErrorCode.NotImplemented,
            "Conditional writes support If-None-Match: * or If-Match: <etag>, one at a time.",
            resource=r.resource,
        )
    if match is not None and not match.strip():
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            "If-Match needs the ETag of the object to replace.",
            resource=r.resource,
            extra={"ArgumentName": "If-Match", "ArgumentValue": match},
        )
    return WriteCondition(none_match is not None, match.strip() if match is not None else None)
