"""``GET /sessions/{id}/ro-crate``: a session as an RO-Crate 1.1 ``ro-crate-metadata.json``.

The document is the one :func:`policy.rocrate.session_crate` describes, streamed in the pieces
of :class:`policy.rocrate.CrateLayout` while the records are read a page at a time. Closing a
session can also write it into the session's prefix (:mod:`gateway.usecases.session_crate`); the
close
helpers both the API route and the session page use are here too.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.usecases.appkeys import OBJECT_STORE, WRITE_PATH
from gateway.usecases.object_store import S3Error
from gateway.usecases.session_crate import (
    CloseResult,
    CrateConflict,
    close_with_crate,
    crate_pieces,
)
from policy.principal import Principal
from policy.rocrate import MEDIA_TYPE, METADATA_FILE, CrateLayout
from policy.sessions import SessionError
from ui.api.common import Route, json_body, services, session_json
from ui.api.errors import ApiError, bad_request, not_found, session_refusal
from ui.outages import pass_outage


async def get_crate(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    session = await svc.sessions.get(request.match_info["id"])
    if session is None:
        raise not_found(f"no session {request.match_info['id']}")
    form = await svc.forms.find(session.form_name, session.form_version)
    # Streamed as the store pages in (docs/design.md, decision 3): a session of millions of objects
    # never has its whole crate in memory.
    response = web.StreamResponse(
        headers={
            "Content-Type": MEDIA_TYPE,
            "Content-Disposition": f'attachment; filename="{METADATA_FILE}"',
            "Cache-Control": "no-store",
        }
    )
    pieces = crate_pieces(svc, CrateLayout.build(session, form))
    # The first piece comes before the headers go out, so a failing store is still an error reply.
    first = await anext(pieces)
    await response.prepare(request)
    await response.write(first)
    async for piece in pieces:
        await response.write(piece)
    await response.write_eof()
    return response


# -- closing, optionally writing the crate into the prefix (used by the API and the page) --------
async def close_option(request: web.Request) -> bool | None:
    """``ro_crate`` of an optional JSON body ``{"ro_crate": true|false}``; None = the policy's
    default (also for no body at all)."""
    # body_exists, not can_read_body: a SigV4 check has already read (hashed) the body, and
    # can_read_body is False once it is read, which silently dropped {"ro_crate": ...}
    if not request.body_exists:
        return None
    data = await json_body(request)
    value = data.get("ro_crate")
    if value is not None and not isinstance(value, bool):
        raise bad_request("ro_crate must be true or false", {"ro_crate": ["must be true or false"]})
    return value


async def close_session(
    request: web.Request, who: Principal, session_id: str, ro_crate: bool | None
) -> CloseResult:
    """Close (see :func:`gateway.usecases.session_crate.close_with_crate`); refusals as ApiError."""
    writes = request.config_dict.get(WRITE_PATH)
    objects = request.config_dict.get(OBJECT_STORE)
    if writes is None or objects is None:
        raise ApiError(503, "unavailable", "this server has no object store to write into")
    try:
        return await close_with_crate(services(request), writes, objects, who, session_id, ro_crate)
    except CrateConflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except SessionError as exc:
        raise session_refusal(exc) from None
    except S3Error as exc:
        pass_outage(exc)
        raise ApiError(
            502,
            "object_store",
            f"the object store refused the RO-Crate ({exc.code}: {exc.message}); the session "
            "is still open",
        ) from None


def close_json(result: CloseResult) -> dict[str, Any]:
    """The closed session, and where its crate is (``ro_crate``: null when it has none)."""
    crate = (
        {"url": result.crate, "written": result.crate_written} if result.crate is not None else None
    )
    return {**session_json(result.session), "ro_crate": crate}


#: the close route's response (ui.api.sessions declares the route)
CLOSE_RESPONSE = {
    "allOf": [
        {"$ref": "#/components/schemas/Session"},
        {
            "type": "object",
            "required": ["ro_crate"],
            "properties": {
                "ro_crate": {
                    "description": "where the session's RO-Crate is (null: none was written); "
                    "written = whether this request wrote it",
                    "oneOf": [
                        {"type": "null"},
                        {
                            "type": "object",
                            "required": ["url", "written"],
                            "properties": {
                                "url": {"type": "string"},
                                "written": {"type": "boolean"},
                            },
                        },
                    ],
                }
            },
        },
    ]
}
CLOSE_BODY = {
    "type": "object",
    "properties": {
        "ro_crate": {
            "type": "boolean",
            "description": "write <prefix>ro-crate-metadata.json into the session's prefix "
            "before closing (default: the ro_crate_on_close of the policy rule covering the "
            "session's scope)",
        }
    },
    "additionalProperties": False,
}


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
