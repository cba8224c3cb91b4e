"""Who is calling: the login cookie (browsers) or a SigV4 signature (scripts), and the checks
every route runs before its handler (:func:`guard`), plus ``/login``, ``/logout``, ``/me``.

Scripts sign API requests exactly like S3 requests, with a personal access key, service ``s3``
and the gateway's region, e.g.::

    curl --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" https://HOST/_minimo/api/v1/sessions

The signature check is the gateway's own: the S3 app offers its verifier
(``gateway.s3api.auth.authenticate``) under ``gateway.usecases.appkeys.VERIFY_SIGNATURE``, so the
API keeps no second SigV4 verifier and does not import the S3 front end (docs/design.md,
"Layers"). The body of a signed request is checked against the signed
``x-amz-content-sha256`` (``UNSIGNED-PAYLOAD`` is accepted as S3 accepts it; streaming payloads
are refused: API bodies are small JSON documents).

Session keys are for writing data, not for administering: the API refuses them except to read
their own session (``GET /sessions/{id}`` and its objects).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from typing import Any, cast

from aiohttp import web
from aiohttp_session import get_session, new_session
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.usecases import appkeys
from gateway.usecases.object_store import S3Error
from policy.logins import new_login_id
from policy.passwords import hash_password_async, verify_password_async
from policy.principal import Principal
from policy.store.base import StoreUnavailable
from ui.api.common import (
    AUTH_VIA,
    PRINCIPAL,
    ROUTE,
    Route,
    api_state,
    json_body,
    ok,
    principal,
    role_allows,
    services,
    text_field,
)
from ui.api.errors import ApiError, Handler, forbidden
from ui.security import (
    CSRF_HEADER,
    SAFE_METHODS,
    csrf_ok,
    new_csrf_token,
    password_fingerprint,
)

_HEX64 = re.compile(r"[0-9a-f]{64}")


def _signed(request: web.Request) -> bool:
    return "Authorization" in request.headers or "X-Amz-Signature" in request.query


class _WithHeaders:
    """A read request seen with other headers (aiohttp only clones unread requests)."""

    def __init__(self, request: web.Request, headers: CIMultiDictProxy[str]) -> None:
        self._request = request
        self.headers = headers

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


async def _from_signature(request: web.Request) -> Principal:
    target = request
    if "x-amz-content-sha256" not in request.headers and request.can_read_body:
        # Signers for services other than S3 (curl --aws-sigv4 among them) put the body's hash
        # in the canonical request without sending the header. The gateway's verifier reads the
        # hash from the header (S3 requires it), so hand it a copy that carries it; the header
        # is not among the signed ones, so the signature still covers exactly what was sent.
        headers = CIMultiDict(request.headers)
        headers["x-amz-content-sha256"] = hashlib.sha256(await request.read()).hexdigest()
        target = cast(web.Request, _WithHeaders(request, CIMultiDictProxy(headers)))
    try:
        auth = await request.config_dict[appkeys.VERIFY_SIGNATURE](target)
    except S3Error as err:
        raise ApiError(403, "invalid_signature", err.message or err.code) from None
    if auth.principal is None:
        raise ApiError(401, "unauthenticated", "the request carries no usable signature")
    if auth.principal.stale:
        # the outage grace lets S3 reads through, nothing else (policy.identity)
        raise StoreUnavailable("credential from the outage grace used on the API")
    payload = auth.payload_hash
    if payload is not None and payload.startswith("STREAMING-"):
        raise ApiError(400, "bad_request", "streaming payloads are not accepted by the API")
    if payload is not None and _HEX64.fullmatch(payload):
        # The signature covers the hash, not the body: compare, or a replayed signature could
        # carry any body. API bodies are small (client_max_size), so reading them whole is fine.
        body = await request.read()
        if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), payload):
            raise ApiError(
                400, "bad_digest", "the body does not match the signed x-amz-content-sha256"
            )
    return auth.principal


#: the cookie's key for the login id (see policy.logins): what signing out ends
LOGIN_ID = "login"


async def _from_cookie(request: web.Request) -> Principal | None:
    session = await get_session(request)
    name = session.get("user")
    if not isinstance(name, str):
        return None
    svc = services(request)
    login_id = session.get(LOGIN_ID)
    # A cookie without a login id predates sign-out records and could never be ended: refused
    # like an expired one (its user simply signs in again).
    if not isinstance(login_id, str) or not login_id or await svc.logins.is_ended(login_id):
        session.invalidate()
        return None
    user = await svc.identity.get_user(name)
    # Read the user every time: a deleted user, a new role or a new password applies at once.
    if (
        user is None
        or not user.active
        or session.get("pwv") != password_fingerprint(user.password_hash)
    ):
        session.invalidate()
        return None
    return Principal(user=user.name, role=user.role)


async def sign_out(request: web.Request, who: Principal) -> None:
    """End the cookie's login on every gateway process, audit it and clear the cookie.

    The one sign-out behind the API's ``/logout`` and the page's Sign out button. A cookie
    without a login id or an ended one never gets here (:func:`_from_cookie` refuses it), and
    ending an ended login again is harmless anyway.
    """
    session = await get_session(request)
    login_id = session.get(LOGIN_ID)
    if isinstance(login_id, str) and login_id:
        await services(request).logins.end(login_id, who.user)
    session.invalidate()
    await services(request).auditor.ok(who, "logout", "ui")


def guard(route: Route) -> Handler:
    """The route's handler behind authentication, the session-key rule, CSRF and the role."""

    async def handler(request: web.Request) -> web.StreamResponse:
        request[ROUTE] = route
        if route.access == "public":
            return await route.handler(request)
        if _signed(request):
            who: Principal | None = await _from_signature(request)
            via = "sigv4"
        else:
            who = await _from_cookie(request)
            via = "cookie"
        if who is None:
            raise ApiError(
                401,
                "unauthenticated",
                "sign in with POST /_minimo/api/v1/login, or sign the request with SigV4 "
                "using a personal access key",
            )
        if who.session_id is not None:
            own = request.match_info.get("id") == who.session_id
            if not (route.session_key_ok and own):
                raise forbidden(
                    "a session key may only read its own session; use a personal access key"
                )
        if via == "cookie" and request.method not in SAFE_METHODS:
            session = await get_session(request)
            if not csrf_ok(session.get("csrf"), request.headers.get(CSRF_HEADER)):
                raise ApiError(
                    403,
                    "csrf",
                    f"missing or wrong {CSRF_HEADER} header: send the csrf_token that "
                    "POST /login (or GET /me) returned",
                )
        if not role_allows(who.role, route.access):
            raise forbidden(
                f"{who.user} is {who.role.value}; {route.method} {route.path} needs the "
                f"{route.access} role"
            )
        request[PRINCIPAL] = who
        request[AUTH_VIA] = via
        return await route.handler(request)

    handler.__name__ = route.handler.__name__
    return handler


