"""The data browser's JSON twins against a real ``minimo serve``: creating a bucket (S3's
naming rules, 409 when it exists, admins only), folders with their object counts and bytes, and
the object's preview (a CSV's first rows, a text's head, an image's type)."""

from __future__ import annotations

import boto3
import pytest

from tests.api.client import Browser
from tests.servers import Gateway

PASSWORD = "correct horse battery"
POLICY = """\
[[rule]]
bucket = "*"
prefix = ""
require_session = false
"""


@pytest.fixture(scope="module")
def uploader(gw: Gateway, admin: Browser) -> Browser:
    assert admin.call("PUT", "/policy", {"toml": POLICY}).status == 200
    reply = admin.call("POST", "/users", {"name": "ulla", "role": "uploader", "password": PASSWORD})
    assert reply.status == 201, reply.body
    browser = Browser(gw.endpoint)
    assert browser.login("ulla", PASSWORD).status == 200
    return browser


def s3(gw: Gateway):
    return boto3.client(
        "s3",
        endpoint_url=gw.endpoint,
        aws_access_key_id=gw.access_key,
        aws_secret_access_key=gw.secret_key,
        region_name="us-east-1",
    )


def test_create_bucket(gw: Gateway, admin: Browser, uploader: Browser) -> None:
    bad = admin.call("POST", "/buckets", {"name": "Bad_Name"})
    assert bad.status == 400 and "lowercase letters" in bad.error["fields"]["name"][0]
    short = admin.call("POST", "/buckets", {"name": "ab"})
    assert short.status == 400 and "3 to 63 characters" in short.error["fields"]["name"][0]
    assert uploader.call("POST", "/buckets", {"name": "ulla-bucket"}).status == 403
    made = admin.call("POST", "/buckets", {"name": "made-here"})
    assert made.status == 201 and made.body == {"name": "made-here"}
    names = [b["name"] for b in admin.call("GET", "/buckets").body["buckets"]]
    assert "made-here" in names and "ulla-bucket" not in names
    again = admin.call("POST", "/buckets", {"name": "made-here"})
    assert again.status == 409 and again.error["fields"]["name"]
    s3(gw).head_bucket(Bucket="made-here")  # a real bucket, for S3 clients too
    events = admin.call("GET", "/audit?action=CreateBucket").body
    assert any(e["target"] == "s3://made-here/" for e in events["events"])


def test_folders_and_previews(gw: Gateway, admin: Browser, uploader: Browser) -> None:
    client = s3(gw)
    client.create_bucket(Bucket="previews")
    client.put_object(Bucket="previews", Key="run/a.csv", Body=b"x,y\n1,2\n3,4\n")
    client.put_object(Bucket="previews", Key="run/deep/b.txt", Body=b"hello\n")
    client.put_object(Bucket="previews", Key="run/c.gif", Body=b"GIF89a" + b"\x00" * 20)
    listing = uploader.call("GET", "/buckets/previews").body
    assert listing["prefixes"] == ["run/"]
    assert listing["folders"] == [{"prefix": "run/", "objects": 3, "bytes": 12 + 6 + 26,
                                   "more": False}]  # fmt: skip

    def preview(key: str) -> dict:
        reply = uploader.call("GET", f"/buckets/previews/object?key={key}")
        assert reply.status == 200, reply.body
        return reply.body["preview"]

    assert preview("run/a.csv") == {"kind": "csv", "rows": [["x", "y"], ["1", "2"], ["3", "4"]],
                                    "text": None, "cut": False, "note": None,
                                    "image_type": None}  # fmt: skip
    assert preview("run/deep/b.txt")["text"] == "hello\n"
    assert preview("run/c.gif")["kind"] == "image"
    assert preview("run/c.gif")["image_type"] == "image/gif"
