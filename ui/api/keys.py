"""``/keys``: personal access keys (mine; admins: anyone's). Secrets are shown only at creation."""

from __future__ import annotations

from aiohttp import web

from policy.identity import IdentityError
from policy.principal import Role
from ui.api.common import Route, created, json_body, key_json, ok, principal, services, text_field
from ui.api.errors import ApiError, forbidden, not_found

KEY_REF = {"$ref": "#/components/schemas/Key"}


async def list_keys(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    wanted = request.query.get("user") or None
    if who.role != Role.ADMIN:
        if wanted not in (None, who.user):
            raise forbidden("only admins may list other users' keys")
        wanted = who.user
    keys = await services(request).identity.list_keys(wanted)
    return ok({"keys": [key_json(k) for k in keys]})


async def create_key(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    owner = who.user
    # body_exists, not can_read_body: a SigV4 check has already read (hashed) the body, and
    # can_read_body is False once it is read, which silently dropped {"user": ...}
    if request.body_exists:
        data = await json_body(request)
        owner = text_field(data, "user", required=False) or who.user
    if owner != who.user and who.role != Role.ADMIN:
        raise forbidden("only admins may create keys for other users")
    svc = services(request)
    try:
        credential = await svc.identity.create_key(owner)
    except IdentityError as exc:
        raise not_found(str(exc)) from None
    await svc.auditor.ok(who, "key.create", f"key:{credential.access_key}", owner=owner)
    return created(
        {
            "access_key": credential.access_key,
            "secret_key": credential.secret_key,
            "owner": owner,
        }
    )


async def revoke_key(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    access_key = request.match_info["access_key"]
    svc = services(request)
    record = await svc.store.get_key(access_key)
    # Someone else's key answers like an unknown one: ids are not secret, but nothing is gained
    # by confirming them to non-admins.
    if record is None or (who.role != Role.ADMIN and record.owner != who.user):
        raise not_found(f"no access key {access_key} of yours")
    if record.session_id is not None:
        raise ApiError(
            409,
            "conflict",
            f"{access_key} is the key of session {record.session_id}: close the session instead",
        )
    try:
        record = await svc.identity.revoke_key(access_key)
    except IdentityError as exc:
        raise not_found(str(exc)) from None
    await svc.auditor.ok(who, "key.revoke", f"key:{access_key}", owner=record.owner)
    return ok(key_json(record))


ROUTES = [
    Route(
        "GET",
        "/keys",
        list_keys,
        "List access keys (mine; admins: all, or ?user=)",
        "reader",
        "keys",
        query=(("user", {"type": "string"}, "admins only: one user's keys"),),
        response={"type": "object", "properties": {"keys": {"type": "array", "items": KEY_REF}}},
    ),
    Route(
        "POST",
        "/keys",
        create_key,
        "Create a personal access key (admins may name a user); the secret is shown once",
        "uploader",
        "keys",
        status=201,
        body={
            "type": "object",
            "properties": {"user": {"type": "string", "description": "admins only"}},
            "additionalProperties": False,
        },
        body_optional=True,
        response={
            "type": "object",
            "required": ["access_key", "secret_key", "owner"],
            "properties": {
                "access_key": {"type": "string"},
                "secret_key": {"type": "string"},
                "owner": {"type": "string"},
            },
        },
    ),
    Route(
        "DELETE",
        "/keys/{access_key}",
        revoke_key,
        "Revoke a key (mine; admins: any)",
        "uploader",
        "keys",
        response=KEY_REF,
    ),
]
