"""The access keys page (twin of ui/api/keys.py): everyone signed in sees, creates and revokes
their own keys, an admin everyone's with a user filter. A reader's keys are read-only; others may
ask for a read-only one. It calls the same service methods as the JSON API and writes the same
audit events, so a change made on the page is indistinguishable from one made with a script."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.usecases.appkeys import CONFIG
from policy.identity import IdentityError, check_key_label
from policy.principal import Role
from ui.api.common import services
from ui.api.errors import ApiError
from ui.api.keys import issue_key, read_only_key
from ui.pages.common import Page, page_user, render
from ui.pages.snippets import personal_key_snippets


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
        # a reader has no choice: every key they make is read-only
        "may_choose_read_only": who.role is not Role.READER,
        "problem": None,
        "label_problem": None,
        "label_value": "",
        "created": None,
    }
    return await render(request, "keys.html", {**base, **context}, status)


async def keys_page(request: web.Request) -> web.StreamResponse:
    return await _keys_page(request)


def s3_endpoint(request: web.Request) -> str:
    """Where clients send S3 requests: this page's origin, unless the UI has a host name of its
    own (--ui-url), where objects are never read."""
    config = request.config_dict[CONFIG]
    return config.base_url if config.ui_url else str(request.url.origin())


async def _create(request: web.Request, data: Any) -> web.StreamResponse:
    who = page_user(request)
    owner = str(data.get("user", "")).strip() or who.user
    if owner != who.user and who.role is not Role.ADMIN:
        raise IdentityError("only admins may create keys for other users")
    raw_label = str(data.get("label", ""))
    try:
        label = check_key_label(raw_label)
    except IdentityError as exc:
        return await _keys_page(request, 400, label_problem=str(exc), label_value=raw_label)
    try:
        credential = await issue_key(request, who, owner, label, data.get("read_only") == "on")
    except ApiError as exc:
        raise IdentityError(exc.message) from None
    # the secret is shown on this answer only (the store keeps no way to show it again)
    region = request.config_dict[CONFIG].region
    return await _keys_page(
        request,
        created={
            "owner": owner,
            "label": label,
            "read_only": read_only_key(credential),
            "access_key": credential.access_key,
            "secret_key": credential.secret_key,
            "snippets": personal_key_snippets(
                s3_endpoint(request), region, credential.access_key, credential.secret_key
            ),
        },
    )


async def keys_submit(request: web.Request) -> web.StreamResponse:
    who = page_user(request)
    data = await request.post()
    svc = services(request)
    action = data.get("action")
    try:
        if action == "create":
            return await _create(request, data)
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
    # every role manages its own keys; a reader's are read-only (policy.identity)
    Page("POST", "/keys", keys_submit, "reader", "keys"),
]
