"""What every API module shares: route metadata, the services, request and record helpers.

Each resource module lists its routes as :class:`Route` objects; :mod:`ui.api` registers them
behind :func:`ui.api.auth.guard` (authentication, role, CSRF) and :mod:`ui.api.openapi` describes
the very same list, so the document cannot drift from what is served.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from aiohttp import web

from gateway.usecases import appkeys
from policy import session_view
from policy.identity import IdentityService
from policy.principal import Principal, Role
from policy.services import Services
from policy.store.base import (
    KeyRecord,
    ObjectRecord,
    SessionRecord,
    UserRecord,
)
from policy.timestamps import parse_instant, utc_text_or_none
from ui.api.errors import ApiError, bad_request
from ui.security import LoginLimiter

API_PREFIX = "/_minimo/api/v1"

#: who may call a route: "public" needs no login; the others name the lowest role allowed
Access = Literal["public", "reader", "uploader", "admin"]
_RANK = {Role.READER: 0, Role.UPLOADER: 1, Role.ADMIN: 2}
_NEEDED = {"reader": 0, "uploader": 1, "admin": 2}


def role_allows(role: Role, access: Access) -> bool:
    return access == "public" or _RANK[role] >= _NEEDED[access]


Schema = dict[str, Any]


@dataclass(frozen=True)
class Route:
    """One API route and what the OpenAPI document says about it."""

    method: str
    #: relative to API_PREFIX; aiohttp syntax ({name}, {key:.+})
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: str
    access: Access
    tag: str
    #: JSON request body schema (None: no body)
    body: Schema | None = None
    #: whether the handler also works without any body
    body_optional: bool = False
    #: JSON schema of the success response
    response: Schema = field(default_factory=lambda: {"type": "object"})
    status: int = 200
    #: (name, schema, description) of query parameters
    query: tuple[tuple[str, Schema, str], ...] = ()
    #: names of the query parameters the handler refuses to go without
    required_query: tuple[str, ...] = ()
    #: whether a session key may call it (only for its own session)
    session_key_ok: bool = False
    #: media types of the success response
    media: tuple[str, ...] = ("application/json",)


_PARAM_SEGMENT = re.compile(r"\{([A-Za-z_]+)\}")


def _shape(segments: list[str]) -> list[str]:
    """Path segments with every parameter alike, to compare paths whatever the names."""
    return ["{}" if segment.startswith("{") else segment for segment in segments]


def router_path(route: Route, routes: list[Route]) -> str:
    """``route.path`` in aiohttp syntax, each parameter refusing its fixed-path siblings.

    Without that, ``/sessions/{id}`` also matched ``/sessions/validate``: OPTIONS there answered
    405 with ``Allow: GET, POST``, offering the GET of a session called "validate" that the
    document does not have. Now that URL has exactly the methods the document lists.
    """
    segments = route.path.split("/")
    for index, segment in enumerate(segments):
        param = _PARAM_SEGMENT.fullmatch(segment)
        if param is None:
            continue
        parent = _shape(segments[:index])
        literals = sorted(
            {
                other[index]
                for other in (r.path.split("/") for r in routes)
                if len(other) > index
                and _shape(other[:index]) == parent
                and not other[index].startswith("{")
            }
        )
        if literals:
            reserved = "|".join(re.escape(literal) for literal in literals)
            segments[index] = f"{{{param.group(1)}:(?!(?:{reserved})(?:/|$))[^/]+}}"
    return "/".join(segments)


# -- services ------------------------------------------------------------------------------------


@dataclass
class ApiState:
    """Mutable per-process state of the API sub-app (an app's keys are frozen once it runs)."""

    services: Services | None = None
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    #: an argon2id hash of a random password, checked for unknown users so that a failed login
    #: takes as long whether or not the user exists (no user enumeration by timing)
    decoy_hash: str | None = None


API_STATE = web.AppKey("minimo_api_state", ApiState)


def api_state(request: web.Request) -> ApiState:
    return request.config_dict[API_STATE]


def services(request: web.Request) -> Services:
    """The services of this process, built on first use.

    When the gateway's write path is installed, its services are reused, so a policy set or a
    session closed here is seen at once by this process's enforcement (other processes: within
    the documented 2 s cache bounds of policy.catalog and policy.sessions).
    """
    state = api_state(request)
    if state.services is not None:
        return state.services
    identity = request.config_dict[appkeys.IDENTITY]
    if not isinstance(identity, IdentityService):
        raise ApiError(503, "unavailable", "the identity service is not configured")
    writes = request.config_dict.get(appkeys.WRITE_PATH)
    enforcer = getattr(writes, "enforcer", None)
    state.services = (
        Services.around(enforcer.sessions) if enforcer is not None else Services.build(identity)
    )
    return state.services


# -- the request ---------------------------------------------------------------------------------
PRINCIPAL = "minimo.api.principal"
#: the Route being served (set by the guard), so json_body knows the documented body
ROUTE = "minimo.api.route"
#: "cookie" or "sigv4"
AUTH_VIA = "minimo.api.via"


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; 400/415 with a clear message for anything else."""
    content_type = request.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        # Also a CSRF defence for /login: a cross-site HTML form cannot send application/json.
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        # json.loads recurses once per nesting level; thousands of "[" would otherwise be a 500
        raise bad_request("the body is nested too deeply to be a request") from None
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object")
    route: Route | None = request.get(ROUTE)
    if route is not None and route.body is not None:
        _refuse_unknown_properties(route.body, data)
    return data


def _refuse_unknown_properties(schema: Schema, data: dict[str, Any]) -> None:
    """A 400 for properties a closed body schema does not list: a misspelt optional field
    ("pasword") must not be silently ignored (here: a generated password instead)."""
    if schema.get("additionalProperties") is not False:
        return
    unknown = sorted(set(data) - set(schema.get("properties", {})))
    if unknown:
        allowed = ", ".join(schema.get("properties", {})) or "none"
        message = f"unknown field(s) {', '.join(unknown)}; allowed: {allowed}"
        raise bad_request(message, {name: ["unknown field"] for name in unknown})


def text_field(data: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    """``data[name]`` as a string; None when it is optional and absent.

    An explicit ``null`` is refused like any other non-string: the document promises strings,
    and reading null as "absent" would, e.g., quietly generate a password nobody asked for.
    """
    if name not in data:
        if required:
            raise bad_request(f"{name} is required", {name: ["required"]})
        return None
    value = data[name]
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string", {name: ["must be a string"]})
    return value


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer", {name: ["must be an integer"]}) from None
    if not low <= value <= high:
        message = f"must be between {low} and {high}"
        raise bad_request(f"{name} {message}", {name: [message]})
    return value


def query_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return parse_instant(raw)
    except ValueError:
        message = (
            "must be an ISO 8601 date or date-time in years 1-9999 (UTC), e.g. 2026-01-31T12:00:00Z"
        )
        raise bad_request(f"{name} {message}", {name: [message]}) from None


def created(body: Any) -> web.Response:
    return web.json_response(body, status=201, headers={"Cache-Control": "no-store"})


def ok(body: Any) -> web.Response:
    return web.json_response(body, headers={"Cache-Control": "no-store"})


# -- records as JSON -----------------------------------------------------------------------------
#: an instant as the API writes it (RFC 3339, UTC, "Z"); None stays null
iso = utc_text_or_none


def session_json(session: SessionRecord, now: datetime | None = None) -> dict[str, Any]:
    """A session as the API returns it: policy's one JSON shape of a session (without scope)."""
    return session_view.session_json(session, now)


def object_json(record: ObjectRecord) -> dict[str, Any]:
    return {
        "bucket": record.bucket,
        "key": record.key,
        "size": record.size,
        "etag": record.etag,
        "sha256": record.sha256,
        "content_type": record.content_type,
        "session_id": record.session_id,
        "principal": record.principal,
        "time": iso(record.committed),
        # when the bytes last changed: for linked data (adopt) the time before minimo stamped
        # it, for a write through minimo the write itself
        "modified": iso(record.modified or record.committed),
        # when existing data was linked into its session (None: written through minimo)
        "linked": iso(record.committed) if record.modified is not None else None,
        # minimo verify's last re-read of the bytes (None: never verified since this write)
        "verified": iso(record.verified),
        "verify_result": record.verify_result,
    }


def user_json(user: UserRecord) -> dict[str, Any]:
    return {
        "name": user.name,
        "role": user.role.value,
        "created": iso(user.created),
        "deleted": iso(user.deleted),
    }


def key_json(key: KeyRecord) -> dict[str, Any]:
    return {
        "access_key": key.access_key,
        "owner": key.owner,
        "created": iso(key.created),
        "revoked": iso(key.revoked),
        "session_id": key.session_id,
        "active": key.revoked is None,
        "label": key.label,
        "read_only": key.read_only,
    }
