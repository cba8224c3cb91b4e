"""S3 protocol details real clients rely on (issue 10): what listings echo, ListBuckets paging,
SigV2 on bucket-level requests, stored Content-Encoding, non-ASCII metadata, 100-continue.

Each runs against a real ``minimo serve`` on both object backends, through boto3 or the aws cli
where they expose the behaviour and raw requests where clients hide it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import Gateway
from tests.test_s3_api import NS, assert_error, raw

pytestmark = pytest.mark.parametrize("gateway", ["local-http", "s3-http"], indirect=True)


# -- listing echoes -------------------------------------------------------------------------------


def test_list_v1_echoes_prefix_as_sent(gateway: Gateway, s3, bucket: str) -> None:
    """v1 echoes Prefix unencoded even under encoding-type=url (Marker and Delimiter are
    encoded then); boto3 asks for url encoding itself and decodes only Marker and Delimiter."""
    for key in ("a b/1", "a b/2", "a b/3"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    page = s3.list_objects(Bucket=bucket, Prefix="a b/", Delimiter="|", Marker="a b/1")
    assert page["Prefix"] == "a b/"
    assert page["Delimiter"] == "|"
    assert page["Marker"] == "a b/1"
    assert [o["Key"] for o in page["Contents"]] == ["a b/2", "a b/3"]

    query = {"prefix": "a b/", "marker": "a b/1", "delimiter": "|"}
    root = raw(gateway, "GET", f"/{bucket}", query=query).xml()
    assert root.findtext(f"{NS}Prefix") == "a b/"
    assert root.findtext(f"{NS}Marker") == "a b/1"
    assert root.findtext(f"{NS}Delimiter") == "|"
    assert root.find(f"{NS}EncodingType") is None

    root = raw(gateway, "GET", f"/{bucket}", query={**query, "encoding-type": "url"}).xml()
    assert root.findtext(f"{NS}Prefix") == "a b/"
    assert root.findtext(f"{NS}Marker") == "a%20b/1"
    assert root.findtext(f"{NS}Delimiter") == "%7C"
    assert root.findtext(f"{NS}EncodingType") == "url"


def test_list_v2_echoes_empty_continuation_token(gateway: Gateway, s3, bucket: str) -> None:
    """An empty continuation-token lists from the start and is echoed, empty."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    page = s3.list_objects_v2(Bucket=bucket, ContinuationToken="")
    assert page["ContinuationToken"] == ""
    assert [o["Key"] for o in page["Contents"]] == ["k"]
    root = raw(gateway, "GET", f"/{bucket}", query={"list-type": "2"}).xml()
    assert root.find(f"{NS}ContinuationToken") is None


# -- ListBuckets paging ---------------------------------------------------------------------------


def awscli(gw: Gateway, home: Path, *args: str) -> dict:
    """``aws ARGS`` (cli v1) with keys from the environment and nothing read from ~/.aws."""
    (home / "config").write_text("")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": gw.access_key,
        "AWS_SECRET_ACCESS_KEY": gw.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "config"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    aws = Path(sys.executable).with_name("aws")
    cmd = [str(aws), "--endpoint-url", gw.endpoint, "--output", "json", *args]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def test_list_buckets_prefix_and_pages(gateway: Gateway, s3, tmp_path: Path) -> None:
    prefix = f"lb-{secrets.token_hex(4)}-"
    names = [f"{prefix}{i}" for i in range(5)]
    for name in names:
        s3.create_bucket(Bucket=name)

    listed = s3.list_buckets(Prefix=prefix)
    assert [b["Name"] for b in listed["Buckets"]] == names
    assert listed["Prefix"] == prefix
    assert "ContinuationToken" not in listed
    # Without paging parameters every bucket comes back, and no Prefix is echoed.
    everything = s3.list_buckets()
    assert set(names) <= {b["Name"] for b in everything["Buckets"]}
    assert "Prefix" not in everything and "ContinuationToken" not in everything

    # Page by two: a token while more remain, none on the last page.
    first = s3.list_buckets(Prefix=prefix, MaxBuckets=2)
    assert [b["Name"] for b in first["Buckets"]] == names[:2]
    second = s3.list_buckets(
        Prefix=prefix, MaxBuckets=2, ContinuationToken=first["ContinuationToken"]
    )
    assert [b["Name"] for b in second["Buckets"]] == names[2:4]
    last = s3.list_buckets(
        Prefix=prefix, MaxBuckets=2, ContinuationToken=second["ContinuationToken"]
    )
    assert [b["Name"] for b in last["Buckets"]] == names[4:]
    assert "ContinuationToken" not in last

    # boto3's paginator follows the tokens to the end.
    pages = s3.get_paginator("list_buckets").paginate(Prefix=prefix, MaxBuckets=3)
    assert [b["Name"] for page in pages for b in page["Buckets"]] == names

    # The aws cli (v1) pages too.
    cli = awscli(
        gateway, tmp_path, "s3api", "list-buckets", "--prefix", prefix, "--max-buckets", "4"
    )
    assert [b["Name"] for b in cli["Buckets"]] == names[:4]
    assert cli["ContinuationToken"]

    assert s3.list_buckets(Prefix=prefix, BucketRegion="eu-west-3")["Buckets"] == []


@pytest.mark.parametrize("value", ["0", "10001", "-1", "many"])
def test_list_buckets_bad_max_buckets(gateway: Gateway, value: str) -> None:
    assert_error(raw(gateway, "GET", "/", query={"max-buckets": value}), "InvalidArgument", 400)


def test_list_buckets_bad_token(gateway: Gateway) -> None:
    reply = raw(gateway, "GET", "/", query={"continuation-token": "not base64!"})
    assert_error(reply, "InvalidArgument", 400)
