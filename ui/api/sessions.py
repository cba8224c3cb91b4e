"""``/sessions``: open (minting the session key), validate a draft, search, show, close, objects."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
from datetime import timedelta
from typing import Any

from aiohttp import web

from gateway.usecases.appkeys import OBJECT_STORE
from gateway.usecases.object_store import S3Error
from gateway.usecases.verify import RESULTS as VERIFY_RESULTS
from gateway.usecases.verify import Outcome, Scope, Verifier, VerifyError
from policy.catalog import CatalogError
from policy.durations import DurationError, parse_duration
from policy.forms import Form, FormValidationError, validate_values
from policy.session_search import Facet, facets, free_text
from policy.sessions import SessionError, parse_where
from policy.several import MAX_EXPERIMENTS, Experiment, SeveralInvalid, open_several
from policy.store.base import FieldFilter, SessionQuery, SortColumn
from ui.api import rocrate
from ui.api.common import (
    Route,
    Schema,
    created,
    json_body,
    object_json,
    ok,
    principal,
    query_int,
    query_time,
    services,
    session_json,
    text_field,
)
from ui.api.errors import ApiError, bad_request, not_found, session_refusal
from ui.api.openapi import BUCKET_NAME_SCHEMA, FORM_NAME_SCHEMA

SESSION_REF = {"$ref": "#/components/schemas/Session"}
OBJECT_REF = {"$ref": "#/components/schemas/ObjectRecord"}


def _values(data: dict[str, Any]) -> dict[str, Any]:
    values = data.get("values", {})
    if not isinstance(values, dict):
        raise bad_request("values must be an object", {"values": ["must be an object"]})
    return values


async def open_session(request: web.Request) -> web.StreamResponse:
    data = await json_body(request)
    form = text_field(data, "form") or ""
    bucket = text_field(data, "bucket") or ""
    prefix = text_field(data, "prefix", required=False)
    ttl = text_field(data, "ttl", required=False)
    try:
        session, credential = await services(request).sessions.open(
            principal(request), form, bucket, prefix, _values(data), ttl
        )
    except FormValidationError as exc:
        raise ApiError(
            400, "invalid_values", "the values do not satisfy the form", exc.errors
        ) from None
    except SessionError as exc:
        raise session_refusal(exc) from None
    return created(
        {
            "session": session_json(session),
            # shown once: the store keeps only the encrypted secret
            "session_key": {
                "access_key": credential.access_key,
                "secret_key": credential.secret_key,
            },
        }
    )


def _experiments(data: dict[str, Any]) -> list[Experiment]:
    raw = data.get("experiments")
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise bad_request(
            "experiments must be a list of objects", {"experiments": ["must be a list"]}
        )
    found = []
    for index, item in enumerate(raw):
        folder, values = item.get("folder", ""), item.get("values", {})
        if not isinstance(folder, str) or not isinstance(values, dict):
            message = "folder must be a string and values an object"
            raise bad_request(message, {f"experiments[{index}]": [message]})
        found.append(Experiment(folder, values))
    return found


def several_problems(exc: SeveralInvalid) -> dict[str, list[str]]:
    """Each problem under the path of what it is about: ``folder``,
    ``experiments[0].folder``, ``experiments[1].values.mouse_id``, ``experiments[2]``."""
    fields: dict[str, list[str]] = {"folder": exc.folder} if exc.folder else {}
    for index, problems in enumerate(exc.experiments):
        where = f"experiments[{index}]"
        if problems.folder:
            fields[f"{where}.folder"] = problems.folder
        for name, messages in problems.values.items():
            fields[f"{where}.values.{name}"] = messages
        if problems.general:
            fields[where] = problems.general
    return fields


async def open_several_sessions(request: web.Request) -> web.StreamResponse:
    data = await json_body(request)
    form = text_field(data, "form") or ""
    bucket = text_field(data, "bucket") or ""
    folder = text_field(data, "folder") or ""
    ttl = text_field(data, "ttl", required=False)
    try:
        opened = await open_several(
            services(request).sessions,
            principal(request),
            form,
            bucket,
            folder,
            _experiments(data),
            ttl,
        )
    except SeveralInvalid as exc:
        raise ApiError(
            400, "invalid_experiments", f"nothing was opened: {exc}", several_problems(exc)
        ) from None
    except FormValidationError as exc:
        raise ApiError(400, "invalid_values", f"nothing was opened: {exc}", exc.errors) from None
    except SessionError as exc:
        raise session_refusal(exc) from None
    return created(
        {
            "sessions": [
                {
                    "session": session_json(session),
                    "session_key": {
                        "access_key": credential.access_key,
                        "secret_key": credential.secret_key,
                    },
                }
                for session, credential in opened
            ]
        }
    )


async def validate_draft(request: web.Request) -> web.StreamResponse:
    data = await json_body(request)
    name = text_field(data, "form") or ""
    version = data.get("version")
    if isinstance(version, float) and version.is_integer():
        version = int(version)  # JSON has one number type: 2.0 is the integer 2
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise bad_request("version must be an integer", {"version": ["must be an integer"]})
    try:
        form = await services(request).forms.get(name, version)
    except CatalogError as exc:
        raise not_found(str(exc)) from None
    try:
        clean = validate_values(form, _values(data))
    except FormValidationError as exc:
        return ok(
            {"valid": False, "form": form.name, "version": form.version, "errors": exc.errors}
        )
    return ok({"valid": True, "form": form.name, "version": form.version, "values": clean})


#: the most field conditions one search takes (the metadata browser page has the same bound)
MAX_CONDITIONS = 20

#: the sort names of the fixed columns, as the page and the API spell them
SORT_COLUMNS: dict[str, SortColumn] = {
    "created": "created",
    "owner": "owner",
    "bucket": "bucket",
    "form": "form_name",
}


def parse_sort(text: str) -> dict[str, Any]:
    """The SessionQuery sort arguments a ``sort`` parameter names.

    ``created``, ``owner``, ``bucket`` or ``form`` sort by that column, any other name by that
    field of the values (``values.NAME`` always means the field, for a field called ``owner``);
    a leading ``-`` sorts descending, ``+`` or nothing ascending.
    """
    descending = text.startswith("-")
    name = text[1:] if text[:1] in ("-", "+") else text  # one sign: "--created" is no name
    if name.startswith("values."):
        return {"sort_field": name.removeprefix("values."), "descending": descending}
    if name in SORT_COLUMNS:
        return {"sort_column": SORT_COLUMNS[name], "descending": descending}
    return {"sort_field": name, "descending": descending}


def sort_name(field: str) -> str:
    """How ``sort`` names a field of the values (prefixed where it shares a column's name)."""
    return f"values.{field}" if field in SORT_COLUMNS else field


def _is_sort_error(message: str) -> bool:
    return "field name" in message or "cannot sort" in message


async def _query(request: web.Request) -> tuple[SessionQuery, Form | None]:
    """The search the query string asks for (shared by search and export)."""
    q = request.query
    form_name = q.get("form") or None
    form = None
    if form_name is not None:
        form = await services(request).forms.find(form_name)
        if form is None:
            raise bad_request(f"no form {form_name}", {"form": ["no such form"]})
    wheres = q.getall("where", [])
    if len(wheres) > MAX_CONDITIONS:
        # every condition is evaluated on every candidate session: bound the work one call asks
        message = f"at most {MAX_CONDITIONS} where conditions"
        raise bad_request(message, {"where": [message]})
    try:
        fields = tuple(parse_where(text, form) for text in wheres)
    except SessionError as exc:
        raise bad_request(str(exc), {"where": [str(exc)]}) from None
    text = q.get("q", "")
    # free text looks in the chosen form's fields, or in every field any form has
    any_of = free_text(text, [form] if form else await services(request).forms.list())
    if text.strip() and not any_of:
        any_of = NOTHING_MATCHES
    try:
        query = SessionQuery(
            form_name=form_name,
            owner=q.get("owner") or None,
            bucket=q.get("bucket") or None,
            state=q.get("state") or None,  # type: ignore[arg-type]  # checked by SessionQuery
            created_from=query_time(request, "created_from"),
            created_to=query_time(request, "created_to"),
            fields=fields,
            any_of=any_of,
            **parse_sort(q.get("sort") or "-created"),
            limit=query_int(request, "limit", 50, 1, 1000),
            offset=query_int(request, "offset", 0, 0, 10**9),
            cursor=q.get("cursor") or None,
        )
    except ValueError as exc:
        message = str(exc)
        field = "state" if "state" in message else "sort" if _is_sort_error(message) else None
        raise bad_request(str(exc), {field: [str(exc)]} if field else None) from None
    return query, form


#: a free-text search when no form has a field: a condition no session meets
NOTHING_MATCHES = (FieldFilter("_no_field_", "eq", "_no_value_"),)


_FLAGS = {"1": True, "true": True, "0": False, "false": False}


def _flag(request: web.Request, name: str) -> bool:
    """A yes/no query parameter (``1``/``true``, ``0``/``false``; absent: no)."""
    raw = request.query.get(name)
    if raw is None:
        return False
    if raw not in _FLAGS:
        raise bad_request(f"{name} must be true or false", {name: ["must be true or false"]})
    return _FLAGS[raw]


def facets_json(found: list[Facet]) -> list[dict[str, Any]]:
    return [
        {
            "field": facet.field.name,
            "label": facet.field.label or facet.field.name,
            "values": [{"value": v.value, "count": v.count} for v in facet.values],
        }
        for facet in found
    ]


async def search_sessions(request: web.Request) -> web.StreamResponse:
    query, form = await _query(request)
    svc = services(request)
    try:
        page = await svc.sessions.search(query)
    except SessionError as exc:
        raise bad_request(str(exc), {"cursor": [str(exc)]}) from None
    body: dict[str, Any] = {
        "sessions": [session_json(s) for s in page.sessions],
        "total": page.total,
        "next_cursor": page.next_cursor,
    }
    if _flag(request, "facets"):
        if form is None:
            message = "facets need a form: they count the values of its choice fields"
            raise bad_request(message, {"facets": [message]})
        body["facets"] = facets_json(await facets(svc.store, query, form))
    if _flag(request, "usage"):
        usage = await asyncio.gather(*(svc.sessions.usage(s.id) for s in page.sessions))
        for row, (count, size) in zip(body["sessions"], usage, strict=True):
            row["objects"], row["bytes"] = count, size
    return ok(body)


async def _session(request: web.Request) -> Any:
    session = await services(request).sessions.get(request.match_info["id"])
    if session is None:
        raise not_found(f"no session {request.match_info['id']}")
    return session


async def get_session(request: web.Request) -> web.StreamResponse:
    session = await _session(request)
    count, size = await services(request).sessions.usage(session.id)
    return ok({**session_json(session), "objects": count, "bytes": size})


async def close_session(request: web.Request) -> web.StreamResponse:
    ro_crate = await rocrate.close_option(request)
    result = await rocrate.close_session(
        request, principal(request), request.match_info["id"], ro_crate
    )
    return ok(rocrate.close_json(result))


async def extend_session(request: web.Request) -> web.StreamResponse:
    # body_exists, not can_read_body (see rocrate.close_option): a signed request was read
    data = await json_body(request) if request.body_exists else {}
    by = text_field(data, "by", required=False)
    try:
        session = await services(request).sessions.extend(
            principal(request), request.match_info["id"], by
        )
    except SessionError as exc:
        raise session_refusal(exc) from None
    return ok(session_json(session))


async def bucket_names(request: web.Request) -> list[str]:
    """The object store's bucket names (for spelling out bucket globs of the policy)."""
    try:
        return [b.name for b in await request.config_dict[OBJECT_STORE].list_buckets()]
    except S3Error:
        return []  # the literal names of the policy are still worth offering


async def session_places(request: web.Request) -> web.StreamResponse:
    places = await services(request).sessions.places(
        principal(request), await bucket_names(request)
    )
    return ok({"places": [dataclasses.asdict(p) | {"forms": list(p.forms)} for p in places]})


async def session_objects(request: web.Request) -> web.StreamResponse:
    session = await _session(request)
    limit = query_int(request, "limit", 1000, 1, 1000)
    try:
        records, cursor = await services(request).sessions.objects(
            session.id, limit, request.query.get("cursor") or None
        )
    except ValueError as exc:
        raise bad_request(str(exc), {"cursor": [str(exc)]}) from None
    return ok({"objects": [object_json(r) for r in records], "next_cursor": cursor})


# -- verifying a session's bytes (minimo verify, gateway.usecases.verify) -----------------------
#: the default time a request spends verifying, so that a browser or script gets an answer;
#: what was verified is kept on the records, and ``older_than`` lets the next call carry on
VERIFY_SECONDS = 20.0
VERIFY_MAX_SECONDS = 300
#: problems listed in one answer (the records keep every result)
VERIFY_PROBLEMS_SHOWN = 100

VERIFY_BODY = {
    "type": "object",
    "properties": {
        "seconds": {
            "type": "number",
            "minimum": 1,
            "maximum": VERIFY_MAX_SECONDS,
            "description": f"how long to verify before answering (default {VERIFY_SECONDS:g})",
        },
        "older_than": {
            "type": "string",
            "description": "skip objects verified less than this long ago (e.g. '1h'): how a "
            "call carries on after one that ran out of time",
        },
    },
    "additionalProperties": False,
}


async def verify_options(request: web.Request) -> tuple[float, timedelta | None]:
    """(seconds, older_than) of an optional JSON body."""
    if not request.body_exists:
        return VERIFY_SECONDS, None
    data = await json_body(request)
    seconds = data.get("seconds", VERIFY_SECONDS)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 1 <= seconds <= VERIFY_MAX_SECONDS
    ):
        message = f"seconds must be a number from 1 to {VERIFY_MAX_SECONDS}"
        raise bad_request(message, {"seconds": [message]})
    older_than = data.get("older_than")
    if older_than is None:
        return float(seconds), None
    try:
        if not isinstance(older_than, str):
            raise DurationError("older_than must be a duration such as '1h' or '7d'")
        return float(seconds), parse_duration(older_than)
    except DurationError as exc:
        raise bad_request(f"older_than: {exc}", {"older_than": [str(exc)]}) from None


