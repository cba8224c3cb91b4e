"""Session pages (twin of ui/api/sessions.py): the metadata browser, a new session, one
session and its Close button. Browser uploads into a session are ui/pages/upload.py.

The metadata browser filters, sorts and pages sessions on the server, with export links. Field
conditions come as repeatable rows (field, operator, value). Every link the page makes
(pages, sorts, exports) carries them as repeated ``where=FIELD<op>VALUE``, as the JSON API takes
them, and so does the filter form with JavaScript (metadata.js); without it the form sends each
row as ``where_field`` / ``where_op`` / ``where_value``, and the page takes both.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp_session import get_session
from multidict import MultiMapping

from gateway.usecases.appkeys import CONFIG
from gateway.usecases.session_crate import crate_default
from policy.forms import Field, Form, FormValidationError
from policy.principal import Principal, Role
from policy.rocrate import crate_key
from policy.session_search import Facet, facets, free_text
from policy.sessions import (
    WHERE_CONDITION,
    Place,
    SessionError,
    SessionInvalid,
    SessionNotAllowed,
    SessionNotFound,
    is_session_id,
    next_prefix,
    normalise_prefix,
    parse_where,
    session_status,
    title_of,
)
from policy.store.base import FieldFilter, SessionPage, SessionQuery, SessionRecord
from ui.api import rocrate
from ui.api.common import services
from ui.api.errors import ApiError
from ui.api.sessions import (
    MAX_CONDITIONS,
    NOTHING_MATCHES,
    VERIFY_SECONDS,
    bucket_names,
    parse_sort,
    run_session_verify,
    sort_name,
)
from ui.pages.common import Page, PageError, page_user, render
from ui.pages.fields import display_values, input_value, split_errors, values_from_post
from ui.pages.snippets import snippets

#: how many objects the session page lists (the API pages through all of them)
OBJECTS_SHOWN = 500
#: sessions per page of the metadata browser
PAGE_SIZE = 25
_STATES = ("open", "closed", "expired")
#: the operators a condition row offers, with what the chooser shows
OPERATORS = (("=", "is"), ("~", "contains"), (">=", "at least"), ("<=", "at most"))
#: empty rows offered below the conditions in use, so the page works without JavaScript
SPARE_ROWS = 2


# -- the metadata browser ------------------------------------------------------------------------
@dataclass
class ConditionRow:
    """One field condition as the page shows it, and what is wrong with it (if anything)."""

    field: str = ""
    op: str = "="
    value: str = ""
    error: str = ""

    @property
    def where(self) -> str:
        return f"{self.field}{self.op}{self.value}"


def _rows_from_query(q: MultiMapping[str]) -> list[ConditionRow]:
    """The conditions asked for: ``where=`` texts (links, API style) then submitted rows."""
    rows: list[ConditionRow] = []
    for text in q.getall("where", []):
        if not text.strip():
            continue
        match = WHERE_CONDITION.fullmatch(text)
        if match is None:
            rows.append(ConditionRow(field=text.strip(), error="use FIELD=VALUE, >=, <= or ~"))
        else:
            rows.append(ConditionRow(match[1], match[2], match[3].strip()))
    fields, ops, values = (q.getall(f"where_{part}", []) for part in ("field", "op", "value"))
    for index, name in enumerate(fields):
        op = ops[index] if index < len(ops) else "="
        value = values[index] if index < len(values) else ""
        row = ConditionRow(name.strip(), op, value.strip())
        if not row.field and not row.value:
            continue  # an unused row
        if op not in dict(OPERATORS):
            row.op, row.error = "=", f"unknown operator {op!r}"
        elif not row.field:
            row.error = "choose a field"
        elif not row.value:
            row.error = "enter a value"
        rows.append(row)
    return rows


def _field_filters(rows: list[ConditionRow], form: Form | None) -> tuple[FieldFilter, ...]:
    """The search conditions of the rows; a row that does not parse gets its error instead."""
    filters: list[FieldFilter] = []
    for row in rows:
        if row.error:
            continue
        try:
            filters.append(parse_where(row.where, form))
        except SessionError as exc:
            # beside its row the field is implied: drop the "form F " and "name: " the message
            # starts with (the row's chooser shows the field's label)
            message = str(exc).removeprefix(f"form {form.name} " if form else "")
            row.error = message.removeprefix(f"{row.field}: ")
    for row in rows[MAX_CONDITIONS:]:
        row.error = row.error or f"at most {MAX_CONDITIONS} conditions"
    return tuple(filters)


def _label(form: Form | None, name: str) -> str:
    """What people call field ``name``: its label in the chosen form, else the name."""
    field = form.field(name) if form is not None else None
    return (field.label or field.name) if field is not None else name


def _sort_problem(sort: str, form: Form | None) -> str | None:
    """Why the page cannot sort by ``sort`` (a field of no chosen form), or None."""
    field = parse_sort(sort).get("sort_field")
    if field is None:
        return None
    if form is None:
        return f"Choose a form to sort by its field {field!r}."
    if form.field(field) is None:
        return f"Form {form.name} has no field {field!r} to sort by."
    return None


async def browse_sessions(request: web.Request) -> web.StreamResponse:
    q = request.query
    svc = services(request)
    names = ("form", "owner", "bucket", "state", "created_from", "created_to", "sort")
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
    rows = _rows_from_query(q)
    fields = _field_filters(rows, form)
    # the banner sits above the form: it names each bad condition by its field's label, and
    # its link leads to the rows (marked in red beside each)
    problems.extend(
        f"{_label(form, row.field) or 'A condition'}: {row.error}." for row in rows if row.error
    )
    text = q.get("q", "").strip()
    any_of = free_text(text, [form] if form else forms)
    if text and not any_of:
        any_of = NOTHING_MATCHES
    sort = filters["sort"] or "-created"
    # not a reason to show nothing (e.g. the form was changed under a field sort): say so and
    # sort newest first instead
    sort_problem = _sort_problem(sort, form)
    if sort_problem is not None:
        sort = filters["sort"] = "-created"
    result = SessionPage([], 0)
    found_facets: list[Facet] = []
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
                any_of=any_of,
                **parse_sort(sort),
                limit=PAGE_SIZE,
                offset=(page_no - 1) * PAGE_SIZE,
            )
            result = await svc.sessions.search(query)
            if form is not None:
                found_facets = await facets(svc.store, query, form)
        except (ValueError, SessionError) as exc:
            problems.append(str(exc))
    usage = await asyncio.gather(*(svc.sessions.usage(s.id) for s in result.sessions))
    # the search ran (a sort it cannot do only falls back to newest first, and says so): the
    # count and the export links are shown
    searched = not problems
    if sort_problem is not None:
        problems.append(sort_problem)
    pages = max(1, math.ceil(result.total / PAGE_SIZE))
    active: dict[str, Any] = {k: v for k, v in filters.items() if v}
    if text:
        active["q"] = text
    wheres = [row.where for row in rows if not row.error]
    if wheres:
        active["where"] = wheres
    columns = _columns(q, form)
    if form is not None and q.get("cols"):
        # the column chooser's choice, kept by every link (an empty choice too)
        active["cols"] = "chosen"
        active["col"] = [f.name for f in columns]

    def facet_url(name: str, value: Any) -> str | None:
        """The page with this facet value as a condition (None when it is one already)."""
        where = f"{name}={_shown(value)}"
        if where in wheres:
            return None
        return link({**active, "where": [*wheres, where]})

    def unfacet_url(name: str, value: Any) -> str:
        where = f"{name}={_shown(value)}"
        return link({**active, "where": [w for w in wheres if w != where]})

    def link(params: dict[str, Any]) -> str:
        return "?" + urlencode(params, doseq=True)

    def page_url(n: int) -> str:
        return link({**active, "page": n})

    def sort_url(name: str) -> str:
        # a second click on the sorted column flips the order; a new column starts descending
        flipped = name if sort == f"-{name}" else f"-{name}"
        return link({**active, "sort": flipped})

    def export_url(fmt: str) -> str:
        wanted = {k: v for k, v in active.items() if k not in ("created_from", "created_to")}
        for bound in ("created_from", "created_to"):
            if (day := _day(filters[bound], end=bound == "created_to")) is not None:
                wanted[bound] = day.isoformat().replace("+00:00", "Z")
        return "/_minimo/api/v1/sessions/export?" + urlencode({**wanted, "format": fmt}, doseq=True)

    spare = max(SPARE_ROWS, 3 - len(rows))
    return await render(
        request,
        "sessions.html",
        {
            "filters": filters,
            "states": _STATES,
            "forms": forms,
            "form": form,
            "form_fields": {f.name: [[x.name, x.label or x.name] for x in f.fields] for f in forms},
            "all_fields": sorted({x.name for f in forms for x in f.fields}),
            "rows": [*rows, *(ConditionRow() for _ in range(spare))],
            "operators": OPERATORS,
            "problems": problems,
            "searched": searched,
            "sessions": result.sessions,
            "total": result.total,
            "page": page_no,
            "pages": pages,
            "sort": sort,
            "sort_name": sort_name,
            "page_url": page_url,
            "sort_url": sort_url,
            "export_url": export_url,
            "now": datetime.now(UTC),
            "shown": _shown,
            "text": text,
            "columns": columns,
            "usage": dict(zip((s.id for s in result.sessions), usage, strict=True)),
            "facets": found_facets,
            "facet_url": facet_url,
            "unfacet_url": unfacet_url,
        },
    )


def _columns(q: MultiMapping[str], form: Form | None) -> list[Field]:
    """The chosen form's fields shown as columns: those the column chooser ticked (``cols`` says
    it was used, so ticking none shows none), else every field."""
    if form is None:
        return []
    if not q.get("cols"):
        return list(form.fields)
    wanted = set(q.getall("col", []))
    return [f for f in form.fields if f.name in wanted]


def _day(text: str, *, end: bool) -> datetime | None:
    """A YYYY-MM-DD bound as an instant (UTC): the day's start, or its last moment when ``end``."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return day + timedelta(days=1, microseconds=-1) if end else day


