"""Every route of the served OpenAPI document enforces the role it declares (``x-minimo-role``).

The list of routes comes from the running server's own document, so a route added later is
checked without anyone remembering to add it here: signed out it answers 401, and with the role
just below the one it needs it answers 403 ``forbidden`` — before it looks at the request body,
so an empty body proves the role check comes first.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator

import pytest

from tests.api.client import API, Browser
from tests.servers import Gateway

PASSWORD = "correct horse battery"
#: who is one step too weak for each role
BELOW = {"reader": None, "uploader": "reader", "admin": "uploader"}
_PARAM = re.compile(r"\{(\w+)[^}]*\}")
# Placeholders for path parameters: well-formed enough to reach the role check.
_SAMPLES = {"bucket": "raw", "key": "a/b.bin", "version": "1"}


def _operations(gw: Gateway) -> Iterator[tuple[str, str, str]]:
    with urllib.request.urlopen(gw.endpoint + API + "/openapi.json") as reply:
        document = json.load(reply)
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method in ("get", "put", "post", "patch", "delete"):
                yield method.upper(), path, op["x-minimo-role"]


def _concrete(path: str) -> str:
    return _PARAM.sub(lambda m: _SAMPLES.get(m.group(1), "x"), path)


@pytest.fixture(scope="module")
def people(gw: Gateway, admin: Browser) -> dict[str, Browser]:
    signed_in = {}
    for name, role in (("ulla", "uploader"), ("rita", "reader")):
        reply = admin.call("POST", "/users", {"name": name, "role": role, "password": PASSWORD})
        assert reply.status == 201, reply.body
        browser = Browser(gw.endpoint)
        assert browser.login(name, PASSWORD).status == 200
        signed_in[role] = browser
    return signed_in


def test_the_document_declares_a_role_for_every_operation(gw: Gateway) -> None:
    operations = list(_operations(gw))
    assert len(operations) >= 30
    assert {role for _, _, role in operations} <= {"public", "reader", "uploader", "admin"}


def test_signed_out_callers_get_401_everywhere_but_public_routes(gw: Gateway) -> None:
    stranger = Browser(gw.endpoint)
    checked = 0
    for method, path, role in _operations(gw):
        if role == "public":
            continue
        body = {} if method in ("POST", "PUT", "PATCH") else None
        reply = stranger.call(method, _concrete(path).removeprefix(API), body)
        assert reply.status == 401, (method, path, reply.status, reply.body)
        assert reply.error["code"] and reply.error["message"], (method, path)
        checked += 1
    assert checked >= 25


def test_one_role_too_weak_gets_403_before_the_body_is_read(
    gw: Gateway, people: dict[str, Browser]
) -> None:
    checked = 0
    for method, path, role in _operations(gw):
        weaker = BELOW.get(role)
        if weaker is None:
            continue
        body = {} if method in ("POST", "PUT", "PATCH") else None
        reply = people[weaker].call(method, _concrete(path).removeprefix(API), body)
        assert reply.status == 403, (weaker, method, path, reply.status, reply.body)
        assert reply.error["code"] == "forbidden", (method, path, reply.body)
        assert role in reply.error["message"], (method, path, reply.error["message"])
        checked += 1
    assert checked >= 12
