"""What the ObjectStore interface's values look like on an S3 upstream's wire, both ways:
request headers from WriteMeta and Conditions, ObjectInfo from response headers, listings and
results from XML answers, HTTP and ISO times, byte ranges. Pure functions, no I/O."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

import xmltodict
from multidict import CIMultiDictProxy

from gateway.backends.base import (
    STORED_HEADERS,
    ByteRange,
    Conditions,
    CopyResult,
    ListPage,
    ObjectChecksum,
    ObjectInfo,
    ObjectPart,
    ObjectPartsPage,
    WriteMeta,
)
from gateway.protocol.checksums import ALGORITHMS, HEADER_PREFIX
from gateway.protocol.errors import S3Error, S3ErrorCode

META_PREFIX = "x-amz-meta-"
#: Elements that repeat in S3 listings; xmltodict makes them lists even when there is one.
LIST_ELEMENTS = ("Bucket", "Contents", "CommonPrefixes", "Part", "Upload")
SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


def parse_xml(raw: bytes) -> dict[str, Any] | None:
    # S3 may send whitespace first (keep-alive during long Copy/Complete operations)
    raw = raw.strip()
    if not raw:
        return None
    try:
        # keep whitespace: keys may begin or end with spaces (layout text lands in "#text")
        doc = xmltodict.parse(raw, force_list=LIST_ELEMENTS, strip_whitespace=False)
    except Exception:  # expat errors come in several types; any of them means "not S3 XML"
        return None
    return doc if isinstance(doc, dict) else None


def bad_answer(operation: str) -> S3Error:
    return S3Error(
        S3ErrorCode.InternalError, f"The object store sent an unexpected answer to {operation}."
    )


def dig(doc: Mapping[str, Any], *path: str) -> Any:
    node: Any = doc
    for name in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(name)
    return node


def as_bool(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == "true"


def decoder(result: Mapping[str, Any]) -> Callable[[str], str]:
    """Keys come back URL-encoded only when the upstream honoured ``encoding-type=url``."""
    if str(result.get("EncodingType") or "").lower() == "url":
        return unquote_plus
    return lambda value: value or ""


def unquote(etag: str) -> str:
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


def etag_of(headers: Mapping[str, str]) -> str:
    return unquote(headers.get("ETag", ""))


def iso_time(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return datetime.now(UTC)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def http_time(value: str | None) -> datetime:
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


def format_http_time(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


def object_info(key: str, headers: CIMultiDictProxy[str]) -> ObjectInfo:
    metadata: dict[str, str] = {}
    stored: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith(META_PREFIX):
            metadata[lower[len(META_PREFIX) :]] = decode_meta_value(value)
        elif lower in STORED_HEADERS:
            stored[lower] = value
    return ObjectInfo(
        key=key,
        size=int(headers.get("Content-Length") or 0),
        etag=etag_of(headers),
        last_modified=http_time(headers.get("Last-Modified")),
        content_type=headers.get("Content-Type"),
        metadata=metadata,
        headers=stored,
        checksum=checksum_of(headers),
        parts_count=_int_or_none(headers.get("x-amz-mp-parts-count")),
    )


def checksum_of(headers: Mapping[str, str]) -> ObjectChecksum | None:
    """The checksum an upstream answered (``x-amz-checksum-<algorithm>`` and -type)."""
    for algorithm in ALGORITHMS:
        value = headers.get(HEADER_PREFIX + algorithm)
        if value:
            kind = headers.get(HEADER_PREFIX + "type", "").upper()
            if kind not in ("FULL_OBJECT", "COMPOSITE"):
                kind = "COMPOSITE" if "-" in value else "FULL_OBJECT"
            return ObjectChecksum(algorithm, value, kind)  # type: ignore[arg-type]
    return None


def part_checksum(part: Mapping[str, Any]) -> ObjectChecksum | None:
    """A ListParts ``<Part>``'s ``<ChecksumCRC32>`` (or other algorithm), when it has one."""
    for algorithm in ALGORITHMS:
        value = part.get("Checksum" + algorithm.upper())
        if isinstance(value, str) and value:
            return ObjectChecksum(algorithm, value)
    return None


