"""Server-rendered pages under ``/_minimo/`` (aiohttp-jinja2, autoescaped).

Each pages module lists its routes in ``ROUTES`` (:class:`ui.pages.common.Page`: method, path,
handler, who may use it, name); :func:`setup_pages` registers them all behind the one guard
that checks sign-in, role and CSRF (:func:`ui.pages.common.guard`).

The pages live in a sub-application mounted at ``/_minimo`` *after* the API and health routes,
so those keep their paths and everything else under the prefix is a page (or a friendly 404).
The sub-app shares the API's per-process state (services, login rate limiter), so a login
refused five times on the page counts against the API too, and the same encrypted login cookie
(ui.security) authenticates both.

Security: Content-Security-Policy allows scripts and styles from ``/_minimo/static/`` only (no
inline code), every POST must carry the session's CSRF token in a hidden ``csrf_token`` field
(static/*.js's calls: the X-CSRF-Token header), and templates escape everything (autoescape on
for every template, whatever its name).
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from policy.forms import FIELD_TYPES
from policy.sessions import session_status, title_of
from ui.api.common import API_PREFIX, API_STATE, ApiState
from ui.pages import (
    account,
    admin,
    audit,
    auth,
    browse,
    forms,
    home,
    keys,
    metrics,
    policy,
    sessions,
    several,
    upload,
    users,
)
from ui.pages.common import Page, error_pages, guard
from ui.pages.fields import html_pattern
from ui.pages.sizes import human_size
from ui.security import login_cookie_middleware

UI_DIR = Path(__file__).resolve().parent.parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def all_pages() -> list[Page]:
    """Every page route, in the order the router tries them."""
    pages: list[Page] = []
    # several before sessions: /sessions/{id} would take "several" and "uploads" for ids
    modules = (
        home,
        auth,
        account,
        several,
        sessions,
        upload,
        browse,
        admin,
        forms,
        users,
        policy,
        keys,
        audit,
        metrics,
    )
    for module in modules:
        pages.extend(module.ROUTES)
    return pages


def _api_state(app: web.Application) -> ApiState:
    """The API sub-app's state, so pages and API share services and the login limiter."""
    for resource in app.router.resources():
        info = resource.get_info()
        if info.get("prefix") == API_PREFIX and isinstance(info.get("app"), web.Application):
            return info["app"][API_STATE]
    # The API is not mounted (never in the gateway): pages still work with their own state.
    return ApiState()


async def _harden(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # Pages show secrets (a new session key) and per-user data: never cache them.
    if not request.path.startswith("/_minimo/static/"):
        response.headers.setdefault("Cache-Control", "no-store")


def setup_pages(app: web.Application) -> None:
    """Mount the pages on the gateway app (call after setup_api, before the S3 catch-all)."""
    pages = web.Application(middlewares=[login_cookie_middleware(app), error_pages])
    pages[API_STATE] = _api_state(app)
    env = aiohttp_jinja2.setup(
        pages,
        loader=jinja2.FileSystemLoader(str(UI_DIR / "templates")),
        autoescape=True,  # every template, not only *.html: nothing reaches a page unescaped
        undefined=jinja2.StrictUndefined,
    )
    env.globals["static"] = lambda name: f"/_minimo/static/{name}"
    env.globals["html_pattern"] = html_pattern
    env.globals["field_type_names"] = FIELD_TYPES  # the forms page lists them
    # "expired" is derived (an open session past its expiry): one rule for every page
    env.globals["session_status"] = session_status
    # what people call a session (shown wherever its id used to be)
    env.globals["title_of"] = title_of
    env.filters["human_size"] = human_size  # the exact count goes in a title beside it
    pages.on_response_prepare.append(_harden)
    pages.router.add_static("/static/", UI_DIR / "static", name="static")
    for page in all_pages():
        # a GET and a POST of one path share the name (one resource); add_get answers HEAD too
        if page.method == "GET":
            pages.router.add_get(page.path, guard(page), name=page.name)
        else:
            pages.router.add_route(page.method, page.path, guard(page), name=page.name)
    # "/_minimo" itself (what people type) would otherwise be a 404: send it to the home page.
    # Registered before the sub-app, which would answer it first.
    app.router.add_get("/_minimo", _to_home)
    app.add_subapp("/_minimo", pages)


async def _to_home(request: web.Request) -> web.StreamResponse:
    home = web.HTTPFound("/_minimo/")
    # This route lives on the gateway app, outside the pages' on_response_prepare: the same
    # headers as every page, by hand.
    await _harden(request, home)
    raise home
