"""The JSON API under ``/_minimo/api/v1`` (a sub-application of the gateway app).

A sub-app keeps the API's middlewares (JSON errors, the login cookie) off the S3 hot path, and
owns every path under its prefix, so an unknown API path answers a JSON 404 instead of falling
through to S3. The routes come from the resource modules' ``ROUTES`` lists; :mod:`.openapi`
describes the same list.
"""

from __future__ import annotations

from aiohttp import web

from ui.api import (
    account,
    audit,
    auth,
    browse,
    forms,
    keys,
    objects,
    policy,
    rocrate,
    sessions,
    users,
)
from ui.api.auth import guard
from ui.api.common import API_PREFIX, API_STATE, ApiState, Route, router_path
from ui.api.errors import error_middleware
from ui.api.openapi import openapi_route
from ui.security import login_cookie_middleware


def all_routes() -> list[Route]:
    routes: list[Route] = []
    for module in (
        auth,
        account,
        forms,
        policy,
        sessions,
        rocrate,
        objects,
        browse,
        users,
        keys,
        audit,
    ):
        routes.extend(module.ROUTES)
    routes.append(openapi_route(routes))
    return routes


async def _harden(request: web.Request, response: web.StreamResponse) -> None:
    # JSON is never a page: forbid rendering, framing and MIME sniffing of API answers.
    response.headers.setdefault(
        "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


def setup_api(app: web.Application) -> None:
    # Errors are turned into JSON inside the session middleware too, so a session changed by a
    # refused request (an invalidated login) is still saved; the outer one catches the rest.
    api = web.Application(
        middlewares=[error_middleware, login_cookie_middleware(app), error_middleware]
    )
    api[API_STATE] = ApiState()
    api.on_response_prepare.append(_harden)
    routes = all_routes()
    for route in routes:
        api.router.add_route(route.method, router_path(route, routes), guard(route))
    app.add_subapp(API_PREFIX, api)
