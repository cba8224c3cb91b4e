"""A session as an RO-Crate 1.1 ``ro-crate-metadata.json`` document (pure: records in, JSON out).

The crate's root is the session's prefix: its files are the objects written under the session
(with size, SHA-256 and time), its metadata the form's values as ``PropertyValue`` entries, the
form version's JSON Schema named by ``conformsTo``, and the owner as the creator.

Two ways out, built from the same entity helpers so they cannot disagree:

* :func:`session_crate` builds the whole document as a dict (the API's ``GET .../ro-crate``);
* :class:`CrateLayout` gives the serialized document in pieces around the two lists that grow
  with the session (``hasPart`` refs and ``File`` entities), so a writer that pages through the
  records can emit it with bounded memory (:mod:`gateway.usecases.session_crate`).

The metadata file itself is never one of the crate's files (RO-Crate: the descriptor is not part
of the dataset), so a crate written into the prefix does not list itself.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from policy.forms import Form
from policy.store.base import ObjectRecord, SessionRecord

CONTEXT = "https://w3id.org/ro/crate/1.1/context"
SPEC = "https://w3id.org/ro/crate/1.1"
#: the file name RO-Crate tools look for at the root of a crate
METADATA_FILE = "ro-crate-metadata.json"
MEDIA_TYPE = "application/ld+json"
#: where the JSON API serves form schemas (the ui mounts it there; policy may not import ui)
API_PATH = "/_minimo/api/v1"


def crate_key(session: SessionRecord) -> str:
    """The object key of the session's crate: ``<prefix>ro-crate-metadata.json``."""
    return session.prefix + METADATA_FILE


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def is_crate_file(session: SessionRecord, record: ObjectRecord) -> bool:
    """Whether ``record`` is the session's own metadata file (never listed as a file)."""
    return record.bucket == session.bucket and record.key == crate_key(session)


def file_entity(session: SessionRecord, record: ObjectRecord) -> dict[str, Any]:
    """One object as a ``File`` entity; its ``@id`` is relative to the session's prefix."""
    return {
        "@id": record.key[len(session.prefix) :] or record.key,
        "@type": "File",
        "contentSize": record.size,
        "sha256": record.sha256,
        "encodingFormat": record.content_type or "application/octet-stream",
        # linked data keeps the date its bytes last changed, not the date it was linked
        "dateModified": _iso(record.modified or record.committed),
        "identifier": f"s3://{record.bucket}/{record.key}",
    }


def _document(
    session: SessionRecord,
    form: Form | None,
    has_part: list[Any],
    files: list[Any],
    base_url: str,
) -> dict[str, Any]:
    owner = f"#user-{session.owner}"
    schema_id = (
        f"{base_url}{API_PATH}/forms/{session.form_name}/versions/{session.form_version}/schema"
    )
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
    title = form.title if form is not None and form.title else session.form_name
    root = {
        "@id": "./",
        "@type": "Dataset",
        "name": f"{title}: session {session.id}",
        "description": f"Data written to s3://{session.bucket}/{session.prefix} under minimo "
        f"session {session.id} (form {session.form_name} v{session.form_version}).",
        "identifier": session.id,
        "datePublished": _iso(session.closed or session.created),
        "dateCreated": _iso(session.created),
        "creator": {"@id": owner},
        "conformsTo": {"@id": schema_id},
        "additionalProperty": [{"@id": p["@id"]} for p in properties],
        "hasPart": has_part,
    }
    return {
        "@context": CONTEXT,
        "@graph": [
            {
                "@id": METADATA_FILE,
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


def session_crate(
    session: SessionRecord,
    form: Form | None,
    objects: Iterable[ObjectRecord],
    *,
    base_url: str = "",
) -> dict[str, Any]:
    """The ``ro-crate-metadata.json`` document of one session, whole.

    ``base_url`` makes the form schema's ``@id`` absolute (a crate stored in a bucket has no
    server to be relative to); empty keeps it a path on this server.
    """
    files = [file_entity(session, r) for r in objects if not is_crate_file(session, r)]
    return _document(session, form, [{"@id": f["@id"]} for f in files], files, base_url)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class CrateLayout:
    """The serialized crate of a session in five pieces (UTF-8)::

        head  <refs, comma-separated>  middle  <", " + file entity, each>  tail

    ``ref(record)`` and ``file(record)`` give each record's piece; the document is the same JSON
    :func:`session_crate` builds (as ``json.dumps`` writes it), whatever the number of files.
    """

    head: bytes
    middle: bytes
    tail: bytes
    session: SessionRecord

    @classmethod
    def build(cls, session: SessionRecord, form: Form | None, base_url: str = "") -> CrateLayout:
        # Serialize once with two markers standing in for the lists, then cut at them. The
        # markers are random per call, so no user value can look like one.
        part_mark, file_mark = (f"minimo-{secrets.token_hex(16)}" for _ in range(2))
        text = _dumps(_document(session, form, [part_mark], [file_mark], base_url))
        head, rest = text.split(_dumps(part_mark))
        middle, tail = rest.split(", " + _dumps(file_mark))
        return cls(head.encode(), middle.encode(), tail.encode(), session)

    def includes(self, record: ObjectRecord) -> bool:
        return not is_crate_file(self.session, record)

    def ref(self, record: ObjectRecord) -> bytes:
        return _dumps({"@id": file_entity(self.session, record)["@id"]}).encode()

    def file(self, record: ObjectRecord) -> bytes:
        return (", " + _dumps(file_entity(self.session, record))).encode()
