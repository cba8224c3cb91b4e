"""The metadata browser: sessions filtered, sorted and paged on the server, with export links."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from policy.sessions import SessionError, parse_where
from policy.store.base import FieldFilter, SessionPage, SessionQuery
from ui.api.common import services
from ui.pages.common import render, require

PAGE_SIZE = 25
_STATES = ("open", "closed", "expired")


async def browse_sessions(request: web.Request) -> web.StreamResponse:
    await require(request)
    q = request.query
    svc = services(request)
    names = ("form", "owner", "bucket", "state", "created_from", "created_to", "where", "sort")
    filters = {name: q.get(name, "").strip() for name in names}
    if filters["state"] not in ("", *_STATES):
        filters["state"] = ""
    try:
        page_no = max(1, int(q.get("page", "1")))
    except ValueError:
        page_no = 1
    forms = await svc.forms.list()
    form = next((f for f in forms if f.name == filters["form"]), None)
    problems: list[str] = []
    if filters["form"] and form is None:
        problems.append(f"There is no form {filters['form']}.")
    fields: tuple[FieldFilter, ...] = ()
    if filters["where"]:
        try:
            fields = (parse_where(filters["where"], form),)
        except SessionError as exc:
            problems.append(str(exc))
    sort = filters["sort"] or "-created"
    sort_field = sort.lstrip("-")
    if sort_field != "created" and (form is None or form.field(sort_field) is None):
        problems.append(f"Choose a form to sort by its field {sort_field!r}.")
        sort, sort_field = "-created", "created"
    result = SessionPage([], 0)
    if not problems:
        try:
            query = SessionQuery(
                form_name=filters["form"] or None,
                owner=filters["owner"] or None,
                bucket=filters["bucket"] or None,
                state=filters["state"] or None,  # type: ignore[arg-type]  # checked above
                created_from=_day(filters["created_from"], end=False),
                created_to=_day(filters["created_to"], end=True),
                fields=fields,
                sort_field=None if sort_field == "created" else sort_field,
                descending=sort.startswith("-"),
                limit=PAGE_SIZE,
                offset=(page_no - 1) * PAGE_SIZE,
            )
            result = await svc.sessions.search(query)
        except (ValueError, SessionError) as exc:
            problems.append(str(exc))
    pages = max(1, math.ceil(result.total / PAGE_SIZE))
    active = {k: v for k, v in filters.items() if v}

    def page_url(n: int) -> str:
        return "?" + urlencode({**active, "page": n})

    def sort_url(name: str) -> str:
        # a second click on the sorted column flips the order; a new column starts descending
        flipped = name if sort == f"-{name}" else f"-{name}"
        return "?" + urlencode({**active, "sort": flipped})

    def export_url(fmt: str) -> str:
        wanted = {k: v for k, v in active.items() if k not in ("created_from", "created_to")}
        for bound in ("created_from", "created_to"):
            if (day := _day(filters[bound], end=bound == "created_to")) is not None:
                wanted[bound] = day.isoformat().replace("+00:00", "Z")
        return "/_minimo/api/v1/sessions/export?" + urlencode({**wanted, "format": fmt})

    return await render(
        request,
        "sessions.html",
        {
            "filters": filters,
            "states": _STATES,
            "forms": forms,
            "form": form,
            "problems": problems,
            "sessions": result.sessions,
            "total": result.total,
            "page": page_no,
            "pages": pages,
            "sort": sort,
            "page_url": page_url,
            "sort_url": sort_url,
            "export_url": export_url,
            "now": datetime.now(UTC),
            "shown": _shown,
        },
    )


def _day(text: str, *, end: bool) -> datetime | None:
    """A YYYY-MM-DD bound as an instant (UTC): the day's start, or its last moment when ``end``."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return day + timedelta(days=1, microseconds=-1) if end else day


def _shown(value: Any) -> str:
    """A stored value as text for a table cell (lists joined, booleans as yes/no)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/sessions", browse_sessions, name="sessions")
