"""``/audit`` (admins only): the audit log, newest first, one page at a time."""

from __future__ import annotations

from aiohttp import web

from policy.audit import event_json
from ui.api.common import Route, ok, query_int, query_time, services
from ui.api.errors import bad_request


async def list_audit(request: web.Request) -> web.StreamResponse:
    q = request.query
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request("order must be asc or desc", {"order": ["must be asc or desc"]})
    try:
        events, cursor = await services(request).auditor.events(
            since=query_time(request, "since"),
            until=query_time(request, "until"),
            principal=q.get("user") or None,
            action=q.get("action") or None,
            limit=query_int(request, "limit", 100, 1, 1000),
            cursor=q.get("cursor") or None,
            descending=order == "desc",
        )
    except ValueError as exc:
        raise bad_request(str(exc), {"cursor": [str(exc)]}) from None
    return ok({"events": [event_json(e) for e in events], "next_cursor": cursor})


_DT = {"type": "string", "format": "date-time"}

ROUTES = [
    Route(
        "GET",
        "/audit",
        list_audit,
        "Read the audit log",
        "admin",
        "audit",
        query=(
            ("since", _DT, "inclusive"),
            ("until", _DT, "exclusive"),
            ("user", {"type": "string"}, "principal (user name)"),
            ("action", {"type": "string"}, "e.g. session.open, PutObject, login"),
            ("order", {"enum": ["asc", "desc"]}, "default desc (newest first)"),
            ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
            ("cursor", {"type": "string"}, "next_cursor of the previous page"),
        ),
        response={
            "type": "object",
            "properties": {
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEvent"}},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
    ),
]
