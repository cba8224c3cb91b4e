"""``GET /_minimo/api/v1/openapi.json``: an OpenAPI 3.1 document generated from the route list.

Paths, methods, bodies, responses and query parameters come from the same :class:`Route` objects
the router registers, so every served route is described and nothing else is (a test checks
both directions). The shared record schemas live here.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from gateway.usecases.verify import RESULTS as VERIFY_RESULTS
from policy.forms import FIELD_NAME, FIELD_TYPES, FORM_NAME, MAX_NAME_LENGTH, RESERVED_FORM_NAMES

# the very patterns the services check names with, so the document cannot promise other ones
from policy.identity import _USER_NAME as USER_NAME
from policy.passwords import MIN_PASSWORD_LENGTH
from policy.sessions import _BUCKET as BUCKET_NAME
from policy.sessions import SESSION_ID
from ui.api.common import API_PREFIX, Route, Schema, router_path
from ui.security import COOKIE_NAME, CSRF_HEADER, SAFE_METHODS

_PARAM = re.compile(r"\{([A-Za-z_]+)(?::[^}]*)?\}")
_DT = {"type": "string", "format": "date-time"}
_DT_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_STR = {"type": "string"}
#: the fields whose values make a session's title (policy.forms.Form.session_title)
_SESSION_TITLE = {
    "type": "array",
    "items": {"type": "string"},
    "description": "fields whose values name each session, e.g. ['mouse_id', 'day']",
}


def anchored(pattern: re.Pattern[str]) -> Schema:
    """A string schema matching what ``pattern.fullmatch`` accepts (JSON Schema patterns
    search, so they need anchors)."""
    return {"type": "string", "pattern": f"^(?:{pattern.pattern})$"}


FORM_NAME_SCHEMA = {
    **anchored(FORM_NAME),
    "maxLength": MAX_NAME_LENGTH,
    "not": {"enum": sorted(RESERVED_FORM_NAMES)},
}
USER_NAME_SCHEMA = anchored(USER_NAME)
BUCKET_NAME_SCHEMA = anchored(BUCKET_NAME)
PASSWORD_SCHEMA = {"type": "string", "minLength": MIN_PASSWORD_LENGTH}

#: path parameters by (tag, name): what the handlers accept, so generated requests (and
#: readers of the document) know an id from a name
_PATH_PARAMS: dict[tuple[str, str], Schema] = {
    ("forms", "name"): FORM_NAME_SCHEMA,
    ("forms", "version"): {"type": "integer", "minimum": 1},
    ("users", "name"): USER_NAME_SCHEMA,
    ("sessions", "id"): anchored(SESSION_ID),
    ("data", "bucket"): BUCKET_NAME_SCHEMA,
    ("objects", "bucket"): BUCKET_NAME_SCHEMA,
    ("objects", "key"): {"type": "string", "minLength": 1},
    ("keys", "access_key"): {"type": "string", "minLength": 1},
}

COMPONENT_SCHEMAS: dict[str, Schema] = {
    "Role": {"enum": ["admin", "uploader", "reader"]},
    "FieldErrors": {
        "type": "object",
        "additionalProperties": {"type": "array", "items": _STR},
        "description": "field name -> messages",
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": _STR,
                    "message": _STR,
                    "fields": {"$ref": "#/components/schemas/FieldErrors"},
                },
            }
        },
    },
    "Field": {
        "type": "object",
        "required": ["name", "type"],
        "properties": {
            "name": {**anchored(FIELD_NAME), "maxLength": MAX_NAME_LENGTH},
            "label": _STR,
            "type": {"enum": list(FIELD_TYPES)},
            "required": {"type": "boolean"},
            "help": _STR,
            "default": {},
            "choices": {"type": "array", "items": _STR},
            "min": {"type": ["number", "string"]},
            "max": {"type": ["number", "string"]},
            "pattern": _STR,
            "max_length": {"type": "integer"},
        },
    },
    "FormDefinition": {
        "type": "object",
        "required": ["name", "fields"],
        "properties": {
            "name": FORM_NAME_SCHEMA,
            "title": _STR,
            "description": _STR,
            "fields": {"type": "array", "items": {"$ref": "#/components/schemas/Field"}},
            "session_title": _SESSION_TITLE,
        },
    },
    "Form": {
        "type": "object",
        "required": ["name", "title", "version", "fields"],
        "properties": {
            "name": _STR,
            "title": _STR,
            "description": _STR,
            "version": {"type": "integer", "minimum": 1},
            "fields": {"type": "array", "items": {"$ref": "#/components/schemas/Field"}},
            "session_title": _SESSION_TITLE,
        },
    },
    "Session": {
        "type": "object",
        "required": [
            "id",
            "title",
            "form",
            "form_version",
            "values",
            "bucket",
            "prefix",
            "owner",
            "state",
        ],
        "properties": {
            "id": _STR,
            "title": {
                "type": "string",
                "description": "what people call it: the values of the form's session_title "
                "fields, or 'form · prefix'",
            },
            "form": _STR,
            "form_version": {"type": "integer"},
            "values": {"type": "object"},
            "bucket": _STR,
            "prefix": _STR,
            "owner": _STR,
            "state": {"enum": ["open", "closed", "expired"]},
            "created": _DT,
            "expires": _DT,
            "closed": _DT_OR_NULL,
            "closed_by": {"type": ["string", "null"]},
            "access_key": {"type": ["string", "null"], "description": "the session key's id"},
        },
    },
    "ObjectRecord": {
        "type": "object",
        "required": ["bucket", "key", "size", "etag", "sha256", "time"],
        "properties": {
            "bucket": _STR,
            "key": _STR,
            "size": {"type": "integer"},
            "etag": _STR,
            "sha256": _STR,
            "content_type": {"type": ["string", "null"]},
            "session_id": {"type": ["string", "null"]},
            "principal": _STR,
            "time": _DT,
            "modified": {
                **_DT,
                "description": "when the bytes last changed (linked data: before it was linked)",
            },
            "linked": {
                **_DT_OR_NULL,
                "description": "when existing data was linked; null for writes through minimo",
            },
            "verified": _DT_OR_NULL,
            "verify_result": {
                "type": ["string", "null"],
                "enum": [*VERIFY_RESULTS, None],
                "description": "what minimo verify last found: ok, or the problem",
            },
        },
    },
    "User": {
        "type": "object",
        "required": ["name", "role"],
        "properties": {
            "name": _STR,
            "role": {"$ref": "#/components/schemas/Role"},
            "created": _DT,
            "deleted": _DT_OR_NULL,
        },
    },
    "Key": {
        "type": "object",
        "required": ["access_key", "owner", "active"],
        "properties": {
            "access_key": _STR,
            "owner": _STR,
            "created": _DT,
            "revoked": _DT_OR_NULL,
            "session_id": {"type": ["string", "null"]},
            "active": {"type": "boolean"},
            "label": {"type": ["string", "null"]},
            "read_only": {"type": "boolean"},
        },
    },
    "AuditEvent": {
        "type": "object",
        "required": ["time", "principal", "action", "target", "outcome"],
        "properties": {
            "time": _DT,
            "principal": _STR,
            "action": _STR,
            "target": _STR,
            "outcome": {"enum": ["allowed", "refused", "ok", "error"]},
            "reason": {"type": ["string", "null"]},
            "details": {"type": "object"},
        },
    },
}

SECURITY_SCHEMES: dict[str, Schema] = {
    "loginCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": COOKIE_NAME,
        "description": "Set by POST /login (browsers). State-changing requests must also send "
        f"the {CSRF_HEADER} header.",
    },
    "csrfToken": {
        "type": "apiKey",
        "in": "header",
        "name": CSRF_HEADER,
        "description": "The csrf_token from POST /login or GET /me; required with the login "
        "cookie on every POST, PUT, PATCH and DELETE.",
    },
    "sigv4": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "AWS Signature Version 4 with a personal access key, service 's3' and "
        "the gateway's region, as for S3 requests, e.g. "
        "curl --aws-sigv4 'aws:amz:us-east-1:s3' --user AK:SK URL. Session keys may only "
        "read their own session.",
    },
}

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def openapi_path(route: Route) -> str:
    """The route's path in OpenAPI syntax (aiohttp's ``{key:.+}`` becomes ``{key}``)."""
    return API_PREFIX + _PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)


def _operation(route: Route, routes: list[Route]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": route.summary,
        "tags": [route.tag],
        "x-minimo-role": route.access,
    }
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _PATH_PARAMS.get((route.tag, name), _STR),
        }
        for name in _PARAM.findall(route.path)
    ]
    for name, schema, description in route.query:
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in route.required_query,
            "schema": schema,
        }
        if description:
            param["description"] = description
        if schema.get("type") == "array":
            param["explode"] = True
        params.append(param)
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {
            "required": not route.body_optional,
            "content": {"application/json": {"schema": route.body}},
        }
    responses: dict[str, Any] = {
        str(route.status): {
            "description": "success",
            "content": {
                media: {"schema": _STR if media.startswith("text/") else route.response}
                for media in route.media
            },
        },
        "400": {"description": "bad input", "content": _ERROR},
    }
    if route.body is not None:
        responses["413"] = {"description": "the body is too large", "content": _ERROR}
        responses["415"] = {"description": "the body is not application/json", "content": _ERROR}
    if route.path == "/me/password":
        responses["429"] = {"description": "too many wrong current passwords", "content": _ERROR}
    if route.access == "public":
        op["security"] = []
        if route.path == "/login":
            responses["401"] = {"description": "wrong user name or password", "content": _ERROR}
            responses["429"] = {"description": "too many failed logins", "content": _ERROR}
    else:
        cookie: dict[str, list[str]] = {"loginCookie": []}
        if route.method not in SAFE_METHODS:
            cookie["csrfToken"] = []
        op["security"] = [cookie, {"sigv4": []}]
        responses["401"] = {"description": "not signed in", "content": _ERROR}
        responses["403"] = {
            "description": "role too low, CSRF token missing, or bad signature",
            "content": _ERROR,
        }
    if "{" in route.path or route.method != "GET":
        responses["404"] = {"description": "not found", "content": _ERROR}
    if route.method in ("POST", "PUT"):
        responses["409"] = {"description": "conflict", "content": _ERROR}
    if router_path(route, routes) != route.path:
        # a parameter taking the name of a fixed sibling path reaches that path instead
        responses["405"] = {
            "description": "the path names a fixed resource (e.g. /forms/preview) that does not "
            "allow this method",
            "content": _ERROR,
        }
    # never a traceback: the same JSON error, its details only in the server's log
    responses["5XX"] = {
        "description": "503 `unavailable` (with Retry-After): a store (metadata, objects) is "
        "unavailable, try again; 507 `storage_full`: a store has no space left; 500 "
        "`internal_error`: a server fault (docs/failures.md)",
        "content": _ERROR,
    }
    op["responses"] = responses
    return op


def build_document(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openapi_path(route), {})[route.method.lower()] = _operation(route, routes)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "minimo JSON API",
            "version": "1",
            "description": "Forms, policy, metadata sessions, object records, users, keys and "
            "the audit log of a minimo gateway. Browsers sign in with POST /login (cookie + "
            f"{CSRF_HEADER}); scripts sign requests with SigV4 and a personal access key.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": COMPONENT_SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    }


def openapi_route(routes: list[Route]) -> Route:
    """The route serving the document of ``routes`` (itself included)."""
    document: dict[str, Any] = {}

    async def openapi(request: web.Request) -> web.StreamResponse:
        if not document:
            document.update(build_document(routes))
        return web.json_response(document)

    return Route(
        "GET",
        "/openapi.json",
        openapi,
        "This OpenAPI document",
        "public",
        "meta",
        response={"type": "object"},
    )
