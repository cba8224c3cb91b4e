"""The S3 surface of the front end (docs/design.md, "The S3 surface in brief"), against a real
``minimo serve``.

boto3 drives every operation; raw signed HTTP (botocore's signer, http.client) covers what
boto3 will not send: encoded paths, malformed XML, unimplemented sub-resources, HEAD errors.
Both object backends run the same tests (``local``, and ``s3`` in front of versitygw).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_plus, urlencode, urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import boto3_client
from tests.servers import Gateway, run_gateway

pytestmark = pytest.mark.parametrize("gateway", ["local-http", "s3-http"], indirect=True)

MiB = 1 << 20
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def status_of(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


# -- raw signed requests --------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    def error_code(self) -> str:
        root = self.xml()
        assert root.tag == "Error"
        return root.findtext("Code") or ""


def raw(
    gw: Gateway,
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    sign: bool = True,
    keys: tuple[str, str] | None = None,
) -> Reply:
    """Send ``path`` exactly as given (already URL-encoded), signed like botocore would."""
    url = urlsplit(gw.endpoint)
    netloc = f"{url.hostname}:{url.port}"
    qs = urlencode(query or {}, quote_via=quote)
    target = path + (f"?{qs}" if qs else "")
    hdrs = {"Host": netloc, **(headers or {})}
    if sign:
        access, secret = keys or (gw.access_key, gw.secret_key)
        # SigV4 signs the canonical form of the path: each segment decoded, encoded once.
        canonical = "/".join(quote(unquote(p), safe="-_.~") for p in path.split("/"))
        request = AWSRequest(
            method=method,
            url=f"{gw.endpoint}{canonical}",
            headers={**hdrs, "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()},
            params=query or {},
            data=body,
        )
        S3SigV4Auth(Credentials(access, secret), "s3", "us-east-1").add_auth(request)
        hdrs = dict(request.headers.items())
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request(method, target, body=body or None, headers=hdrs)
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def assert_error(reply: Reply, code: str, status: int) -> None:
    assert reply.status == status, reply.body
    root = reply.xml()
    assert root.tag == "Error"
    assert root.findtext("Code") == code
    assert root.findtext("Message")
    assert root.findtext("RequestId") == reply.headers["x-amz-request-id"]
    assert b"Traceback" not in reply.body


# -- buckets --------------------------------------------------------------------------------------


def test_bucket_lifecycle(s3) -> None:
    name = f"life-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=name)
    head = s3.head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert code_of(exc) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert code_of(exc) == "BucketNotEmpty"
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert status_of(exc) == 404


def test_create_bucket_location_constraint(s3) -> None:
    name = f"loc-{secrets.token_hex(4)}"
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert code_of(exc) == "IllegalLocationConstraintException"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    s3.head_bucket(Bucket=name)


@pytest.mark.parametrize(
    "name", ["ab", "Upper-case", "a..b", "192.168.1.10", "-leading", "trailing-", "under_score"]
)
def test_invalid_bucket_names(gateway: Gateway, name: str) -> None:
    reply = raw(gateway, "PUT", f"/{name}")
    assert_error(reply, "InvalidBucketName", 400)
    assert name in reply.xml().findtext("Message")


def test_bucket_probes(s3, bucket: str) -> None:
    """GET probes that s3cmd and rclone send get minimal answers."""
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    acl = s3.get_bucket_acl(Bucket=bucket)
    assert acl["Grants"][0]["Permission"] == "FULL_CONTROL"
    s3.put_object(Bucket=bucket, Key="o", Body=b"x")
    assert s3.get_object_acl(Bucket=bucket, Key="o")["Grants"][0]["Permission"] == "FULL_CONTROL"


# -- objects --------------------------------------------------------------------------------------


def test_put_get_head_headers(s3, bucket: str) -> None:
    body = secrets.token_bytes(1000)
    put = s3.put_object(
        Bucket=bucket,
        Key="doc.bin",
        Body=body,
        ContentType="application/x-test",
        Metadata={"project": "minimo", "run": "7"},
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="doc.bin"',
    )
    etag = f'"{hashlib.md5(body).hexdigest()}"'
    assert put["ETag"] == etag
    for resp in (
        s3.get_object(Bucket=bucket, Key="doc.bin"),
        s3.head_object(Bucket=bucket, Key="doc.bin"),
    ):
        h = resp["ResponseMetadata"]["HTTPHeaders"]
        assert resp["ETag"] == etag
        assert resp["ContentLength"] == len(body)
        assert resp["ContentType"] == "application/x-test"
        assert resp["Metadata"] == {"project": "minimo", "run": "7"}
        assert resp["CacheControl"] == "max-age=60"
        assert resp["ContentDisposition"] == 'attachment; filename="doc.bin"'
        assert h["accept-ranges"] == "bytes"
        assert h["last-modified"].endswith(" GMT")
        assert h["server"] == "minimo"
        assert h["x-amz-request-id"]
    assert s3.get_object(Bucket=bucket, Key="doc.bin")["Body"].read() == body


def test_default_content_type(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    assert s3.head_object(Bucket=bucket, Key="plain")["ContentType"] in (
        "binary/octet-stream",
        "application/octet-stream",
    )


def test_streamed_get_and_ranges(s3, bucket: str) -> None:
    body = secrets.token_bytes(3 * MiB + 17)
    s3.put_object(Bucket=bucket, Key="big", Body=body)
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == body
    part = s3.get_object(Bucket=bucket, Key="big", Range="bytes=100-2000000")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes 100-2000000/{len(body)}"
    assert part["Body"].read() == body[100:2000001]
    tail = s3.get_object(Bucket=bucket, Key="big", Range="bytes=-10")
    assert tail["Body"].read() == body[-10:]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={len(body)}-")
    assert code_of(exc) == "InvalidRange"
    assert status_of(exc) == 416


def test_conditional_reads(s3, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")
    etag = put["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert status_of(exc) == 304
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0000"')
    assert status_of(exc) == 412
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"conditional"


def test_response_overrides(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ContentType="text/plain")
    got = s3.get_object(
        Bucket=bucket,
        Key="o",
        ResponseContentType="application/json",
        ResponseContentDisposition="inline",
        ResponseCacheControl="no-cache",
    )
    assert got["ContentType"] == "application/json"
    assert got["ContentDisposition"] == "inline"
    assert got["CacheControl"] == "no-cache"


def test_put_if_none_match(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
    assert status_of(exc) == 412
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first"


def test_metadata_too_large(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="m", Body=b"x", Metadata={"big": "v" * 2100})
    assert code_of(exc) == "MetadataTooLarge"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="m")


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("a/../b", "InvalidObjectName"),
        ("../escape", "InvalidObjectName"),
        ("a/./b", "InvalidObjectName"),
        ("k" * 1025, "KeyTooLongError"),
        ("é" * 513, "KeyTooLongError"),
    ],
)
def test_invalid_keys(gateway: Gateway, bucket: str, key: str, code: str) -> None:
    reply = raw(gateway, "PUT", f"/{bucket}/{quote(key)}", body=b"data")
    assert_error(reply, code, 400)
    assert raw(gateway, "GET", f"/{bucket}/{quote(key)}").status in (400, 404)
    assert boto3_client(gateway).list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_longest_key_allowed(s3, bucket: str) -> None:
    # 1024 bytes in all; each segment within the 255-byte file-name limit of the local backend
    key = "/".join(["k" * 255] * 3 + ["k" * 254, "k"])
    assert len(key) == 1024
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"x"


def test_raw_path_decoding(gateway: Gateway, s3, bucket: str) -> None:
    """The key comes from the raw path: ``+`` is a plus, ``%2F`` a slash, ``%20`` a space."""
    assert raw(gateway, "PUT", f"/{bucket}/a+b", body=b"plus").status == 200
    assert s3.get_object(Bucket=bucket, Key="a+b")["Body"].read() == b"plus"
    assert raw(gateway, "PUT", f"/{bucket}/dir%2Fleaf", body=b"slash").status == 200
    assert s3.get_object(Bucket=bucket, Key="dir/leaf")["Body"].read() == b"slash"
    assert raw(gateway, "PUT", f"/{bucket}/with%20space", body=b"space").status == 200
    assert s3.get_object(Bucket=bucket, Key="with space")["Body"].read() == b"space"
    assert raw(gateway, "GET", f"/{bucket}/a%2Bb").body == b"plus"


AWKWARD_KEYS = [
    "plain.txt",
    "with space/and+plus",
    "percent%2Fliteral",
    "unicode/été/日本語",
    "amp&lt;<>'\"",
    "tilde~(1)!*",
    "trailing-space ",
]


def test_awkward_keys_list_and_read(s3, bucket: str) -> None:
    for key in AWKWARD_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    expected = sorted(AWKWARD_KEYS, key=lambda k: k.encode())
    # boto3 asks for encoding-type=url by itself and decodes; asked explicitly, it does not.
    for encoding, decode in (({}, str), ({"EncodingType": "url"}, unquote_plus)):
        v2 = s3.list_objects_v2(Bucket=bucket, **encoding)
        assert [decode(o["Key"]) for o in v2["Contents"]] == expected
        v1 = s3.list_objects(Bucket=bucket, **encoding)
        assert [decode(o["Key"]) for o in v1["Contents"]] == expected
    for key in AWKWARD_KEYS:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()


def test_key_with_leading_space(s3, bucket: str) -> None:
    """XML parsers that strip whitespace would turn this key into another one."""
    s3.put_object(Bucket=bucket, Key=" leading space", Body=b"x")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [" leading space"]
    assert s3.get_object(Bucket=bucket, Key=" leading space")["Body"].read() == b"x"


def test_encoding_type_url_raw(gateway: Gateway, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a b/c+d", Body=b"x")
    reply = raw(
        gateway,
        "GET",
        f"/{bucket}",
        query={"list-type": "2", "encoding-type": "url", "delimiter": "/", "prefix": "a b/"},
    )
    root = reply.xml()
    assert root.findtext(f"{NS}EncodingType") == "url"
    assert root.findtext(f"{NS}Prefix") == "a%20b/"
    assert root.findtext(f"{NS}Contents/{NS}Key") == "a%20b/c%2Bd"
    bad = raw(gateway, "GET", f"/{bucket}", query={"encoding-type": "base64"})
    assert_error(bad, "InvalidArgument", 400)


def test_copy_object(s3, bucket: str) -> None:
    src = "src dir/orig+1.txt"
    s3.put_object(
        Bucket=bucket, Key=src, Body=b"copy me", Metadata={"a": "1"}, ContentType="text/plain"
    )
    result = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": src})
    assert result["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"copy me").hexdigest()}"'
    head = s3.head_object(Bucket=bucket, Key="copy")
    assert head["Metadata"] == {"a": "1"}
    assert head["ContentType"] == "text/plain"
    s3.copy_object(
        Bucket=bucket,
        Key="replaced",
        CopySource=f"{bucket}/{src}",
        MetadataDirective="REPLACE",
        Metadata={"b": "2"},
        ContentType="text/csv",
    )
    head = s3.head_object(Bucket=bucket, Key="replaced")
    assert head["Metadata"] == {"b": "2"}
    assert head["ContentType"] == "text/csv"
    assert s3.get_object(Bucket=bucket, Key="replaced")["Body"].read() == b"copy me"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key=src, CopySource={"Bucket": bucket, "Key": src})
    assert code_of(exc) == "InvalidRequest"
    s3.copy_object(
        Bucket=bucket,
        Key=src,
        CopySource={"Bucket": bucket, "Key": src},
        MetadataDirective="REPLACE",
        Metadata={"c": "3"},
    )
    assert s3.head_object(Bucket=bucket, Key=src)["Metadata"] == {"c": "3"}
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=bucket,
            Key="never",
            CopySource={"Bucket": bucket, "Key": src},
            CopySourceIfMatch='"0000"',
        )
    assert status_of(exc) == 412
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "missing"})
    assert code_of(exc) == "NoSuchKey"


def test_delete_object_and_objects(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="gone", Body=b"x")
    resp = s3.delete_object(Bucket=bucket, Key="gone")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.delete_object(Bucket=bucket, Key="gone")["ResponseMetadata"]["HTTPStatusCode"] == 204
    keys = [f"many/{i:03d}" for i in range(30)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    result = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": k} for k in [*keys[:20], "never-existed", "bad/../key"]]},
    )
    assert sorted(d["Key"] for d in result["Deleted"]) == sorted([*keys[:20], "never-existed"])
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [
        ("bad/../key", "InvalidObjectName")
    ]
    quiet = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[20:]], "Quiet": True}
    )
    assert "Deleted" not in quiet
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_no_such_version(gateway: Gateway, s3, bucket: str) -> None:
    """One version per key ("null"): any other version id is 404 NoSuchVersion, for a read, a
    copy's source and each key of a DeleteObjects (the table gives the status)."""
    s3.put_object(Bucket=bucket, Key="v", Body=b"x")
    assert s3.get_object(Bucket=bucket, Key="v", VersionId="null")["Body"].read() == b"x"
    bogus = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="v", VersionId=bogus)
    assert (code_of(exc), status_of(exc)) == ("NoSuchVersion", 404)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="v", VersionId=bogus)
    assert status_of(exc) == 404
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=bucket, Key="w", CopySource={"Bucket": bucket, "Key": "v", "VersionId": bogus}
        )
    assert (code_of(exc), status_of(exc)) == ("NoSuchVersion", 404)
    result = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "v", "VersionId": bogus}]}
    )
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("v", "NoSuchVersion")]
    assert_error(
        raw(gateway, "GET", f"/{bucket}/v", query={"versionId": bogus}), "NoSuchVersion", 404
    )
    assert s3.get_object(Bucket=bucket, Key="v")["Body"].read() == b"x"