def object_parts_page(doc: Mapping[str, Any], count: int) -> ObjectPartsPage:
    """GetObjectAttributes' ``<ObjectParts>`` as a page; an upstream that lists no parts
    (versitygw answers none) leaves the count alone."""
    found = dig(doc, "GetObjectAttributesResponse", "ObjectParts") or dig(
        doc, "GetObjectAttributesOutput", "ObjectParts"
    )
    if not isinstance(found, Mapping):
        return ObjectPartsPage(count, None)
    listed = found.get("Part") or []
    parts = [
        ObjectPart(int(p["PartNumber"]), int(p.get("Size") or 0), part_checksum(p))
        for p in (listed if isinstance(listed, list) else [listed])
        if isinstance(p, Mapping) and str(p.get("PartNumber", "")).isdigit()
    ]
    total = _int_or_none(found.get("PartsCount")) or count
    truncated = as_bool(found.get("IsTruncated"))
    marker = _int_or_none(found.get("NextPartNumberMarker"))
    if truncated and marker is None and parts:
        marker = parts[-1].number
    return ObjectPartsPage(total, parts, truncated, marker if truncated else None)


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


#: An encoded-word (RFC 2047 syntax) in a private charset: the value's bytes in base64. aiohttp
#: can send only UTF-8 header values, and metadata bytes that are not UTF-8 must reach the
#: upstream and come back exact; a value that merely looks like one is wrapped too, so decoding
#: is exact for every value.
_RAW_WORD = "=?x-minimo-bytes?B?"


def encode_meta_value(value: str) -> str:
    if value.startswith(_RAW_WORD) or any("\udc80" <= c <= "\udcff" for c in value):
        raw = value.encode("utf-8", "surrogateescape")
        return f"{_RAW_WORD}{base64.b64encode(raw).decode('ascii')}?="
    return value


def decode_meta_value(value: str) -> str:
    if value.startswith(_RAW_WORD) and value.endswith("?="):
        try:
            raw = base64.b64decode(value[len(_RAW_WORD) : -2], validate=True)
        except ValueError:
            return value
        return raw.decode("utf-8", "surrogateescape")
    return value


def validator_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in ("ETag", "Last-Modified") if name in headers}


def write_headers(meta: WriteMeta) -> dict[str, str]:
    headers: dict[str, str] = {}
    if meta.content_type:
        headers["content-type"] = meta.content_type
    for name, value in meta.metadata.items():
        headers[META_PREFIX + name.lower()] = encode_meta_value(value)
    for name, value in meta.headers.items():
        if name.lower() in STORED_HEADERS:
            headers[name.lower()] = value
    return headers


def etag_condition_headers(conditions: Conditions | None, prefix: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    if conditions and conditions.if_match is not None:
        headers[prefix + "if-match"] = conditions.if_match
    if conditions and conditions.if_none_match is not None:
        headers[prefix + "if-none-match"] = conditions.if_none_match
    return headers


def copy_result(doc: Mapping[str, Any], root: str) -> CopyResult:
    result = doc.get(root)
    if not isinstance(result, Mapping) or result.get("ETag") is None:
        raise bad_answer(root)
    # a CopyPartResult names the copied part's checksum when the upload keeps one
    return CopyResult(
        unquote(result["ETag"]), iso_time(result.get("LastModified")), part_checksum(result)
    )


def complete_xml(parts: list[tuple[int, str]], checksums: dict[int, tuple[str, str]]) -> bytes:
    def checksum(number: int) -> str:
        if number not in checksums:
            return ""
        algorithm, value = checksums[number]
        name = "Checksum" + algorithm.upper()
        return f"<{name}>{_xml_escape(value)}</{name}>"

    items = "".join(
        f"<Part><PartNumber>{number}</PartNumber><ETag>&quot;{_xml_escape(unquote(etag))}"
        f"&quot;</ETag>{checksum(number)}</Part>"
        for number, etag in parts
    )
    return f"<CompleteMultipartUpload>{items}</CompleteMultipartUpload>".encode()


def _xml_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def forwardable_range(value: str) -> bool:
    """Only a single, syntactically valid range goes upstream; anything else means the whole
    object (RFC 9110), and upstreams disagree on how to treat it, so it is dropped here."""
    match = SINGLE_RANGE.match(value.strip())
    if not match:
        return False
    first, last = match.groups()
    if not first and not last:
        return False
    return not (first and last and int(first) > int(last))


def parse_content_range(value: str) -> ByteRange | None:
    match = _CONTENT_RANGE.match(value.strip())
    if not match:
        return None
    start, end, total = (int(g) for g in match.groups())
    return ByteRange(start, end, total)


def is_common_prefix(name: str, prefix: str, delimiter: str) -> bool:
    """Whether ``name`` is a common prefix a listing with ``prefix``/``delimiter`` would show."""
    if not name or not delimiter or not name.startswith(prefix):
        return False
    rest = name[len(prefix) :]
    return rest.endswith(delimiter) and rest.find(delimiter) == len(rest) - len(delimiter)


def trim_page(
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