def _shown(value: Any) -> str:
    """A stored value as text for a table cell or a condition (lists joined, booleans as yes/no,
    which a boolean field's search reads back)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


# -- new session ---------------------------------------------------------------------------------
async def new_session_page(request: web.Request) -> web.StreamResponse:
    """Step 1: the place (bucket and prefix, chosen from where the policy lets this user open
    sessions or typed), checked and normalised here; step 2: the form, once the place is
    good."""
    who = page_user(request)
    q = request.query
    bucket, prefix, form_name = q.get("bucket", "").strip(), q.get("prefix", ""), q.get("form", "")
    svc = services(request)
    places = await svc.sessions.places(who, await bucket_names(request))
    forms: list[Form] = []
    problem = prefix_error = None
    if bucket and prefix:
        try:
            prefix = normalise_prefix(prefix)
        except SessionInvalid as exc:
            prefix_error = str(exc).removeprefix("prefix: ")
    if bucket and prefix_error is None:
        forms, problem = await svc.sessions.allowed_forms(who, bucket, prefix)
    chosen = next((f for f in forms if f.name == form_name), None)
    if chosen is None and len(forms) == 1:
        chosen = forms[0]
    values = {f.name: input_value(f, f.default) for f in chosen.fields} if chosen else {}
    like_id = q.get("like", "")
    like = await svc.sessions.get(like_id) if is_session_id(like_id) else None
    if chosen is not None and like is not None and like.form_name == chosen.name:
        # "open another like this": start from that session's values (the latest form version
        # may have dropped a field; only the fields it still has are filled in)
        for f in chosen.fields:
            if f.name in like.values:
                values[f.name] = input_value(f, like.values[f.name])
    return await render(
        request,
        "session_new.html",
        {
            "bucket": bucket,
            "prefix": prefix,
            "prefix_error": prefix_error,
            "places": places,
            "place_buckets": sorted({p.bucket for p in places}),
            "place_prefixes": rule_prefixes(places, bucket),
            "like": like_id if like is not None else "",
            "forms": forms,
            "form": chosen,
            "problem": problem,
            "values": values,
            "errors": {},
            "general_errors": [],
        },
        status=400 if prefix_error else 200,
    )


async def new_session_submit(request: web.Request) -> web.StreamResponse:
    who = page_user(request)
    data = await request.post()
    bucket = str(data.get("_bucket", ""))
    prefix = str(data.get("_prefix", ""))
    svc = services(request)
    form = await svc.forms.find(str(data.get("_form", "")))
    if form is None:
        raise PageError(400, "Choose one of the forms offered for this place.")
    values = values_from_post(form, data)
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    try:
        session, credential = await svc.sessions.open(
            who, form.name, bucket, prefix or None, values
        )
    except FormValidationError as exc:
        errors, general = split_errors(form, exc)
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
            "prefix_error": None,
            "places": [],
            "place_buckets": [],
            "place_prefixes": [],
            "like": "",
            "forms": [form],
            "form": form,
            "problem": None,
            "values": display_values(form, values),
            "errors": errors,
            "general_errors": general,
        },
        status=400,
    )


# -- one session ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExpiryFacts:
    """How a page speaks of an open session's end: the time left, and whether to warn."""

    left: str
    soon: bool


