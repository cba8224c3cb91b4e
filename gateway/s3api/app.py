"""The aiohttp application: one catch-all S3 route, request ids, errors as S3 XML.

Everything outside ``/_minimo/`` is S3. A request is routed by hand (bucket and key decoded from
the *raw* path, so ``%2F`` and ``+`` keep their meaning), authenticated, classified into an
S3 operation (:mod:`gateway.s3api.operations`, whose table also gives its handler and policy
class), authorized by ``policy.enforce`` and handed to that handler.
"""

from __future__ import annotations

import base64
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from urllib.parse import unquote

from aiohttp import web

from gateway.backends.base import ObjectStore
from gateway.config import Config
from gateway.protocol import s3xml
from gateway.protocol.errors import (
    S3Error,
    S3ErrorCode,
    log_outage,
    storage_full,
    store_unavailable,
)
from gateway.protocol.names import validate_bucket, validate_key
from gateway.protocol.safe_serving import NOSNIFF, OBJECT_CSP
from gateway.s3api.auth import AuthContext, authenticate, signature_check
from gateway.s3api.browser import anonymous_read, browser_answer
from gateway.s3api.expect import close_if_body_unsent, defer_continue
from gateway.s3api.handlers.common import S3Request
from gateway.s3api.operations import S3Operation, classify
from gateway.ui_host import parse_ui_url, refuse_read_on_ui_host, ui_host_middleware
from gateway.usecases import metrics
from gateway.usecases.appkeys import (
    CONFIG,
    IDENTITY,
    OBJECT_STORE,
    VERIFY_SIGNATURE,
    WRITE_PATH,
)
from gateway.usecases.writes import WritePath, refused
from policy.enforce import SESSION_HEADER, Decision, OperationClass, Refusal, RefusalCode
from policy.identity import Identity
from policy.store.base import StoreFull, StoreUnavailable

log = logging.getLogger("minimo.s3")

#: aiohttp request-handler limits. They are above the S3 limit we enforce ourselves
#: (MAX_HEADER_BYTES), so oversized headers reach the app and get an S3 XML error rather than
#: aiohttp's plain-text 400.
#: ``auto_decompress`` off: a PUT with ``Content-Encoding: gzip`` stores the gzip bytes as sent
#: (S3 keeps the encoding as object metadata); aiohttp would otherwise inflate the body.
HANDLER_ARGS: dict = {
    "max_line_size": 64 * 1024,
    "max_field_size": 64 * 1024,
    "auto_decompress": False,
}
#: S3 refuses request header sections over 8 KiB.
MAX_HEADER_BYTES = 8 * 1024
RESERVED_PREFIX = "/_minimo/"

REQUEST_ID = web.RequestKey("minimo_request_id", str)
#: the S3 operation a request was classified as (the metrics' label)
OPERATION = web.RequestKey("minimo_operation", str)
HOST_ID = web.AppKey("minimo_host_id", str)
#: the UI's host name when --ui-url is set (gateway.ui_host)
UI_HOST = web.AppKey("minimo_ui_host", str)

#: request ids: a random per-process prefix and a counter, unique across gateways without a
#: getrandom() call per request (on the event loop that call gives up the GIL, and under load
#: waiting to get it back cost ~40 us a request)
_ID_PREFIX = secrets.token_hex(4).upper()
_ID_COUNTER = itertools.count(secrets.randbits(32))


def next_request_id() -> str:
    """16 upper-case hex digits, like S3's."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08X}"


async def authorize(
    writes: WritePath,
    request: web.Request,
    auth: AuthContext,
    op: S3Operation,
    bucket: str,
    key: str,
) -> Decision:
    """The one authorization: ``policy.enforce`` (docs/design.md, decisions 5-7). A refusal becomes
    the S3 error (AccessDenied, with the teaching Message) clients print."""
    continues = op.policy_class is OperationClass.CONTINUE
    upload_id = request.query.get("uploadId") if continues else None
    completing = op.name == "CompleteMultipartUpload"
    try:
        return await writes.enforcer.decide(
            auth.principal,
            op.name,
            op.policy_class,
            bucket,
            key,
            request.headers.get(SESSION_HEADER),
            upload_id=upload_id,
            audit_unknown_upload=not completing,
        )
    except Refusal as refusal:
        if completing and refusal.code is RefusalCode.NoSuchUpload:
            # perhaps a retry of a completion that succeeded: the handler tells (a decision
            # without an upload), and audits the refusal when it is not
            return Decision(op.name, auth.principal)
        if op.name == "CreateBucket":
            # Tools "make sure" the bucket exists before uploading (rclone, s3cmd) and accept
            # only BucketAlreadyOwnedByYou; an uploader must not fail there on a bucket that is
            # already there (ListBuckets shows it anyway).
            try:
                await request.app[OBJECT_STORE].head_bucket(bucket)
            except S3Error:
                pass  # absent (or unknowable): the refusal stands
            else:
                raise S3Error(S3ErrorCode.BucketAlreadyOwnedByYou, resource=f"/{bucket}") from None
        if refusal.outside_rules and bucket:
            await _refuse_missing_bucket(request, bucket)
        raise refused(refusal, f"/{bucket}/{key}" if key else f"/{bucket}") from None


async def _refuse_missing_bucket(request: web.Request, bucket: str) -> None:
    """A write outside every policy rule to a bucket that does not exist answers NoSuchBucket,
    as S3 does: what a client checks first (is the bucket there?) comes before minimo's own
    refusal. Existing buckets (and an unreachable store) keep the policy's refusal."""
    try:
        await request.app[OBJECT_STORE].head_bucket(bucket)
    except S3Error as err:
        if err.code is S3ErrorCode.NoSuchBucket:
            raise S3Error(S3ErrorCode.NoSuchBucket, resource=f"/{bucket}") from None


