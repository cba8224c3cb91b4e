"""``/buckets``: the data browser's twin (buckets -> prefixes -> objects, each object with the
session it belongs to, if any). Reads go to the object store through the gateway's
:class:`~gateway.backends.base.ObjectStore` interface, so both backends answer alike."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.adopt import adopt
from gateway.appkeys import OBJECT_STORE
from gateway.errors import S3Error
from policy.forms import FormValidationError
from policy.sessions import SessionError
from ui.api.common import (
    Route,
    iso,
    json_body,
    ok,
    principal,
    query_int,
    services,
    session_json,
    text_field,
)
from ui.api.errors import ApiError, bad_request, forbidden, not_found


def _store_error(err: S3Error, bucket: str = "") -> ApiError:
    if err.code == "NoSuchBucket":
        return not_found(f"no bucket {bucket}")
    return ApiError(502, "object_store", f"the object store refused: {err.code}")


async def list_buckets(request: web.Request) -> web.StreamResponse:
    try:
        buckets = await request.config_dict[OBJECT_STORE].list_buckets()
    except S3Error as err:
        raise _store_error(err) from None
    return ok({"buckets": [{"name": b.name, "created": iso(b.created)} for b in buckets]})


async def list_bucket(request: web.Request) -> web.StreamResponse:
    bucket = request.match_info["bucket"]
    prefix = request.query.get("prefix", "")
    start_after = request.query.get("start_after", "")
    limit = query_int(request, "limit", 100, 1, 1000)
    try:
        page = await request.config_dict[OBJECT_STORE].list_objects(
            bucket, prefix=prefix, delimiter="/", start_after=start_after, max_keys=limit
        )
    except S3Error as err:
        raise _store_error(err, bucket) from None
    store = services(request).store
    records = await asyncio.gather(
        *(store.get_object_record(bucket, info.key) for info in page.objects)
    )
    objects = [
        {
            "key": info.key,
            "size": info.size,
            "etag": info.etag,
            "last_modified": iso(info.last_modified),
            # None: no record, i.e. data without metadata (a candidate for "link existing data")
            "session_id": record.session_id if record is not None else None,
            "recorded": record is not None,
        }
        for info, record in zip(page.objects, records, strict=True)
    ]
    return ok(
        {
            "bucket": bucket,
            "prefix": prefix,
            "prefixes": page.prefixes,
            "objects": objects,
            "next_start_after": page.next_marker if page.truncated else None,
        }
    )


async def adopt_prefix(request: web.Request) -> web.StreamResponse:
    """Link existing data: adopt the unlinked objects under a prefix into a new session."""
    bucket = request.match_info["bucket"]
    data = await json_body(request)
    prefix = text_field(data, "prefix") or ""
    form = text_field(data, "form") or ""
    values = data.get("values", {})
    if not isinstance(values, dict):
        raise bad_request("values must be an object", {"values": ["must be an object"]})
    try:
        result = await adopt(
            request.config_dict[OBJECT_STORE],
            services(request),
            principal(request),
            bucket,
            prefix,
            form,
            values,
        )
    except FormValidationError as exc:
        raise ApiError(
            400, "invalid_values", "the values do not satisfy the form", exc.errors
        ) from None
    except SessionError as exc:
        message = str(exc)
        if message.startswith("no bucket"):
            raise not_found(message) from None
        if " may not " in message or message.startswith("only "):
            raise forbidden(message) from None
        raise bad_request(message) from None
    except S3Error as err:
        raise _store_error(err, bucket) from None
    return ok(
        {
            "session": session_json(result.session),
            **result.counts(),
            "skipped": [{"key": key, "reason": why} for key, why in result.skipped],
        }
    )


_STR = {"type": "string"}
_INT = {"type": "integer"}

ROUTES = [
    Route(
        "GET",
        "/buckets",
        list_buckets,
        "List buckets",
        "reader",
        "data",
        response={
            "type": "object",
            "properties": {
                "buckets": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"name": _STR, "created": {"type": "string"}},
                    },
                }
            },
        },
    ),
    Route(
        "GET",
        "/buckets/{bucket}",
        list_bucket,
        "List one level of a bucket: sub-prefixes and objects, with their sessions",
        "reader",
        "data",
        query=(
            ("prefix", _STR, "list under this prefix (ends with '/')"),
            ("start_after", _STR, "next_start_after of the previous page"),
            ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "default 100"),
        ),
        response={
            "type": "object",
            "properties": {
                "bucket": _STR,
                "prefix": _STR,
                "prefixes": {"type": "array", "items": _STR},
                "objects": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "key": _STR,
                            "size": {"type": "integer"},
                            "etag": _STR,
                            "last_modified": {"type": "string", "format": "date-time"},
                            "session_id": {"type": ["string", "null"]},
                            "recorded": {"type": "boolean"},
                        },
                    },
                },
                "next_start_after": {"type": ["string", "null"]},
            },
        },
    ),
    Route(
        "POST",
        "/buckets/{bucket}/adopt",
        adopt_prefix,
        "Link existing data: adopt the objects under a prefix that have no record and no "
        "stamp into a new session (hashed, stamped, recorded)",
        "admin",
        "data",
        body={
            "type": "object",
            "required": ["prefix", "form"],
            "properties": {
                "prefix": _STR,
                "form": _STR,
                "values": {"type": "object"},
            },
        },
        response={
            "type": "object",
            "properties": {
                "session": {"$ref": "#/components/schemas/Session"},
                "adopted": _INT,
                "skipped_recorded": _INT,
                "skipped_stamped": _INT,
                "skipped_busy": _INT,
                "bytes": _INT,
                "skipped": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"key": _STR, "reason": _STR},
                    },
                },
            },
        },
    ),
]
