"""AWS Signature Version 2 (HMAC-SHA1): presigned query URLs and the ``AWS key:sig`` header.

Reference: the S3 "Signing and Authenticating REST Requests" page (the pre-SigV4 scheme). The
string to sign is::

    VERB \\n Content-MD5 \\n Content-Type \\n Date-or-Expires \\n CanonicalizedAmzHeaders
    CanonicalizedResource

where the resource is ``/bucket/key`` as sent plus the sorted sub-resources of the query
(``?acl``, ``?uploadId=...``, ``response-content-type=...``...), values decoded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

#: query parameters that are part of the canonicalized resource
SUB_RESOURCES = frozenset(
    {
        "accelerate",
        "acl",
        "analytics",
        "cors",
        "delete",
        "encryption",
        "inventory",
        "legal-hold",
        "lifecycle",
        "location",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "partNumber",
        "policy",
        "publicAccessBlock",
        "replication",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "retention",
        "select",
        "select-type",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    }
)


def canonical_resource(path: str, query: Iterable[tuple[str, str | None]]) -> str:
    """``path`` (already including the bucket) plus sorted sub-resources; ``query`` decoded.

    A value of None means the parameter had no ``=`` at all (``?uploads``).
    """
    subs = sorted(((k, v) for k, v in query if k in SUB_RESOURCES), key=lambda kv: kv[0])
    if not subs:
        return path
    return path + "?" + "&".join(k if v is None else f"{k}={v}" for k, v in subs)


def canonical_amz_headers(headers: Mapping[str, list[str]]) -> str:
    """``x-amz-*`` headers, lower-case, sorted, values trimmed and comma-joined."""
    lines = []
    for name in sorted(headers):
        if name.startswith("x-amz-"):
            value = ",".join(" ".join(v.split()) for v in headers[name])
            lines.append(f"{name}:{value}\n")
    return "".join(lines)


def string_to_sign(
    *,
    method: str,
    content_md5: str,
    content_type: str,
    date: str,
    amz_headers: str,
    resource: str,
) -> str:
    return f"{method}\n{content_md5}\n{content_type}\n{date}\n{amz_headers}{resource}"


def signature(secret: str, message: str) -> str:
    """Base64 HMAC-SHA1, as sent in ``Signature=`` or after ``AWS key:``."""
    # surrogateescape: header bytes that are not UTF-8 are signed as they came over the wire
    message_bytes = message.encode("utf-8", "surrogateescape")
    mac = hmac.new(secret.encode(), message_bytes, hashlib.sha1).digest()
    return base64.b64encode(mac).decode()
