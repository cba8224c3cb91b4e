"""What every page shares: who is signed in, role checks, CSRF on posted forms, error pages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session
from yarl import URL

from policy.principal import Principal, Role
from ui.api.auth import _from_cookie  # one definition of "the cookie's user", shared with the API
from ui.api.common import Access, role_allows
from ui.outages import outage_of
from ui.security import Handler, csrf_ok, new_csrf_token

#: where ``next=`` may send a user after login: pages only (no open redirect to other hosts)
PAGES_ROOT = "/_minimo/"

_TITLES = {
    400: "That request did not make sense",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    429: "Too many attempts",
    503: "Temporarily unavailable",
    507: "Storage is full",
}


class PageError(Exception):
    """An error shown as a friendly page with ``message`` (plain text, escaped on render)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


async def csrf_token(request: web.Request) -> str:
    """The token every form of this login carries; minted before login for the login form."""
    session = await get_session(request)
    token = session.get("csrf")
    if not isinstance(token, str) or not token:
        token = session["csrf"] = new_csrf_token()
    return token


async def check_csrf(request: web.Request, form: Mapping[str, Any]) -> None:
    session = await get_session(request)
    sent = form.get("csrf_token")
    if not csrf_ok(session.get("csrf"), sent if isinstance(sent, str) else None):
        raise PageError(
            403,
            "This form was stale or did not come from minimo (CSRF check failed). "
            "Go back, reload the page and try again.",
        )


async def current_user(request: web.Request) -> Principal | None:
    return await _from_cookie(request)


def safe_next(target: str | None) -> str:
    # Only a local page path: "//host" or "/\host" would leave the site.
    if (
        target
        and target.startswith(PAGES_ROOT)
        and not target.startswith("//")
        and "\\" not in target
    ):
        return target
    return PAGES_ROOT


def _back_to(request: web.Request) -> str:
    """Where the login page sends the user once signed in again: where they were going.

    For a form posted after the login ended that is the page the form was on (its Referer,
    sent within the site), never the form's target: that answers POST only, and a GET of it
    after signing in would be a 405 page. The posted values are lost either way.
    """
    if request.method in ("GET", "HEAD"):
        return request.path_qs
    try:
        came_from = URL(request.headers.get("Referer", "")).path_qs
    except ValueError:
        came_from = ""
    return safe_next(came_from)


async def require(request: web.Request, access: Access = "reader") -> Principal:
    """The signed-in user with at least ``access``; else a redirect to login or a 403 page."""
    who = await current_user(request)
    if who is None:
        login = request.app.router["login"].url_for().with_query(next=_back_to(request))
        raise web.HTTPFound(str(login))
    # Set before the role check: a refused user's 403 page still has the header naming them,
    # with Sign out and the pages they may use (not a page that looks signed out).
    request["minimo.page.user"] = who
    if not role_allows(who.role, access):
        raise PageError(
            403,
            f"You are signed in as {who.user}, who has the {who.role.value} role; this page "
            f"needs the {access} role. Ask an admin if you need it.",
        )
    return who


async def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    who = request.get("minimo.page.user")
    base = {
        "me": who,
        "is_admin": who is not None and who.role is Role.ADMIN,
        "csrf_token": await csrf_token(request),
    }
    return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn 4xx errors into pages people can read (redirects and 2xx pass through).

    Mounted inside the login-cookie middleware: the page needs the cookie (who is signed in,
    the CSRF token of the logout button), and a cookie changed before the error is still saved.
    """
    try:
        return await handler(request)
    except PageError as exc:
        status, message, headers = exc.status, exc.message, exc.headers
    except web.HTTPException as exc:
        if exc.status_code < 400 or exc.status_code >= 500:
            raise
        status, headers = exc.status_code, {}
        message = f"There is no page at {request.path}." if status == 404 else (exc.text or "")
        if "Allow" in exc.headers:
            headers["Allow"] = exc.headers["Allow"]
    except Exception as exc:
        # a store down or full is a page saying so (503/507, ui.outages), never a 500
        outage = outage_of(exc)
        if outage is None:
            raise
        status, message, headers = outage.status, outage.message, dict(outage.headers)
        return await _error_page(request, outage.title, message, status, headers)
    title = _TITLES.get(status, "Something went wrong")
    return await _error_page(request, title, message, status, headers)


async def _error_page(
    request: web.Request, title: str, message: str, status: int, headers: Mapping[str, str]
) -> web.Response:
    response = await render(request, "error.html", {"title": title, "message": message}, status)
    response.headers.update(headers)
    return response