@pytest.mark.parametrize(
    "body",
    [
        b"<Delete><Object><Key>a</Key></Object>",
        b"not xml at all",
        b"<Other><Object><Key>a</Key></Object></Other>",
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "y">]><Delete><Object><Key>&x;</Key>'
        b"</Object></Delete>",
        b"<Delete></Delete>",
        b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>",
    ],
)
def test_delete_objects_malformed(gateway: Gateway, bucket: str, body: bytes) -> None:
    reply = raw(gateway, "POST", f"/{bucket}", query={"delete": ""}, body=body)
    assert_error(reply, "MalformedXML", 400)


# -- listings -------------------------------------------------------------------------------------


@pytest.fixture
def tree(s3, bucket: str) -> list[str]:
    keys = ["a/1", "a/2", "b", "c/x/1", "c/y", "d", "e/1", "e/2", "f"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    return keys


def test_list_v1_pagination(s3, bucket: str, tree: list[str]) -> None:
    seen, marker = [], ""
    while True:
        page = s3.list_objects(Bucket=bucket, Marker=marker, MaxKeys=2)
        seen += [o["Key"] for o in page["Contents"]]
        assert "NextMarker" not in page  # S3 sends it only with a delimiter
        if not page["IsTruncated"]:
            break
        marker = page["Contents"][-1]["Key"]
    assert seen == tree
    page = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=3)
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["a/", "c/"]
    assert [o["Key"] for o in page["Contents"]] == ["b"]
    assert page["NextMarker"] == "c/"
    rest = s3.list_objects(Bucket=bucket, Delimiter="/", Marker=page["NextMarker"])
    assert [o["Key"] for o in rest["Contents"]] == ["d", "f"]
    assert [p["Prefix"] for p in rest["CommonPrefixes"]] == ["e/"]
    assert page["Contents"][0]["Owner"]["DisplayName"]