def client_ip(request: web.Request) -> str:
    # The socket's peer: X-Forwarded-For is client-controlled unless a trusted proxy sets it,
    # and trusting it would let an attacker pick a fresh "IP" for every guess.
    return request.remote or "-"


class LoginRateLimited(Exception):
    """Too many failed logins for this user from this address; retry after ``seconds``."""

    def __init__(self, seconds: int) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class LoginFailed(Exception):
    """Wrong user name or password (never says which)."""


async def sign_in(request: web.Request, user: str, password: str) -> tuple[Principal, str]:
    """The one sign-in check behind the API's ``/login`` and the login page.

    Rate limit per (user, address), the same password-hash cost for unknown users (no user
    enumeration by timing), audit of every outcome, and a fresh cookie session (no fixation)
    with a new CSRF token. Returns the principal and that token.
    """
    state = api_state(request)
    ip = client_ip(request)
    svc = services(request)
    wait = state.limiter.retry_after(user, ip)
    if wait > 0:
        await svc.auditor.refused(user or None, "login", f"user:{user}", "rate limited", ip=ip)
        raise LoginRateLimited(math.ceil(wait))
    known = await svc.identity.get_user(user)
    who = None
    if known is None or not known.active:
        if state.decoy_hash is None:
            state.decoy_hash = await hash_password_async(secrets.token_urlsafe(16))
        await verify_password_async(state.decoy_hash, password)
    else:
        who = await svc.identity.authenticate(user, password)
    if who is None:
        state.limiter.failed(user, ip)
        await svc.auditor.refused(user or None, "login", f"user:{user}", "bad credentials", ip=ip)
        raise LoginFailed
    state.limiter.succeeded(user, ip)
    record = await svc.identity.get_user(who.user)
    assert record is not None  # authenticate just read it
    # A fresh session (new cookie) at every login: nothing from before the login survives.
    session = await new_session(request)
    session["user"] = who.user
    session["pwv"] = password_fingerprint(record.password_hash)
    session["csrf"] = new_csrf_token()
    session[LOGIN_ID] = new_login_id()
    await svc.auditor.ok(who, "login", f"user:{who.user}", ip=ip)
    return who, session["csrf"]


