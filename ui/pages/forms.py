"""The admin's form pages (twin of ui/api/forms.py): create, new version, import of the old
minimo text format, live preview.

Definitions are edited as JSON, the same document ``minimo form create --file`` reads, so what
an admin learns on the page works in scripts too.

The preview pane renders a draft with the new-session page's own field macro, so it cannot
drift from what users will see. It is rendered with the page (and again by the "Preview"
buttons without JavaScript); static/form-preview.js fetches just the pane from
``POST /admin/forms/preview`` while the admin types. Control names in the pane's form start
with "_": field names cannot (they match ``[a-z][a-z0-9_]*``), so they never collide.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from policy.catalog import CatalogError
from policy.field_types import FIELD_TYPES_BY_NAME
from policy.forms import Form, FormDefinitionError
from ui.api.common import services
from ui.api.forms import (
    Draft,
    as_saved,
    definition_from_json,
    draft_from_import,
    draft_from_json,
    value_errors,
)
from ui.pages.common import Page, page_user, render
from ui.pages.fields import display_values, input_value, values_from_post

EXAMPLE_FORM = {
    "name": "my-form",
    "title": "My form",
    "description": "What these data are",
    "fields": [
        {"name": "operator", "label": "Operator", "type": "text", "required": True},
        {"name": "instrument", "type": "choice", "choices": ["a", "b"], "required": True},
    ],
}


# "fields[2] (depth): min: must be ..." -> the field the problem belongs to, and the rest
_FIELD_PROBLEM = re.compile(r"fields\[(\d+)\](?: \(([^)]*)\))?: (.+)", re.DOTALL)


@dataclass
class Preview:
    """Everything the preview pane (_form_preview.html) shows."""

    #: "json" (the definition box) or "import" (the original minimo's format)
    source: str
    definition: str = ""
    import_name: str = ""
    import_text: str = ""
    form: Form | None = None
    #: the draft's problems grouped for reading: (where, [messages])
    problems: list[tuple[str, list[str]]] = field(default_factory=list)
    #: what saving would do (create, new version, nothing)
    note: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    #: whether the values were checked ("Check these values")
    checked: bool = False


def group_problems(problems: list[str]) -> list[tuple[str, list[str]]]:
    """Problems by the field they concern, in the order they were found; the rest under
    "Form" (the JSON syntax and the form's own keys) or, for imports, as they are."""
    groups: dict[str, list[str]] = {}
    for problem in problems:
        match = _FIELD_PROBLEM.fullmatch(problem)
        if match:
            index, name, message = match.groups()
            where = f"Field {int(index) + 1}" + (f" ({name})" if name else "")
        else:
            where, message = "Form", problem
        groups.setdefault(where, []).append(message)
    return list(groups.items())


async def build_preview(
    request: web.Request, source: str, data: MultiDictProxy[Any] | None = None, **texts: str
) -> Preview:
    """The pane for a draft. ``data`` (a POSTed pane) carries values typed into the preview;
    with ``check`` they are validated against the draft, otherwise they are only kept."""
    preview = Preview(source=source, **texts)
    draft: Draft = (
        draft_from_import(preview.import_name.strip(), preview.import_text)
        if source == "import"
        else draft_from_json(preview.definition)
    )
    if draft.form is None:
        preview.problems = group_problems(draft.problems)
        return preview
    form, preview.note = await as_saved(services(request).forms, draft.form)
    preview.form = form
    if data is None or "_keep" not in data:
        preview.values = {f.name: input_value(f, f.default) for f in form.fields}
        return preview
    values = values_from_post(form, data)
    preview.values = display_values(form, values)
    # "_check" from form-preview.js; "_action=check" is the pane's own submit without it
    if "_check" in data or data.get("_action") == "check":
        preview.checked = True
        preview.errors = value_errors(form, values)
    return preview


async def _posted_preview(request: web.Request, data: MultiDictProxy[Any]) -> Preview:
    """The preview a posted pane asks for (the texts come from its hidden fields or, from
    form-preview.js, from the boxes as they are now)."""
    source = "import" if data.get("_source") == "import" else "json"
    return await build_preview(
        request,
        source,
        data,
        definition=str(data.get("_definition", "")),
        import_name=str(data.get("_import_name", "")),
        import_text=str(data.get("_import_text", "")),
    )


async def _forms_page(
    request: web.Request, status: int = 200, **context: Any
) -> web.StreamResponse:
    svc = services(request)
    base = {
        "forms": await svc.forms.list(),
        "definition": json.dumps(EXAMPLE_FORM, indent=2),
        "import_name": "",
        "import_text": "",
        "problems": [],
        "saved": None,
        # what form-builder.js offers per type: the constraint keys each type takes
        "type_keys": {name: sorted(t.constraints) for name, t in FIELD_TYPES_BY_NAME.items()},
    }
    page = {**base, **context}
    if "preview" not in page:
        # the page opens with the definition box previewed, JavaScript or not
        page["preview"] = await build_preview(request, "json", definition=page["definition"])
    return await render(request, "admin_forms.html", page, status)


async def forms_page(request: web.Request) -> web.StreamResponse:
    edit = request.query.get("edit")
    context: dict[str, Any] = {}
    if edit:
        form = await services(request).forms.find(edit)
        if form is not None:
            definition = form.to_dict()
            definition.pop("version", None)
            context["definition"] = json.dumps(definition, indent=2, ensure_ascii=False)
    return await _forms_page(request, **context)


async def forms_preview(request: web.Request) -> web.StreamResponse:
    """The preview pane alone, for static/form-preview.js (CSRF token in the header)."""
    data = await request.post()
    preview = await _posted_preview(request, data)
    return await render(request, "_form_preview.html", {"preview": preview})


async def _preview_page(request: web.Request, data: MultiDictProxy[Any]) -> web.StreamResponse:
    """The whole page around a posted preview pane ("Check these values" without JavaScript)."""
    preview = await _posted_preview(request, data)
    texts = {"import_name": preview.import_name, "import_text": preview.import_text}
    if preview.source == "json":
        texts = {"definition": preview.definition}
    return await _forms_page(request, preview=preview, **texts)


async def forms_submit(request: web.Request) -> web.StreamResponse:
    who = page_user(request)
    data = await request.post()
    forms = services(request).forms
    if data.get("_action") == "check":
        return await _preview_page(request, data)
    action = data.get("action")
    if action == "preview":
        text = str(data.get("definition", ""))
        preview = await build_preview(request, "json", definition=text)
        return await _forms_page(request, definition=text, preview=preview)
    if action == "preview_import":
        texts = {
            "import_name": str(data.get("import_name", "")),
            "import_text": str(data.get("import_text", "")),
        }
        preview = await build_preview(request, "import", **texts)
        return await _forms_page(request, preview=preview, **texts)
    if action == "import":
        name = str(data.get("import_name", "")).strip()
        text = str(data.get("import_text", ""))
        try:
            form = await forms.import_text(name, text, who)
        except FormDefinitionError as exc:
            return await _forms_page(
                request, 400, problems=exc.problems, import_name=name, import_text=text
            )
        except CatalogError as exc:
            return await _forms_page(
                request, 400, problems=[str(exc)], import_name=name, import_text=text
            )
        return await _forms_page(request, saved=form)
    text = str(data.get("definition", ""))
    definition, problem = definition_from_json(text)
    if definition is None:
        return await _forms_page(request, 400, problems=[problem], definition=text)
    try:
        # a known name makes a new version: forms are never edited in place
        name = definition.get("name")
        exists = isinstance(name, str) and await forms.exists(name)
        form = await (forms.update if exists else forms.create)(definition, who)
    except FormDefinitionError as exc:
        return await _forms_page(request, 400, problems=exc.problems, definition=text)
    except CatalogError as exc:
        return await _forms_page(request, 400, problems=[str(exc)], definition=text)
    return await _forms_page(request, saved=form, definition=text)


ROUTES = [
    Page("GET", "/admin/forms", forms_page, "admin", "admin_forms"),
    Page("POST", "/admin/forms", forms_submit, "admin", "admin_forms"),
    Page(
        "POST",
        "/admin/forms/preview",
        forms_preview,
        "admin",
        "admin_forms_preview",
        csrf="header",
    ),
]
