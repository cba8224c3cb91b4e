"""``/forms``: list, create, new versions, version history, JSON Schema, old-format import."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from policy.catalog import CatalogError, FormVersion
from policy.forms import FormDefinitionError
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

FORM_REF = {"$ref": "#/components/schemas/Form"}


def _definition_error(exc: FormDefinitionError) -> ApiError:
    return ApiError(400, "invalid_form", str(exc), problems_as_fields(exc.problems, "definition"))


def _version(request: web.Request) -> int:
    raw = request.match_info["version"]
    if not raw.isdigit() or int(raw) < 1:
        raise bad_request("the version must be a positive integer", {"version": ["not a number"]})
    return int(raw)


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
            "properties": {"name": {"type": "string"}, "text": {"type": "string"}},
        },
        response=FORM_REF,
        status=201,
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
