# ruff: noqa: E501 - the error table reads best one error per line
"""The S3 error table and the exception that carries one to the client.

Every refusal the gateway makes is an :class:`S3Error`. Backends raise them too (the error table
is part of the S3 protocol, not of any backend), so a handler never needs to translate.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    status: int
    default_message: str


def _table(*rows: tuple[str, int, str]) -> dict[str, ErrorCode]:
    return {code: ErrorCode(code, status, msg) for code, status, msg in rows}


# Codes and statuses follow the AWS S3 error table; messages are ours and say what to do.
ERRORS: dict[str, ErrorCode] = _table(
    ("AccessDenied", 403, "Access Denied."),
    ("AuthorizationHeaderMalformed", 400, "The authorization header is malformed."),
    (
        "AuthorizationQueryParametersError",
        400,
        "The presigned URL's query parameters are malformed.",
    ),
    (
        "BadDigest",
        400,
        "The Content-MD5 or checksum you specified did not match what was received.",
    ),
    ("BucketAlreadyExists", 409, "The requested bucket name is not available."),
    ("BucketAlreadyOwnedByYou", 409, "You already own this bucket."),
    ("BucketNotEmpty", 409, "The bucket you tried to delete is not empty."),
    ("EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed size."),
    (
        "EntityTooSmall",
        400,
        "Your proposed upload is smaller than the minimum allowed object size.",
    ),
    ("ExpiredToken", 400, "The provided token has expired."),
    (
        "IncompleteBody",
        400,
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    ),
    ("InsufficientStorage", 507, "There is not enough storage space left to store this object."),
    ("InternalError", 500, "We encountered an internal error. Please try again."),
    (
        "InvalidAccessKeyId",
        403,
        "The AWS Access Key Id you provided does not exist in our records.",
    ),
    ("InvalidArgument", 400, "Invalid Argument."),
    ("InvalidBucketName", 400, "The specified bucket is not valid."),
    ("InvalidDigest", 400, "The Content-MD5 or checksum you specified is not valid."),
    ("InvalidObjectName", 400, "The specified object name is not valid."),
    ("InvalidPart", 400, "One or more of the specified parts could not be found."),
    ("InvalidPartOrder", 400, "The list of parts was not in ascending order."),
    ("InvalidRange", 416, "The requested range is not satisfiable."),
    ("InvalidRequest", 400, "Invalid Request."),
    ("KeyTooLongError", 400, "Your key is too long: keys are at most 1024 bytes of UTF-8."),
    (
        "MalformedTrailerError",
        400,
        "The request contained trailing data that was not well-formed or did not conform to our published schema.",
    ),
    (
        "MalformedXML",
        400,
        "The XML you provided was not well-formed or did not validate against our published schema.",
    ),
    ("MetadataTooLarge", 400, "Your metadata headers exceed the maximum allowed metadata size."),
    ("MethodNotAllowed", 405, "The specified method is not allowed against this resource."),
    ("MissingContentLength", 411, "You must provide the Content-Length HTTP header."),
    ("MissingSecurityHeader", 400, "Your request is missing a required header."),
    ("NoSuchBucket", 404, "The specified bucket does not exist."),
    ("NoSuchKey", 404, "The specified key does not exist."),
    ("NoSuchUpload", 404, "The specified multipart upload does not exist."),
    (
        "NotImplemented",
        501,
        "A header or operation you provided implies functionality that is not implemented.",
    ),
    ("NotModified", 304, "Not Modified."),
    ("PreconditionFailed", 412, "At least one of the preconditions you specified did not hold."),
    (
        "RequestHeaderSectionTooLarge",
        400,
        "Your request header section exceeds the maximum allowed size.",
    ),
    (
        "RequestTimeTooSkewed",
        403,
        "The difference between the request time and the server's time is too large.",
    ),
    ("ServiceUnavailable", 503, "Reduce your request rate."),
    (
        "SignatureDoesNotMatch",
        403,
        "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
    ),
    ("SlowDown", 503, "Please reduce your request rate."),
    (
        "XAmzContentSHA256Mismatch",
        400,
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    ),
    ("InvalidStorageClass", 400, "The storage class you specified is not valid."),
    (
        "ObjectParentIsFile",
        409,
        "The key's parent path is an existing object, so the key cannot be stored.",
    ),
    (
        "ExistingObjectIsDirectory",
        409,
        "Other objects are stored under this key followed by '/', so it cannot be stored as an object.",
    ),
)


class S3Error(Exception):
    """An S3 error response: code, HTTP status and a message that tells the user what to do.

    ``extra`` holds additional XML elements of the ``<Error>`` document (for example
    ``Region`` for AuthorizationHeaderMalformed); ``headers`` extra response headers.
    """

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        status: int | None = None,
        resource: str | None = None,
        extra: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        known = ERRORS.get(code)
        self.code = code
        self.status = status if status is not None else (known.status if known else 400)
        self.message = message or (known.default_message if known else code)
        self.resource = resource
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(f"{code}: {self.message}")


# -- outages (docs/failures.md) ------------------------------------------------------------------
#: what a client is told to wait before retrying a 503 (the ``Retry-After`` header, seconds)
RETRY_AFTER_SECONDS = 2
Store = Literal["metadata", "object"]
_outage_log = logging.getLogger("minimo.outage")
#: one log line per store and kind at most this often: an outage under load would otherwise
#: write a line per request
_LOG_EVERY_SECONDS = 10.0
_last_logged: dict[tuple[str, str], float] = {}


def store_unavailable(store: Store) -> S3Error:
    """``503 ServiceUnavailable`` naming the store, with ``Retry-After``. The Message names no
    address, URI or driver text (those go to the server log, see :func:`log_outage`)."""
    return S3Error(
        "ServiceUnavailable",
        f"The {store} store is unavailable (it did not answer in time). Nothing is wrong with "
        f"your request: try again in a few seconds.",
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def storage_full(store: Store) -> S3Error:
    """``507 InsufficientStorage``: the store has no space left (the write did not happen)."""
    return S3Error(
        "InsufficientStorage",
        f"The {store} store is full: there is no space left to store this. Nothing was "
        "stored; try again once the operator has freed or added space.",
    )


def is_outage(err: S3Error) -> bool:
    """A 503 or 507: the store's state, not the request, is at fault."""
    return err.status in (503, 507)


def log_outage(store: Store, kind: str, detail: object) -> None:
    """Log the server-side detail of an outage (addresses, driver text), rate-limited."""
    now = time.monotonic()
    last = _last_logged.get((store, kind))
    if last is not None and now - last < _LOG_EVERY_SECONDS:
        return
    _last_logged[(store, kind)] = now
    _outage_log.warning("%s store %s: %s", store, kind, detail)
