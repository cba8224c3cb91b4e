"""The start page: the user's open sessions (title, scope, expiry, what was written) and the
latest ones (no JSON twin: the API's ``GET /sessions?owner=ME&state=open`` and
``GET /sessions/{id}`` answer the same questions)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from gateway.usecases.appkeys import CONFIG
from policy.store.base import SessionRecord
from ui.api.common import services
from ui.pages.common import Page, page_user, render
from ui.pages.sessions import ExpiryFacts, expiry_facts

#: how many of the user's open sessions the home page lists (soonest to expire first)
MY_SESSIONS = 20


@dataclass(frozen=True)
class MySession:
    """One of my open sessions as the home page lists it."""

    session: SessionRecord
    objects: int
    size: int
    expiry: ExpiryFacts | None


async def home(request: web.Request) -> web.StreamResponse:
    who = page_user(request)
    sessions = services(request).sessions
    now = datetime.now(UTC)
    warning = request.config_dict[CONFIG].expiry_warning
    mine = (await sessions.search(owner=who.user, state="open", limit=MY_SESSIONS)).sessions
    usage = await asyncio.gather(*(sessions.usage(s.id) for s in mine))
    rows = sorted(
        (
            MySession(s, count, size, expiry_facts(s, now, warning))
            for s, (count, size) in zip(mine, usage, strict=True)
        ),
        key=lambda row: row.session.expires,
    )
    recent = await sessions.search(limit=10)
    return await render(
        request,
        "home.html",
        {
            "mine": rows,
            "expiring": sum(1 for row in rows if row.expiry and row.expiry.soon),
            "recent": recent.sessions,
            "now": now,
        },
    )


ROUTES = [Page("GET", "/", home, "reader", "home")]
