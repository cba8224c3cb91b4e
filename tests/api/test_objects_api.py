"""The JSON twins of the data browser's object page and of "link existing data", against a real
``minimo serve``: an object put behind minimo's back shows no metadata, the adopt preview counts
it, adopting links it, and then the object shows its SHA-256 and its session's labelled values."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import boto3
import pytest

from tests.api.client import Browser
from tests.helpers import Setup
from tests.servers import Gateway

BUCKET = "legacy-api"
FORM = {
    "name": "survey",
    "title": "Field survey",
    "fields": [
        {"name": "site", "label": "Site name", "type": "text", "required": True},
        {"name": "depth_m", "type": "number"},
    ],
}
POLICY = f"""\
[[rule]]
bucket = "{BUCKET}"
prefix = ""
forms = ["survey"]
open_sessions = ["uploader"]
"""
PASSWORD = "objects api password"
OLD_KEY = "2018/lake survey/\u00e9t\u00e9 1.csv"
OLD_BODY = b"depth,temp\n1,4.2\n"


@pytest.fixture(scope="module")
def uploader(gw: Gateway, admin: Browser) -> Browser:
    assert admin.call("POST", "/forms", FORM).status == 201
    assert admin.call("PUT", "/policy", {"toml": POLICY}).status == 200
    reply = admin.call("POST", "/users", {"name": "ulf", "role": "uploader", "password": PASSWORD})
    assert reply.status == 201, reply.body
    boto3.client(
        "s3",
        endpoint_url=gw.endpoint,
        aws_access_key_id=gw.access_key,
        aws_secret_access_key=gw.secret_key,
        region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)
    Setup(gw.data_dir, None).put(BUCKET, OLD_KEY, OLD_BODY, {})
    browser = Browser(gw.endpoint)
    assert browser.login("ulf", PASSWORD).status == 200
    return browser


def object_path(key: str, bucket: str = BUCKET) -> str:
    return f"/buckets/{bucket}/object?key={quote(key, safe='')}"


def test_object_without_metadata_then_linked(admin: Browser, uploader: Browser) -> None:
    before = uploader.call("GET", object_path(OLD_KEY))
    assert before.status == 200, before.body
    assert before.body["key"] == OLD_KEY
    assert before.body["object"]["size"] == len(OLD_BODY)
    assert before.body["object"]["content_type"] == "application/x-run"
    assert before.body["metadata"] is False
    assert before.body["record"] is None and before.body["session"] is None
    assert before.body["fields"] == []

    # the preview: what adopting the folder would link, and with which forms
    preview = admin.call("GET", f"/buckets/{BUCKET}/adopt?prefix={quote('2018/lake survey')}")
    assert preview.status == 200, preview.body
    assert preview.body["prefix"] == "2018/lake survey/"  # a folder
    assert preview.body["unlinked"] == 1 and preview.body["scanned"] == 1
    assert preview.body["more"] is False
    assert preview.body["first_keys"] == [OLD_KEY]
    assert [f["name"] for f in preview.body["forms"]] == ["survey"]
    assert preview.body["problem"] is None

    adopted = admin.call(
        "POST",
        f"/buckets/{BUCKET}/adopt",
        {"prefix": "2018/lake survey/", "form": "survey", "values": {"site": "Lake Ohrid"}},
    )
    assert adopted.status == 200, adopted.body
    assert adopted.body["adopted"] == 1

    after = uploader.call("GET", object_path(OLD_KEY)).body
    assert after["metadata"] is True
    assert after["record"]["sha256"] == hashlib.sha256(OLD_BODY).hexdigest()
    assert after["record"]["session_id"] == adopted.body["session"]["id"]
    assert after["session"]["values"] == {"site": "Lake Ohrid"}
    assert after["fields"] == [{"name": "site", "label": "Site name", "value": "Lake Ohrid"}]
    # the record view says the same SHA-256
    record = uploader.call("GET", f"/objects/{BUCKET}/{quote(OLD_KEY)}").body
    assert record["sha256"] == after["record"]["sha256"]
    again = admin.call("GET", f"/buckets/{BUCKET}/adopt?prefix=2018/")
    assert again.body["unlinked"] == 0 and again.body["scanned"] == 1


def test_object_bad_input(admin: Browser, uploader: Browser) -> None:
    missing = uploader.call("GET", object_path("2018/none.csv"))
    assert missing.status == 404 and "no object" in missing.error["message"]
    no_bucket = uploader.call("GET", object_path("a.csv", bucket="no-such-bucket"))
    assert no_bucket.status == 404
    impossible = uploader.call("GET", object_path("a/../b"))
    assert impossible.status == 404
    no_key = uploader.call("GET", f"/buckets/{BUCKET}/object")
    assert no_key.status == 400 and no_key.error["fields"] == {"key": ["required"]}


def test_adopt_preview_is_for_admins_and_checks_input(admin: Browser, uploader: Browser) -> None:
    refused = uploader.call("GET", f"/buckets/{BUCKET}/adopt?prefix=2018/")
    assert refused.status == 403 and "role" in refused.error["message"]
    assert admin.call("GET", f"/buckets/{BUCKET}/adopt").status == 400
    assert admin.call("GET", "/buckets/no-such-bucket/adopt?prefix=x/").status == 404


def test_adopt_preview_where_no_rule_applies(
    gw: Gateway, admin: Browser, uploader: Browser
) -> None:
    boto3.client(
        "s3",
        endpoint_url=gw.endpoint,
        aws_access_key_id=gw.access_key,
        aws_secret_access_key=gw.secret_key,
        region_name="us-east-1",
    ).create_bucket(Bucket="unruled-api")
    Setup(gw.data_dir, None).put("unruled-api", "x/one.bin", b"1", {})
    preview = admin.call("GET", "/buckets/unruled-api/adopt?prefix=x/")
    assert preview.status == 200 and preview.body["unlinked"] == 1
    assert preview.body["forms"] == [] and "No policy rule covers" in preview.body["problem"]
