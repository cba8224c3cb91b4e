# ruff: noqa: E501 - the table's default messages stay one string each, however long
"""The S3 error table and the exception that carries one to the client.

Every refusal the gateway makes is an :class:`S3Error`. Backends raise them too (the error table
is part of the S3 protocol, not of any backend), so a handler never needs to translate.
:class:`S3ErrorCode` is the table: raise ``S3Error(S3ErrorCode.NoSuchKey)``, compare
``err.code == S3ErrorCode.NoSuchKey``; a code missing from it cannot be raised.
"""

from __future__ import annotations

import logging
import time
from enum import StrEnum
from typing import Literal


class ErrorTable(StrEnum):
    """The shape of an error table: each member is ``Name = "Name", status, default message``.

    A member *is* its code's string (``S3ErrorCode.NoSuchKey == "NoSuchKey"``), so it goes into
    XML as it is and compares equal to the same code read back from an upstream store.
    """

    status: int
    default_message: str

    def __new__(cls, code: str, status: int, default_message: str) -> ErrorTable:
        member = str.__new__(cls, code)
        member._value_ = code
        member.status = status
        member.default_message = default_message
        return member


def check_error_table(table: type[ErrorTable]) -> None:
    """Fail (at import) unless every member is named after its code, so that
    ``S3ErrorCode.X`` is the code "X", and has an HTTP error status (304 Not Modified is S3's
    error-shaped answer to a failed condition)."""
    for name, member in table.__members__.items():
        if name != member.value:
            raise TypeError(
                f"{table.__name__}.{name} has the code {member.value!r}: they must match"
            )
        if not (member.status == 304 or 400 <= member.status <= 599):
            raise TypeError(f"{table.__name__}.{name} has the status {member.status}, not an error")


class S3ErrorCode(ErrorTable):
    """The S3 error codes minimo answers with, each with its HTTP status and default message.

    Codes and statuses follow the AWS S3 error table; messages are ours and say what to do.
    """

    AccessDenied = "AccessDenied", 403, "Access Denied."
    AuthorizationHeaderMalformed = (
        "AuthorizationHeaderMalformed",
        400,
        "The authorization header is malformed.",
    )
    AuthorizationQueryParametersError = (
        "AuthorizationQueryParametersError",
        400,
        "The presigned URL's query parameters are malformed.",
    )
    BadDigest = (
        "BadDigest",
        400,
        "The Content-MD5 or checksum you specified did not match what was received.",
    )
    BucketAlreadyExists = "BucketAlreadyExists", 409, "The requested bucket name is not available."
    BucketAlreadyOwnedByYou = "BucketAlreadyOwnedByYou", 409, "You already own this bucket."
    BucketNotEmpty = "BucketNotEmpty", 409, "The bucket you tried to delete is not empty."
    EntityTooLarge = "EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed size."
    EntityTooSmall = (
        "EntityTooSmall",
        400,
        "Your proposed upload is smaller than the minimum allowed object size.",
    )
    ExpiredToken = "ExpiredToken", 400, "The provided token has expired."
    IllegalLocationConstraintException = (
        "IllegalLocationConstraintException",
        400,
        "The location constraint you specified is not this server's region.",
    )
    IncompleteBody = (
        "IncompleteBody",
        400,
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    )
    InsufficientStorage = (
        "InsufficientStorage",
        507,
        "There is not enough storage space left to store this object.",
    )
    InternalError = "InternalError", 500, "We encountered an internal error. Please try again."
    InvalidAccessKeyId = (
        "InvalidAccessKeyId",
        403,
        "The AWS Access Key Id you provided does not exist in our records.",
    )
    InvalidArgument = "InvalidArgument", 400, "Invalid Argument."
    InvalidBucketName = "InvalidBucketName", 400, "The specified bucket is not valid."
    InvalidDigest = "InvalidDigest", 400, "The Content-MD5 or checksum you specified is not valid."
    InvalidObjectName = "InvalidObjectName", 400, "The specified object name is not valid."
    InvalidPart = "InvalidPart", 400, "One or more of the specified parts could not be found."
    InvalidPartOrder = "InvalidPartOrder", 400, "The list of parts was not in ascending order."
    InvalidPartNumber = "InvalidPartNumber", 416, "The requested partnumber is not satisfiable."
    InvalidRange = "InvalidRange", 416, "The requested range is not satisfiable."
    InvalidRequest = "InvalidRequest", 400, "Invalid Request."
    KeyTooLongError = (
        "KeyTooLongError",
        400,
        "Your key is too long: keys are at most 1024 bytes of UTF-8.",
    )
    MalformedTrailerError = (
        "MalformedTrailerError",
        400,
        "The request contained trailing data that was not well-formed or did not conform to our published schema.",
    )
    MalformedXML = (
        "MalformedXML",
        400,
        "The XML you provided was not well-formed or did not validate against our published schema.",
    )
    MetadataTooLarge = (
        "MetadataTooLarge",
        400,
        "Your metadata headers exceed the maximum allowed metadata size.",
    )
    MethodNotAllowed = (
        "MethodNotAllowed",
        405,
        "The specified method is not allowed against this resource.",
    )
    MissingContentLength = (
        "MissingContentLength",
        411,
        "You must provide the Content-Length HTTP header.",
    )
    MissingSecurityHeader = (
        "MissingSecurityHeader",
        400,
        "Your request is missing a required header.",
    )
    NoSuchBucket = "NoSuchBucket", 404, "The specified bucket does not exist."
    NoSuchKey = "NoSuchKey", 404, "The specified key does not exist."
    NoSuchUpload = "NoSuchUpload", 404, "The specified multipart upload does not exist."
    NoSuchVersion = "NoSuchVersion", 404, "The specified version does not exist."
    NotImplemented = (
        "NotImplemented",
        501,
        "A header or operation you provided implies functionality that is not implemented.",
    )
    NotModified = "NotModified", 304, "Not Modified."
    PreconditionFailed = (
        "PreconditionFailed",
        412,
        "At least one of the preconditions you specified did not hold.",
    )
    RequestHeaderSectionTooLarge = (
        "RequestHeaderSectionTooLarge",
        400,
        "Your request header section exceeds the maximum allowed size.",
    )
    RequestTimeTooSkewed = (
        "RequestTimeTooSkewed",
        403,
        "The difference between the request time and the server's time is too large.",
    )
    ServiceUnavailable = "ServiceUnavailable", 503, "Reduce your request rate."
    SignatureDoesNotMatch = (
        "SignatureDoesNotMatch",
        403,
        "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
    )
    SlowDown = "SlowDown", 503, "Please reduce your request rate."
    XAmzContentSHA256Mismatch = (
        "XAmzContentSHA256Mismatch",
        400,
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    )
    InvalidStorageClass = (
        "InvalidStorageClass",
        400,
        "The storage class you specified is not valid.",
    )
    ObjectParentIsFile = (
        "ObjectParentIsFile",
        409,
        "The key's parent path is an existing object, so the key cannot be stored.",
    )
    ExistingObjectIsDirectory = (
        "ExistingObjectIsDirectory",
        409,
        "Other objects are stored under this key followed by '/', so it cannot be stored as an object.",
    )


