"""``/keys``: personal access keys (mine; admins: anyone's). Secrets are shown only at creation."""

from __future__ import annotations

from aiohttp import web

from policy.identity import MAX_KEY_LABEL, IdentityError, check_key_label
from policy.principal import Credential, Principal, Role
from ui.api.common import Route, created, json_body, key_json, ok, principal, services, text_field
from ui.api.errors import ApiError, bad_request, forbidden, not_found

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
    owner, label, read_only = who.user, None, False
    # body_exists, not can_read_body: a SigV4 check has already read (hashed) the body, and
    # can_read_body is False once it is read, which silently dropped {"user": ...}
    if request.body_exists:
        data = await json_body(request)
        owner = text_field(data, "user", required=False) or who.user
        label = text_field(data, "label", required=False)
        read_only = data.get("read_only", False)
        if not isinstance(read_only, bool):
            raise bad_request("read_only must be true or false", {"read_only": ["not a boolean"]})
    if owner != who.user and who.role != Role.ADMIN:
        raise forbidden("only admins may create keys for other users")
    try:
        label = check_key_label(label)
    except IdentityError as exc:
        raise bad_request(str(exc), {"label": [str(exc)]}) from None
    credential = await issue_key(request, who, owner, label, read_only)
    return created(
        {
            "access_key": credential.access_key,
            "secret_key": credential.secret_key,
            "owner": owner,
            "label": label,
            "read_only": read_only_key(credential),
        }
    )


def read_only_key(credential: Credential) -> bool:
    """Whether a just-issued personal key is read-only (its principal acts as a reader)."""
    return credential.principal.role is Role.READER


async def issue_key(
    request: web.Request, who: Principal, owner: str, label: str | None, read_only: bool
) -> Credential:
    """Create and audit a personal key: the one creation behind the API and the keys page."""
    svc = services(request)
    # Whoever acts as a reader (a reader, or a script signing with a read-only key) makes
    # read-only keys only: a read-only key must not mint itself a writing one.
    read_only = read_only or who.role is Role.READER
    try:
        credential = await svc.identity.create_key(owner, label=label, read_only=read_only)
    except IdentityError as exc:
        raise not_found(str(exc)) from None
    await svc.auditor.ok(
        who,
        "key.create",
        f"key:{credential.access_key}",
        owner=owner,
        read_only=read_only_key(credential),
    )
    return credential


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
        "Create a personal access key (admins may name a user); the secret is shown once. "
        "A reader's keys (and a key made with a read-only key) are always read-only",
        "reader",
        "keys",
        status=201,
        body={
            "type": "object",
            "properties": {
                "user": {"type": "string", "description": "admins only"},
                "label": {
                    "type": "string",
                    "maxLength": MAX_KEY_LABEL,
                    # JSON Schema's regex reads \uXXXX escapes: no control characters
                    "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
                    "description": "a name for people, one line",
                },
                "read_only": {"type": "boolean", "description": "the key may only read"},
            },
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
                "label": {"type": ["string", "null"]},
                "read_only": {"type": "boolean"},
            },
        },
    ),
    Route(
        "DELETE",
        "/keys/{access_key}",
        revoke_key,
        "Revoke a key (mine; admins: any)",
        "reader",
        "keys",
        response=KEY_REF,
    ),
]