def split_target(request: web.Request, domain: str | None) -> tuple[str, str]:
    """(bucket, key) from the raw path (and the Host header for virtual-hosted style)."""
    raw = request.raw_path
    q = raw.find("?")
    if q >= 0:
        raw = raw[:q]
    if domain:
        host = request.headers.get("Host", "")
        if host.rfind(":") > host.rfind("]"):  # drop the port, not an IPv6 address's colons
            host = host[: host.rfind(":")]
        suffix = "." + domain
        if host.lower().endswith(suffix) and len(host) > len(suffix):
            return host[: -len(suffix)].lower(), unquote(raw[1:])
    bucket, _, key = raw[1:].partition("/")
    return unquote(bucket), unquote(key)


def _header_bytes(request: web.Request) -> int:
    return sum(len(k) + len(v) + 4 for k, v in request.raw_headers)


def _ui_home(config: Config) -> str:
    """The web UI's home page: on its own host name (--ui-url), or under this one."""
    if config.ui_url:
        return config.ui_url.strip().rstrip("/") + RESERVED_PREFIX
    return RESERVED_PREFIX


async def _serve(request: web.Request) -> web.StreamResponse:
    app = request.app
    config = app[CONFIG]
    if _header_bytes(request) > MAX_HEADER_BYTES:
        raise S3Error(
            S3ErrorCode.RequestHeaderSectionTooLarge,
            f"Your request header section exceeds {MAX_HEADER_BYTES} bytes.",
            extra={"MaxSizeAllowed": str(MAX_HEADER_BYTES)},
        )
    if anonymous_read(request):
        browser = browser_answer(request, *split_target(request, config.domain), _ui_home(config))
        if browser is not None:
            return browser
    if config.ui_url is not None:
        refuse_read_on_ui_host(request, app[UI_HOST], config.base_url)
    bucket, key = split_target(request, config.domain)
    auth = await authenticate(request, app[IDENTITY], region=config.region, domain=config.domain)
    query = request.query
    op = classify(request.method, bucket, key, query, request.headers)
    request[OPERATION] = op.name
    if auth.is_anonymous:
        # Before any name checks, as before enforcement existed: anonymous callers learn nothing.
        raise S3Error(
            S3ErrorCode.AccessDenied,
            "Anonymous access is not allowed: sign your requests with an access key.",
            resource=f"/{bucket}/{key}" if key else f"/{bucket}",
        )
    if auth.principal.stale and not op.is_read:
        # authenticated from the last known good credential while the metadata store is
        # down (policy.identity): good enough to read, never to write (docs/failures.md)
        raise StoreUnavailable("credential from the outage grace used for a write")
    if bucket:
        validate_bucket(bucket)
        if key:
            validate_key(bucket, key)
    writes = app[WRITE_PATH]
    decision = await authorize(writes, request, auth, op, bucket, key)
    s3req = S3Request(
        request, config, app[OBJECT_STORE], op.name, bucket, key, auth, decision, writes
    )
    return await op.handler(s3req)


_HTTP_CODES: dict[int, S3ErrorCode] = {
    400: S3ErrorCode.InvalidRequest,
    403: S3ErrorCode.AccessDenied,
    404: S3ErrorCode.NoSuchKey,
    405: S3ErrorCode.MethodNotAllowed,
    411: S3ErrorCode.MissingContentLength,
    413: S3ErrorCode.EntityTooLarge,
    416: S3ErrorCode.InvalidRange,
}


def _from_http_exception(exc: web.HTTPException) -> S3Error:
    fallback = S3ErrorCode.InternalError if exc.status >= 500 else S3ErrorCode.InvalidRequest
    code = _HTTP_CODES.get(exc.status, fallback)
    return S3Error(code, exc.reason or None, status=exc.status)


def error_response(request: web.Request, err: S3Error, request_id: str) -> web.Response:
    headers = {"Content-Type": s3xml.CONTENT_TYPE}
    headers.update(err.headers)
    # HEAD responses and 304 carry no body (the status and headers are the whole answer).
    if request.method == "HEAD" or err.status == 304:
        return web.Response(status=err.status, headers=headers)
    resource = err.resource or unquote(request.raw_path.partition("?")[0])
    body = s3xml.error_document(
        err.code,
        err.message,
        resource,
        request_id,
        request.app[HOST_ID],
        {k: str(v) for k, v in err.extra.items()},
    )
    return web.Response(status=err.status, body=body, headers=headers)


