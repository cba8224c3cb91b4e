"""``/objects/{bucket}/{key}``: an object's record and the metadata session it belongs to."""

from __future__ import annotations

from aiohttp import web

from ui.api.common import Route, object_json, ok, services, session_json
from ui.api.errors import not_found


async def get_object(request: web.Request) -> web.StreamResponse:
    bucket, key = request.match_info["bucket"], request.match_info["key"]
    svc = services(request)
    record = await svc.store.get_object_record(bucket, key)
    if record is None:
        raise not_found(f"no record of s3://{bucket}/{key}: minimo holds no metadata for it")
    body = object_json(record)
    session = await svc.sessions.get(record.session_id) if record.session_id else None
    body["session"] = session_json(session) if session is not None else None
    return ok(body)


ROUTES = [
    Route(
        "GET",
        "/objects/{bucket}/{key:.+}",
        get_object,
        "Show an object's record and its session's metadata",
        "reader",
        "objects",
        response={
            "allOf": [
                {"$ref": "#/components/schemas/ObjectRecord"},
                {
                    "type": "object",
                    "properties": {
                        "session": {
                            "oneOf": [{"$ref": "#/components/schemas/Session"}, {"type": "null"}]
                        }
                    },
                },
            ]
        },
    ),
]
