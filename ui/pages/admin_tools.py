"""Pages for the policy rules, access keys and the audit log.

The policy and audit pages need the admin role; the keys page is for everyone signed in (their
own keys), and an admin sees everyone's with a user filter. Each handler calls the same service
methods as the JSON API (ui/api/policy.py, keys.py, audit.py) and writes the same audit events,
so a change made on a page is indistinguishable from one made with a script.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from policy.audit import event_json
from policy.identity import IdentityError
from policy.principal import Role
from policy.rules import PolicyError
from policy.timestamps import parse_instant
from ui.api.common import role_allows, services
from ui.pages.common import Page, page_user, render

#: audit events per page; the store pages with an opaque cursor, so only "next" is cheap
AUDIT_PAGE = 50


# -- policy --------------------------------------------------------------------------------------
async def _policy_page(
    request: web.Request, status: int = 200, **context: Any
) -> web.StreamResponse:
    stored = await services(request).policies.stored()
    base = {
        "stored": stored,
        "rules": stored.policy.rules if stored is not None else [],
        "source": stored.source if stored is not None else "",
        "problems": [],
        "saved": None,
    }
    return await render(request, "admin_policy.html", {**base, **context}, status)


async def policy_page(request: web.Request) -> web.StreamResponse:
    return await _policy_page(request)


async def policy_submit(request: web.Request) -> web.StreamResponse:
    who = page_user(request)
    data = await request.post()
    # Browsers submit textarea lines with CRLF; store what the CLI would (LF), so saving the
    # unchanged text does not look like a new version.
    text = str(data.get("toml", "")).replace("\r\n", "\n")
    try:
        # policies.set audits "policy.set" itself, as for the API and the CLI
        saved = await services(request).policies.set(text, who)
    except PolicyError as exc:
        # the entered text goes back into the textarea, to be fixed rather than retyped
        return await _policy_page(request, 400, problems=exc.problems, source=text)
    return await _policy_page(request, saved=saved)


# -- keys ----------------------------------------------------------------------------------------
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


# -- audit ---------------------------------------------------------------------------------------
def _parse_time(name: str, raw: str, problems: list[str]) -> datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        # a time without a zone is read as UTC, the zone the table shows
        return parse_instant(raw)
    except ValueError:
        problems.append(f"{name}: give an ISO 8601 date or date-time, e.g. 2026-01-31T12:00")
        return None


async def audit_page(request: web.Request) -> web.StreamResponse:
    q = request.query
    filters = {name: q.get(name, "").strip() for name in ("since", "until", "user", "action")}
    problems: list[str] = []
    since = _parse_time("since", filters["since"], problems)
    until = _parse_time("until", filters["until"], problems)
    events: list[dict[str, Any]] = []
    next_url = None
    # the cursor only says where to resume: every page link keeps the filters
    kept = {k: v for k, v in filters.items() if v}
    if not problems:
        try:
            page, cursor = await services(request).auditor.events(
                since=since,
                until=until,
                principal=filters["user"] or None,
                action=filters["action"] or None,
                limit=AUDIT_PAGE,
                cursor=q.get("cursor") or None,
                descending=True,
            )
        except ValueError as exc:  # a cursor edited by hand
            problems.append(str(exc))
        else:
            # the API's JSON form: times as ISO strings in UTC, the outcome as its plain value
            events = [event_json(e) for e in page]
            if cursor is not None:
                next_url = str(request.rel_url.with_query({**kept, "cursor": cursor}))
    context = {
        "events": events,
        "filters": filters,
        "problems": problems,
        "next_url": next_url,
        "first_page": not q.get("cursor"),
        "first_url": str(request.rel_url.with_query(kept)),
    }
    return await render(request, "admin_audit.html", context, 400 if problems else 200)


ROUTES = [
    Page("GET", "/admin/policy", policy_page, "admin", "admin_policy"),
    Page("POST", "/admin/policy", policy_submit, "admin", "admin_policy"),
    Page("GET", "/admin/audit", audit_page, "admin", "admin_audit"),
    Page("GET", "/keys", keys_page, "reader", "keys"),
    # readers have no use for keys that may write; the API draws the same line
    Page("POST", "/keys", keys_submit, "uploader", "keys"),
]
