"""``POST /forms/preview`` against a real ``minimo serve``: a draft judged without being stored.

What an admin's script would check: the normalised form numbered as saving would number it, its
JSON Schema, the errors of trial values; a broken draft's problems per field; the import format;
and that only admins (with the CSRF header) may ask.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.api.client import Browser
from tests.servers import Gateway

PASSWORD = "preview password for tests"
DRAFT = {
    "name": "dive",
    "title": "Dive log",
    "description": "One dive",
    "fields": [
        {"name": "diver", "type": "text", "required": True},
        {"name": "site", "type": "choice", "choices": ["reef", "wreck"]},
        {"name": "depth_m", "type": "integer", "min": 0, "max": 60},
    ],
}
OLD_FORMAT = "Imaging run\n\nSample ID\nWhich sample was imaged?\ntext\n\nObjective\nWhich objective?\ndropdown\n10x\n63x oil\n"  # noqa: E501


@dataclass
class People:
    admin: Browser
    uploader: Browser
    anonymous: Browser


@pytest.fixture(scope="module")
def people(gw: Gateway, admin: Browser) -> People:
    reply = admin.call("POST", "/users", {"name": "ugo", "role": "uploader", "password": PASSWORD})
    assert reply.status == 201, reply.body
    uploader = Browser(gw.endpoint)
    assert uploader.login("ugo", PASSWORD).status == 200
    return People(admin, uploader, Browser(gw.endpoint))


def test_good_definition_is_previewed_not_stored(people: People) -> None:
    reply = people.admin.call("POST", "/forms/preview", {"definition": DRAFT})
    assert reply.status == 200, reply.body
    form = reply.body["form"]
    assert form["name"] == "dive" and form["version"] == 1
    # normalised: labels derived from names, "required" spelled out
    assert [f["label"] for f in form["fields"]] == ["Diver", "Site", "Depth m"]
    assert form["fields"][1]["required"] is False
    schema = reply.body["schema"]
    assert schema["required"] == ["diver"]
    assert schema["properties"]["site"]["enum"] == ["reef", "wreck"]
    assert schema["properties"]["depth_m"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 60,
        "title": "Depth m",
    }
    assert reply.body["errors"] == {}
    # nothing was saved
    assert people.admin.call("GET", "/forms/dive").status == 404


def test_preview_numbers_the_draft_as_saving_would(people: People) -> None:
    draft = {**DRAFT, "name": "dive-saved"}
    assert people.admin.call("POST", "/forms", draft).status == 201
    same = people.admin.call("POST", "/forms/preview", {"definition": draft})
    assert same.body["form"]["version"] == 1  # unchanged: saving makes no new version
    changed = {**draft, "title": "Dive log v2"}
    reply = people.admin.call("POST", "/forms/preview", {"definition": changed})
    assert reply.body["form"]["version"] == 2
    assert people.admin.call("GET", "/forms/dive-saved").body["title"] == "Dive log"


def test_values_are_checked_against_the_draft(people: People) -> None:
    values = {"site": "cave", "depth_m": "-3", "extra": "x"}
    reply = people.admin.call("POST", "/forms/preview", {"definition": DRAFT, "values": values})
    assert reply.status == 200, reply.body
    errors = reply.body["errors"]
    assert errors["diver"] == ["is required"]
    assert errors["site"] == ["must be one of reef, wreck"]
    assert errors["depth_m"] == ["must be at least 0"]
    assert "extra" in errors
    good = {"diver": "Ann", "site": "reef", "depth_m": 12}
    reply = people.admin.call("POST", "/forms/preview", {"definition": DRAFT, "values": good})
    assert reply.body["errors"] == {}


def test_bad_shapes_are_400_with_the_field_named(people: People) -> None:
    admin = people.admin
    cases = [
        ({"definition": ["not", "an", "object"]}, "definition"),
        ({"definition": "{}"}, "definition"),
        ({}, "definition"),  # neither a definition nor an import
        ({"definition": DRAFT, "import_text": "x", "name": "x"}, "definition"),
        ({"definition": DRAFT, "values": ["a"]}, "values"),
        ({"import_text": 7, "name": "x"}, "import_text"),
        ({"import_text": "x"}, "name"),
    ]
    for body, field in cases:
        reply = admin.call("POST", "/forms/preview", body)
        assert reply.status == 400, (body, reply.body)
        assert reply.error["code"] == "bad_request"
        assert field in reply.error["fields"], (body, reply.error)
    not_json = admin.call("POST", "/forms/preview", raw=b'{"definition": {')
    assert not_json.status == 400 and "not valid JSON" in not_json.error["message"]


def test_invalid_definition_lists_problems_per_field(people: People) -> None:
    draft = {
        "name": "Dive!",
        "fields": [
            {"name": "depth_m", "type": "integer", "min": 10, "max": 5},
            {"name": "site", "type": "choice"},
            {"name": "when", "type": "clock"},
        ],
    }
    reply = people.admin.call("POST", "/forms/preview", {"definition": draft})
    assert reply.status == 400
    assert reply.error["code"] == "invalid_form"
    fields = reply.error["fields"]
    messages = " ".join(m for ms in fields.values() for m in ms)
    assert "name 'Dive!' must start with a lowercase letter" in messages
    assert any("min: 10 is greater than max 5" in m for m in fields["definition"])
    assert "needs a non-empty list of choices" in messages
    assert "'clock' is not one of" in messages


def test_import_preview(people: People) -> None:
    body = {"import_text": OLD_FORMAT, "name": "imaging"}
    reply = people.admin.call("POST", "/forms/preview", body)
    assert reply.status == 200, reply.body
    form = reply.body["form"]
    assert form["title"] == "Imaging run" and form["version"] == 1
    assert [(f["name"], f["type"]) for f in form["fields"]] == [
        ("sample_id", "text"),
        ("objective", "choice"),
    ]
    assert form["fields"][1]["choices"] == ["10x", "63x oil"]
    assert people.admin.call("GET", "/forms/imaging").status == 404
    checked = people.admin.call("POST", "/forms/preview", {**body, "values": {"objective": "40x"}})
    assert checked.body["errors"] == {"objective": ["must be one of 10x, 63x oil"]}
    # a broken file: the problem names its line
    broken = people.admin.call(
        "POST", "/forms/preview", {"import_text": "Run\n\nSample\nWhat?\nslider\n", "name": "r"}
    )
    assert broken.status == 400 and broken.error["code"] == "invalid_form"
    assert "line 5: unknown type 'slider'" in " ".join(broken.error["fields"]["import_text"])


def test_only_admins_may_preview(people: People) -> None:
    body = {"definition": DRAFT}
    signed_out = people.anonymous.call("POST", "/forms/preview", body)
    assert signed_out.status == 401 and signed_out.error["code"] == "unauthenticated"
    uploader = people.uploader.call("POST", "/forms/preview", body)
    assert uploader.status == 403 and uploader.error["code"] == "forbidden"


def test_missing_or_wrong_csrf_is_refused(people: People) -> None:
    body = {"definition": DRAFT}
    missing = people.admin.call("POST", "/forms/preview", body, csrf=False)
    assert missing.status == 403 and missing.error["code"] == "csrf"
    forged = people.admin.call(
        "POST", "/forms/preview", body, csrf=False, headers={"X-CSRF-Token": "forged"}
    )
    assert forged.status == 403 and forged.error["code"] == "csrf"
