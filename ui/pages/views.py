"""The page handlers: login/logout, home, new session, session page, metadata browser, admin."""

from __future__ import annotations

import asyncio
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from aiohttp_session import get_session
from multidict import MultiDictProxy

from gateway.appkeys import CONFIG, OBJECT_STORE
from gateway.errors import S3Error
from policy.forms import Field, Form, FormValidationError
from policy.principal import Principal, Role
from policy.sessions import SessionError, is_session_id, parse_where
from policy.store.base import FieldFilter, SessionPage, SessionQuery, SessionRecord
from ui.api.auth import LoginFailed, LoginRateLimited, sign_in
from ui.api.common import services
from ui.pages import admin
from ui.pages.common import PageError, check_csrf, render, require, safe_next
from ui.pages.snippets import snippets
from ui.pages.upload import upload_urls

PAGE_SIZE = 25
#: how many objects the session page lists (the API pages through all of them)
OBJECTS_SHOWN = 500
_STATES = ("open", "closed", "expired")
# a datetime-local value: no offset (browsers send "2026-11-25T14:30" or with seconds)
_NAIVE_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
_OFFSET = re.compile(r"[+-]\d{2}:\d{2}")


# -- login / logout ------------------------------------------------------------------------------
async def login_page(request: web.Request) -> web.StreamResponse:
    return await render(
        request, "login.html", {"error": None, "user": "", "next": request.query.get("next", "")}
    )


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    await check_csrf(request, form)
    user = str(form.get("user", ""))
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))

    async def again(message: str, status: int, **headers: str) -> web.Response:
        page = await render(
            request,
            "login.html",
            {"error": message, "user": user, "next": str(form.get("next", ""))},
            status,
        )
        page.headers.update(headers)
        return page

    try:
        await sign_in(request, user, password)
    except LoginRateLimited as exc:
        return await again(
            "Too many failed sign-ins for this user from your address. "
            f"Try again in {exc.seconds} s.",
            429,
            **{"Retry-After": str(exc.seconds)},
        )
    except LoginFailed:
        return await again("Wrong user name or password.", 401)
    raise web.HTTPSeeOther(target)


