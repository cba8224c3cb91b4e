"""Admin pages: forms (create, new version, import of the old minimo text format) and users.

Every handler needs the admin role (an uploader gets the friendly 403 page) and every POST the
CSRF token. Definitions are edited as JSON, the same document ``minimo form create --file``
reads, so what an admin learns on the page works in scripts too.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from policy.catalog import CatalogError
from policy.forms import FormDefinitionError
from policy.identity import IdentityError
from ui.api.common import services
from ui.pages import admin_tools
from ui.pages.common import check_csrf, render, require

ROLES = ("reader", "uploader", "admin")
EXAMPLE_FORM = {
    "name": "my-form",
    "title": "My form",
    "description": "What these data are",
    "fields": [
        {"name": "operator", "label": "Operator", "type": "text", "required": True},
        {"name": "instrument", "type": "choice", "choices": ["a", "b"], "required": True},
    ],
}


async def admin_index(request: web.Request) -> web.StreamResponse:
    await require(request, "admin")
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


async def _forms_page(
    request: web.Request, status: int = 200, **context: Any
) -> web.StreamResponse:
    svc = services(request)
    base = {
        "forms": await svc.forms.list(),
        "definition": json.dumps(EXAMPLE_FORM, indent=2),
        "import_name": "",
        "import_text": "",
        "problems": [],
        "saved": None,
    }
    return await render(request, "admin_forms.html", {**base, **context}, status)


async def forms_page(request: web.Request) -> web.StreamResponse:
    await require(request, "admin")
    edit = request.query.get("edit")
    context: dict[str, Any] = {}
    if edit:
        form = await services(request).forms.find(edit)
        if form is not None:
            definition = form.to_dict()
            definition.pop("version", None)
            context["definition"] = json.dumps(definition, indent=2, ensure_ascii=False)
    return await _forms_page(request, **context)


async def forms_submit(request: web.Request) -> web.StreamResponse:
    who = await require(request, "admin")
    data = await request.post()
    await check_csrf(request, data)
    forms = services(request).forms
    if data.get("action") == "import":
        name = str(data.get("import_name", "")).strip()
        text = str(data.get("import_text", ""))
        try:
            form = await forms.import_text(name, text, who)
        except FormDefinitionError as exc:
            return await _forms_page(
                request, 400, problems=exc.problems, import_name=name, import_text=text
            )
        except CatalogError as exc:
            return await _forms_page(
                request, 400, problems=[str(exc)], import_name=name, import_text=text
            )
        return await _forms_page(request, saved=form)
    text = str(data.get("definition", ""))
    try:
        definition = json.loads(text)
    except ValueError as exc:
        return await _forms_page(request, 400, problems=[f"not JSON: {exc}"], definition=text)
    if not isinstance(definition, dict):
        return await _forms_page(request, 400, problems=["give a JSON object"], definition=text)
    try:
        # a known name makes a new version: forms are never edited in place
        name = definition.get("name")
        exists = isinstance(name, str) and await forms.exists(name)
        form = await (forms.update if exists else forms.create)(definition, who)
    except FormDefinitionError as exc:
        return await _forms_page(request, 400, problems=exc.problems, definition=text)
    except CatalogError as exc:
        return await _forms_page(request, 400, problems=[str(exc)], definition=text)
    return await _forms_page(request, saved=form, definition=text)


async def _users_page(
    request: web.Request, status: int = 200, **context: Any
) -> web.StreamResponse:
    base = {
        "users": await services(request).identity.list_users(),
        "roles": ROLES,
        "problem": None,
        "created": None,
        "name": "",
    }
    return await render(request, "admin_users.html", {**base, **context}, status)


async def users_page(request: web.Request) -> web.StreamResponse:
    await require(request, "admin")
    return await _users_page(request)


async def users_submit(request: web.Request) -> web.StreamResponse:
    who = await require(request, "admin")
    data = await request.post()
    await check_csrf(request, data)
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
        else:
            raise IdentityError("unknown action")
    except (IdentityError, ValueError) as exc:
        return await _users_page(request, 400, problem=str(exc), name=name)
    raise web.HTTPSeeOther(str(request.app.router["admin_users"].url_for()))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/", admin_index, name="admin")
    r.add_get("/admin/forms", forms_page, name="admin_forms")
    r.add_post("/admin/forms", forms_submit)
    r.add_get("/admin/users", users_page, name="admin_users")
    r.add_post("/admin/users", users_submit)
    # policy rules, access keys and the audit log live in their own module
    admin_tools.add_routes(app)
