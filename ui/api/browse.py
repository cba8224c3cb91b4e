"""``/buckets``: the data browser's twin (buckets -> prefixes -> objects, each object with the
session it belongs to, if any). Reads go to the object store through the gateway's
:class:`~gateway.backends.base.ObjectStore` interface, so both backends answer alike."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.usecases.adopt import adopt
from gateway.usecases.appkeys import OBJECT_STORE
from gateway.usecases.buckets import create_bucket
from gateway.usecases.object_store import ObjectInfo, ObjectStore, S3Error, S3ErrorCode
from policy.forms import Form, FormValidationError
from policy.services import Services
from policy.sessions import SessionError
from policy.store.base import MetadataStore, ObjectRecord, SessionRecord
from ui.api.common import (
    Route,
    created,
    iso,
    json_body,
    object_json,
    ok,
    principal,
    query_int,
    services,
    session_json,
    text_field,
)
from ui.api.errors import ApiError, bad_request, not_found, session_refusal
from ui.api.openapi import BUCKET_NAME_SCHEMA, FORM_NAME_SCHEMA
from ui.api.preview import preview_json, preview_of
from ui.outages import outage_of

#: object store errors that mean the object is not there: a bucket or key name that no object
#: can have (the local store checks names first) is simply not there either
NOT_THERE = (
    S3ErrorCode.NoSuchKey,
    S3ErrorCode.NoSuchBucket,
    S3ErrorCode.InvalidBucketName,
    S3ErrorCode.InvalidObjectName,
    S3ErrorCode.KeyTooLongError,
)

#: object store errors that mean "there is no such bucket" (a name no bucket can have is one)
NO_BUCKET = (S3ErrorCode.NoSuchBucket, S3ErrorCode.InvalidBucketName)

#: how many objects under a prefix the "link existing data" preview checks for a record
UNLINKED_SCAN = 1000
#: how many of the unlinked keys it names
UNLINKED_SHOWN = 10
#: how many objects under each folder of a listing are counted and sized
FOLDER_SCAN = 1000
#: how many of those folder listings run at once
FOLDER_LISTINGS = 8


@dataclass
class ObjectView:
    """One object as the data browser shows it: what the object store says, minimo's record of
    it and the session it was written under (each None when there is none)."""

    bucket: str
    key: str
    #: None when the object is gone from the object store but its record is still there
    info: ObjectInfo | None
    record: ObjectRecord | None
    session: SessionRecord | None
    #: the form version the session was opened with (for the fields' labels)
    form: Form | None

    @property
    def linked(self) -> datetime | None:
        """When existing data was linked into its session (None: written through minimo)."""
        if self.record is None or self.record.modified is None:
            return None
        return self.record.committed

    @property
    def modified(self) -> datetime | None:
        """When the data last changed: for linked data the time recorded before linking (the
        stamping copy moved the object store's Last-Modified to the time of linking)."""
        if self.record is not None and self.record.modified is not None:
            return self.record.modified
        return self.info.last_modified if self.info is not None else None

    def labelled_values(self) -> list[tuple[str, str, Any]]:
        """(name, label, value) of the session's values, labelled as the session page does."""
        if self.session is None:
            return []
        labelled = []
        for name, value in self.session.values.items():
            spec = self.form.field(name) if self.form is not None else None
            labelled.append((name, spec.label if spec is not None and spec.label else name, value))
        return labelled


async def describe_object(
    objects: ObjectStore, svc: Services, bucket: str, key: str
) -> ObjectView | None:
    """The object page's facts, or None when neither the object store nor minimo knows the key.

    Raises S3Error when the object store fails for another reason than a missing object.
    """
    record, info = await asyncio.gather(
        svc.store.get_object_record(bucket, key), _head_or_none(objects, bucket, key)
    )
    if info is None and record is None:
        return None
    session = await svc.sessions.get(record.session_id) if record and record.session_id else None
    form = await svc.forms.find(session.form_name, session.form_version) if session else None
    return ObjectView(bucket, key, info, record, session, form)


async def _head_or_none(objects: ObjectStore, bucket: str, key: str) -> ObjectInfo | None:
    try:
        return await objects.head_object(bucket, key)
    except S3Error as err:
        if err.code in NOT_THERE:
            return None
        raise


@dataclass
class Unlinked:
    """What "link existing data" would adopt under a prefix, from a bounded scan."""

    #: objects with no record among the scanned ones
    count: int
    #: how many objects were checked
    scanned: int
    #: True when the prefix holds more objects than were checked (count is then a lower bound)
    more: bool
    first_keys: list[str] = field(default_factory=list)


async def scan_unlinked(
    objects: ObjectStore, store: MetadataStore, bucket: str, prefix: str
) -> Unlinked:
    """Count the objects under ``prefix`` that have no record, checking at most UNLINKED_SCAN.

    Bounded so the page answers quickly on a prefix of millions; adopting itself walks all of
    them. An object stamped but unrecorded counts here and shows up as skipped after adopting.
    """
    page = await objects.list_objects(bucket, prefix=prefix, max_keys=UNLINKED_SCAN)
    records = await asyncio.gather(
        *(store.get_object_record(bucket, info.key) for info in page.objects)
    )
    keys = [info.key for info, record in zip(page.objects, records, strict=True) if record is None]
    return Unlinked(len(keys), len(page.objects), page.truncated, keys[:UNLINKED_SHOWN])


@dataclass(frozen=True)
class FolderUsage:
    """The objects under a folder, from one listing of at most FOLDER_SCAN keys."""

    objects: int
    bytes: int
    #: True when the folder holds more than was counted (the figures are lower bounds)
    more: bool


async def folder_usage(objects: ObjectStore, bucket: str, prefix: str) -> FolderUsage:
    """Count and size the objects under ``prefix`` (all depths), reading one listing page:
    bounded, so a listing of many large folders still answers quickly."""
    page = await objects.list_objects(bucket, prefix=prefix, max_keys=FOLDER_SCAN)
    return FolderUsage(len(page.objects), sum(o.size for o in page.objects), page.truncated)


async def folders_usage(
    objects: ObjectStore, bucket: str, prefixes: list[str]
) -> list[FolderUsage]:
    """:func:`folder_usage` of each prefix, a few listings at a time (a page of a thousand
    folders must not become a thousand listings at once)."""
    gate = asyncio.Semaphore(FOLDER_LISTINGS)

    async def one(prefix: str) -> FolderUsage:
        async with gate:
            return await folder_usage(objects, bucket, prefix)

    return list(await asyncio.gather(*(one(p) for p in prefixes)))


def adopt_prefix_of(raw: str) -> str:
    """A prefix as a session scope: a folder, so "run7" means "run7/" (not "run70/...")."""
    return raw if not raw or raw.endswith("/") else raw + "/"


def _store_error(err: S3Error, bucket: str = "") -> ApiError:
    outage = outage_of(err)
    if outage is not None:
        return ApiError(outage.status, outage.code, outage.message, headers=outage.headers)
    if err.code in NO_BUCKET:
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
    try:
        records, folders = await asyncio.gather(
            asyncio.gather(*(store.get_object_record(bucket, info.key) for info in page.objects)),
            folders_usage(request.config_dict[OBJECT_STORE], bucket, page.prefixes),
        )
    except S3Error as err:
        raise _store_error(err, bucket) from None
    objects = [
        {
            "key": info.key,
            "size": info.size,
            "etag": info.etag,
            # linked data keeps the time its bytes last changed (the stamping copy moved the
            # object store's Last-Modified to the time of linking)
            "last_modified": iso(
                record.modified if record is not None and record.modified else info.last_modified
            ),
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
            # each prefix's objects (all depths) and bytes, counted up to FOLDER_SCAN objects
            "folders": [
                {"prefix": p, "objects": use.objects, "bytes": use.bytes, "more": use.more}
                for p, use in zip(page.prefixes, folders, strict=True)
            ],
            "objects": objects,
            "next_start_after": page.next_marker if page.truncated else None,
        }
    )


async def show_object(request: web.Request) -> web.StreamResponse:
    """The object page's twin: the object store's facts, its record and its session."""
    bucket = request.match_info["bucket"]
    key = request.query.get("key", "")
    if not key:
        raise bad_request("key is required", {"key": ["required"]})
    try:
        view = await describe_object(
            request.config_dict[OBJECT_STORE], services(request), bucket, key
        )
    except S3Error as err:
        raise _store_error(err, bucket) from None
    if view is None:
        raise not_found(f"there is no object s3://{bucket}/{key}")
    info = view.info
    shown = None
    if info is not None:
        try:
            shown = preview_json(await preview_of(request.config_dict[OBJECT_STORE], bucket, info))
        except S3Error as err:
            raise _store_error(err, bucket) from None
    return ok(
        {
            "bucket": bucket,
            "key": key,
            "object": None
            if info is None
            else {
                "size": info.size,
                "etag": info.etag,
                "last_modified": iso(info.last_modified),
                "content_type": info.content_type,
            },
            # when the data last changed and, for linked data, when it was linked
            "modified": iso(view.modified),
            "linked": iso(view.linked),
            "metadata": view.session is not None,
            "record": object_json(view.record) if view.record is not None else None,
            "session": session_json(view.session) if view.session is not None else None,
            "fields": [
                {"name": name, "label": label, "value": value}
                for name, label, value in view.labelled_values()
            ],
            # what the object page previews (None when the object store no longer has it)
            "preview": shown,
        }
    )


async def make_bucket(request: web.Request) -> web.StreamResponse:
    """An admin creates a bucket (S3's naming rules; audited as CreateBucket)."""
    name = text_field(await json_body(request), "name") or ""
    try:
        await create_bucket(
            request.config_dict[OBJECT_STORE], services(request).store, principal(request), name
        )
    except S3Error as err:
        if err.code == S3ErrorCode.InvalidBucketName:
            raise bad_request(err.message, {"name": [err.message]}) from None
        if err.code in (S3ErrorCode.BucketAlreadyOwnedByYou, S3ErrorCode.BucketAlreadyExists):
            message = f"there is a bucket {name} already"
            raise ApiError(409, "exists", message, {"name": [message]}) from None
        raise _store_error(err, name) from None
    return created({"name": name})


async def adopt_preview(request: web.Request) -> web.StreamResponse:
    """The "link existing data" page's twin: what adopting under a prefix would do."""
    bucket = request.match_info["bucket"]
    prefix = adopt_prefix_of(request.query.get("prefix", ""))
    if not prefix:
        raise bad_request("prefix is required", {"prefix": ["required"]})
    svc = services(request)
    try:
        await request.config_dict[OBJECT_STORE].head_bucket(bucket)
        unlinked = await scan_unlinked(request.config_dict[OBJECT_STORE], svc.store, bucket, prefix)
    except S3Error as err:
        raise _store_error(err, bucket) from None
    forms, problem = await svc.sessions.allowed_forms(principal(request), bucket, prefix)
    return ok(
        {
            "bucket": bucket,
            "prefix": prefix,
            "unlinked": unlinked.count,
            "scanned": unlinked.scanned,
            "more": unlinked.more,
            "first_keys": unlinked.first_keys,
            "forms": [{"name": f.name, "version": f.version, "title": f.title} for f in forms],
            "problem": problem,
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
        raise session_refusal(exc) from None
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
        "POST",
        "/buckets",
        make_bucket,
        "Create a bucket (S3's bucket naming rules; 409 when it exists)",
        "admin",
        "data",
        body={
            "type": "object",
            "required": ["name"],
            "properties": {"name": BUCKET_NAME_SCHEMA},
            "additionalProperties": False,
        },
        response={"type": "object", "properties": {"name": _STR}},
        status=201,
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
                "folders": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "prefix": _STR,
                            "objects": _INT,
                            "bytes": _INT,
                            "more": {"type": "boolean"},
                        },
                    },
                },
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
        "GET",
        "/buckets/{bucket}/object",
        show_object,
        "One object: its size, ETag, time and content type in the object store, minimo's record "
        "of it and its session's metadata with the fields' labels (metadata: false when it was "
        "not written through a session)",
        "reader",
        "data",
        query=(("key", {"type": "string", "minLength": 1}, "the object's key"),),
        required_query=("key",),
        response={
            "type": "object",
            "properties": {
                "bucket": _STR,
                "key": _STR,
                "object": {
                    "oneOf": [
                        {
                            "type": "object",
                            "properties": {
                                "size": _INT,
                                "etag": _STR,
                                "last_modified": {"type": "string", "format": "date-time"},
                                "content_type": {"type": ["string", "null"]},
                            },
                        },
                        {"type": "null"},
                    ]
                },
                "modified": {"type": ["string", "null"], "format": "date-time"},
                "linked": {"type": ["string", "null"], "format": "date-time"},
                "metadata": {"type": "boolean"},
                "record": {
                    "oneOf": [{"$ref": "#/components/schemas/ObjectRecord"}, {"type": "null"}]
                },
                "session": {"oneOf": [{"$ref": "#/components/schemas/Session"}, {"type": "null"}]},
                "fields": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"name": _STR, "label": _STR, "value": {}},
                    },
                },
                "preview": {
                    "type": ["object", "null"],
                    "properties": {
                        "kind": {"enum": ["image", "csv", "text", None]},
                        "text": {"type": ["string", "null"]},
                        "rows": {"type": ["array", "null"]},
                        "cut": {"type": "boolean"},
                        "note": {"type": ["string", "null"]},
                        "image_type": {"type": ["string", "null"]},
                    },
                },
            },
        },
    ),
    Route(
        "GET",
        "/buckets/{bucket}/adopt",
        adopt_preview,
        "Before linking existing data: how many objects under a prefix have no metadata "
        f"(checks at most {UNLINKED_SCAN}; more: true when there are more) and which forms "
        "policy allows there",
        "admin",
        "data",
        query=(
            (
                "prefix",
                {"type": "string", "minLength": 1},
                "the prefix to adopt (a folder, '/' is added)",
            ),
        ),
        required_query=("prefix",),
        response={
            "type": "object",
            "properties": {
                "bucket": _STR,
                "prefix": _STR,
                "unlinked": _INT,
                "scanned": _INT,
                "more": {"type": "boolean"},
                "first_keys": {"type": "array", "items": _STR},
                "forms": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"name": _STR, "version": _INT, "title": _STR},
                    },
                },
                "problem": {"type": ["string", "null"]},
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
                "prefix": {"type": "string", "minLength": 1},
                "form": FORM_NAME_SCHEMA,
                "values": {"type": "object"},
            },
            "additionalProperties": False,
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