def test_list_v2_pagination(s3, bucket: str, tree: list[str]) -> None:
    seen, token = [], None
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, MaxKeys=4, Delimiter="/", **kwargs)
        assert page["KeyCount"] == len(page.get("Contents", [])) + len(
            page.get("CommonPrefixes", [])
        )
        seen += [o["Key"] for o in page.get("Contents", [])]
        seen += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert sorted(seen) == ["a/", "b", "c/", "d", "e/", "f"]
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="c/x/1", Prefix="c/")
    assert [o["Key"] for o in after["Contents"]] == ["c/y"]
    assert after["StartAfter"] == "c/x/1"
    assert "Owner" not in after["Contents"][0]
    owned = s3.list_objects_v2(Bucket=bucket, FetchOwner=True, MaxKeys=1)
    assert owned["Contents"][0]["Owner"]["ID"]
    assert s3.list_objects_v2(Bucket=bucket, MaxKeys=0)["KeyCount"] == 0


def test_list_max_keys_capped_and_validated(gateway: Gateway, s3, bucket: str) -> None:
    page = s3.list_objects_v2(Bucket=bucket, MaxKeys=5000)
    assert page["MaxKeys"] == 1000
    for value in ("abc", "-1"):
        reply = raw(gateway, "GET", f"/{bucket}", query={"list-type": "2", "max-keys": value})
        assert_error(reply, "InvalidArgument", 400)
    reply = raw(gateway, "GET", f"/{bucket}", query={"list-type": "2", "continuation-token": "%%%"})
    assert_error(reply, "InvalidArgument", 400)