async def s3_entry(request: web.Request) -> web.StreamResponse:
    """The catch-all route: everything not under /_minimo/ is S3."""
    started = time.perf_counter()
    response = await _answer(request)
    _count(request, response, time.perf_counter() - started)
    return response


def _count(request: web.Request, response: web.StreamResponse, seconds: float) -> None:
    """The request in the metrics: operation, status, time, bytes (gateway.usecases.metrics)."""
    if response.prepared:  # streamed by the handler: what it wrote
        sent = response.body_length
    elif request.method == "HEAD":
        sent = 0
    else:
        sent = response.content_length or 0
    operation = request.get(OPERATION) or _operation_of(request)
    metrics.observe_request(operation, response.status, seconds, request.content.total_bytes, sent)


def _operation_of(request: web.Request) -> str:
    """The operation of a request answered before it was classified (a bad signature, a
    header section too large): classified now, for the metrics only."""
    try:
        bucket, key = split_target(request, request.app[CONFIG].domain)
        return classify(request.method, bucket, key, request.query, request.headers).name
    except Exception:
        return "Unknown"


async def _answer(request: web.Request) -> web.StreamResponse:
    request_id = next_request_id()
    request[REQUEST_ID] = request_id
    try:
        if request.raw_path.startswith(RESERVED_PREFIX):
            raise S3Error(
                S3ErrorCode.NoSuchKey,
                "Nothing here: /_minimo/ is reserved for minimo's UI and API.",
                status=404,
            )
        return await _serve(request)
    except S3Error as err:
        return error_response(request, err, request_id)
    except StoreUnavailable as exc:
        # an outage is the store's state, not a bug: 503 naming the store, no driver text
        log_outage("metadata", "unavailable", _cause(exc))
        return error_response(request, store_unavailable("metadata"), request_id)
    except StoreFull as exc:
        log_outage("metadata", "full", _cause(exc))
        return error_response(request, storage_full("metadata"), request_id)
    except web.HTTPException as exc:
        return error_response(request, _from_http_exception(exc), request_id)
    except ConnectionError:
        # The client went away mid-request; aiohttp quietly fails to send this answer.
        return error_response(request, S3Error(S3ErrorCode.IncompleteBody), request_id)
    except Exception:
        # The traceback stays in the server log; the client gets only the request id to quote.
        log.exception(
            "internal error in %s %s (request id %s)", request.method, request.raw_path, request_id
        )
        return error_response(request, S3Error(S3ErrorCode.InternalError), request_id)


def _cause(exc: BaseException) -> str:
    """The store error and the driver error behind it, for the server log."""
    cause = exc.__cause__
    return f"{exc}" + (f" ({type(cause).__name__}: {cause})" if cause is not None else "")


async def _stamp(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Every response names the server; S3 responses carry the request id, and nosniff and a
    sandboxing CSP (gateway.protocol.safe_serving), so no stored byte ever runs as this origin.
    Those two are set on every S3 answer (errors, 304, listings too), replacing anything a
    handler set: constant values, cheaper than deciding which answers need them."""
    headers = response.headers
    headers["Server"] = "minimo"
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        close_if_body_unsent(request, response)
        headers["x-amz-request-id"] = request_id
        headers["x-amz-id-2"] = request.app[HOST_ID]
        headers["X-Content-Type-Options"] = NOSNIFF
        headers["Content-Security-Policy"] = OBJECT_CSP


def create_app(
    config: Config,
    object_store: ObjectStore,
    identity: Identity,
    writes: WritePath,
    *,
    mount: Callable[[web.Application], None] | None = None,
) -> web.Application:
    """The S3 application. ``mount`` registers what else this app serves under ``/_minimo/``
    (the wiring passes the web UI's ``setup_ui``): it runs before the S3 catch-all route is
    added, so those routes match first. The S3 front end itself knows nothing of the UI."""
    app = web.Application(handler_args=HANDLER_ARGS)
    app[CONFIG] = config
    app[OBJECT_STORE] = object_store
    app[IDENTITY] = identity
    app[WRITE_PATH] = writes
    app[VERIFY_SIGNATURE] = signature_check(identity, region=config.region, domain=config.domain)
    app[HOST_ID] = base64.b64encode(secrets.token_bytes(48)).decode("ascii")
    app.on_response_prepare.append(_stamp)
    if config.ui_url is not None:
        app[UI_HOST] = parse_ui_url(config.ui_url)[1]
        app.middlewares.append(ui_host_middleware(config.ui_url))
    if mount is not None:
        mount(app)
    # Registered last, so the UI's /_minimo/ routes match first.
    app.router.add_route("*", "/{tail:.*}", s3_entry, expect_handler=defer_continue)
    return app
