"""The metadata browser's JSON twin: free text over the values (``q``), facets (how many
matching sessions have each value of a choice or boolean field) and the objects and bytes of
each listed session, against a real ``minimo serve``."""

from __future__ import annotations

import boto3
import pytest

from tests.api.client import Browser
from tests.servers import Gateway

POLICY = """\
[[rule]]
bucket = "lab"
prefix = ""
forms = ["scan"]
"""

SCAN_FORM = {
    "name": "scan",
    "title": "Scan",
    "fields": [
        {"name": "operator", "label": "Operator name", "type": "text", "required": True},
        {"name": "scope", "label": "Microscope", "type": "choice", "choices": ["a", "b", "c"]},
        {"name": "calibrated", "label": "Calibrated?", "type": "boolean"},
    ],
}

SESSIONS = (
    {"operator": "Ada Lovelace", "scope": "a", "calibrated": True},
    {"operator": "Grace Hopper", "scope": "a", "calibrated": False},
    {"operator": "Alan Turing", "scope": "b", "calibrated": True},
)


@pytest.fixture(scope="module")
def ids(gw: Gateway, admin: Browser) -> list[str]:
    assert admin.call("POST", "/forms", SCAN_FORM).status == 201
    assert admin.call("PUT", "/policy", {"toml": POLICY}).status == 200
    boto3.client(
        "s3",
        endpoint_url=gw.endpoint,
        aws_access_key_id=gw.access_key,
        aws_secret_access_key=gw.secret_key,
        region_name="us-east-1",
    ).create_bucket(Bucket="lab")
    made = []
    for values in SESSIONS:
        reply = admin.call("POST", "/sessions", {"form": "scan", "bucket": "lab", "values": values})
        assert reply.status == 201, reply.body
        made.append(reply.body)
    # two objects in Ada's session
    ada = made[0]
    s3 = boto3.client(
        "s3",
        endpoint_url=gw.endpoint,
        aws_access_key_id=ada["session_key"]["access_key"],
        aws_secret_access_key=ada["session_key"]["secret_key"],
        region_name="us-east-1",
    )
    prefix = ada["session"]["prefix"]
    s3.put_object(Bucket="lab", Key=prefix + "a.bin", Body=b"x" * 1000)
    s3.put_object(Bucket="lab", Key=prefix + "b.bin", Body=b"y" * 2000)
    return [m["session"]["id"] for m in made]


def test_free_text_finds_values_in_any_field(admin: Browser, ids: list[str]) -> None:
    found = admin.call("GET", "/sessions?q=LOVELACE").body
    assert [s["id"] for s in found["sessions"]] == [ids[0]]
    # within a form, with the other conditions
    found = admin.call("GET", "/sessions?form=scan&q=a&where=scope%3Db").body
    assert [s["id"] for s in found["sessions"]] == [ids[2]]
    assert admin.call("GET", "/sessions?q=nobody-has-this").body["total"] == 0


def test_facets_count_each_choice_and_boolean(admin: Browser, ids: list[str]) -> None:
    body = admin.call("GET", "/sessions?form=scan&facets=1").body
    counts = {f["label"]: {v["value"]: v["count"] for v in f["values"]} for f in body["facets"]}
    assert counts == {"Microscope": {"a": 2, "b": 1, "c": 0}, "Calibrated?": {True: 2, False: 1}}
    # the counts follow the search's conditions
    body = admin.call("GET", "/sessions?form=scan&facets=1&where=calibrated%3Dyes").body
    counts = {f["field"]: {v["value"]: v["count"] for v in f["values"]} for f in body["facets"]}
    assert counts["scope"] == {"a": 1, "b": 1, "c": 0}
    assert "facets" not in admin.call("GET", "/sessions?form=scan").body
    refused = admin.call("GET", "/sessions?facets=1")
    assert refused.status == 400 and "facets" in refused.error["fields"]


def test_usage_gives_objects_and_bytes_per_session(admin: Browser, ids: list[str]) -> None:
    rows = admin.call("GET", "/sessions?form=scan&usage=1").body["sessions"]
    usage = {s["id"]: (s["objects"], s["bytes"]) for s in rows}
    assert usage == {ids[0]: (2, 3000), ids[1]: (0, 0), ids[2]: (0, 0)}
