"""``/me/password``: a signed-in user changes their own password (every role).

The old password must be right. Wrong ones are limited like failed sign-ins (five a minute per
user and address, so a stolen cookie is no free password oracle), on a counter of their own: a
stolen cookie must not lock its user out of signing in either. The new password follows
the store's rules (policy.identity). Every other login of the user ends, on every gateway
process: a login cookie carries its password's fingerprint (ui.security), which no longer
matches. The login that made the change is kept (its cookie gets the new fingerprint); access
keys are untouched (they are credentials of their own, revoked on the keys page).
"""

from __future__ import annotations

import math

from aiohttp import web
from aiohttp_session import get_session

from policy.identity import IdentityError, WrongPassword
from policy.passwords import MIN_PASSWORD_LENGTH
from policy.principal import Principal
from ui.api.auth import LoginRateLimited, client_ip
from ui.api.common import AUTH_VIA, Route, api_state, json_body, ok, principal, services, text_field
from ui.api.errors import ApiError, bad_request
from ui.security import password_fingerprint

#: the form fields (and JSON members) a problem is reported next to
OLD, NEW = "old_password", "new_password"


def _attempts(user: str) -> str:
    """The limiter's name for a user's password-change attempts (no user name has a space)."""
    return f"{user} (password change)"


class PasswordProblem(Exception):
    """A change refused because of one field; the message is meant for people."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


async def change_own_password(
    request: web.Request, who: Principal, old: str, new: str, *, via_cookie: bool
) -> None:
    """The one change behind the API and the account page (rate limit, audit, cookie)."""
    svc = services(request)
    limiter = api_state(request).limiter
    ip = client_ip(request)
    wait = limiter.retry_after(_attempts(who.user), ip)
    if wait > 0:
        await svc.auditor.refused(who, "user.password", f"user:{who.user}", "rate limited", ip=ip)
        raise LoginRateLimited(math.ceil(wait))
    try:
        user = await svc.identity.change_own_password(who.user, old, new)
    except WrongPassword as exc:
        limiter.failed(_attempts(who.user), ip)
        await svc.auditor.refused(who, "user.password", f"user:{who.user}", "wrong password", ip=ip)
        raise PasswordProblem(OLD, str(exc)) from None
    except IdentityError as exc:
        raise PasswordProblem(NEW, str(exc)) from None
    if via_cookie:
        # this login stays signed in; every other one (old fingerprint) is refused from now on
        (await get_session(request))["pwv"] = password_fingerprint(user.password_hash)
    await svc.auditor.ok(who, "user.password", f"user:{who.user}", own=True, ip=ip)


async def change_password(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    data = await json_body(request)
    old = text_field(data, OLD) or ""
    new = text_field(data, NEW) or ""
    try:
        await change_own_password(request, who, old, new, via_cookie=request[AUTH_VIA] == "cookie")
    except PasswordProblem as exc:
        if exc.field == OLD:
            # not a malformed request: the caller did not prove who they are
            raise ApiError(403, "wrong_password", exc.message, {OLD: [exc.message]}) from None
        raise bad_request(exc.message, {exc.field: [exc.message]}) from None
    except LoginRateLimited as exc:
        raise ApiError(
            429,
            "rate_limited",
            f"too many wrong passwords for {who.user!r}; try again in {exc.seconds} s",
            headers={"Retry-After": str(exc.seconds)},
        ) from exc
    return ok({"user": who.user, "password_changed": True, "other_logins_ended": True})


ROUTES = [
    Route(
        "POST",
        "/me/password",
        change_password,
        "Change my own password (the current one is required); my other logins end, this one "
        "and my access keys stay",
        "reader",
        "auth",
        body={
            "type": "object",
            "required": [OLD, NEW],
            "properties": {
                OLD: {"type": "string"},
                NEW: {"type": "string", "minLength": MIN_PASSWORD_LENGTH},
            },
            "additionalProperties": False,
        },
        response={
            "type": "object",
            "required": ["user", "password_changed"],
            "properties": {
                "user": {"type": "string"},
                "password_changed": {"type": "boolean"},
                "other_logins_ended": {"type": "boolean"},
            },
        },
    ),
]
