"""``GET /sessions/{id}/ro-crate``: a session as an RO-Crate 1.1 ``ro-crate-metadata.json``.

The crate's root is the session's prefix: its files are the objects written under the session
(with size, SHA-256 and time), its metadata the form's values as ``PropertyValue`` entries, the
form version's JSON Schema named by ``conformsTo``, and the owner as the creator. Writing the crate
into the prefix when a session closes (issue 4) can reuse :func:`session_crate`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from policy.forms import Form
from policy.store.base import ObjectRecord, SessionRecord
from ui.api.common import API_PREFIX, Route, iso, services
from ui.api.errors import not_found

CONTEXT = "https://w3id.org/ro/crate/1.1/context"
SPEC = "https://w3id.org/ro/crate/1.1"
_PAGE = 1000


def session_crate(
    session: SessionRecord, form: Form | None, objects: list[ObjectRecord]
) -> dict[str, Any]:
    """The ``ro-crate-metadata.json`` document of one session."""
    owner = f"#user-{session.owner}"
    schema_id = f"{API_PREFIX}/forms/{session.form_name}/versions/{session.form_version}/schema"
    labels = {f.name: f.label for f in form.fields} if form is not None else {}
    properties = [
        {
            "@id": f"#value-{name}",
            "@type": "PropertyValue",
            "propertyID": name,
            "name": labels.get(name) or name,
            "value": value,
        }
        for name, value in session.values.items()
    ]
    files = [
        {
            "@id": record.key[len(session.prefix) :] or record.key,
            "@type": "File",
            "contentSize": record.size,
            "sha256": record.sha256,
            "encodingFormat": record.content_type or "application/octet-stream",
            "dateModified": iso(record.committed),
            "identifier": f"s3://{record.bucket}/{record.key}",
        }
        for record in objects
    ]
    title = form.title if form is not None and form.title else session.form_name
    root = {
        "@id": "./",
        "@type": "Dataset",
        "name": f"{title}: session {session.id}",
        "description": f"Data written to s3://{session.bucket}/{session.prefix} under minimo "
        f"session {session.id} (form {session.form_name} v{session.form_version}).",
        "identifier": session.id,
        "datePublished": iso(session.closed or session.created),
        "dateCreated": iso(session.created),
        "creator": {"@id": owner},
        "conformsTo": {"@id": schema_id},
        "additionalProperty": [{"@id": p["@id"]} for p in properties],
        "hasPart": [{"@id": f["@id"]} for f in files],
    }
    return {
        "@context": CONTEXT,
        "@graph": [
            {
                "@id": "ro-crate-metadata.json",
                "@type": "CreativeWork",
                "conformsTo": {"@id": SPEC},
                "about": {"@id": "./"},
            },
            root,
            {"@id": owner, "@type": "Person", "name": session.owner},
            {
                "@id": schema_id,
                "@type": "CreativeWork",
                "name": f"JSON Schema of form {session.form_name} version {session.form_version}",
                "encodingFormat": "application/schema+json",
            },
            *properties,
            *files,
        ],
    }


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
        content_type="application/ld+json",
        headers={
            "Content-Disposition": 'attachment; filename="ro-crate-metadata.json"',
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