async def run_session_verify(
    request: web.Request, session_id: str, seconds: float, older_than: timedelta | None
) -> dict[str, Any]:
    """Verify one session's objects for at most ``seconds``; the answer of the API (and what
    the session page shows). Every result is also kept on its record as it is found."""
    problems: list[Outcome] = []

    def on_outcome(outcome: Outcome) -> None:
        if outcome.problem:
            problems.append(outcome)

    verifier = Verifier(
        request.config_dict[OBJECT_STORE],
        services(request).store,
        Scope(session_id=session_id, older_than=older_than),
        on_outcome=on_outcome,
    )
    complete = True
    try:
        async with asyncio.timeout(seconds):
            await verifier.run()
    except TimeoutError:
        complete = False
    except VerifyError as exc:
        raise not_found(str(exc)) from None
    except S3Error as exc:
        raise ApiError(
            502, "object_store_error", f"the object store answered {exc.code}: {exc.message}"
        ) from None
    return {
        "complete": complete,
        "summary": verifier.summary.as_json(),
        "problems": [o.as_json() for o in problems[:VERIFY_PROBLEMS_SHOWN]],
        "more_problems": len(problems) > VERIFY_PROBLEMS_SHOWN,
    }


async def verify_session(request: web.Request) -> web.StreamResponse:
    session = await _session(request)
    seconds, older_than = await verify_options(request)
    return ok(await run_session_verify(request, session.id, seconds, older_than))