def test_list_object_versions(s3, bucket: str, tree: list[str]) -> None:
    page = s3.list_object_versions(Bucket=bucket, MaxKeys=4)
    assert [v["Key"] for v in page["Versions"]] == tree[:4]
    assert {v["VersionId"] for v in page["Versions"]} == {"null"}
    assert all(v["IsLatest"] for v in page["Versions"])
    assert page["IsTruncated"]
    rest = s3.list_object_versions(
        Bucket=bucket, KeyMarker=page["NextKeyMarker"], VersionIdMarker="null"
    )
    assert [v["Key"] for v in rest["Versions"]] == tree[4:]
    folded = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in folded["CommonPrefixes"]] == ["a/", "c/", "e/"]


# -- multipart ------------------------------------------------------------------------------------


def test_multipart_upload(s3, bucket: str) -> None:
    key = "multi part/obj+1"
    one, two = secrets.token_bytes(5 * MiB), secrets.token_bytes(1234)
    upload = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ContentType="text/x-mp", Metadata={"m": "1"}
    )
    uid = upload["UploadId"]
    assert upload["Key"] == key
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(key, uid)]
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1, Body=one)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=2, Body=two)["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts["Parts"]] == [
        (1, e1, len(one)),
        (2, e2, len(two)),
    ]
    first = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid, MaxParts=1)
    assert first["IsTruncated"]
    assert first["NextPartNumberMarker"] == 1
    in_order = [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=uid,
            MultipartUpload={"Parts": in_order[::-1]},
        )
    assert code_of(exc) == "InvalidPartOrder"
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=uid,
        MultipartUpload={"Parts": in_order},
    )
    assert done["ETag"].endswith('-2"')
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == one + two
    assert got["ContentType"] == "text/x-mp"
    assert got["Metadata"] == {"m": "1"}
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


