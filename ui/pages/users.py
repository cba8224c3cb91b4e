"""The admin's user page (twin of ui/api/users.py): add a user, change a role, reset a
password, delete; a generated password is shown on its answer only."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from policy.identity import IdentityError
from policy.passwords import generate_password
from ui.api.common import services
from ui.pages.common import Page, page_user, render

ROLES = ("reader", "uploader", "admin")


async def _users_page(
    request: web.Request, status: int = 200, **context: Any
) -> web.StreamResponse:
    base = {
        "users": await services(request).identity.list_users(),
        "roles": ROLES,
        "problem": None,
        "created": None,
        "reset": None,
        "name": "",
    }
    return await render(request, "admin_users.html", {**base, **context}, status)


async def users_page(request: web.Request) -> web.StreamResponse:
    return await _users_page(request)


async def users_submit(request: web.Request) -> web.StreamResponse:
    who = page_user(request)
    data = await request.post()
    svc = services(request)
    name = str(data.get("name", "")).strip()
    action = data.get("action")
    try:
        if action == "add":
            user, password = await svc.identity.add_user(name, str(data.get("role", "")))
            await svc.auditor.ok(who, "user.add", f"user:{name}", role=user.role.value)
            # the generated password is shown on this answer only (it is stored hashed)
            return await _users_page(request, created={"name": name, "password": password})
        if name == who.user:
            raise IdentityError("change your own account with the CLI or another admin")
        if action == "role":
            user = await svc.identity.set_role(name, str(data.get("role", "")))
            await svc.auditor.ok(who, "user.role", f"user:{name}", role=user.role.value)
        elif action == "delete":
            await svc.identity.delete_user(name)
            await svc.auditor.ok(who, "user.delete", f"user:{name}")
        elif action == "reset":
            # a new generated password, shown on this answer only; the user's logins end with
            # the old password (the login cookie carries its fingerprint)
            password = generate_password()
            await svc.identity.set_password(name, password)
            await svc.auditor.ok(who, "user.password", f"user:{name}")
            return await _users_page(request, reset={"name": name, "password": password})
        else:
            raise IdentityError("unknown action")
    except (IdentityError, ValueError) as exc:
        return await _users_page(request, 400, problem=str(exc), name=name)
    raise web.HTTPSeeOther(str(request.app.router["admin_users"].url_for()))


ROUTES = [
    Page("GET", "/admin/users", users_page, "admin", "admin_users"),
    Page("POST", "/admin/users", users_submit, "admin", "admin_users"),
]
