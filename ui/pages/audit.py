"""The admin's audit log page (twin of ui/api/audit.py): events newest first, filtered by time,
user, action (chosen from the actions the log holds) and "refused only", paged with the store's
cursor."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiohttp import web

from policy.audit import event_json
from policy.sessions import is_session_id, title_of
from policy.timestamps import parse_instant
from ui.api.common import services
from ui.pages.common import Page, render

#: audit events per page; the store pages with an opaque cursor, so only "next" is cheap
AUDIT_PAGE = 50


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


SESSION_TARGET = "session:"


async def _session_titles(request: web.Request, events: list[dict[str, Any]]) -> dict[str, str]:
    """The title of each session the events name as their target (``session:ID``), by id:
    one look-up per distinct session on the page."""
    ids = {e["target"].removeprefix(SESSION_TARGET) for e in events}
    ids = {i for i in ids if is_session_id(i)}
    found = await asyncio.gather(*(services(request).sessions.get(i) for i in ids))
    return {s.id: title_of(s) for s in found if s is not None}


async def audit_page(request: web.Request) -> web.StreamResponse:
    q = request.query
    filters = {name: q.get(name, "").strip() for name in ("since", "until", "user", "action")}
    # "refused only": the outcome the enforcer and the admin services give a refusal
    refused_only = q.get("outcome") == "refused"
    problems: list[str] = []
    since = _parse_time("since", filters["since"], problems)
    until = _parse_time("until", filters["until"], problems)
    events: list[dict[str, Any]] = []
    titles: dict[str, str] = {}
    next_url = None
    # the cursor only says where to resume: every page link keeps the filters
    kept = {k: v for k, v in filters.items() if v}
    if refused_only:
        kept["outcome"] = "refused"
    auditor = services(request).auditor
    actions = await auditor.actions()
    if filters["action"] and filters["action"] not in actions:
        actions.append(filters["action"])  # asked for by a link: keep it chosen (it matches none)
    if not problems:
        try:
            page, cursor = await auditor.events(
                since=since,
                until=until,
                principal=filters["user"] or None,
                action=filters["action"] or None,
                outcome="refused" if refused_only else None,
                limit=AUDIT_PAGE,
                cursor=q.get("cursor") or None,
                descending=True,
            )
        except ValueError as exc:  # a cursor edited by hand
            problems.append(str(exc))
        else:
            # the API's JSON form: times as ISO strings in UTC, the outcome as its plain value
            events = [event_json(e) for e in page]
            titles = await _session_titles(request, events)
            if cursor is not None:
                next_url = str(request.rel_url.with_query({**kept, "cursor": cursor}))
    context = {
        "events": events,
        "titles": titles if not problems else {},
        "filters": filters,
        "refused_only": refused_only,
        "actions": actions,
        "problems": problems,
        "next_url": next_url,
        "first_page": not q.get("cursor"),
        "first_url": str(request.rel_url.with_query(kept)),
    }
    return await render(request, "admin_audit.html", context, 400 if problems else 200)


ROUTES = [Page("GET", "/admin/audit", audit_page, "admin", "admin_audit")]
