"""Previews of objects for the data browser's object page and its JSON twin: the head of a text
file, the first rows of a CSV as a table, and images.

Stored bytes never run on the UI's origin (docs/design.md, decision 9), so:

- text and CSV are read here (at most ``TEXT_BYTES``, one ranged read), decoded, and rendered
  by the template, which escapes them like any other value;
- an image is an ``<img>`` of ``ui.pages.preview.image``, a same-origin URL that serves the
  bytes as an image only when the type is one of a few raster types *and* the first bytes carry
  that type's signature (so an HTML file named ``x.png`` is refused, and SVG, which can hold
  script, is never served as an image), with ``nosniff`` and the sandboxing CSP of every S3 answer.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.usecases.object_store import ObjectInfo, ObjectStore

#: how much of a text or CSV object a preview reads
TEXT_BYTES = 64 * 1024
#: how many rows (after the header) and columns a CSV preview shows
CSV_ROWS = 20
CSV_COLUMNS = 30
#: the largest image the page shows inline (larger ones are a download away)
IMAGE_BYTES = 20 * 1024 * 1024

#: raster image types with the signature their bytes start with (SVG is not here: it is a
#: document that can carry script)
IMAGE_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),  # then 4 bytes of size and "WEBP", checked below
}
_IMAGE_EXTENSIONS = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
_CSV_EXTENSIONS = {".csv": ",", ".tsv": "\t"}
_CSV_TYPES = {"text/csv": ",", "text/tab-separated-values": "\t"}
_TEXT_EXTENSIONS = frozenset(
    {".txt", ".log", ".md", ".json", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".xml", ".py",
     ".sh", ".r", ".m", ".tex", ".rst", ".jsonl", ".ndjson"}
)  # fmt: skip
_TEXT_TYPES = frozenset({"application/json", "application/xml", "application/x-ndjson"})

PreviewKind = Literal["image", "csv", "text"]


@dataclass
class Preview:
    """What the object page shows of an object's content, or why it shows none."""

    kind: PreviewKind | None
    #: for text: the decoded head; for csv: unused
    text: str = ""
    #: for csv: the header row, then the rows shown
    rows: list[list[str]] = field(default_factory=list)
    #: True when there is more than is shown
    cut: bool = False
    #: why there is no preview (None: there is one, or the type has none)
    note: str | None = None
    #: for an image: the MIME type it is served as
    image_type: str | None = None


def _extension(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name[name.rfind(".") :].lower() if "." in name else ""


def _base_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def image_type_of(info: ObjectInfo) -> str | None:
    """The raster type an object is previewed as: its content type, else its extension."""
    declared = _base_type(info.content_type)
    if declared in IMAGE_SIGNATURES:
        return declared
    return _IMAGE_EXTENSIONS.get(_extension(info.key))


def kind_of(info: ObjectInfo) -> tuple[PreviewKind | None, str]:
    """Which preview an object gets (and a CSV's delimiter): by content type, else extension
    (clients often store everything as application/octet-stream)."""
    declared, ext = _base_type(info.content_type), _extension(info.key)
    if image_type_of(info) is not None:
        return "image", ""
    if declared in _CSV_TYPES:
        return "csv", _CSV_TYPES[declared]
    if ext in _CSV_EXTENSIONS:
        return "csv", _CSV_EXTENSIONS[ext]
    if declared.startswith("text/") or declared in _TEXT_TYPES or ext in _TEXT_EXTENSIONS:
        return "text", ""
    return None, ""


async def preview_of(objects: ObjectStore, bucket: str, info: ObjectInfo) -> Preview:
    """The preview of an object the page has head-ed (``info``)."""
    kind, delimiter = kind_of(info)
    if kind is None:
        return Preview(None)
    if kind == "image":
        if info.size > IMAGE_BYTES:
            return Preview(None, note=f"The image is over {IMAGE_BYTES >> 20} MiB: download it.")
        return Preview("image", image_type=image_type_of(info))
    head = await _read_head(objects, bucket, info.key)
    cut = info.size > len(head)
    if b"\x00" in head:
        return Preview(None, note="It looks binary, so there is no text preview.")
    text = head.decode("utf-8", errors="replace")
    if cut:
        # the last line may be cut mid-way (or mid-character): show whole lines only
        text = text[: text.rfind("\n") + 1] or text
    if kind == "text":
        return Preview("text", text=text, cut=cut)
    rows = []
    try:
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            if len(rows) > CSV_ROWS:
                cut = True
                break
            rows.append(row[:CSV_COLUMNS])
    except csv.Error:
        return Preview("text", text=text, cut=cut)
    return Preview("csv", rows=rows, cut=cut)


async def _read_head(objects: ObjectStore, bucket: str, key: str) -> bytes:
    reader = await objects.open_object(bucket, key, range_header=f"bytes=0-{TEXT_BYTES - 1}")
    try:
        head = bytearray()
        async for piece in reader:
            head += piece
            if len(head) >= TEXT_BYTES:
                break
        return bytes(head[:TEXT_BYTES])
    finally:
        await reader.aclose()


def preview_json(preview: Preview) -> dict[str, Any]:
    """A preview as the JSON API gives it (the image itself is the page's preview URL)."""
    return {
        "kind": preview.kind,
        "text": preview.text if preview.kind == "text" else None,
        "rows": preview.rows if preview.kind == "csv" else None,
        "cut": preview.cut,
        "note": preview.note,
        "image_type": preview.image_type,
    }