_OUTCOME = {
    "type": "object",
    "properties": {
        "result": {"enum": list(VERIFY_RESULTS)},
        "bucket": {"type": "string"},
        "key": {"type": "string"},
        "detail": {"type": "string"},
        "size": {"type": "integer"},
        "sha256": {"type": ["string", "null"]},
        "session_id": {"type": ["string", "null"]},
    },
}
VERIFY_RESPONSE = {
    "type": "object",
    "required": ["complete", "summary", "problems"],
    "properties": {
        "complete": {
            "type": "boolean",
            "description": "false: time ran out; call again with older_than to carry on",
        },
        "summary": {
            "type": "object",
            "description": "objects per result, skipped, problems, bytes_read, seconds",
        },
        "problems": {"type": "array", "items": _OUTCOME},
        "more_problems": {"type": "boolean"},
    },
}


_EXPORT_PAGE = 500
_CSV_COLUMNS = (
    "id",
    "form",
    "form_version",
    "bucket",
    "prefix",
    "owner",
    "state",
    "created",
    "expires",
    "closed",
)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else value


async def export_sessions(request: web.Request) -> web.StreamResponse:
    """Every session matching the search (not one page) as CSV or JSON, streamed page by page,
    so a large export never sits whole in memory (docs/design.md, decision 3)."""
    fmt = request.query.get("format", "csv")
    if fmt not in ("csv", "json"):
        raise bad_request("format must be csv or json", {"format": ["must be csv or json"]})
    query, form = await _query(request)
    sessions = services(request).sessions
    query = dataclasses.replace(query, limit=_EXPORT_PAGE, offset=0, cursor=None)
    try:
        page = await sessions.search(query)  # before the response starts: errors stay JSON
    except SessionError as exc:
        raise bad_request(str(exc)) from None
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8" if fmt == "csv" else "application/json",
            "Content-Disposition": f'attachment; filename="sessions.{fmt}"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    field_names = [f.name for f in form.fields] if form is not None else []
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if fmt == "csv":
        writer.writerow([*_CSV_COLUMNS, *(field_names or ["values"])])
    else:
        buffer.write(f'{{"total": {page.total}, "sessions": [')
    first = True
    while True:
        for session in page.sessions:
            row = session_json(session)
            if fmt == "csv":
                values = [row["values"].get(n) for n in field_names] or [row["values"]]
                writer.writerow(
                    [_csv_cell(row[c]) for c in _CSV_COLUMNS] + [_csv_cell(v) for v in values]
                )
            else:
                buffer.write(("" if first else ",") + json.dumps(row))
            first = False
        await response.write(buffer.getvalue().encode())
        buffer.seek(0)
        buffer.truncate()
        if page.next_cursor is None:
            break
        # the total is known: counting again would read every match once per chunk
        page = await sessions.search(
            dataclasses.replace(query, cursor=page.next_cursor, count=False)
        )
    if fmt == "json":
        await response.write(b"]}")
    await response.write_eof()
    return response


