"""policy.rocrate: the pieces a bounded writer streams make the same document as the whole dict,
for no, one and several files, and the metadata file never lists itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from policy.forms import Field, Form
from policy.rocrate import CrateLayout, crate_key, session_crate
from policy.store.base import ObjectRecord, SessionRecord

WHEN = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SESSION = SessionRecord(
    id="01m89gyv95byz1g031jkt4h0qbw3ne94vh6t",
    form_name="imaging",
    form_version=2,
    # values a naive cut of the JSON text could trip over: quotes, brackets, markers, unicode
    values={"operator": 'Ada "the" Lovelace, ]}', "note": "minimo-\u00e9 \u2603", "n": 3},
    bucket="raw",
    prefix="2026/run7/",
    owner="ada",
    state="closed",
    created=WHEN,
    expires=WHEN,
    closed=WHEN,
    closed_by="ada",
)
FORM = Form("imaging", "Imaging run", (Field("operator", "text", label="Operator"),), version=2)


def _record(key: str, size: int) -> ObjectRecord:
    return ObjectRecord(
        bucket="raw",
        key=key,
        size=size,
        etag="e",
        sha256=f"{size:064x}",
        content_type=None,
        session_id=SESSION.id,
        principal="ada",
        committed=WHEN,
    )


def _streamed(layout: CrateLayout, records: list[ObjectRecord]) -> bytes:
    kept = [r for r in records if layout.includes(r)]
    refs = b", ".join(layout.ref(r) for r in kept)
    return layout.head + refs + layout.middle + b"".join(layout.file(r) for r in kept) + layout.tail


@pytest.mark.parametrize("count", [0, 1, 3])
def test_pieces_make_the_whole_document(count: int) -> None:
    records = [_record(f"2026/run7/f{i}.bin", i) for i in range(count)]
    records.append(_record(crate_key(SESSION), 999))  # the crate itself: never a file
    layout = CrateLayout.build(SESSION, FORM, "https://minimo.example")
    whole = session_crate(SESSION, FORM, records, base_url="https://minimo.example")
    assert json.loads(_streamed(layout, records)) == whole
    files = [e["@id"] for e in whole["@graph"] if e["@type"] == "File"]
    assert files == [f"f{i}.bin" for i in range(count)]
    root = next(e for e in whole["@graph"] if e["@id"] == "./")
    assert root["conformsTo"]["@id"].startswith("https://minimo.example/_minimo/api/v1/forms/")
