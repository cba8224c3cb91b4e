"""``/forms``: list, create, new versions, version history, JSON Schema, old-format import, and
the preview of a draft (what saving would store, and how values fare against it).

The draft helpers (:func:`draft_from_json`, :func:`draft_from_import`, :func:`as_saved`) are
shared with the admin forms page, so the page's live preview and this API judge drafts alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from policy.catalog import CatalogError, FormService, FormVersion
from policy.form_import import import_text as parse_old_form
from policy.forms import (
    Form,
    FormDefinitionError,
    FormValidationError,
    parse_form,
    validate_values,
)
from ui.api.common import (
    Route,
    created,
    iso,
    json_body,
    ok,
    principal,
    services,
    text_field,
)
from ui.api.errors import ApiError, bad_request, not_found, problems_as_fields
from ui.api.openapi import FORM_NAME_SCHEMA

FORM_REF = {"$ref": "#/components/schemas/Form"}


def _definition_error(exc: FormDefinitionError) -> ApiError:
    return ApiError(400, "invalid_form", str(exc), problems_as_fields(exc.problems, "definition"))


def _version(request: web.Request) -> int:
    raw = request.match_info["version"]
    # isascii too: str.isdigit() is also true for "²", which int() refuses (that was a 500)
    if not (raw.isascii() and raw.isdigit()) or int(raw[:20]) < 1:
        raise bad_request("the version must be a positive integer", {"version": ["not a number"]})
    # int() refuses more than 4300 digits (a 500); no store holds a version past 64 bits, and
    # the catalog answers "no such version" for one
    return int(raw) if len(raw) <= 20 else 2**64


def _version_json(version: FormVersion) -> dict[str, Any]:
    return {
        "version": version.form.version,
        "created": iso(version.created),
        "created_by": version.created_by,
        "form": version.form.to_dict(),
    }


async def list_forms(request: web.Request) -> web.StreamResponse:
    forms = await services(request).forms.list()
    return ok({"forms": [f.to_dict() for f in forms]})


async def create_form(request: web.Request) -> web.StreamResponse:
    data = await json_body(request)
    try:
        form = await services(request).forms.create(data, principal(request))
    except FormDefinitionError as exc:
        raise _definition_error(exc) from None
    except CatalogError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return created(form.to_dict())


async def get_form(request: web.Request) -> web.StreamResponse:
    try:
        form = await services(request).forms.get(request.match_info["name"])
    except CatalogError as exc:
        raise not_found(str(exc)) from None
    return ok(form.to_dict())


async def update_form(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    data = await json_body(request)
    if data.get("name", name) != name:
        raise bad_request(
            "the body names another form than the URL", {"name": [f"must be {name!r}"]}
        )
    data = {**data, "name": name}
    data.pop("version", None)  # the store numbers versions
    try:
        form = await services(request).forms.update(data, principal(request))
    except FormDefinitionError as exc:
        raise _definition_error(exc) from None
    except CatalogError as exc:
        raise not_found(str(exc)) from None
    return ok(form.to_dict())


async def list_versions(request: web.Request) -> web.StreamResponse:
    try:
        versions = await services(request).forms.versions(request.match_info["name"])
    except CatalogError as exc:
        raise not_found(str(exc)) from None
    return ok({"versions": [_version_json(v) for v in versions]})


async def get_version(request: web.Request) -> web.StreamResponse:
    try:
        form = await services(request).forms.get(request.match_info["name"], _version(request))
    except CatalogError as exc:
        raise not_found(str(exc)) from None
    return ok(form.to_dict())


async def get_schema(request: web.Request) -> web.StreamResponse:
    try:
        schema = await services(request).forms.schema(request.match_info["name"], _version(request))
    except CatalogError as exc:
        raise not_found(str(exc)) from None
    return ok(schema)


async def import_form(request: web.Request) -> web.StreamResponse:
    data = await json_body(request)
    name = text_field(data, "name") or ""
    text = text_field(data, "text") or ""
    try:
        form = await services(request).forms.import_text(name, text, principal(request))
    except FormDefinitionError as exc:  # FormImportError is one
        raise ApiError(
            400, "invalid_form", str(exc), problems_as_fields(exc.problems, "text")
        ) from None
    return created(form.to_dict())


# -- drafts: what an admin is typing, judged without storing anything ---------------------------


@dataclass(frozen=True)
class Draft:
    """A form definition being edited: the form it makes, or every problem it has."""

    form: Form | None
    problems: list[str] = field(default_factory=list)


def draft_from_definition(definition: object) -> Draft:
    try:
        return Draft(parse_form(definition))  # type: ignore[arg-type]  # parse_form checks it
    except FormDefinitionError as exc:
        return Draft(None, exc.problems)


def definition_from_json(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON text of the definition box as an object, or the problem with it (a syntax
    error says where it is)."""
    try:
        definition = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
    except RecursionError:  # thousands of nested brackets: no form is like that
        return None, "not JSON that a form could be: nested too deeply"
    if not isinstance(definition, dict):
        return None, "a form definition must be a JSON object ({...})"
    return definition, None


def draft_from_json(text: str) -> Draft:
    """A draft from the JSON text of the definition box."""
    definition, problem = definition_from_json(text)
    if definition is None:
        return Draft(None, [problem or "no definition"])
    return draft_from_definition(definition)


def draft_from_import(name: str, text: str) -> Draft:
    """A draft from a form file of the original minimo (problems carry line numbers)."""
    try:
        return Draft(parse_old_form(name, text))
    except FormDefinitionError as exc:  # FormImportError is one
        return Draft(None, exc.problems)


def _stored_shape(form: Form) -> dict[str, Any]:
    definition = form.to_dict()
    definition.pop("version", None)
    return definition


