"""``/audit`` (admins only): the audit log, newest first, one page at a time."""

from __future__ import annotations

from typing import get_args

from aiohttp import web

from policy.audit import event_json
from policy.store.base import AuditOutcome
from ui.api.common import Route, ok, query_int, query_time, services
from ui.api.errors import bad_request


async def list_audit(request: web.Request) -> web.StreamResponse:
    q = request.query
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request("order must be asc or desc", {"order": ["must be asc or desc"]})
    outcome = q.get("outcome") or None
    if outcome not in (None, *OUTCOMES):
        message = "outcome must be one of " + ", ".join(OUTCOMES)
        raise bad_request(message, {"outcome": [message]})
    try:
        events, cursor = await services(request).auditor.events(
            since=query_time(request, "since"),
            until=query_time(request, "until"),
            principal=q.get("user") or None,
            action=q.get("action") or None,
            outcome=outcome,  # type: ignore[arg-type]  # checked above
            limit=query_int(request, "limit", 100, 1, 1000),
            cursor=q.get("cursor") or None,
            descending=order == "desc",
        )
    except ValueError as exc:
        raise bad_request(str(exc), {"cursor": [str(exc)]}) from None
    return ok({"events": [event_json(e) for e in events], "next_cursor": cursor})


async def list_actions(request: web.Request) -> web.StreamResponse:
    return ok({"actions": await services(request).auditor.actions()})


#: what an event's outcome may be: "allowed" and "refused" for writes and refusals, "ok" and
#: "error" for admin changes
OUTCOMES: tuple[str, ...] = get_args(AuditOutcome)

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
            ("outcome", {"enum": list(OUTCOMES)}, "e.g. refused: only what was refused"),
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
    Route(
        "GET",
        "/audit/actions",
        list_actions,
        "The actions the audit log holds (to filter by)",
        "admin",
        "audit",
        response={
            "type": "object",
            "properties": {"actions": {"type": "array", "items": {"type": "string"}}},
        },
    ),
]