check_error_table(S3ErrorCode)


class UnknownS3ErrorCode(ValueError):
    """A code that is not in :class:`S3ErrorCode`: a bug in the gateway, never the client's."""


def error_code(code: S3ErrorCode | str) -> S3ErrorCode:
    """The table's member for ``code``; :class:`UnknownS3ErrorCode` when it has none."""
    try:
        return S3ErrorCode(code)
    except ValueError:
        raise UnknownS3ErrorCode(
            f"{code!r} is not an S3 error code of gateway.protocol.errors.S3ErrorCode; "
            "add it to the table (with its HTTP status) before raising it"
        ) from None


class S3Error(Exception):
    """An S3 error response: code, HTTP status and a message that tells the user what to do.

    ``code`` must be in the table (:class:`S3ErrorCode`, or its exact string): an unknown code
    raises :class:`UnknownS3ErrorCode` here, so no answer carries a code the table does not
    give a status for. Only :meth:`relayed` passes on an upstream's code as it came.
    ``extra`` holds additional XML elements of the ``<Error>`` document (for example
    ``Region`` for AuthorizationHeaderMalformed); ``headers`` extra response headers.
    """

    #: an :class:`S3ErrorCode`; a plain ``str`` only for an upstream's code (:meth:`relayed`)
    code: str

    def __init__(
        self,
        code: S3ErrorCode | str,
        message: str | None = None,
        *,
        status: int | None = None,
        resource: str | None = None,
        extra: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        known = error_code(code)
        self._fill(
            known,
            message or known.default_message,
            status if status is not None else known.status,
            resource=resource,
            extra=extra,
            headers=headers,
        )

    @classmethod
    def relayed(
        cls, code: str, message: str | None, *, status: int | None, resource: str | None
    ) -> S3Error:
        """An error an upstream S3 store answered, passed on to the client as it came. Its code
        may be one minimo never gives itself (then: the upstream's status, or 400, and the code
        as the message when there is none)."""
        if code in S3ErrorCode.__members__:
            return cls(code, message, status=status, resource=resource)
        error = cls.__new__(cls)
        status = status if status is not None else 400
        error._fill(code, message or code, status, resource=resource, extra=None, headers=None)
        return error

    def _fill(
        self,
        code: str,
        message: str,
        status: int,
        *,
        resource: str | None,
        extra: dict[str, str] | None,
        headers: dict[str, str] | None,
    ) -> None:
        self.code = code
        self.status = status
        self.message = message
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
        S3ErrorCode.ServiceUnavailable,
        f"The {store} store is unavailable (it did not answer in time). Nothing is wrong with "
        f"your request: try again in a few seconds.",
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def storage_full(store: Store) -> S3Error:
    """``507 InsufficientStorage``: the store has no space left (the write did not happen)."""
    return S3Error(
        S3ErrorCode.InsufficientStorage,
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