async def as_saved(forms: FormService, form: Form) -> tuple[Form, str]:
    """The form numbered as saving it would number it, and a sentence saying so.

    Saving an unchanged definition makes no new version (see FormService.update), so the draft
    then keeps the stored version's number.
    """
    latest = await forms.find(form.name)
    if latest is None:
        return replace(form, version=1), f"Saving creates the form {form.name} (version 1)."
    if _stored_shape(latest) == _stored_shape(form):
        note = f"Same as the stored version {latest.version}: saving makes no new version."
        return replace(form, version=latest.version), note
    version = latest.version + 1
    note = (
        f"Saving makes version {version} of {form.name}; sessions opened with earlier "
        "versions keep them."
    )
    return replace(form, version=version), note


def value_errors(form: Form, values: Mapping[str, Any]) -> dict[str, list[str]]:
    """What is wrong with ``values`` for ``form``, by field ({} when they are valid)."""
    try:
        validate_values(form, values)
    except FormValidationError as exc:
        return exc.errors
    return {}


def _preview_draft(data: Mapping[str, Any]) -> tuple[Draft, str]:
    """The draft named by a preview body and the field its problems belong to."""
    has_definition, has_import = "definition" in data, "import_text" in data
    if has_definition == has_import:
        message = "send either definition (a form definition) or import_text (and name)"
        raise bad_request(message, {"definition": [message]})
    if has_definition:
        if not isinstance(data["definition"], dict):
            raise bad_request(
                "definition must be a JSON object", {"definition": ["must be a JSON object"]}
            )
        return draft_from_definition(data["definition"]), "definition"
    text = text_field(data, "import_text") or ""
    name = text_field(data, "name") or ""
    return draft_from_import(name, text), "import_text"


async def preview_form(request: web.Request) -> web.StreamResponse:
    data = await json_body(request)
    draft, where = _preview_draft(data)
    values = data.get("values")
    if values is not None and not isinstance(values, dict):
        raise bad_request("values must be a JSON object", {"values": ["must be a JSON object"]})
    if draft.form is None:
        raise ApiError(
            400,
            "invalid_form",
            "invalid form definition: " + "; ".join(draft.problems),
            problems_as_fields(draft.problems, where),
        )
    form, _ = await as_saved(services(request).forms, draft.form)
    errors = value_errors(form, values) if values is not None else {}
    return ok({"form": form.to_dict(), "schema": form.json_schema(), "errors": errors})


_NAME = ("name", {"type": "string"}, "")
_DEFINITION = {"$ref": "#/components/schemas/FormDefinition"}

ROUTES = [
    Route(
        "GET",
        "/forms",
        list_forms,
        "List forms (latest versions)",
        "reader",
        "forms",
        response={"type": "object", "properties": {"forms": {"type": "array", "items": FORM_REF}}},
    ),
    Route(
        "POST",
        "/forms",
        create_form,
        "Create a form (version 1)",
        "admin",
        "forms",
        body=_DEFINITION,
        response=FORM_REF,
        status=201,
    ),
    Route(
        "POST",
        "/forms/import",
        import_form,
        "Import a form in the original minimo text format",
        "admin",
        "forms",
        body={
            "type": "object",
            "required": ["name", "text"],
            "properties": {"name": FORM_NAME_SCHEMA, "text": {"type": "string"}},
            "additionalProperties": False,
        },
        response=FORM_REF,
        status=201,
    ),
    Route(
        "POST",
        "/forms/preview",
        preview_form,
        "Preview a draft form (nothing is stored): the normalised definition, numbered as saving "
        "would number it, its JSON Schema, and the errors of optional values; an invalid draft "
        "is a 400 listing its problems",
        "admin",
        "forms",
        body={
            "type": "object",
            "description": "either definition, or import_text with name (the original minimo "
            "text format)",
            "properties": {
                "definition": {"type": "object", "description": "a form definition (draft)"},
                "import_text": {"type": "string"},
                "name": {"type": "string", "description": "the form's name, with import_text"},
                "values": {"type": "object", "description": "values to check against the draft"},
            },
            "oneOf": [{"required": ["definition"]}, {"required": ["import_text", "name"]}],
            "additionalProperties": False,
        },
        response={
            "type": "object",
            "required": ["form", "schema", "errors"],
            "properties": {
                "form": FORM_REF,
                "schema": {"type": "object", "description": "a JSON Schema document"},
                "errors": {
                    "type": "object",
                    "description": "problems of the values, by field ({} when valid or none sent)",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    ),
    Route(
        "GET",
        "/forms/{name}",
        get_form,
        "Show a form's latest version",
        "reader",
        "forms",
        response=FORM_REF,
    ),
    Route(
        "PUT",
        "/forms/{name}",
        update_form,
        "Store a new version of a form (unchanged definitions make none)",
        "admin",
        "forms",
        body=_DEFINITION,
        response=FORM_REF,
    ),
    Route(
        "GET",
        "/forms/{name}/versions",
        list_versions,
        "List a form's versions",
        "reader",
        "forms",
        response={
            "type": "object",
            "properties": {
                "versions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "version": {"type": "integer"},
                            "created": {"type": "string", "format": "date-time"},
                            "created_by": {"type": "string"},
                            "form": FORM_REF,
                        },
                    },
                }
            },
        },
    ),
    Route(
        "GET",
        "/forms/{name}/versions/{version}",
        get_version,
        "Show one form version",
        "reader",
        "forms",
        response=FORM_REF,
    ),
    Route(
        "GET",
        "/forms/{name}/versions/{version}/schema",
        get_schema,
        "The JSON Schema (2020-12) of one form version",
        "reader",
        "forms",
        response={"type": "object", "description": "a JSON Schema document"},
    ),
]
