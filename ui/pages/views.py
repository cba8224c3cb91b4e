"""The page handlers: login/logout, home, new session, session page; mounts the other pages."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from aiohttp_session import get_session

from gateway.usecases.appkeys import CONFIG
from gateway.usecases.session_crate import crate_default
from policy.forms import Form, FormValidationError
from policy.principal import Principal, Role
from policy.rocrate import crate_key
from policy.sessions import SessionError, is_session_id, session_status
from policy.store.base import SessionRecord
from ui.api import rocrate
from ui.api.auth import LoginFailed, LoginRateLimited, sign_in, sign_out
from ui.api.browse import allowed_forms
from ui.api.common import services
from ui.api.errors import ApiError
from ui.pages import admin, data, metadata
from ui.pages.common import PageError, check_csrf, current_user, render, require, safe_next
from ui.pages.fields import display_values, input_value, split_errors, values_from_post
from ui.pages.snippets import snippets
from ui.pages.upload import upload_urls

#: how many objects the session page lists (the API pages through all of them)
OBJECTS_SHOWN = 500


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
    login_page_url = str(request.app.router["login"].url_for())
    who = await current_user(request)
    if who is None:
        # Signed out already (another tab, or the login was ended elsewhere): nothing to end, so
        # no CSRF check is needed, and the user lands where signing out would have taken them.
        raise web.HTTPSeeOther(login_page_url)
    await check_csrf(request, await request.post())
    await sign_out(request, who)
    raise web.HTTPSeeOther(login_page_url)


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
async def new_session_page(request: web.Request) -> web.StreamResponse:
    who = await require(request, "uploader")
    q = request.query
    bucket, prefix, form_name = q.get("bucket", ""), q.get("prefix", ""), q.get("form", "")
    forms: list[Form] = []
    problem = None
    if bucket:
        forms, problem = await allowed_forms(services(request), who, bucket, prefix)
    chosen = next((f for f in forms if f.name == form_name), None)
    if chosen is None and len(forms) == 1:
        chosen = forms[0]
    values = {f.name: input_value(f, f.default) for f in chosen.fields} if chosen else {}
    like_id = q.get("like", "")
    like = await services(request).sessions.get(like_id) if is_session_id(like_id) else None
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
            "forms": forms,
            "form": chosen,
            "problem": problem,
            "values": values,
            "errors": {},
            "general_errors": [],
        },
    )


async def new_session_submit(request: web.Request) -> web.StreamResponse:
    who = await require(request, "uploader")
    data = await request.post()
    await check_csrf(request, data)
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
async def _session_or_404(request: web.Request) -> SessionRecord:
    sid = request.match_info["id"]
    session = await services(request).sessions.get(sid) if is_session_id(sid) else None
    if session is None:
        raise PageError(404, f"There is no session {sid}.")
    return session


async def session_page(request: web.Request) -> web.StreamResponse:
    who = await require(request)
    session = await _session_or_404(request)
    return await _session_view(request, who, session)


async def _session_view(
    request: web.Request,
    who: Principal,
    session: SessionRecord,
    *,
    close_error: str | None = None,
    ro_crate_ticked: bool | None = None,
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
    return await render(
        request,
        "session.html",
        {
            "s": session,
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
        },
        status=status,
    )


async def close_session(request: web.Request) -> web.StreamResponse:
    who = await require(request, "uploader")
    data = await request.post()
    await check_csrf(request, data)
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


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", home, name="home")
    r.add_get("/login", login_page, name="login")
    r.add_post("/login", login_submit)
    r.add_post("/logout", logout, name="logout")
    r.add_get("/sessions/new", new_session_page, name="new_session")
    r.add_post("/sessions/new", new_session_submit)
    r.add_get("/sessions/{id}", session_page, name="session")
    r.add_post("/sessions/{id}/close", close_session, name="close_session")
    r.add_post("/sessions/{id}/upload-urls", upload_urls, name="upload_urls")
    metadata.add_routes(app)
    data.add_routes(app)
    admin.add_routes(app)
    r.add_get("/admin", _to_admin)


async def _to_admin(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/_minimo/admin/")
