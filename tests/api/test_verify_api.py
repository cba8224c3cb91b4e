"""Verifying one session from the JSON API and from the session page (admins), against a real
``minimo serve``: a byte flipped on disk behind minimo's back is reported by key, and every
record then shows its last verified time and result, in the API's object JSON and on the pages.
"""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from pathlib import Path

import boto3
import pytest

from tests.api.client import Browser
from tests.api.conftest import POLICY, RUN_FORM
from tests.servers import Gateway

PASSWORD = "verify api password"
GOOD, BAD = "v/good.bin", "v/bad.bin"


@pytest.fixture(scope="module")
def session_id(gw: Gateway, admin: Browser) -> str:
    assert admin.call("POST", "/forms", RUN_FORM).status == 201
    assert admin.call("PUT", "/policy", {"toml": POLICY}).status == 200
    reply = admin.call("POST", "/users", {"name": "vera", "role": "uploader", "password": PASSWORD})
    assert reply.status == 201, reply.body
    uploader = Browser(gw.endpoint)
    assert uploader.login("vera", PASSWORD).status == 200
    admin_s3 = boto3.client(
        "s3",
        endpoint_url=gw.endpoint,
        aws_access_key_id=gw.access_key,
        aws_secret_access_key=gw.secret_key,
        region_name="us-east-1",
    )
    admin_s3.create_bucket(Bucket="raw")
    opened = uploader.call(
        "POST",
        "/sessions",
        {"form": "run", "bucket": "raw", "prefix": "v", "values": {"sample": "S1"}},
    )
    assert opened.status == 201, opened.body
    key = opened.body["session_key"]
    s3 = boto3.client(
        "s3",
        endpoint_url=gw.endpoint,
        aws_access_key_id=key["access_key"],
        aws_secret_access_key=key["secret_key"],
        region_name="us-east-1",
    )
    s3.put_object(Bucket="raw", Key=GOOD, Body=b"g" * 200_000)
    s3.put_object(Bucket="raw", Key=BAD, Body=b"b" * 200_000)
    # behind minimo's back: one bit of the stored file flips
    path = Path(gw.data_dir) / "objects" / "raw" / BAD
    with path.open("r+b") as f:
        f.seek(99_999)
        f.write(b"c")
    return str(opened.body["session"]["id"])


def test_verify_a_session_through_the_api(gw: Gateway, admin: Browser, session_id: str) -> None:
    before = admin.call("GET", f"/objects/raw/{GOOD}")
    assert before.status == 200
    assert before.body["verified"] is None and before.body["verify_result"] is None

    reader = Browser(gw.endpoint)
    assert reader.login("vera", PASSWORD).status == 200
    assert reader.call("POST", f"/sessions/{session_id}/verify").status == 403

    done = admin.call("POST", f"/sessions/{session_id}/verify")
    assert done.status == 200, done.body
    assert done.body["complete"] is True
    assert done.body["summary"]["ok"] == 1 and done.body["summary"]["changed"] == 1
    assert [(p["key"], p["result"]) for p in done.body["problems"]] == [(BAD, "changed")]

    good = admin.call("GET", f"/objects/raw/{GOOD}").body
    bad = admin.call("GET", f"/objects/raw/{BAD}").body
    assert good["verify_result"] == "ok" and good["verified"]
    assert bad["verify_result"] == "changed" and bad["verified"]
    listed = admin.call("GET", f"/sessions/{session_id}/objects").body["objects"]
    assert {o["key"]: o["verify_result"] for o in listed} == {GOOD: "ok", BAD: "changed"}

    # carrying on skips what was just verified
    again = admin.call("POST", f"/sessions/{session_id}/verify", {"older_than": "1h"})
    assert again.status == 200 and again.body["summary"]["skipped"] == 2
    assert again.body["summary"]["bytes_read"] == 0

    for body, field in (
        ({"seconds": 0}, "seconds"),
        ({"seconds": "10"}, "seconds"),
        ({"older_than": "soon"}, "older_than"),
        ({"older_than": 5}, "older_than"),
        ({"everything": True}, "everything"),
    ):
        refused = admin.call("POST", f"/sessions/{session_id}/verify", body)
        assert refused.status == 400, (body, refused.body)
        assert field in refused.error["message"]
    assert admin.call("POST", "/sessions/nosuchsession/verify").status == 404


def test_verify_from_the_session_page(gw: Gateway, admin: Browser, session_id: str) -> None:
    def page(path: str, form: dict[str, str] | None = None) -> str:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(gw.endpoint + "/_minimo" + path, data)
        with admin.opener.open(request) as answer:
            assert answer.status == 200
            return answer.read().decode()

    shown = page(f"/sessions/{session_id}")
    assert 'id="verify-session"' in shown
    token = re.search(r'name="csrf_token" value="([^"]+)"', shown)
    assert token is not None
    result = page(f"/sessions/{session_id}/verify", {"csrf_token": token.group(1)})
    assert 'id="verify-result"' in result and "1 problem found (1 ok)" in result
    problems = result[result.index('id="verify-problems"') :]
    assert f'data-key="{BAD}"' in problems and "changed" in problems
    assert f'data-key="{GOOD}"' not in problems

    object_page = page(f"/data/raw/object?key={urllib.parse.quote(BAD, safe='')}")
    assert re.search(r'id="record-verify-result">changed<', object_page)