def time_left(delta: timedelta) -> str:
    """``delta`` for people, to the minute: "3 d 4 h", "2 h 5 min", "12 min"."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else "less than a minute"


def expiry_facts(session: SessionRecord, now: datetime, warning: timedelta) -> ExpiryFacts | None:
    """None unless the session is open; ``soon`` within the --expiry-warning time of its end."""
    if not session.is_open(now):
        return None
    left = session.expires - now
    return ExpiryFacts(time_left(left), left <= warning)


def rule_prefixes(places: Sequence[Place], bucket: str) -> list[str]:
    """The prefixes to propose for ``bucket`` (for every bucket while none is chosen)."""
    return sorted({p.prefix for p in places if p.bucket == bucket or not bucket} - {""})


async def may_open_with(
    request: web.Request, who: Principal, bucket: str, prefix: str, form_name: str
) -> bool:
    """Whether ``who`` may open a session with form ``form_name`` at bucket/prefix."""
    if who.role is Role.READER:
        return False
    forms, _ = await services(request).sessions.allowed_forms(who, bucket, prefix)
    return any(f.name == form_name for f in forms)


async def _session_or_404(request: web.Request) -> SessionRecord:
    sid = request.match_info["id"]
    session = await services(request).sessions.get(sid) if is_session_id(sid) else None
    if session is None:
        raise PageError(404, f"There is no session {sid}.")
    return session


async def session_page(request: web.Request) -> web.StreamResponse:
    session = await _session_or_404(request)
    return await _session_view(request, page_user(request), session)


async def _session_view(
    request: web.Request,
    who: Principal,
    session: SessionRecord,
    *,
    close_error: str | None = None,
    extend_error: str | None = None,
    ro_crate_ticked: bool | None = None,
    verify: dict[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    """The session page; after a refused close, with the reason next to the Close button."""
    svc = services(request)
    records, more = await svc.sessions.objects(session.id, OBJECTS_SHOWN)
    count, size = await svc.sessions.usage(session.id)
    login = await get_session(request)
    key = login.get("new_key")
    if isinstance(key, dict) and key.get("session") == session.id:
        del login["new_key"]  # shown once
    else:
        key = None
    closed_crate = login.get("closed_crate")
    if isinstance(closed_crate, dict) and closed_crate.get("session") == session.id:
        del login["closed_crate"]  # the close's result, shown once
    else:
        closed_crate = None
    config = request.config_dict[CONFIG]
    # the S3 endpoint for the snippets: this page's origin, unless the UI has a host name of its
    # own (--ui-url), where objects are never read
    endpoint = config.base_url if config.ui_url else str(request.url.origin())
    form = await svc.forms.find(session.form_name, session.form_version)
    now = datetime.now(UTC)
    mine = who.role is Role.ADMIN or who.user == session.owner
    may_close = session.state == "open" and mine
    if may_close and ro_crate_ticked is None:
        ro_crate_ticked = session.is_open(now) and await crate_default(svc, session)
    crate = await svc.store.get_object_record(session.bucket, crate_key(session))
    proposed = next_prefix(session.prefix)
    return await render(
        request,
        "session.html",
        {
            "s": session,
            "title": title_of(session),
            "expiry": expiry_facts(session, now, config.expiry_warning),
            "may_extend": session.is_open(now) and mine,
            "extend_error": extend_error,
            # "open another like this": only for who may open one there with this form
            "another_prefix": proposed,
            "may_open_another": await may_open_with(
                request, who, session.bucket, proposed, session.form_name
            ),
            "state": session_status(session, now),
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
            "may_close": may_close,
            "may_upload": session.is_open(now) and mine,
            # a crate can only be written into a session that still takes writes
            "may_write_crate": session.is_open(now),
            "ro_crate_ticked": ro_crate_ticked,
            "crate_target": f"s3://{session.bucket}/{crate_key(session)}",
            "crate": crate if crate is not None and crate.session_id == session.id else None,
            "closed_crate": closed_crate,
            "close_error": close_error,
            # the answer of a Verify just run (ui.api.sessions.run_session_verify)
            "verify": verify,
        },
        status=status,
    )


async def close_session(request: web.Request) -> web.StreamResponse:
    who = page_user(request)
    data = await request.post()
    session = await _session_or_404(request)
    # An unticked checkbox sends nothing: the page always says what it wants.
    ro_crate = data.get("ro_crate") == "on"
    try:
        result = await rocrate.close_session(request, who, session.id, ro_crate)
    except ApiError as exc:
        if exc.status in (403, 404):
            raise PageError(exc.status, exc.message) from None
        return await _session_view(
            request,
            who,
            session,
            close_error=exc.message,
            ro_crate_ticked=ro_crate,
            status=exc.status if exc.status < 500 else 502,
        )
    if result.crate_written:
        login = await get_session(request)
        login["closed_crate"] = {"session": session.id, "url": result.crate}
    raise web.HTTPSeeOther(str(request.app.router["session"].url_for(id=session.id)))


async def extend_session(request: web.Request) -> web.StreamResponse:
    """Extend an open session by the time chosen; a refusal is shown next to the button."""
    who = page_user(request)
    session = await _session_or_404(request)
    by = str((await request.post()).get("by", "")).strip() or None
    try:
        await services(request).sessions.extend(who, session.id, by)
    except SessionNotFound as exc:
        raise PageError(404, str(exc)) from None
    except SessionNotAllowed as exc:
        raise PageError(403, str(exc)) from None
    except SessionError as exc:
        message = str(exc).removeprefix("by: ")
        message = message[:1].upper() + message[1:]  # a sentence on its own beside the button
        return await _session_view(request, who, session, extend_error=message, status=400)
    raise web.HTTPSeeOther(str(request.app.router["session"].url_for(id=session.id)))


async def verify_session(request: web.Request) -> web.StreamResponse:
    """Admins: verify the session's objects now (bounded in time) and show what was found;
    the records keep each result, so the object list below shows it too."""
    session = await _session_or_404(request)
    # "Verify the rest" after a run that ran out of time skips what was verified just before
    resume = (await request.post()).get("resume") == "1"
    older_than = timedelta(hours=1) if resume else None
    result = await run_session_verify(request, session.id, VERIFY_SECONDS, older_than)
    return await _session_view(request, page_user(request), session, verify=result)


ROUTES = [
    Page("GET", "/sessions", browse_sessions, "reader", "sessions"),
    # before /sessions/{id}, which would take "new" for an id
    Page("GET", "/sessions/new", new_session_page, "uploader", "new_session"),
    Page("POST", "/sessions/new", new_session_submit, "uploader", "new_session"),
    Page("GET", "/sessions/{id}", session_page, "reader", "session"),
    Page("POST", "/sessions/{id}/close", close_session, "uploader", "close_session"),
    Page("POST", "/sessions/{id}/extend", extend_session, "uploader", "extend_session"),
    Page("POST", "/sessions/{id}/verify", verify_session, "admin", "verify_session"),
]