_STR = {"type": "string"}
_OPEN_BODY = {
    "type": "object",
    "required": ["form", "bucket", "values"],
    "properties": {
        "form": FORM_NAME_SCHEMA,
        "bucket": BUCKET_NAME_SCHEMA,
        "prefix": {"type": "string", "description": "default: '<session id>/'"},
        "values": {"type": "object"},
        "ttl": {"type": "string", "description": "e.g. '8h', '2d'; at most the rule's maximum"},
    },
    "additionalProperties": False,
}

_SEARCH_PARAMS: tuple[tuple[str, Schema, str], ...] = (
    ("form", _STR, "form name"),
    ("owner", _STR, "user name"),
    ("bucket", _STR, "bucket name"),
    ("state", {"enum": ["open", "closed", "expired"]}, "session state"),
    ("created_from", {"type": "string", "format": "date-time"}, "inclusive"),
    ("created_to", {"type": "string", "format": "date-time"}, "inclusive"),
    (
        "where",
        {
            "type": "array",
            "items": {"type": "string", "pattern": r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*(>=|<=|=|~)"},
            "maxItems": MAX_CONDITIONS,
        },
        "repeatable field condition (all must hold): FIELD=V, FIELD>=V, FIELD<=V or FIELD~TEXT",
    ),
    ("q", _STR, "free text: sessions with the text in any field's value (case-insensitive)"),
    (
        "sort",
        {"type": "string", "pattern": r"^([-+]?(values\.)?[a-z][a-z0-9_]*)?$"},
        "'created', 'owner', 'bucket', 'form' or a field name ('values.NAME' for a field named "
        "like a column); prefix '-' for descending (absent or empty: '-created'); ties newest "
        "first",
    ),
    ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
    ("offset", {"type": "integer", "minimum": 0}, "skip matches (ignored with cursor)"),
    ("cursor", _STR, "next_cursor of the previous page"),
)

ROUTES = [
    Route(
        "POST",
        "/sessions",
        open_session,
        "Open a session; returns its session key (the secret is shown only here)",
        "uploader",
        "sessions",
        body=_OPEN_BODY,
        status=201,
        response={
            "type": "object",
            "required": ["session", "session_key"],
            "properties": {
                "session": SESSION_REF,
                "session_key": {
                    "type": "object",
                    "required": ["access_key", "secret_key"],
                    "properties": {"access_key": _STR, "secret_key": _STR},
                },
            },
        },
    ),
    Route(
        "POST",
        "/sessions/several",
        open_several_sessions,
        "Open several sessions at once, one per experiment, each in its own sub-folder of "
        "`folder` with its own values of one form; all or none: any problem (answered under "
        "its path, e.g. experiments[1].values.mouse_id) opens nothing",
        "uploader",
        "sessions",
        body={
            "type": "object",
            "required": ["form", "bucket", "folder", "experiments"],
            "properties": {
                "form": FORM_NAME_SCHEMA,
                "bucket": BUCKET_NAME_SCHEMA,
                "folder": {"type": "string", "description": "e.g. '2026-12-02/'"},
                "experiments": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_EXPERIMENTS,
                    "items": {
                        "type": "object",
                        "required": ["folder"],
                        "properties": {
                            "folder": {"type": "string", "description": "e.g. 'mouse1'"},
                            "values": {"type": "object"},
                        },
                        "additionalProperties": False,
                    },
                },
                "ttl": {"type": "string", "description": "e.g. '8h'; at most the rule's maximum"},
            },
            "additionalProperties": False,
        },
        status=201,
        response={
            "type": "object",
            "required": ["sessions"],
            "properties": {
                "sessions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["session", "session_key"],
                        "properties": {
                            "session": SESSION_REF,
                            "session_key": {
                                "type": "object",
                                "required": ["access_key", "secret_key"],
                                "properties": {"access_key": _STR, "secret_key": _STR},
                            },
                        },
                    },
                }
            },
        },
    ),
    Route(
        "POST",
        "/sessions/validate",
        validate_draft,
        "Check values against a form without opening a session",
        "reader",
        "sessions",
        body={
            "type": "object",
            "required": ["form"],
            "properties": {
                "form": FORM_NAME_SCHEMA,
                "version": {"type": "integer", "minimum": 1},
                "values": {"type": "object"},
            },
            "additionalProperties": False,
        },
        response={
            "type": "object",
            "required": ["valid"],
            "properties": {
                "valid": {"type": "boolean"},
                "form": _STR,
                "version": {"type": "integer"},
                "values": {"type": "object"},
                "errors": {"$ref": "#/components/schemas/FieldErrors"},
            },
        },
    ),
    Route(
        "GET",
        "/sessions",
        search_sessions,
        "Search sessions",
        "reader",
        "sessions",
        query=(
            *_SEARCH_PARAMS,
            (
                "facets",
                {"enum": ["1", "true", "0", "false"]},
                "with a form: count the matches per value of each choice and boolean field",
            ),
            ("usage", {"enum": ["1", "true", "0", "false"]}, "add objects and bytes per session"),
        ),
        response={
            "type": "object",
            "required": ["sessions", "total"],
            "properties": {
                "sessions": {"type": "array", "items": SESSION_REF},
                "total": {"type": "integer"},
                "next_cursor": {"type": ["string", "null"]},
                "facets": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "label", "values"],
                        "properties": {
                            "field": _STR,
                            "label": _STR,
                            "values": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["value", "count"],
                                    "properties": {"count": {"type": "integer"}},
                                },
                            },
                        },
                    },
                },
            },
        },
    ),
    Route(
        "GET",
        "/sessions/export",
        export_sessions,
        "Export every session matching a search as CSV or JSON",
        "reader",
        "sessions",
        query=(
            ("format", {"enum": ["csv", "json"]}, "default csv"),
            *_SEARCH_PARAMS[:-3],
        ),
        media=("text/csv", "application/json"),
        response={
            "type": "object",
            "description": "JSON: {total, sessions}; CSV (text/csv): one row per session, one "
            "column per field of the form given, else a 'values' column of JSON",
            "properties": {
                "total": {"type": "integer"},
                "sessions": {"type": "array", "items": SESSION_REF},
            },
        },
    ),
    Route(
        "GET",
        "/sessions/places",
        session_places,
        "Where the caller may open sessions (what the new-session page offers): each bucket, "
        "the fixed start of its rule's prefix, and the forms allowed there",
        "uploader",
        "sessions",
        response={
            "type": "object",
            "required": ["places"],
            "properties": {
                "places": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["bucket", "prefix", "forms"],
                        "properties": {
                            "bucket": _STR,
                            "prefix": _STR,
                            "forms": {"type": "array", "items": _STR},
                        },
                    },
                }
            },
        },
    ),
    Route(
        "GET",
        "/sessions/{id}",
        get_session,
        "Show a session (with its object count and bytes)",
        "reader",
        "sessions",
        session_key_ok=True,
        response={
            "allOf": [
                SESSION_REF,
                {
                    "type": "object",
                    "properties": {"objects": {"type": "integer"}, "bytes": {"type": "integer"}},
                },
            ]
        },
    ),
    Route(
        "POST",
        "/sessions/{id}/close",
        close_session,
        "Close a session (owner or admin); its key stops working. With ro_crate (default: "
        "the policy rule's ro_crate_on_close), <prefix>ro-crate-metadata.json is first written "
        "into the session's prefix as an object of the session (409 when a file of that name "
        "that minimo did not generate is there; the session then stays open)",
        "uploader",
        "sessions",
        body=rocrate.CLOSE_BODY,
        body_optional=True,
        response=rocrate.CLOSE_RESPONSE,
    ),
    Route(
        "POST",
        "/sessions/{id}/extend",
        extend_session,
        "Extend an open session (owner or admin) by `by` (default: the policy rule's "
        "session_ttl); refused past the rule's max_session_ttl counted from its creation",
        "uploader",
        "sessions",
        body={
            "type": "object",
            "properties": {"by": {"type": "string", "description": "e.g. '8h', '1d'"}},
            "additionalProperties": False,
        },
        body_optional=True,
        response=SESSION_REF,
    ),
    Route(
        "POST",
        "/sessions/{id}/verify",
        verify_session,
        "Verify a session's objects (admin): re-read each, recompute its SHA-256 and compare "
        "with its record, for at most `seconds`; each record keeps the time and result (see "
        "minimo verify)",
        "admin",
        "sessions",
        body=VERIFY_BODY,
        body_optional=True,
        response=VERIFY_RESPONSE,
    ),
    Route(
        "GET",
        "/sessions/{id}/objects",
        session_objects,
        "List the objects written in a session",
        "reader",
        "sessions",
        session_key_ok=True,
        query=(
            ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
            ("cursor", _STR, "next_cursor of the previous page"),
        ),
        response={
            "type": "object",
            "properties": {
                "objects": {"type": "array", "items": OBJECT_REF},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
    ),
]
