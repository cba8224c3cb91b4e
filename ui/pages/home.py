"""The start page: the user's open sessions and the latest ones (no JSON twin: the API's
``GET /sessions`` answers both questions)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from ui.api.common import services
from ui.pages.common import Page, page_user, render


async def home(request: web.Request) -> web.StreamResponse:
    who = page_user(request)
    sessions = services(request).sessions
    mine = await sessions.search(owner=who.user, state="open", limit=20)
    recent = await sessions.search(limit=10)
    return await render(
        request,
        "home.html",
        {"mine": mine.sessions, "recent": recent.sessions, "now": datetime.now(UTC)},
    )


ROUTES = [Page("GET", "/", home, "reader", "home")]
