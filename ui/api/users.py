"""``/users`` (admins only): list, add, change role or password, delete.

:class:`~policy.identity.IdentityService` does not audit (the CLI's operator is the OS user), so
the API records every change here, under the admin who made it.
"""

from __future__ import annotations

from aiohttp import web

from policy.identity import IdentityError
from ui.api.common import (
    Route,
    created,
    json_body,
    ok,
    principal,
    services,
    text_field,
    user_json,
)
from ui.api.errors import ApiError, bad_request, not_found
from ui.api.openapi import PASSWORD_SCHEMA, USER_NAME_SCHEMA

USER_REF = {"$ref": "#/components/schemas/User"}


def _identity_error(exc: IdentityError) -> ApiError:
    message = str(exc)
    if message.startswith("no user"):
        return not_found(message)
    if "already exists" in message:
        return ApiError(409, "conflict", message)
    field = "password" if "password" in message else "role" if "role" in message else "name"
    return bad_request(message, {field: [message]})


async def list_users(request: web.Request) -> web.StreamResponse:
    users = await services(request).identity.list_users()
    return ok({"users": [user_json(u) for u in users]})


async def add_user(request: web.Request) -> web.StreamResponse:
    data = await json_body(request)
    name = text_field(data, "name") or ""
    role = text_field(data, "role") or ""
    password = text_field(data, "password", required=False)
    svc = services(request)
    try:
        user, actual = await svc.identity.add_user(name, role, password)
    except IdentityError as exc:
        raise _identity_error(exc) from None
    await svc.auditor.ok(principal(request), "user.add", f"user:{name}", role=user.role.value)
    body = {"user": user_json(user)}
    if password is None:
        body["password"] = actual  # generated: shown this once
    return created(body)


async def update_user(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    data = await json_body(request)
    role = text_field(data, "role", required=False)
    password = text_field(data, "password", required=False)
    if role is None and password is None:
        raise bad_request("give role and/or password", {"role": ["role or password required"]})
    svc = services(request)
    who = principal(request)
    try:
        user = await svc.identity.get_user(name)
        if user is None or not user.active:
            raise IdentityError(f"no user {name!r}")
        if role is not None and name == who.user and role != user.role.value:
            # an admin demoting themselves could leave nobody able to administer
            raise ApiError(
                400,
                "bad_request",
                "you cannot change your own role; ask another admin",
                {"role": ["cannot change your own role"]},
            )
        if role is not None:
            user = await svc.identity.set_role(name, role)
            svc.identity.forget()  # cached credentials carry the old role
            await svc.auditor.ok(who, "user.role", f"user:{name}", role=user.role.value)
        if password is not None:
            user = await svc.identity.set_password(name, password)
            await svc.auditor.ok(who, "user.password", f"user:{name}")
    except IdentityError as exc:
        raise _identity_error(exc) from None
    return ok({"user": user_json(user)})


async def delete_user(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    svc = services(request)
    who = principal(request)
    if name == who.user:
        raise bad_request("you cannot delete yourself; ask another admin")
    try:
        current = await svc.identity.get_user(name)
        if current is None or not current.active:
            raise IdentityError(f"no user {name!r}")
        user = await svc.identity.delete_user(name)
    except IdentityError as exc:
        raise _identity_error(exc) from None
    await svc.auditor.ok(who, "user.delete", f"user:{name}")
    return ok({"user": user_json(user)})


_ONE_USER = {"type": "object", "properties": {"user": USER_REF}}

ROUTES = [
    Route(
        "GET",
        "/users",
        list_users,
        "List users (deleted ones included)",
        "admin",
        "users",
        response={"type": "object", "properties": {"users": {"type": "array", "items": USER_REF}}},
    ),
    Route(
        "POST",
        "/users",
        add_user,
        "Add a user (a password is generated when none is given)",
        "admin",
        "users",
        status=201,
        body={
            "type": "object",
            "required": ["name", "role"],
            "properties": {
                "name": USER_NAME_SCHEMA,
                "role": {"$ref": "#/components/schemas/Role"},
                "password": PASSWORD_SCHEMA,
            },
            "additionalProperties": False,
        },
        response={
            "type": "object",
            "properties": {
                "user": USER_REF,
                "password": {"type": "string", "description": "only when generated"},
            },
        },
    ),
    Route(
        "PATCH",
        "/users/{name}",
        update_user,
        "Change a user's role and/or password",
        "admin",
        "users",
        body={
            "type": "object",
            "properties": {
                "role": {"$ref": "#/components/schemas/Role"},
                "password": PASSWORD_SCHEMA,
            },
            # one of them at least: an empty change is refused
            "anyOf": [{"required": ["role"]}, {"required": ["password"]}],
            "additionalProperties": False,
        },
        response=_ONE_USER,
    ),
    Route(
        "DELETE",
        "/users/{name}",
        delete_user,
        "Delete a user (their keys stop working)",
        "admin",
        "users",
        response=_ONE_USER,
    ),
]
