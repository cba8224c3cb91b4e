"""API errors: every failure leaves as ``{"error": {"code", "message", "fields"?}}``, never a
traceback, and with a 4xx status whenever the client can fix it."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web

from policy.sessions import SessionError, SessionNotAllowed, SessionNotFound
from ui.outages import outage_of
from ui.security import Handler

log = logging.getLogger("minimo.api")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = dict(fields) if fields else None
        self.headers = dict(headers) if headers else None


def bad_request(message: str, fields: Mapping[str, list[str]] | None = None) -> ApiError:
    return ApiError(400, "bad_request", message, fields)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def session_refusal(exc: SessionError) -> ApiError:
    """A refused session request as the API answers it, by the refusal's kind: a target that
    does not exist is a 404, a refusal about who asks (role, ownership, policy) a 403, anything
    else (what was sent) a 400."""
    message = str(exc)
    if isinstance(exc, SessionNotFound):
        return not_found(message)
    if isinstance(exc, SessionNotAllowed):
        return forbidden(message)
    return bad_request(message)


def problems_as_fields(problems: list[str], default: str) -> dict[str, list[str]]:
    """``["fields[0].name: bad", "oops"]`` -> ``{"fields[0].name": ["bad"], default: ["oops"]}``."""
    fields: dict[str, list[str]] = {}
    for problem in problems:
        where, sep, message = problem.partition(": ")
        if sep and where and " " not in where:
            fields.setdefault(where, []).append(message)
        else:
            fields.setdefault(default, []).append(problem)
    return fields


def error_response(err: ApiError) -> web.Response:
    body: dict[str, object] = {"code": err.code, "message": err.message}
    if err.fields:
        body["fields"] = err.fields
    headers = {"Cache-Control": "no-store", **(err.headers or {})}
    return web.json_response({"error": body}, status=err.status, headers=headers)


# aiohttp's own refusals (unknown route, wrong method, body too large) under stable codes
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "error" if exc.status < 500 else "internal_error")
        message = exc.reason
        if exc.status == 404:
            message = (
                f"no API route {request.method} {request.path}; see /_minimo/api/v1/openapi.json"
            )
        elif exc.status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(ApiError(exc.status, code, message, headers=headers))
    except Exception as exc:
        outage = outage_of(exc)
        if outage is not None:
            # a store is down or full: 503/507 naming it (ui.outages), not a 500
            return error_response(
                ApiError(outage.status, outage.code, outage.message, headers=outage.headers)
            )
        # A bug: log the details for the operator, tell the client nothing internal (no
        # traceback, no paths).
        log.exception("API request %s %s failed", request.method, request.path)
        return error_response(
            ApiError(500, "internal_error", "internal error; the server log has the details")
        )