def test_upload_part_copy_and_abort(s3, bucket: str) -> None:
    src = secrets.token_bytes(6 * MiB)
    s3.put_object(Bucket=bucket, Key="source", Body=src)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    p1 = s3.upload_part_copy(
        Bucket=bucket,
        Key="assembled",
        UploadId=uid,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "source"},
        CopySourceRange=f"bytes=0-{5 * MiB - 1}",
    )["CopyPartResult"]["ETag"]
    p2 = s3.upload_part_copy(
        Bucket=bucket,
        Key="assembled",
        UploadId=uid,
        PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "source"},
        CopySourceRange=f"bytes={5 * MiB}-{len(src) - 1}",
    )["CopyPartResult"]["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="assembled",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1}, {"PartNumber": 2, "ETag": p2}]},
    )
    assert s3.get_object(Bucket=bucket, Key="assembled")["Body"].read() == src

    uid = s3.create_multipart_upload(Bucket=bucket, Key="aborted")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="aborted", UploadId=uid, PartNumber=1, Body=b"x")
    resp = s3.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=uid)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="aborted", UploadId=uid)
    assert code_of(exc) == "NoSuchUpload"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="aborted")


@pytest.mark.parametrize("number", ["0", "10001", "x"])
def test_upload_part_number_range(gateway: Gateway, s3, bucket: str, number: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    reply = raw(
        gateway, "PUT", f"/{bucket}/k", query={"partNumber": number, "uploadId": uid}, body=b"x"
    )
    assert_error(reply, "InvalidArgument", 400)


@pytest.mark.parametrize(
    "body",
    [
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>",
        b"<CompleteMultipartUpload></CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>x</ETag></Part>"
        b"</CompleteMultipartUpload>",
    ],
)
def test_complete_malformed(gateway: Gateway, s3, bucket: str, body: bytes) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    reply = raw(gateway, "POST", f"/{bucket}/k", query={"uploadId": uid}, body=body)
    assert_error(reply, "MalformedXML", 400)


# -- errors and refusals --------------------------------------------------------------------------


def test_error_document_shape(gateway: Gateway, bucket: str) -> None:
    reply = raw(gateway, "GET", f"/{bucket}/missing%20key")
    assert_error(reply, "NoSuchKey", 404)
    assert reply.headers["Content-Type"] == "application/xml"
    assert reply.xml().findtext("Resource") == f"/{bucket}/missing key"
    assert raw(gateway, "GET", "/no-such-bucket-here").error_code() == "NoSuchBucket"


def test_head_error_has_no_body(gateway: Gateway, bucket: str) -> None:
    reply = raw(gateway, "HEAD", f"/{bucket}/missing")
    assert reply.status == 404
    assert reply.body == b""
    assert reply.headers["x-amz-request-id"]


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/{b}", {"tagging": ""}),
        ("PUT", "/{b}", {"versioning": ""}),
        ("GET", "/{b}", {"policy": ""}),
        ("PUT", "/{b}", {"lifecycle": ""}),
        ("GET", "/{b}/k", {"tagging": ""}),
        ("POST", "/{b}/k", {"restore": ""}),
    ],
)
def test_unimplemented_subresources(
    gateway: Gateway, bucket: str, method: str, path: str, query: dict[str, str]
) -> None:
    reply = raw(gateway, method, path.format(b=bucket), query=query)
    assert_error(reply, "NotImplemented", 501)


