"""Several experiments at once (twin of ``POST /api/v1/sessions/several``): one page opens one
session per experiment in sub-folders of one folder (policy.several, all or none), then a page
uploads each experiment's files into its own session in one go.

Each experiment's inputs are the form's fields with names prefixed ``e<N>-`` (``-`` never occurs
in a field name, so the prefix cannot collide), rendered by the same ``_fields.html`` as the
new-session page. "Add an experiment" is a submit button of the same form, so the page works
without JavaScript and keeps what was typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from policy.forms import Field, Form, FormValidationError
from policy.principal import Role
from policy.sessions import (
    Place,
    SessionError,
    SessionInvalid,
    is_session_id,
    normalise_prefix,
)
from policy.several import (
    MAX_EXPERIMENTS,
    Experiment,
    ExperimentProblems,
    SeveralInvalid,
    open_several,
)
from policy.store.base import SessionRecord
from ui.api.common import services
from ui.api.sessions import bucket_names
from ui.pages.common import Page, PageError, page_user, render
from ui.pages.fields import display_values, input_value, values_from_post
from ui.pages.sessions import rule_prefixes

#: experiments the page starts with
START_WITH = 2


def _prefix(index: int) -> str:
    return f"e{index + 1}-"


def experiment_fields(form: Form, index: int) -> list[Field]:
    """The form's fields for experiment ``index``: the same fields, their names prefixed."""
    return [replace(f, name=_prefix(index) + f.name) for f in form.fields]


def _posted_experiment(form: Form, data: MultiDictProxy[Any], index: int) -> Experiment:
    """Experiment ``index`` of a POSTed page: its sub-folder and raw values."""
    prefix = _prefix(index)
    own = MultiDict(
        (key.removeprefix(prefix), value)
        for key, value in data.items()
        if key.startswith(prefix) or key == "_tz"
    )
    return Experiment(str(own.get("folder", "")), values_from_post(form, MultiDictProxy(own)))


def _count(text: str) -> int:
    try:
        return min(MAX_EXPERIMENTS, max(1, int(text)))
    except ValueError:
        return START_WITH


async def several_page(request: web.Request) -> web.StreamResponse:
    """Step 1: bucket, folder and form (the folder checked here); step 2: the experiments."""
    who = page_user(request)
    q = request.query
    bucket, folder, form_name = q.get("bucket", "").strip(), q.get("folder", ""), q.get("form", "")
    svc = services(request)
    places = await svc.sessions.places(who, await bucket_names(request))
    forms: list[Form] = []
    problem = folder_error = None
    if bucket and folder:
        try:
            folder = normalise_prefix(folder)
        except SessionInvalid as exc:
            folder_error = str(exc).removeprefix("prefix: ")
        else:
            forms, problem = await svc.sessions.allowed_forms(who, bucket, folder)
    form = next((f for f in forms if f.name == form_name), forms[0] if len(forms) == 1 else None)
    count = _count(q.get("count", str(START_WITH)))
    defaults = {f.name: input_value(f, f.default) for f in form.fields} if form else {}
    experiments = [
        {
            "folder": "",
            "values": {_prefix(i) + k: v for k, v in defaults.items()},
            "errors": {},
            "folder_errors": [],
            "general": [],
        }
        for i in range(count)
    ]
    return await render(
        request,
        "several.html",
        _context(bucket, folder, forms, form, experiments, places=places, bucket_filter=bucket)
        | {"folder_error": folder_error, "problem": problem},
        status=400 if folder_error else 200,
    )


def _context(
    bucket: str,
    folder: str,
    forms: list[Form],
    form: Form | None,
    experiments: list[dict[str, Any]],
    *,
    places: Sequence[Place] = (),
    bucket_filter: str = "",
) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "folder": folder,
        "forms": forms,
        "form": form,
        "experiments": experiments,
        "fields_of": (lambda i: experiment_fields(form, i)) if form else None,
        "places": places,
        "place_buckets": sorted({p.bucket for p in places}),
        "place_prefixes": rule_prefixes(places, bucket_filter),
        "max_experiments": MAX_EXPERIMENTS,
        "folder_error": None,
        "problem": None,
        "general": [],
    }


async def several_submit(request: web.Request) -> web.StreamResponse:
    who = page_user(request)
    data = await request.post()
    bucket, folder = str(data.get("_bucket", "")), str(data.get("_folder", ""))
    svc = services(request)
    form = await svc.forms.find(str(data.get("_form", "")))
    if form is None:
        raise PageError(400, "Choose one of the forms offered for this place.")
    count = _count(str(data.get("_count", "1")))
    asked = [_posted_experiment(form, data, i) for i in range(count)]
    adding = data.get("_more") == "1"
    if adding and count < MAX_EXPERIMENTS:
        asked.append(Experiment("", {}))
    problems: list[ExperimentProblems] = [ExperimentProblems() for _ in asked]
    general: list[str] = []
    if not adding:
        try:
            opened = await open_several(svc.sessions, who, form.name, bucket, folder, asked)
        except SeveralInvalid as exc:
            problems, general = exc.experiments, exc.folder
            wrong = sum(1 for p in problems if p)
            if wrong:
                # the errors sit beside the fields; above them, say so and that nothing opened
                marked = "the experiment" if wrong == 1 else f"the {wrong} experiments"
                general = [*general, f"Nothing was opened: fix {marked} marked below."]
        except (SessionError, FormValidationError) as exc:
            # the policy changed between the check and an open: nothing stays open
            general = [f"Nothing was opened: {exc}"]
        else:
            ids = "&".join(f"id={record.id}" for record, _ in opened)
            raise web.HTTPSeeOther(f"/_minimo/sessions/uploads?{ids}")
    experiments = [
        {
            "folder": e.folder,
            "values": {_prefix(i) + k: v for k, v in display_values(form, dict(e.values)).items()},
            "errors": {_prefix(i) + k: v for k, v in p.values.items()},
            "folder_errors": p.folder,
            "general": p.general,
        }
        for i, (e, p) in enumerate(zip(asked, problems, strict=True))
    ]
    context = _context(bucket, folder, [form], form, experiments) | {"general": general}
    return await render(request, "several.html", context, status=200 if adding else 400)


async def several_uploads(request: web.Request) -> web.StreamResponse:
    """The sessions just opened, each with its own file picker, and one button for all."""
    who = page_user(request)
    svc = services(request)
    now = datetime.now(UTC)
    shown: list[SessionRecord] = []
    for sid in request.query.getall("id", [])[:MAX_EXPERIMENTS]:
        session = await svc.sessions.get(sid) if is_session_id(sid) else None
        mine = session is not None and (who.role is Role.ADMIN or session.owner == who.user)
        if session is not None and mine and session.is_open(now) and session not in shown:
            shown.append(session)
    return await render(request, "several_uploads.html", {"sessions": shown})


ROUTES = [
    Page("GET", "/sessions/several", several_page, "uploader", "several_sessions"),
    Page("POST", "/sessions/several", several_submit, "uploader", "several_sessions"),
    Page("GET", "/sessions/uploads", several_uploads, "uploader", "several_uploads"),
]