async def logout(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    await check_csrf(request, form)
    who = await require(request)
    (await get_session(request)).invalidate()
    await services(request).auditor.ok(who, "logout", "ui")
    raise web.HTTPSeeOther(str(request.app.router["login"].url_for()))


# -- home ----------------------------------------------------------------------------------------
async def home(request: web.Request) -> web.StreamResponse:
    who = await require(request)
    sessions = services(request).sessions
    mine = await sessions.search(owner=who.user, state="open", limit=20)
    recent = await sessions.search(limit=10)
    return await render(
        request,
        "home.html",
        {"mine": mine.sessions, "recent": recent.sessions, "now": datetime.now(UTC)},
    )


# -- new session ---------------------------------------------------------------------------------
def _input_value(field: Field, value: Any) -> Any:
    """A stored or default value as the HTML input wants it."""
    if value is None:
        return ""
    if field.type == "datetime" and isinstance(value, str):
        # stored as RFC 3339 UTC; datetime-local takes "YYYY-MM-DDTHH:MM[:SS]" with no zone
        return value.removesuffix("Z")[:19]
    return value


def _html_pattern(pattern: str | None) -> str | None:
    # JSON Schema *searches* a pattern; HTML anchors it to the whole value. Wrapping keeps both
    # meaning the same (^ and $ inside still assert the ends of the input in ECMA 262).
    return None if pattern is None else f"[\\s\\S]*(?:{pattern})[\\s\\S]*"


def _values_from_post(form: Form, data: MultiDictProxy[Any]) -> dict[str, Any]:
    """The raw values (strings, as validate_values coerces them) and, for the page, lists."""
    offset = str(data.get("_tz", ""))
    values: dict[str, Any] = {}
    for field in form.fields:
        if field.type == "multichoice":
            values[field.name] = [str(v) for v in data.getall(field.name, [])]
        elif field.type == "boolean":
            # An unticked checkbox sends nothing: that is "false", not "absent".
            values[field.name] = "true" if data.get(field.name) else "false"
        else:
            raw = str(data.get(field.name, ""))
            if field.type == "datetime" and _NAIVE_LOCAL.fullmatch(raw.strip()):
                # datetime-local has no zone; static/forms.js sends the browser's offset, and
                # without JavaScript the label says the time is UTC.
                raw = raw.strip() + (offset if _OFFSET.fullmatch(offset) else "Z")
            values[field.name] = raw
    return values


def _display_values(form: Form, values: dict[str, Any]) -> dict[str, Any]:
    shown = {}
    for field in form.fields:
        value = values.get(field.name)
        if (
            field.type == "datetime"
            and isinstance(value, str)
            and not _NAIVE_LOCAL.fullmatch(value)
        ):
            # what the user typed (with the offset we added) back into the datetime-local input
            value = value[:19]
        shown[field.name] = value
    return shown


async def _allowed_forms(
    request: web.Request, who: Principal, bucket: str, prefix: str
) -> tuple[list[Form], str | None]:
    """The forms policy allows at bucket/prefix, or a reason there are none."""
    svc = services(request)
    policy = await svc.policies.current()
    rule = policy.match(bucket, prefix)
    if rule is None:
        return [], f"No policy rule covers s3://{bucket}/{prefix}, so nothing can be written there."
    if not rule.may_open(who.user, who.role):
        return [], f"{who.user} may not open sessions at s3://{bucket}/{prefix}."
    forms = [f for name in rule.forms if (f := await svc.forms.find(name)) is not None]
    if not forms:
        return [], f"s3://{bucket}/{prefix} is a scratch area: upload there without a session."
    return forms, None


async def new_session_page(request: web.Request) -> web.StreamResponse:
    who = await require(request, "uploader")
    q = request.query
    bucket, prefix, form_name = q.get("bucket", ""), q.get("prefix", ""), q.get("form", "")
    forms: list[Form] = []
    problem = None
    if bucket:
        forms, problem = await _allowed_forms(request, who, bucket, prefix)
    chosen = next((f for f in forms if f.name == form_name), None)
    if chosen is None and len(forms) == 1:
        chosen = forms[0]
    values = {f.name: _input_value(f, f.default) for f in chosen.fields} if chosen else {}
    like_id = q.get("like", "")
    like = await services(request).sessions.get(like_id) if is_session_id(like_id) else None
    if chosen is not None and like is not None and like.form_name == chosen.name:
        # "open another like this": start from that session's values (the latest form version
        # may have dropped a field; only the fields it still has are filled in)
        for f in chosen.fields:
            if f.name in like.values:
                values[f.name] = _input_value(f, like.values[f.name])
    return await render(
        request,
        "session_new.html",
        {
            "bucket": bucket,
            "prefix": prefix,
            "forms": forms,
            "form": chosen,
            "problem": problem,
            "values": values,
            "errors": {},
            "general_errors": [],
            "html_pattern": _html_pattern,
        },
    )


async def new_session_submit(request: web.Request) -> web.StreamResponse:
    who = await require(request, "uploader")
    data = await request.post()
    await check_csrf(request, data)
    bucket = str(data.get("bucket", ""))
    prefix = str(data.get("prefix", ""))
    svc = services(request)
    form = await svc.forms.find(str(data.get("form", "")))
    if form is None:
        raise PageError(400, "Choose one of the forms offered for this place.")
    values = _values_from_post(form, data)
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    try:
        session, credential = await svc.sessions.open(
            who, form.name, bucket, prefix or None, values
        )
    except FormValidationError as exc:
        names = {f.name for f in form.fields}
        errors = {k: v for k, v in exc.errors.items() if k in names}
        general = [m for k, v in exc.errors.items() if k not in names for m in v]
    except SessionError as exc:
        general = [str(exc)]
    else:
        # The secret exists nowhere else in clear: keep it in the (encrypted) login cookie for
        # exactly one view of the session page, which pops it.
        (await get_session(request))["new_key"] = {
            "session": session.id,
            "access_key": credential.access_key,
            "secret_key": credential.secret_key,
        }
        raise web.HTTPSeeOther(str(request.app.router["session"].url_for(id=session.id)))
    return await render(
        request,
        "session_new.html",
        {
            "bucket": bucket,
            "prefix": prefix,
            "forms": [form],
            "form": form,
            "problem": None,
            "values": _display_values(form, values),
            "errors": errors,
            "general_errors": general,
            "html_pattern": _html_pattern,
        },
        status=400,
    )


# -- one session ---------------------------------------------------------------------------------
async def _session_or_404(request: web.Request) -> SessionRecord:
    sid = request.match_info["id"]
    session = await services(request).sessions.get(sid) if is_session_id(sid) else None
    if session is None:
        raise PageError(404, f"There is no session {sid}.")
    return session


async def session_page(request: web.Request) -> web.StreamResponse:
    who = await require(request)
    session = await _session_or_404(request)
    svc = services(request)
    records, more = await svc.sessions.objects(session.id, OBJECTS_SHOWN)
    count, size = await svc.sessions.usage(session.id)
    login = await get_session(request)
    key = login.get("new_key")
    if isinstance(key, dict) and key.get("session") == session.id:
        del login["new_key"]  # shown once
    else:
        key = None
    endpoint = str(request.url.origin())
    form = await svc.forms.find(session.form_name, session.form_version)
    now = datetime.now(UTC)
    mine = who.role is Role.ADMIN or who.user == session.owner
    return await render(
        request,
        "session.html",
        {
            "s": session,
            "state": "expired"
            if session.state == "open" and not session.is_open(now)
            else session.state,
            "form": form,
            "objects": records,
            "more_objects": more is not None,
            "count": count,
            "size": size,
            "key": key,
            "snippets": snippets(endpoint, request.config_dict[CONFIG].region, session, key)
            if key
            else None,
            "endpoint": endpoint,
            "may_close": session.state == "open" and mine,
            "may_upload": session.is_open(now) and mine,
        },
    )


async def close_session(request: web.Request) -> web.StreamResponse:
    who = await require(request, "uploader")
    data = await request.post()
    await check_csrf(request, data)
    session = await _session_or_404(request)
    try:
        await services(request).sessions.close(who, session.id)
    except SessionError as exc:
        raise PageError(403 if " may not " in str(exc) else 400, str(exc)) from None
    raise web.HTTPSeeOther(str(request.app.router["session"].url_for(id=session.id)))


# -- metadata browser ----------------------------------------------------------------------------
async def browse_sessions(request: web.Request) -> web.StreamResponse:
    await require(request)
    q = request.query
    svc = services(request)
    names = ("form", "owner", "bucket", "state", "created_from", "created_to", "where", "sort")
    filters = {name: q.get(name, "").strip() for name in names}
    if filters["state"] not in ("", *_STATES):
        filters["state"] = ""
    try:
        page_no = max(1, int(q.get("page", "1")))
    except ValueError:
        page_no = 1
    forms = await svc.forms.list()
    form = next((f for f in forms if f.name == filters["form"]), None)
    problems: list[str] = []
    if filters["form"] and form is None:
        problems.append(f"There is no form {filters['form']}.")
    fields: tuple[FieldFilter, ...] = ()
    if filters["where"]:
        try:
            fields = (parse_where(filters["where"], form),)
        except SessionError as exc:
            problems.append(str(exc))
    sort = filters["sort"] or "-created"
    sort_field = sort.lstrip("-")
    if sort_field != "created" and (form is None or form.field(sort_field) is None):
        problems.append(f"Choose a form to sort by its field {sort_field!r}.")
        sort, sort_field = "-created", "created"
    result = SessionPage([], 0)
    if not problems:
        try:
            query = SessionQuery(
                form_name=filters["form"] or None,
                owner=filters["owner"] or None,
                bucket=filters["bucket"] or None,
                state=filters["state"] or None,  # type: ignore[arg-type]  # checked above
                created_from=_day(filters["created_from"], end=False),
                created_to=_day(filters["created_to"], end=True),
                fields=fields,
                sort_field=None if sort_field == "created" else sort_field,
                descending=sort.startswith("-"),
                limit=PAGE_SIZE,
                offset=(page_no - 1) * PAGE_SIZE,
            )
            result = await svc.sessions.search(query)
        except (ValueError, SessionError) as exc:
            problems.append(str(exc))
    pages = max(1, math.ceil(result.total / PAGE_SIZE))
    active = {k: v for k, v in filters.items() if v}

    def page_url(n: int) -> str:
        return "?" + urlencode({**active, "page": n})

    def sort_url(name: str) -> str:
        # a second click on the sorted column flips the order; a new column starts descending
        flipped = name if sort == f"-{name}" else f"-{name}"
        return "?" + urlencode({**active, "sort": flipped})

    def export_url(fmt: str) -> str:
        wanted = {k: v for k, v in active.items() if k not in ("created_from", "created_to")}
        for bound in ("created_from", "created_to"):
            if (day := _day(filters[bound], end=bound == "created_to")) is not None:
                wanted[bound] = day.isoformat().replace("+00:00", "Z")
        return "/_minimo/api/v1/sessions/export?" + urlencode({**wanted, "format": fmt})

    return await render(
        request,
        "sessions.html",
        {
            "filters": filters,
            "states": _STATES,
            "forms": forms,
            "form": form,
            "problems": problems,
            "sessions": result.sessions,
            "total": result.total,
            "page": page_no,
            "pages": pages,
            "sort": sort,
            "page_url": page_url,
            "sort_url": sort_url,
            "export_url": export_url,
            "now": datetime.now(UTC),
            "shown": _shown,
        },
    )


def _day(text: str, *, end: bool) -> datetime | None:
    """A YYYY-MM-DD bound as an instant (UTC): the day's start, or its last moment when ``end``."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return day + timedelta(days=1, microseconds=-1) if end else day


def _shown(value: Any) -> str:
    """A stored value as text for a table cell (lists joined, booleans as yes/no)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


# -- data browser ------------------------------------------------------------------------------
DATA_PAGE = 100


async def data_buckets(request: web.Request) -> web.StreamResponse:
    await require(request)
    try:
        buckets = await request.config_dict[OBJECT_STORE].list_buckets()
    except S3Error as err:
        raise PageError(502, f"The object store refused to list buckets: {err.code}") from None
    return await render(request, "data.html", {"buckets": buckets, "bucket": None})


async def data_bucket(request: web.Request) -> web.StreamResponse:
    await require(request)
    bucket = request.match_info["bucket"]
    prefix = request.query.get("prefix", "")
    start_after = request.query.get("start_after", "")
    try:
        page = await request.config_dict[OBJECT_STORE].list_objects(
            bucket, prefix=prefix, delimiter="/", start_after=start_after, max_keys=DATA_PAGE
        )
    except S3Error as err:
        if err.code == "NoSuchBucket":
            raise PageError(404, f"There is no bucket {bucket}.") from None
        raise PageError(502, f"The object store refused to list {bucket}: {err.code}") from None
    svc = services(request)
    records = await asyncio.gather(
        *(svc.store.get_object_record(bucket, info.key) for info in page.objects)
    )
    # one lookup per distinct session on the page, not per object
    ids = {r.session_id for r in records if r is not None and r.session_id}
    found = await asyncio.gather(*(svc.sessions.get(sid) for sid in ids))
    sessions = {s.id: s for s in found if s is not None}
    rows = [
        {
            "info": info,
            "record": record,
            "session": sessions.get(record.session_id) if record and record.session_id else None,
        }
        for info, record in zip(page.objects, records, strict=True)
    ]
    # breadcrumbs: each leading part of the prefix, as (label, prefix)
    crumbs, acc = [], ""
    for part in prefix.split("/")[:-1]:
        acc += part + "/"
        crumbs.append((part, acc))
    more = None
    if page.truncated and page.next_marker:
        more = "?" + urlencode({"prefix": prefix, "start_after": page.next_marker})
    return await render(
        request,
        "data.html",
        {
            "bucket": bucket,
            "prefix": prefix,
            "crumbs": crumbs,
            "prefixes": page.prefixes,
            "rows": rows,
            "more": more,
            "urlencode": lambda value: urlencode({"prefix": value}),
        },
    )


async def download(request: web.Request) -> web.StreamResponse:
    """One object's bytes for a signed-in user (every role may read), streamed from the store.

    Always an attachment of type application/octet-stream: an uploaded .html or .svg must never
    render as a page of this origin (it would run with the user's login cookie).
    """
    await require(request)
    bucket = request.match_info["bucket"]
    key = request.query.get("key", "")
    if not key:
        raise PageError(400, "Say which object: ?key=...")
    try:
        reader = await request.config_dict[OBJECT_STORE].open_object(bucket, key)
    except S3Error as err:
        if err.code in ("NoSuchKey", "NoSuchBucket"):
            raise PageError(404, f"There is no object s3://{bucket}/{key}.") from None
        raise PageError(502, f"The object store refused to read it: {err.code}") from None
    try:
        name = key.rsplit("/", 1)[-1] or "download"
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(reader.info.size),
                # RFC 6266/5987: the UTF-8 name percent-encoded, never raw in a header
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
                "ETag": reader.info.etag,
            }
        )
        await response.prepare(request)
        async for piece in reader:
            await response.write(piece)
        await response.write_eof()
        return response
    finally:
        await reader.aclose()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", home, name="home")
    r.add_get("/login", login_page, name="login")
    r.add_post("/login", login_submit)
    r.add_post("/logout", logout, name="logout")
    r.add_get("/sessions/new", new_session_page, name="new_session")
    r.add_post("/sessions/new", new_session_submit)
    r.add_get("/sessions", browse_sessions, name="sessions")
    r.add_get("/sessions/{id}", session_page, name="session")
    r.add_post("/sessions/{id}/close", close_session, name="close_session")
    r.add_post("/sessions/{id}/upload-urls", upload_urls, name="upload_urls")
    r.add_get("/data/", data_buckets, name="data")
    r.add_get("/data/{bucket}", data_bucket, name="data_bucket")
    r.add_get("/download/{bucket}", download, name="download")
    admin.add_routes(app)
    r.add_get("/admin", _to_admin)


async def _to_admin(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/_minimo/admin/")