def test_unimplemented_via_boto3(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert code_of(exc) == "NotImplemented"
    assert status_of(exc) == 501


def test_anonymous_denied(gateway: Gateway, bucket: str) -> None:
    for method, path in (("GET", "/"), ("GET", f"/{bucket}"), ("PUT", f"/{bucket}/k")):
        reply = raw(gateway, method, path, sign=False, body=b"x" if method == "PUT" else b"")
        assert_error(reply, "AccessDenied", 403)


def test_reader_role_reads_only(gateway: Gateway, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="shared", Body=b"readable")
    name = f"reader{secrets.token_hex(3)}"
    gateway.cli("user", "add", name, "--role", "reader")
    key = json.loads(gateway.cli("key", "create", name, "--json").stdout)
    reader = boto3.client(
        "s3",
        endpoint_url=gateway.endpoint,
        aws_access_key_id=key["access_key"],
        aws_secret_access_key=key["secret_key"],
        region_name="us-east-1",
        config=BotoConfig(retries={"max_attempts": 1}),
    )
    assert reader.get_object(Bucket=bucket, Key="shared")["Body"].read() == b"readable"
    assert reader.list_objects_v2(Bucket=bucket)["KeyCount"] == 1
    reader.head_bucket(Bucket=bucket)
    for call in (
        lambda: reader.put_object(Bucket=bucket, Key="nope", Body=b"x"),
        lambda: reader.delete_object(Bucket=bucket, Key="shared"),
        lambda: reader.create_bucket(Bucket=f"r-{secrets.token_hex(4)}"),
        lambda: reader.create_multipart_upload(Bucket=bucket, Key="nope"),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert code_of(exc) == "AccessDenied"
        assert "reader" in exc.value.response["Error"]["Message"]
    assert s3.get_object(Bucket=bucket, Key="shared")["Body"].read() == b"readable"


def test_put_without_length(gateway: Gateway, bucket: str) -> None:
    url = urlsplit(gateway.endpoint)
    request = AWSRequest(
        method="PUT",
        url=f"{gateway.endpoint}/{bucket}/nolength",
        headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"},
    )
    S3SigV4Auth(Credentials(gateway.access_key, gateway.secret_key), "s3", "us-east-1").add_auth(
        request
    )
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.putrequest("PUT", f"/{bucket}/nolength", skip_accept_encoding=True)
        for name, value in request.headers.items():
            conn.putheader(name, value)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        conn.send(b"4\r\ndata\r\n0\r\n\r\n")
        resp = conn.getresponse()
        reply = Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()
    assert_error(reply, "MissingContentLength", 411)


def test_unknown_method(gateway: Gateway, bucket: str) -> None:
    assert_error(raw(gateway, "PATCH", f"/{bucket}/k", body=b"x"), "NotImplemented", 501)
    assert_error(raw(gateway, "DELETE", "/"), "MethodNotAllowed", 405)


def test_virtual_hosted_style(request: pytest.FixtureRequest, gateway: Gateway, tmp_path) -> None:
    """With --domain, ``<bucket>.<domain>`` in the Host header names the bucket."""
    upstream = request.getfixturevalue("versitygw") if gateway.backend == "s3" else None
    domain = "s3.minimo.test"
    with run_gateway(tmp_path / "vhost", upstream=upstream, extra_args=["--domain", domain]) as gw:
        s3 = boto3_client(gw)
        name = f"vh-{secrets.token_hex(4)}"
        s3.create_bucket(Bucket=name)
        s3.put_object(Bucket=name, Key="dir/a+b c", Body=b"virtual")
        port = urlsplit(gw.endpoint).port
        host = f"{name}.{domain}:{port}"
        signed = AWSRequest(
            method="GET",
            url=f"http://{host}/dir/a%2Bb%20c",
            headers={"X-Amz-Content-SHA256": hashlib.sha256(b"").hexdigest()},
        )
        S3SigV4Auth(Credentials(gw.access_key, gw.secret_key), "s3", "us-east-1").add_auth(signed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("GET", "/dir/a%2Bb%20c", headers={**signed.headers, "Host": host})
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"virtual")
        finally:
            conn.close()