async def login(request: web.Request) -> web.StreamResponse:
    data = await json_body(request)
    user = text_field(data, "user") or ""
    password = text_field(data, "password") or ""
    try:
        who, csrf = await sign_in(request, user, password)
    except LoginRateLimited as exc:
        raise ApiError(
            429,
            "rate_limited",
            f"too many failed logins for {user!r} from this address; try again in {exc.seconds} s",
            headers={"Retry-After": str(exc.seconds)},
        ) from exc
    except LoginFailed as exc:
        raise ApiError(401, "bad_credentials", "wrong user name or password") from exc
    return ok({"user": who.user, "role": who.role.value, "csrf_token": csrf})


async def logout(request: web.Request) -> web.StreamResponse:
    if request.get(AUTH_VIA) == "cookie":
        await sign_out(request, principal(request))
    return ok({"logged_out": True})


async def me(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    body: dict[str, Any] = {
        "user": who.user,
        "role": who.role.value,
        "auth": request[AUTH_VIA],
        "access_key": who.access_key,
        "session_id": who.session_id,
    }
    if request[AUTH_VIA] == "cookie":
        body["csrf_token"] = (await get_session(request)).get("csrf")
    return ok(body)


_ME = {
    "type": "object",
    "required": ["user", "role", "auth"],
    "properties": {
        "user": {"type": "string"},
        "role": {"$ref": "#/components/schemas/Role"},
        "auth": {"enum": ["cookie", "sigv4"]},
        "access_key": {"type": ["string", "null"]},
        "session_id": {"type": ["string", "null"]},
        "csrf_token": {"type": "string"},
    },
}

ROUTES = [
    Route(
        "POST",
        "/login",
        login,
        "Sign in with a password; sets the login cookie and returns the CSRF token",
        "public",
        "auth",
        body={
            "type": "object",
            "required": ["user", "password"],
            "properties": {"user": {"type": "string"}, "password": {"type": "string"}},
            "additionalProperties": False,
        },
        response={
            "type": "object",
            "required": ["user", "role", "csrf_token"],
            "properties": {
                "user": {"type": "string"},
                "role": {"$ref": "#/components/schemas/Role"},
                "csrf_token": {"type": "string"},
            },
        },
    ),
    Route(
        "POST",
        "/logout",
        logout,
        "Sign out: ends this login on every gateway (a copy of the cookie is refused too, "
        "within 2 s on other gateway processes) and clears the login cookie",
        "reader",
        "auth",
        response={"type": "object", "properties": {"logged_out": {"type": "boolean"}}},
    ),
    Route("GET", "/me", me, "Show who is calling", "reader", "auth", response=_ME),
]
