"""Who sent this request: verify SigV4 (header or presigned) or SigV2 (presigned or header).

:func:`authenticate` checks everything that can be checked before the body is read. What can
only be checked while the body streams (payload SHA-256, chunk signatures, checksums) is done by
:mod:`gateway.s3api.body`, from the :class:`AuthContext` returned here.

There is no server-side SigV4 library, so this follows the AWS documentation directly. Two
client habits shape it:

* the canonical URI is built from the raw path (aiohttp's ``request.path`` is decoded). Most
  clients sign the canonical re-encoding, but some send ``!*'()`` unencoded and sign the path
  exactly as sent, so when the canonical form fails the as-sent form is tried too;
* some clients encode spaces in the query as ``+``; both readings of ``+`` are tried.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from functools import lru_cache
from urllib.parse import unquote

from aiohttp import web

from gateway.protocol import sigv2, sigv4
from gateway.protocol.chunked import ChunkSigner
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.protocol.uint import parse_uint
from gateway.usecases.appkeys import SignatureCheck
from policy.identity import Identity
from policy.principal import Credential, Principal

MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_PAYLOAD_KEYWORDS = frozenset(
    {
        sigv4.UNSIGNED_PAYLOAD,
        sigv4.STREAMING_SIGNED,
        sigv4.STREAMING_SIGNED_TRAILER,
        sigv4.STREAMING_UNSIGNED_TRAILER,
    }
)
_PRESIGN_V4_PARAMS = ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature")


class AuthMethod(StrEnum):
    """How a request proved who sent it (the value is what logs and tests show)."""

    #: no Authorization header, no presigned query
    ANONYMOUS = "anonymous"
    #: AWS Signature Version 4 in the Authorization header
    SIGV4_HEADER = "v4-header"
    #: AWS Signature Version 4 in a presigned URL's query
    SIGV4_PRESIGNED = "v4-query"
    #: AWS Signature Version 2 in the Authorization header
    SIGV2_HEADER = "v2-header"
    #: AWS Signature Version 2 in a presigned URL's query
    SIGV2_PRESIGNED = "v2-query"


@dataclass(frozen=True, slots=True)
class AuthContext:
    """The outcome of authentication, and what body verification needs later.

    Build it with :meth:`anonymous` or :meth:`signed`: a principal exactly when the request
    was signed, a chunk signer only for SigV4.
    """

    method: AuthMethod
    #: who signed the request; None exactly when :attr:`method` is ANONYMOUS
    principal: Principal | None
    #: the x-amz-content-sha256 value: lower-case hex, UNSIGNED-PAYLOAD or STREAMING-...
    payload_hash: str | None
    access_key: str | None = None
    #: SigV4 only: what verifying aws-chunked chunk signatures needs (the derived signing key,
    #: the request signature that seeds them, x-amz-date and the credential scope)
    chunk_signer: ChunkSigner | None = None

    def __post_init__(self) -> None:
        if (self.principal is None) != (self.method is AuthMethod.ANONYMOUS):
            raise ValueError(f"{self.method} authentication with principal {self.principal!r}")

    @classmethod
    def anonymous(cls, payload_hash: str | None) -> AuthContext:
        return cls(AuthMethod.ANONYMOUS, None, payload_hash)

    @classmethod
    def signed(
        cls,
        method: AuthMethod,
        credential: Credential,
        payload_hash: str,
        chunk_signer: ChunkSigner | None = None,
    ) -> AuthContext:
        return cls(method, credential.principal, payload_hash, credential.access_key, chunk_signer)

    @property
    def is_anonymous(self) -> bool:
        return self.method is AuthMethod.ANONYMOUS


# -- the request as signed ---------------------------------------------------------------------
def raw_path(request: web.Request) -> str:
    """The path exactly as the client sent it, without the query string."""
    return request.raw_path.split("?", 1)[0] or "/"


def raw_query_pairs(request: web.Request, *, plus_is_space: bool = False) -> list[tuple[str, str]]:
    """Decoded (key, value) pairs of the raw query, in order; ``k`` alone gives ``(k, "")``."""
    return [(k, v or "") for k, v in _query_items(request, plus_is_space=plus_is_space)]


def _query_items(request: web.Request, *, plus_is_space: bool) -> list[tuple[str, str | None]]:
    raw = request.rel_url.raw_query_string
    items: list[tuple[str, str | None]] = []
    for part in raw.split("&"):
        if not part:
            continue
        if plus_is_space:
            part = part.replace("+", " ")
        key, sep, value = part.partition("=")
        items.append((unquote(key), unquote(value) if sep else None))
    return items


def _header_values(request: web.Request, name: str) -> str:
    """All values of a header as SigV4 wants them: each trimmed, joined with commas."""
    values = request.headers.getall(name, ())
    if len(values) == 1:  # nearly always: no generator, no join
        return " ".join(values[0].split())
    return ",".join(" ".join(v.split()) for v in values)


def _uri_candidates(request: web.Request) -> list[str]:
    sent = raw_path(request)
    canonical = sigv4.canonical_uri(sent)
    return [canonical] if canonical == sent else [canonical, sent]


def _query_candidates(request: web.Request, exclude: str | None) -> list[str]:
    if not request.rel_url.raw_query_string:
        return [""]
    first = sigv4.canonical_query(raw_query_pairs(request), exclude=exclude)
    if "+" not in request.rel_url.raw_query_string:
        return [first]
    return [
        first,
        sigv4.canonical_query(raw_query_pairs(request, plus_is_space=True), exclude=exclude),
    ]


# -- entry point -------------------------------------------------------------------------------
def signature_check(identity: Identity, *, region: str, domain: str | None) -> SignatureCheck:
    """:func:`authenticate` bound to this gateway's identity, region and domain: the check the
    S3 app offers whatever is mounted on it (``gateway.usecases.appkeys.VERIFY_SIGNATURE``)."""

    async def check(request: web.Request) -> AuthContext:
        return await authenticate(request, identity, region=region, domain=domain)

    return check


async def authenticate(
    request: web.Request,
    identity: Identity,
    *,
    region: str,
    now: datetime | None = None,
    domain: str | None = None,
) -> AuthContext:
    """Verify the request's signature; return who sent it.

    ``domain`` (the configured virtual-host domain) is only needed for SigV2, whose signed
    resource names the bucket even when it travels in the Host header.
    """
    now = now or datetime.now(UTC)
    # most requests (GET/PUT of an object) carry no query at all
    raw_query = request.rel_url.raw_query_string
    query = {k for k, _ in _query_items(request, plus_is_space=False)} if raw_query else ()
    authorization = request.headers.get("Authorization")
    presigned_v4 = "X-Amz-Algorithm" in query or "X-Amz-Signature" in query
    presigned_v2 = "AWSAccessKeyId" in query and "Signature" in query
    if authorization is not None and (presigned_v4 or presigned_v2):
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            "Only one auth mechanism allowed; send either the Authorization header or a "
            "presigned query string, not both.",
        )
    if presigned_v4:
        return await _presigned_v4(request, identity, region, now)
    if presigned_v2:
        return await _presigned_v2(request, identity, now, domain)
    if authorization is None:
        return AuthContext.anonymous(_anonymous_payload_hash(request))
    scheme = authorization.strip().split(" ", 1)[0]
    if scheme == sigv4.ALGORITHM:
        return await _header_v4(request, identity, region, now, authorization)
    if scheme == "AWS":
        return await _header_v2(request, identity, now, domain, authorization)
    raise S3Error(
        S3ErrorCode.AccessDenied,
        f"Unsupported Authorization type {scheme[:40]!r}: sign requests with AWS Signature "
        "Version 4 (AWS4-HMAC-SHA256).",
    )


def _anonymous_payload_hash(request: web.Request) -> str | None:
    value = request.headers.get("x-amz-content-sha256")
    return None if value is None else _valid_payload_hash(value)


def _valid_payload_hash(value: str) -> str:
    value = value.strip()
    if value in _PAYLOAD_KEYWORDS:
        return value
    if _HEX64.fullmatch(value):
        return value.lower()
    if value.startswith("STREAMING-"):
        raise S3Error(S3ErrorCode.NotImplemented, f"Payload signing {value!r} is not supported.")
    raise S3Error(
        S3ErrorCode.InvalidArgument,
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
        "[-TRAILER], STREAMING-UNSIGNED-PAYLOAD-TRAILER or a valid hex SHA-256 value.",
    )


async def _lookup(identity: Identity, access_key: str) -> Credential:
    credential = await identity.credential(access_key)
    if credential is None:
        raise S3Error(
            S3ErrorCode.InvalidAccessKeyId,
            f"The access key {access_key!r} does not exist or has been revoked. "
            "Create a key with `minimo key create USER`.",
        )
    return credential


def _check_skew(when: datetime, now: datetime) -> None:
    if abs(now - when) > MAX_SKEW:
        raise S3Error(
            S3ErrorCode.RequestTimeTooSkewed,
            f"The request time {when:%Y-%m-%dT%H:%M:%SZ} differs from the server time "
            f"{now:%Y-%m-%dT%H:%M:%SZ} by more than 15 minutes. Fix the client's clock.",
            extra={
                "RequestTime": when.strftime(sigv4.AMZ_DATE_FORMAT),
                "ServerTime": now.strftime(sigv4.AMZ_DATE_FORMAT),
            },
        )


_AMZ_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z")


@lru_cache(maxsize=256)
def _parse_amz_date(value: str) -> datetime | None:
    """``YYYYMMDDTHHMMSSZ`` as an aware datetime.

    Parsed by hand and cached: every signed request carries one, ``strptime`` cost ~8% of the
    event loop's time for 4 KiB GETs, and concurrent clients send the same second many times.
    Anything the fast path does not match gets ``strptime``'s more lenient reading, as before.
    """
    match = _AMZ_DATE.fullmatch(value.strip())
    try:
        if match is not None:
            year, month, day, hour, minute, second = map(int, match.groups())
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        return datetime.strptime(value.strip(), sigv4.AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _parse_http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- SigV4 -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Scope:
    access_key: str
    date: str
    region: str
    #: the credential scope as signed (``date/region/s3/aws4_request``)
    text: str


# The parsed Credential and SignedHeaders are cached: one client sends the same two values on
# every request of a day, and parsing them was a tenth of the signature check. Only good
# values are cached (a bad one raises); 256 entries of at most a header each.
@lru_cache(maxsize=256)
def _parse_credential(value: str, region: str, error: S3ErrorCode) -> _Scope:
    parts = value.rsplit("/", 4)
    if len(parts) != 5 or not parts[0]:
        raise S3Error(
            error, f"The credential {value!r} is not <key>/<date>/<region>/s3/aws4_request."
        )
    access_key, date, cred_region, service, terminal = parts
    if not re.fullmatch(r"\d{8}", date):
        raise S3Error(error, f"The credential date {date!r} is not YYYYMMDD.")
    if cred_region != region:
        raise S3Error(
            error,
            f"The region {cred_region!r} is wrong; expecting {region!r}. "
            f"Configure your client with region {region}.",
            extra={"Region": region},
        )
    if service != "s3":
        raise S3Error(error, f"The credential service {service!r} is wrong; expecting 's3'.")
    if terminal != "aws4_request":
        raise S3Error(error, "The credential must end with 'aws4_request'.")
    return _Scope(access_key, date, region, sigv4.scope(date, region))


@lru_cache(maxsize=256)
def _parse_signed_headers(value: str, error: S3ErrorCode) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in value.split(";") if n.strip())
    if "host" not in names:
        raise S3Error(error, "The 'host' header must be signed.")
    return names


def _parse_v4_header(authorization: str) -> dict[str, str]:
    error = S3ErrorCode.AuthorizationHeaderMalformed
    rest = authorization.strip()[len(sigv4.ALGORITHM) :]
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if not fields.get(n)]
    if missing:
        raise S3Error(
            error,
            f"The authorization header is malformed: missing {', '.join(missing)}. Expected "
            "'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...'.",
        )
    return fields


def _verify_v4(
    request: web.Request,
    *,
    scope: _Scope,
    credential: Credential,
    amz_date: str,
    signed_headers: tuple[str, ...],
    payload_hash: str,
    signature: str,
    exclude: str | None,
) -> bytes:
    """Check the signature against every accepted reading of the request; return the key."""
    key = sigv4.signing_key(credential.secret_key, scope.date, scope.region)
    headers = {name: _header_values(request, name) for name in signed_headers}
    for uri in _uri_candidates(request):
        for query in _query_candidates(request, exclude):
            canonical = sigv4.canonical_request(
                request.method, uri, query, headers, signed_headers, payload_hash
            )
            expected = sigv4.sign(key, sigv4.string_to_sign(amz_date, scope.text, canonical))
            if sigv4.signatures_equal(expected, signature):
                return key
    raise S3Error(
        S3ErrorCode.SignatureDoesNotMatch,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    )


async def _header_v4(
    request: web.Request, identity: Identity, region: str, now: datetime, authorization: str
) -> AuthContext:
    error = S3ErrorCode.AuthorizationHeaderMalformed
    fields = _parse_v4_header(authorization)
    scope = _parse_credential(fields["Credential"], region, error)
    signed_headers = _parse_signed_headers(fields["SignedHeaders"], error)
    amz_date = request.headers.get("x-amz-date")
    when = _parse_amz_date(amz_date) if amz_date else None
    if amz_date is None:
        when = _parse_http_date(request.headers.get("Date", ""))
        amz_date = when.strftime(sigv4.AMZ_DATE_FORMAT) if when else None
    if when is None or amz_date is None:
        raise S3Error(
            S3ErrorCode.AccessDenied,
            "AWS authentication requires a valid Date or x-amz-date header.",
        )
    _check_skew(when, now)
    if scope.date != amz_date[:8]:
        raise S3Error(
            error,
            f"Invalid credential date {scope.date!r}: "
            f"it is not the date of x-amz-date {amz_date!r}.",
        )
    raw_hash = request.headers.get("x-amz-content-sha256")
    # S3 requires the header; without it only an empty body can be what was signed
    payload_hash = sigv4.EMPTY_SHA256 if raw_hash is None else _valid_payload_hash(raw_hash)
    signature = fields["Signature"].lower()
    credential = await _lookup(identity, scope.access_key)
    key = _verify_v4(
        request,
        scope=scope,
        credential=credential,
        amz_date=amz_date,
        signed_headers=signed_headers,
        payload_hash=raw_hash.strip() if raw_hash is not None else payload_hash,
        signature=signature,
        exclude=None,
    )
    signer = ChunkSigner(key, amz_date, scope.text, signature)
    return AuthContext.signed(AuthMethod.SIGV4_HEADER, credential, payload_hash, signer)


async def _presigned_v4(
    request: web.Request, identity: Identity, region: str, now: datetime
) -> AuthContext:
    error = S3ErrorCode.AuthorizationQueryParametersError
    params = dict(raw_query_pairs(request))
    algorithm = params.get("X-Amz-Algorithm")
    if algorithm != sigv4.ALGORITHM:
        raise S3Error(error, "X-Amz-Algorithm only supports 'AWS4-HMAC-SHA256'.")
    missing = [p for p in (*_PRESIGN_V4_PARAMS, "X-Amz-Expires") if not params.get(p)]
    if missing:
        raise S3Error(
            error,
            f"Query-string authentication version 4 requires the X-Amz-Algorithm, "
            f"X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            f"X-Amz-Expires parameters; missing {', '.join(missing)}.",
        )
    scope = _parse_credential(params["X-Amz-Credential"], region, error)
    signed_headers = _parse_signed_headers(params["X-Amz-SignedHeaders"], error)
    amz_date = params["X-Amz-Date"]
    when = _parse_amz_date(amz_date)
    if when is None:
        raise S3Error(error, "X-Amz-Date must be in the ISO8601 basic format YYYYMMDD'T'HHMMSS'Z'.")
    expires = _parse_expires(params["X-Amz-Expires"], error)
    if scope.date != amz_date[:8]:
        raise S3Error(error, "The X-Amz-Credential date is not the date of X-Amz-Date.")
    if when - now > MAX_SKEW:
        raise S3Error(
            S3ErrorCode.AccessDenied, "Request is not valid yet: X-Amz-Date is in the future."
        )
    if now > when + timedelta(seconds=expires):
        raise S3Error(S3ErrorCode.AccessDenied, "Request has expired.")
    signed_hash = params.get("X-Amz-Content-Sha256", sigv4.UNSIGNED_PAYLOAD)
    payload_hash = _valid_payload_hash(signed_hash)
    signature = params["X-Amz-Signature"].lower()
    credential = await _lookup(identity, scope.access_key)
    key = _verify_v4(
        request,
        scope=scope,
        credential=credential,
        amz_date=amz_date,
        signed_headers=signed_headers,
        payload_hash=signed_hash,
        signature=signature,
        exclude="X-Amz-Signature",
    )
    signer = ChunkSigner(key, amz_date, scope.text, signature)
    return AuthContext.signed(AuthMethod.SIGV4_PRESIGNED, credential, payload_hash, signer)


def _parse_expires(value: str, error: S3ErrorCode) -> int:
    expires = parse_uint(value)
    if expires is None:
        raise S3Error(error, "X-Amz-Expires should be a number of seconds.")
    if expires > MAX_PRESIGN_EXPIRES:
        raise S3Error(error, "X-Amz-Expires must be less than a week (in seconds) that is 604800.")
    return expires


# -- SigV2 -------------------------------------------------------------------------------------
def _v2_paths(request: web.Request, domain: str | None) -> list[str]:
    """The signed resource path: as sent (and re-encoded), with the bucket when virtual-hosted."""
    prefix = ""
    if domain:
        host = request.headers.get("Host", "").rsplit(":", 1)[0].lower()
        suffix = "." + domain.lower()
        if host.endswith(suffix) and len(host) > len(suffix):
            prefix = "/" + host[: -len(suffix)]
    sent = raw_path(request)
    paths = [prefix + sent]
    canonical = sigv4.canonical_uri(sent)
    if canonical != sent:
        paths.append(prefix + canonical)
    # A bucket is one resource whether it is written "/bucket" or "/bucket/" (virtual-hosted
    # "/"): clients sign either form (s3cmd, boto's HmacV1), and S3 verifies both.
    if sent == "/":
        bucket = prefix
    elif not prefix and "/" not in sent[1:].removesuffix("/"):
        bucket = sent.removesuffix("/")
    else:
        bucket = ""  # an object: a trailing slash is part of its key
    if bucket:
        for path in (bucket, bucket + "/"):
            if path not in paths:
                paths.append(path)
    return paths


def _verify_v2(
    request: web.Request, credential: Credential, signature: str, date_line: str, paths: list[str]
) -> None:
    names = {name.lower() for name in request.headers}
    amz = sigv2.canonical_amz_headers(
        {n: request.headers.getall(n) for n in names if n.startswith("x-amz-")}
    )
    query = _query_items(request, plus_is_space=False)
    for path in paths:
        message = sigv2.string_to_sign(
            method=request.method,
            content_md5=request.headers.get("Content-MD5", "").strip(),
            content_type=request.headers.get("Content-Type", "").strip(),
            date=date_line,
            amz_headers=amz,
            resource=sigv2.canonical_resource(path, query),
        )
        if sigv4.signatures_equal(sigv2.signature(credential.secret_key, message), signature):
            return
    raise S3Error(
        S3ErrorCode.SignatureDoesNotMatch,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    )


async def _presigned_v2(
    request: web.Request, identity: Identity, now: datetime, domain: str | None
) -> AuthContext:
    params = dict(raw_query_pairs(request))
    expires = params.get("Expires", "")
    expires_at = parse_uint(expires)
    if expires_at is None:
        raise S3Error(
            S3ErrorCode.AccessDenied,
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId "
            "parameters; Expires must be a Unix time.",
        )
    if now.timestamp() > expires_at:
        raise S3Error(S3ErrorCode.AccessDenied, "Request has expired.")
    credential = await _lookup(identity, params["AWSAccessKeyId"])
    _verify_v2(request, credential, params["Signature"], expires, _v2_paths(request, domain))
    return AuthContext.signed(AuthMethod.SIGV2_PRESIGNED, credential, sigv4.UNSIGNED_PAYLOAD)


async def _header_v2(
    request: web.Request,
    identity: Identity,
    now: datetime,
    domain: str | None,
    authorization: str,
) -> AuthContext:
    access_key, sep, signature = authorization.strip()[len("AWS") :].strip().rpartition(":")
    if not sep or not access_key or not signature:
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            "AWS authorization header is invalid. Expected AwsAccessKeyId:signature.",
        )
    amz_date = request.headers.get("x-amz-date")
    date_header = request.headers.get("Date", "")
    when = _parse_http_date(amz_date if amz_date is not None else date_header)
    if when is None:
        raise S3Error(
            S3ErrorCode.AccessDenied,
            "AWS authentication requires a valid Date or x-amz-date header.",
        )
    _check_skew(when, now)
    credential = await _lookup(identity, access_key.strip())
    # with x-amz-date the Date line is empty (it is signed among the x-amz-* headers instead)
    date_line = "" if amz_date is not None else date_header.strip()
    _verify_v2(request, credential, signature.strip(), date_line, _v2_paths(request, domain))
    payload_hash = _anonymous_payload_hash(request) or sigv4.UNSIGNED_PAYLOAD
    return AuthContext.signed(AuthMethod.SIGV2_HEADER, credential, payload_hash)
