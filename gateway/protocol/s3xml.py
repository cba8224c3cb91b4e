"""S3 XML: building response documents and parsing the few request documents S3 takes.

Responses are built from small string templates with escaping: for a 1000-key listing this is
several times faster than building a dict for ``xmltodict.unparse``. Requests are parsed with
``xmltodict`` (expat) with entities disabled and DOCTYPE refused, so no entity expansion or
external fetch can happen.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

import xmltodict

from gateway.protocol.errors import S3Error, S3ErrorCode

XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
CONTENT_TYPE = "application/xml"

#: Owner shown in listings and ACLs: S3 clients expect one; the gateway is the only owner.
OWNER_ID = "6d696e696d6f6d696e696d6f6d696e696d6f6d696e696d6f6d696e696d6f6d69"
OWNER_NAME = "minimo"
OWNER_XML = f"<Owner><ID>{OWNER_ID}</ID><DisplayName>{OWNER_NAME}</DisplayName></Owner>"

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def esc(value: str) -> str:
    return escape(value)


def url_encode(value: str) -> str:
    """``encoding-type=url``: what S3 does and botocore's ``unquote_plus`` reverses."""
    return quote(value, safe="/")


def iso8601(dt: datetime) -> str:
    """XML timestamps: ``2026-01-02T03:04:05.000Z``."""
    dt = dt.astimezone(UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond // 1000:03d}Z"


def http_date(dt: datetime) -> str:
    """RFC 1123 (``Last-Modified``), independent of the process locale."""
    dt = dt.astimezone(UTC)
    return (
        f"{_DAYS[dt.weekday()]}, {dt.day:02d} {_MONTHS[dt.month]} {dt.year:04d} "
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} GMT"
    )


def quote_etag(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


def document(root: str, inner: str, *, ns: bool = True) -> bytes:
    attrs = f' xmlns="{S3_NS}"' if ns else ""
    return f"{XML_DECL}<{root}{attrs}>{inner}</{root}>".encode()


def elements(pairs: Iterable[tuple[str, str | int | bool | None]]) -> str:
    """``<Name>value</Name>`` for each pair whose value is not None."""
    out = []
    for name, value in pairs:
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append(f"<{name}>{escape(str(value))}</{name}>")
    return "".join(out)


def error_document(
    code: str, message: str, resource: str, request_id: str, host_id: str, extra: dict[str, str]
) -> bytes:
    inner = elements(
        [
            ("Code", code),
            ("Message", message),
            *extra.items(),
            ("Resource", resource),
            ("RequestId", request_id),
            ("HostId", host_id),
        ]
    )
    return f"{XML_DECL}<Error>{inner}</Error>".encode()


# -- request documents ---------------------------------------------------------------------------

MAX_REQUEST_XML = 1 << 20


def parse(data: bytes, root: str) -> dict[str, Any]:
    """Parse a request document whose root element must be ``root``; MalformedXML otherwise."""
    if b"<!DOCTYPE" in data or b"<!doctype" in data or b"<!ENTITY" in data:
        raise S3Error(S3ErrorCode.MalformedXML, "DOCTYPE and entity declarations are not accepted.")
    try:
        # Whitespace is kept: keys may begin or end with spaces.
        doc = xmltodict.parse(data, disable_entities=True, strip_whitespace=False)
    except Exception as exc:  # expat errors, entity refusals: all mean "not well-formed"
        raise S3Error(
            S3ErrorCode.MalformedXML, f"The XML you provided was not well-formed: {exc}"
        ) from exc
    if not isinstance(doc, dict) or len(doc) != 1:
        raise S3Error(S3ErrorCode.MalformedXML, f"Expected a <{root}> document.")
    ((name, body),) = doc.items()
    # Accept a namespace prefix on the root (``s3:Delete``) as S3 does.
    if name.rsplit(":", 1)[-1] != root:
        raise S3Error(S3ErrorCode.MalformedXML, f"Expected a <{root}> document, got <{name}>.")
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise S3Error(S3ErrorCode.MalformedXML, f"<{root}> must contain elements.")
    return {k.rsplit(":", 1)[-1]: v for k, v in body.items() if k[0] not in "@#"}


def as_list(value: Any) -> list[Any]:
    """xmltodict gives one child as a value and several as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def text(value: Any) -> str | None:
    """The text of a leaf element (None when absent, "" when empty)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        t = value.get("#text")
        if t is None and all(k.startswith("@") for k in value):
            return ""
        if isinstance(t, str):
            return t
    raise S3Error(S3ErrorCode.MalformedXML, "Expected a text element.")


def child(node: Any, name: str) -> Any:
    if not isinstance(node, dict):
        raise S3Error(S3ErrorCode.MalformedXML, f"Expected an element containing <{name}>.")
    for k, v in node.items():
        if k.rsplit(":", 1)[-1] == name:
            return v
    return None
