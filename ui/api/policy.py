"""``/policy``: the rules in force (TOML source and parsed) and replacing them, as TOML or as
the rules' JSON (the policy page's rule editor's twin), checked the same way."""

from __future__ import annotations

from aiohttp import web

from policy.rules import Policy, PolicyError
from ui.api.common import Route, iso, json_body, ok, principal, services, text_field
from ui.api.errors import ApiError, bad_request


def _policy_json(stored: object) -> dict[str, object]:
    from policy.catalog import PolicyVersion

    if not isinstance(stored, PolicyVersion):
        return {"version": None, "source": "", "rules": [], "created": None, "created_by": None}
    return {
        "version": stored.version,
        "source": stored.source,
        "rules": [rule.to_dict() for rule in stored.policy.rules],
        "created": iso(stored.created),
        "created_by": stored.created_by,
    }


async def get_policy(request: web.Request) -> web.StreamResponse:
    return ok(_policy_json(await services(request).policies.stored()))


async def set_policy(request: web.Request) -> web.StreamResponse:
    data = await json_body(request)
    if ("toml" in data) == ("rules" in data):
        message = "send the policy as toml (text) or as rules (a list of rule objects)"
        raise bad_request(message, {"toml": [message], "rules": [message]})
    source = "toml" if "toml" in data else "rules"
    try:
        if source == "toml":
            toml = text_field(data, "toml") or ""
        else:
            # the same rule checks as a file's, then the file those rules make
            toml = Policy.from_dict({"rules": data["rules"]}).to_toml()
        stored = await services(request).policies.set(toml, principal(request))
    except PolicyError as exc:
        raise ApiError(400, "invalid_policy", str(exc), {source: list(exc.problems)}) from None
    return ok(_policy_json(stored))


_POLICY = {
    "type": "object",
    "required": ["version", "source", "rules"],
    "properties": {
        "version": {"type": ["integer", "null"]},
        "source": {"type": "string", "description": "the TOML text as submitted"},
        "rules": {"type": "array", "items": {"type": "object"}},
        "created": {"type": ["string", "null"], "format": "date-time"},
        "created_by": {"type": ["string", "null"]},
    },
}

ROUTES = [
    Route(
        "GET",
        "/policy",
        get_policy,
        "Show the policy in force",
        "reader",
        "policy",
        response=_POLICY,
    ),
    Route(
        "PUT",
        "/policy",
        set_policy,
        "Replace the policy: TOML text, or the rules as JSON (one of the two)",
        "admin",
        "policy",
        body={
            "type": "object",
            "properties": {
                "toml": {"type": "string"},
                "rules": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "rule objects with the keys of a [[rule]] table",
                },
            },
            "additionalProperties": False,
        },
        response=_POLICY,
    ),
]
