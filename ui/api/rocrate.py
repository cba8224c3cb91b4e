"""``GET /sessions/{id}/ro-crate``: a session as an RO-Crate 1.1 ``ro-crate-metadata.json``.

The document is built by :func:`policy.rocrate.session_crate` (what it holds is described there);
closing a session can also write it into the session's prefix (:mod:`gateway.session_crate`).
"""

from __future__ import annotations

from aiohttp import web

from policy.rocrate import MEDIA_TYPE, METADATA_FILE, session_crate
from policy.store.base import ObjectRecord
from ui.api.common import Route, services
from ui.api.errors import not_found

_PAGE = 1000


async def get_crate(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    session = await svc.sessions.get(request.match_info["id"])
    if session is None:
        raise not_found(f"no session {request.match_info['id']}")
    form = await svc.forms.find(session.form_name, session.form_version)
    objects: list[ObjectRecord] = []
    cursor: str | None = None
    while True:
        page, cursor = await svc.sessions.objects(session.id, _PAGE, cursor)
        objects.extend(page)
        if cursor is None:
            break
    return web.json_response(
        session_crate(session, form, objects),
        content_type=MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{METADATA_FILE}"',
            "Cache-Control": "no-store",
        },
    )


ROUTES = [
    Route(
        "GET",
        "/sessions/{id}/ro-crate",
        get_crate,
        "The session as an RO-Crate (ro-crate-metadata.json)",
        "reader",
        "sessions",
        session_key_ok=True,
        media=("application/ld+json",),
        response={"type": "object", "required": ["@context", "@graph"]},
    ),
]
