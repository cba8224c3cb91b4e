"""AWS Signature Version 4: the parts shared by verifying client requests and signing upstream ones.

Reference: the AWS SigV4 documentation ("Create a canonical request", "Create a string to sign",
"Calculate the signature"). S3 differs from other services in one way that matters here: the
canonical URI is the path as sent, URI-encoded once per segment, never normalised.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

# RFC 3986 unreserved characters are the only ones SigV4 leaves unescaped.
_SAFE = "-_.~"
#: a raw path made only of unreserved characters and slashes is its own canonical form
_PLAIN_PATH = re.compile(r"[A-Za-z0-9\-._~/]*")
#: a value made only of unreserved characters is its own encoding
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9\-._~]*")


def uri_encode(value: str, *, keep_slash: bool) -> str:
    # the common case (ordinary names) skips quote(), which costs several times the match
    if (_PLAIN_PATH if keep_slash else _PLAIN_VALUE).fullmatch(value):
        return value
    return quote(value, safe=_SAFE + ("/" if keep_slash else ""))


def canonical_uri(raw_path: str) -> str:
    """The canonical URI of S3 requests: each segment decoded then encoded again, slashes kept.

    ``raw_path`` is the path exactly as it arrived (aiohttp's ``request.raw_path`` without the
    query string): clients encode differently (``+``, ``%2F``...) and what they signed is the
    decoded key re-encoded in the canonical way.
    """
    if _PLAIN_PATH.fullmatch(raw_path):
        # the common case (ordinary keys): nothing to decode or encode, so skip the per-segment
        # unquote/quote, a measurable share of a 4 KiB request's CPU
        return raw_path or "/"
    return (
        "/".join(uri_encode(unquote(part), keep_slash=False) for part in raw_path.split("/")) or "/"
    )


def canonical_query(pairs: Iterable[tuple[str, str]], *, exclude: str | None = None) -> str:
    """Sorted, encoded ``k=v`` pairs; ``pairs`` are already decoded."""
    encoded = sorted(
        (uri_encode(k, keep_slash=False), uri_encode(v, keep_slash=False))
        for k, v in pairs
        if k != exclude
    )
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_headers(headers: Mapping[str, str], signed: Iterable[str]) -> str:
    lines = []
    for name in signed:
        value = headers.get(name, "")
        lines.append(f"{name}:{' '.join(value.split())}\n")
    return "".join(lines)


def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    return "\n".join(
        (
            method,
            uri,
            query,
            canonical_headers(headers, signed_headers),
            ";".join(signed_headers),
            payload_hash,
        )
    )


def scope(date: str, region: str, service: str = "s3") -> str:
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(amz_date: str, credential_scope: str, canonical: str) -> str:
    # surrogateescape: header bytes that are not UTF-8 are hashed as they came over the wire
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{credential_scope}\n{digest}"


@lru_cache(maxsize=1024)
def signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    """The derived key; cached because it changes once a day per (secret, region)."""
    k = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    k = hmac.new(k, region.encode(), hashlib.sha256).digest()
    k = hmac.new(k, service.encode(), hashlib.sha256).digest()
    return hmac.new(k, b"aws4_request", hashlib.sha256).digest()


def sign(key: bytes, message: str) -> str:
    # hmac.digest: OpenSSL's one-shot HMAC, without building an hmac.HMAC object per call
    return hmac.digest(key, message.encode(), "sha256").hex()


def signatures_equal(a: str, b: str) -> bool:
    """Constant-time comparison (docs/design.md, decision 9)."""
    return hmac.compare_digest(a.encode(), b.encode())


#: (second, x-amz-date) of the last upstream request: strftime for each one cost a quarter of
#: its signing, and a busy gateway signs many requests per second
_last_amz_date: tuple[int, str] = (-1, "")


def _amz_date_now() -> str:
    global _last_amz_date
    second = int(time.time())
    if _last_amz_date[0] != second:
        _last_amz_date = (second, time.strftime(AMZ_DATE_FORMAT, time.gmtime(second)))
    return _last_amz_date[1]


def sign_request(
    *,
    method: str,
    raw_path: str,
    query: Iterable[tuple[str, str]],
    headers: dict[str, str],
    payload_hash: str,
    access_key: str,
    secret_key: str,
    region: str,
    host: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """Sign an outgoing request (the ``s3`` backend's upstream calls).

    ``headers`` uses lower-case names and is updated in place with ``host``, ``x-amz-date``,
    ``x-amz-content-sha256`` and ``authorization``; it is also returned.
    """
    amz_date = _amz_date_now() if now is None else now.strftime(AMZ_DATE_FORMAT)
    headers["host"] = host
    headers["x-amz-date"] = amz_date
    headers["x-amz-content-sha256"] = payload_hash
    signed = sorted(headers)
    canonical = canonical_request(
        method, canonical_uri(raw_path), canonical_query(query), headers, signed, payload_hash
    )
    credential_scope = scope(amz_date[:8], region)
    signature = sign(
        signing_key(secret_key, amz_date[:8], region),
        string_to_sign(amz_date, credential_scope, canonical),
    )
    headers["authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{credential_scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return headers
