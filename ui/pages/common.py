"""What every page shares: how a page route is declared (:class:`Page`), the one guard that
checks sign-in, role and CSRF before any handler runs (:func:`guard`), rendering, error pages.

Each pages module lists its routes in ``ROUTES`` as the API's modules do; :mod:`ui.pages`
registers each behind :func:`guard`, and tests/ui/test_every_page_route.py reads the roles from
the same lists. A handler never checks sign-in, role or CSRF itself: :func:`page_user` is the
user the guard let in (what remains for the handler is ownership: whose session, whose key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session
from yarl import URL

from policy.principal import Principal, Role
from ui.api.auth import _from_cookie  # one definition of "the cookie's user", shared with the API
from ui.api.common import Access, role_allows
from ui.outages import outage_of
from ui.security import CSRF_HEADER, SAFE_METHODS, Handler, csrf_ok, new_csrf_token

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


_CSRF_FAILED = (
    "This form was stale or did not come from minimo (CSRF check failed). "
    "Go back, reload the page and try again."
)


@dataclass(frozen=True)
class Page:
    """One page route, and what :func:`guard` checks before its handler runs."""

    method: str
    #: relative to /_minimo (aiohttp syntax: {name}, {key:.+})
    path: str
    handler: Handler
    #: who may use it, in the API's words: "public" is anyone, "reader" any signed-in user,
    #: "uploader" and "admin" at least that role
    access: Access
    #: the router's name (``request.app.router[name]``); a path's GET and POST share one
    name: str
    #: where a POST carries the CSRF token: the hidden ``csrf_token`` field of a page's form,
    #: or the X-CSRF-Token header of static/*.js's fetch calls
    csrf: Literal["form", "header"] = "form"
    #: how refusals are answered: "page" (the login page, a friendly error page) or "json"
    #: (``{"error": message}`` with 401/403, for a fetch call that shows the message)
    refusals: Literal["page", "json"] = "page"
    #: what a signed-out user gets instead of the login page that brings them back here
    signed_out: Handler | None = None


#: where the guard leaves the signed-in user for the handler (and the error page's header)
PAGE_USER = "minimo.page.user"


def page_user(request: web.Request) -> Principal:
    """The signed-in user the guard let through (pages with access other than "public")."""
    return request[PAGE_USER]


def guard(page: Page) -> Handler:
    """``page.handler`` behind the checks its line declares, in this order: signed in, the
    role, then for a POST the CSRF token. Nothing reaches a handler past a failed check."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        if page.access != "public":
            who = await _from_cookie(request)
            if who is None:
                if page.signed_out is not None:
                    return await page.signed_out(request)
                if page.refusals == "json":
                    return json_refusal(401, "sign in again")
                login = request.app.router["login"].url_for().with_query(next=_back_to(request))
                raise web.HTTPFound(str(login))
            # Set before the role check: a refused user's 403 page still has the header naming
            # them, with Sign out and the pages they may use (not a page that looks signed out).
            request[PAGE_USER] = who
            if not role_allows(who.role, page.access):
                message = (
                    f"You are signed in as {who.user}, who has the {who.role.value} role; this "
                    f"page needs the {page.access} role. Ask an admin if you need it."
                )
                if page.refusals == "json":
                    return json_refusal(403, message)
                raise PageError(403, message)
        if request.method not in SAFE_METHODS and not await _csrf_sent(request, page):
            if page.refusals == "json":
                return json_refusal(403, f"missing or wrong {CSRF_HEADER} header; reload the page")
            raise PageError(403, _CSRF_FAILED)
        return await page.handler(request)

    guarded.__name__ = page.handler.__name__
    return guarded


async def _csrf_sent(request: web.Request, page: Page) -> bool:
    """Whether the request carries this login's CSRF token where the page expects it."""
    if page.csrf == "header":
        sent = request.headers.get(CSRF_HEADER)
    else:
        field = (await request.post()).get("csrf_token")
        sent = field if isinstance(field, str) else None
    return csrf_ok((await get_session(request)).get("csrf"), sent)


def json_refusal(status: int, message: str) -> web.Response:
    """A refusal as static/*.js reads it (the message is shown to the user)."""
    return web.json_response({"error": message}, status=status)


async def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    who = request.get(PAGE_USER)
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
