"""The JSON API under ``/_minimo/api/v1`` (a sub-application of the gateway app).

A sub-app keeps the API's middlewares (JSON errors, the login cookie) off the S3 hot path, and
owns every path under its prefix, so an unknown API path answers a JSON 404 instead of falling
through to S3. The routes come from the resource modules' ``ROUTES`` lists; :mod:`.openapi`
describes the same list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp_session import session_middleware

from gateway.usecases.appkeys import CONFIG
from ui.api import (
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
from ui.api.errors import Handler, error_middleware
from ui.api.openapi import openapi_route
from ui.security import cookie_storage


def all_routes() -> list[Route]:
    routes: list[Route] = []
    for module in (auth, forms, policy, sessions, rocrate, objects, browse, users, keys, audit):
        routes.extend(module.ROUTES)
    routes.append(openapi_route(routes))
    return routes


Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def _lazy_session_middleware(app: web.Application) -> Middleware:
    """aiohttp-session's middleware, its storage built at the first API request.

    The cookie key comes from the data dir's secret key file; building it when the app is
    created would make every app factory (tests included) read or create that file.
    """
    middleware: Middleware | None = None

    @web.middleware
    async def lazy(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal middleware
        if middleware is None:
            config = app[CONFIG]
            storage = cookie_storage(config.secret_key_path, secure=config.tls)
            middleware = session_middleware(storage)
        return await middleware(request, handler)

    return lazy


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
        middlewares=[error_middleware, _lazy_session_middleware(app), error_middleware]
    )
    api[API_STATE] = ApiState()
    api.on_response_prepare.append(_harden)
    routes = all_routes()
    for route in routes:
        api.router.add_route(route.method, router_path(route, routes), guard(route))
    app.add_subapp(API_PREFIX, api)
