"""S3 protocol details real clients rely on (issue 10): what listings echo, ListBuckets paging,
SigV2 on bucket-level requests, stored Content-Encoding, non-ASCII metadata, 100-continue.

Each runs against a real ``minimo serve`` on both object backends, through boto3 or the aws cli
where they expose the behaviour and raw requests where clients hide it.
"""

from __future__ import annotations

import pytest

from tests.servers import Gateway
from tests.test_s3_api import NS, raw

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
