"""The access keys page (twin of ui/api/keys.py): everyone signed in sees their own keys, an
admin everyone's with a user filter; uploaders create and revoke. It calls the same service
methods as the JSON API and writes the same audit events, so a change made on the page is
indistinguishable from one made with a script."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from policy.identity import IdentityError
from policy.principal import Role
from ui.api.common import role_allows, services
from ui.pages.common import Page, page_user, render


async def _keys_page(request: web.Request, status: int = 200, **context: Any) -> web.StreamResponse:
    who = page_user(request)
    is_admin = who.role is Role.ADMIN
    # Only an admin may choose whose keys to see; anyone else sees their own, whatever the URL.
    wanted = (request.query.get("user") or None) if is_admin else who.user
    svc = services(request)
    base = {
        "keys": await svc.identity.list_keys(wanted),
        "user_filter": wanted or "",
        "users": await svc.identity.list_users() if is_admin else [],
        "can_write": role_allows(who.role, "uploader"),
        "problem": None,
        "created": None,
    }
    return await render(request, "keys.html", {**base, **context}, status)


async def keys_page(request: web.Request) -> web.StreamResponse:
    return await _keys_page(request)


async def keys_submit(request: web.Request) -> web.StreamResponse:
    who = page_user(request)
    data = await request.post()
    svc = services(request)
    action = data.get("action")
    try:
        if action == "create":
            owner = str(data.get("user", "")).strip() or who.user
            if owner != who.user and who.role is not Role.ADMIN:
                raise IdentityError("only admins may create keys for other users")
            credential = await svc.identity.create_key(owner)
            await svc.auditor.ok(who, "key.create", f"key:{credential.access_key}", owner=owner)
            # the secret is shown on this answer only (the store keeps no way to show it again)
            return await _keys_page(
                request,
                created={
                    "owner": owner,
                    "access_key": credential.access_key,
                    "secret_key": credential.secret_key,
                },
            )
        if action != "revoke":
            raise IdentityError("unknown action")
        access_key = str(data.get("access_key", ""))
        record = await svc.store.get_key(access_key)
        # someone else's key answers like an unknown one, as in the API
        if record is None or (who.role is not Role.ADMIN and record.owner != who.user):
            raise IdentityError(f"no access key {access_key} of yours")
        if record.session_id is not None:
            raise IdentityError(
                f"{access_key} is the key of session {record.session_id}: close the session"
            )
        record = await svc.identity.revoke_key(access_key)
        await svc.auditor.ok(who, "key.revoke", f"key:{access_key}", owner=record.owner)
    except IdentityError as exc:
        return await _keys_page(request, 400, problem=str(exc))
    # after a revoke, a reload must not post again: back to the list (keeping the filter)
    target = request.app.router["keys"].url_for()
    if request.query.get("user"):
        target = target.with_query(user=request.query["user"])
    raise web.HTTPSeeOther(str(target))


ROUTES = [
    Page("GET", "/keys", keys_page, "reader", "keys"),
    # readers have no use for keys that may write; the API draws the same line
    Page("POST", "/keys", keys_submit, "uploader", "keys"),
]
