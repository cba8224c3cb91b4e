"""An upstream's error answers as the S3 errors the gateway's clients get.

Most pass on as they are. Two kinds do not: an upstream that fails (a 5xx other than
NotImplemented or SlowDown) becomes the 503 that names the object store (docs/failures.md), and
an upstream refusing the *gateway's* credentials or clock becomes a 503 too, since passing it
on would make clients believe their own key is bad.
"""

from __future__ import annotations

from gateway.backends.s3.translate import parse_xml
from gateway.protocol.errors import S3Error, log_outage, store_unavailable

#: Upstream codes that mean the *gateway's* credentials or clock are wrong. Passing them on
#: would make clients believe their own key is bad, so they become ServiceUnavailable.
UPSTREAM_AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "RequestTimeTooSkewed",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidToken",
    }
)
#: the code of an error answer without an S3 error body (a HEAD, a proxy's page), by status
STATUS_CODES = {
    304: "NotModified",
    400: "InvalidRequest",
    403: "AccessDenied",
    405: "MethodNotAllowed",
    409: "InvalidRequest",
    411: "MissingContentLength",
    412: "PreconditionFailed",
    416: "InvalidRange",
    501: "NotImplemented",
    503: "ServiceUnavailable",
}
#: upstream 5xx codes passed on as they are (the others mean the object store is failing)
PASSED_5XX = frozenset({"NotImplemented", "SlowDown"})


def error_from(raw: bytes, status: int, resource: str) -> S3Error | None:
    error = _s3_error_from(raw, status, resource)
    if error is not None and error.status >= 500 and error.code not in PASSED_5XX:
        # InternalError, ServiceUnavailable, a 502/504 of a proxy in front of it: the object
        # store is failing (versitygw answers 500 while it shuts down). A 503 naming the
        # store, as for one that does not answer at all (docs/failures.md).
        log_outage("object", "failing", f"upstream {error.code}: {error.message}")
        outage = store_unavailable("object")
        outage.resource = resource
        return outage
    return error


def _s3_error_from(raw: bytes, status: int, resource: str) -> S3Error | None:
    doc = parse_xml(raw)
    if not doc or not isinstance(doc.get("Error"), dict):
        return None
    err = doc["Error"]
    code = err.get("Code")
    if not isinstance(code, str) or not code:
        return None
    message = err.get("Message") if isinstance(err.get("Message"), str) else None
    if code.isdigit():  # some servers put the HTTP status in Code
        return None
    if status < 300:  # 200-with-Error: take the table's status for the code
        return S3Error.relayed(code, message, status=None, resource=resource)
    return S3Error.relayed(code, message, status=status, resource=resource)
