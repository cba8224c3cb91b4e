"""The admin's start page (every form, policy rule and user at a glance) and the bare
``/_minimo/admin`` that leads there. No JSON twin: the API asks /forms, /policy and /users."""

from __future__ import annotations

from aiohttp import web

from ui.api.common import services
from ui.pages.common import Page, render


async def admin_index(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    policy = await svc.policies.current()
    return await render(
        request,
        "admin.html",
        {
            "forms": await svc.forms.list(),
            "rules": policy.rules,
            "users": await svc.identity.list_users(),
        },
    )


async def _to_admin(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/_minimo/admin/")


ROUTES = [
    Page("GET", "/admin/", admin_index, "admin", "admin"),
    Page("GET", "/admin", _to_admin, "public", "admin_without_slash"),
]
