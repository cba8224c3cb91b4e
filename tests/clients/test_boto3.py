"""boto3 against every gateway of the matrix, with boto3's DEFAULT configuration.

That default matters: since boto3 1.36 every upload carries a CRC checksum, and over HTTPS
boto3 streams it as ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` (aws-chunked body, checksum in a
trailer, ``Transfer-Encoding: chunked``, no Content-Length). Downloads are compared byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.error
from datetime import UTC, datetime, timedelta
from pathlib import Path

import botocore.auth
import botocore.crt.auth
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.conftest import boto3_client, file_sha256, urlopen
from tests.servers import Gateway

MiB = 1 << 20
# boto3's default threshold and part size are both 8 MiB: 21 MiB makes three parts
BIG = 21 * MiB
TRANSFER = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB)


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def read_body(s3, bucket: str, key: str, **kwargs) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()


def test_put_get_head_delete(s3, bucket: str) -> None:
    body = b"hello minimo\n" * 100
    put = s3.put_object(Bucket=bucket, Key="a/b.txt", Body=body, ContentType="text/plain")
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'

    got = s3.get_object(Bucket=bucket, Key="a/b.txt")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain"
    assert got["ETag"] == put["ETag"]

    head = s3.head_object(Bucket=bucket, Key="a/b.txt")
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == put["ETag"]

    s3.delete_object(Bucket=bucket, Key="a/b.txt")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="a/b.txt")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="a/b.txt")
    assert error_code(exc) == "NoSuchKey"


def test_empty_object(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert read_body(s3, bucket, "empty") == b""
    assert s3.head_object(Bucket=bucket, Key="empty")["ContentLength"] == 0


@pytest.mark.parametrize(
    "key",
    ["données/été 2026.csv", "spaces and+plus=equals&amp.txt", "日本/語", "a/b/c/~tilde(1)!*'"],
)
def test_awkward_keys_round_trip(s3, bucket: str, key: str) -> None:
    """Keys whose URL encoding differs between clients must still verify and round-trip."""
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert read_body(s3, bucket, key) == key.encode()
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == [key]


def test_user_metadata_round_trip(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="m", Body=b"x", Metadata={"run": "7", "operator": "ada"})
    head = s3.head_object(Bucket=bucket, Key="m")
    assert head["Metadata"] == {"run": "7", "operator": "ada"}


def test_range_get(s3, bucket: str) -> None:
    body = bytes(range(256)) * 4
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-19")
    assert got["Body"].read() == body[10:20]
    assert got["ContentRange"] == f"bytes 10-19/{len(body)}"
    assert read_body(s3, bucket, "r", Range="bytes=-5") == body[-5:]


def test_upload_and_download_file_multipart(s3, bucket: str, payload_file, tmp_path: Path) -> None:
    src = payload_file(BIG)
    s3.upload_file(str(src), bucket, "big.bin", Config=TRANSFER)

    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == BIG
    assert head["ETag"].endswith('-3"'), head["ETag"]

    dst = tmp_path / "big.out"
    s3.download_file(bucket, "big.bin", str(dst), Config=TRANSFER)
    assert file_sha256(dst) == file_sha256(src)


class OneWayStream:
    """A pipe-like reader: no seek, no tell, no length, so boto3 cannot rewind or pre-hash it."""

    def __init__(self, path: Path) -> None:
        self._f = path.open("rb")

    def read(self, size: int = -1) -> bytes:
        return self._f.read(size)

    def close(self) -> None:
        self._f.close()


@pytest.mark.parametrize("size", [100_000, 12 * MiB], ids=["single", "multipart"])
def test_upload_fileobj_non_seekable(
    s3, bucket: str, payload_file, tmp_path: Path, size: int
) -> None:
    src = payload_file(size)
    stream = OneWayStream(src)
    try:
        s3.upload_fileobj(stream, bucket, "stream.bin", Config=TRANSFER)
    finally:
        stream.close()
    dst = tmp_path / "stream.out"
    with dst.open("wb") as f:
        s3.download_fileobj(bucket, "stream.bin", f)
    assert file_sha256(dst) == file_sha256(src)


def test_list_objects_v2_paginator(s3, bucket: str) -> None:
    keys = sorted(f"k/{i:03d}" for i in range(25))
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    paginator = s3.get_paginator("list_objects_v2")
    pages = list(paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 10}))
    assert [page["KeyCount"] for page in pages] == [10, 10, 5]
    assert [page["IsTruncated"] for page in pages] == [True, True, False]
    assert [o["Key"] for page in pages for o in page["Contents"]] == keys
    assert all(page["MaxKeys"] == 10 for page in pages)


def test_list_objects_v1_and_delimiter(s3, bucket: str) -> None:
    for key in ["top.txt", "dir/a", "dir/b", "dir/sub/c", "other/d"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"1")
    v2 = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in v2["Contents"]] == ["top.txt"]
    assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["dir/", "other/"]
    v2 = s3.list_objects_v2(Bucket=bucket, Prefix="dir/", Delimiter="/")
    assert [o["Key"] for o in v2["Contents"]] == ["dir/a", "dir/b"]
    assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["dir/sub/"]

    pages = list(
        s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2})
    )
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == [
        "dir/a",
        "dir/b",
        "dir/sub/c",
        "other/d",
        "top.txt",
    ]


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_put_object_checksum_algorithm(s3, bucket: str, algorithm: str) -> None:
    body = secrets.token_bytes(70_000)
    s3.put_object(Bucket=bucket, Key=f"c-{algorithm}", Body=body, ChecksumAlgorithm=algorithm)
    assert read_body(s3, bucket, f"c-{algorithm}") == body


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256"])
def test_upload_file_checksum_algorithm_multipart(
    s3, bucket: str, payload_file, tmp_path: Path, algorithm: str
) -> None:
    """Each part carries its own checksum; the gateway must verify them all."""
    src = payload_file(17 * MiB)
    s3.upload_file(
        str(src), bucket, "ck.bin", Config=TRANSFER, ExtraArgs={"ChecksumAlgorithm": algorithm}
    )
    dst = tmp_path / "ck.out"
    s3.download_file(bucket, "ck.bin", str(dst))
    assert file_sha256(dst) == file_sha256(src)


def test_content_md5(s3, bucket: str) -> None:
    body = b"integrity matters" * 1000
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    s3.put_object(Bucket=bucket, Key="md5", Body=body, ContentMD5=md5)
    assert read_body(s3, bucket, "md5") == body

    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="md5-bad", Body=body, ContentMD5=wrong)
    assert error_code(exc) == "BadDigest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="md5-bad")


def test_copy_object(s3, bucket: str) -> None:
    body = secrets.token_bytes(50_000)
    s3.put_object(Bucket=bucket, Key="src/orig", Body=body, Metadata={"k": "v"})
    other = f"t-{secrets.token_hex(6)}"
    s3.create_bucket(Bucket=other)

    copied = s3.copy_object(
        Bucket=other, Key="dst/copy", CopySource={"Bucket": bucket, "Key": "src/orig"}
    )
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert read_body(s3, other, "dst/copy") == body
    assert s3.head_object(Bucket=other, Key="dst/copy")["Metadata"] == {"k": "v"}

    s3.copy_object(
        Bucket=bucket,
        Key="src/replaced",
        CopySource=f"{bucket}/src/orig",
        Metadata={"new": "yes"},
        MetadataDirective="REPLACE",
    )
    assert s3.head_object(Bucket=bucket, Key="src/replaced")["Metadata"] == {"new": "yes"}


def test_delete_objects(s3, bucket: str) -> None:
    keys = [f"d/{i}" for i in range(5)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    result = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": k} for k in [*keys, "d/never-existed"]]},
    )
    # S3 reports deleting a missing key as success
    assert sorted(d["Key"] for d in result["Deleted"]) == sorted([*keys, "d/never-existed"])
    assert not result.get("Errors")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0

    s3.put_object(Bucket=bucket, Key="q", Body=b"x")
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "q"}], "Quiet": True})
    assert not quiet.get("Deleted")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


@pytest.mark.parametrize("signature_version", ["s3", "s3v4"], ids=["sigv2", "sigv4"])
def test_presigned_get(gateway: Gateway, s3, bucket: str, signature_version: str) -> None:
    key = "shared/report 1+1.txt"
    body = b"presigned body"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    signer = boto3_client(gateway, signature_version=signature_version)
    params = {"Bucket": bucket, "Key": key}
    url = signer.generate_presigned_url("get_object", Params=params, ExpiresIn=300)
    # make sure the form we meant to test is the one boto3 produced
    assert ("X-Amz-Signature=" in url) == (signature_version == "s3v4"), url
    with urlopen(gateway, url) as response:
        assert response.status == 200
        assert response.read() == body
    # the method is part of what is signed: HEAD needs its own URL
    url = signer.generate_presigned_url("head_object", Params=params, ExpiresIn=300)
    with urlopen(gateway, url, method="HEAD") as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == len(body)


def test_presigned_get_tampered_is_refused(gateway: Gateway, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="secret", Body=b"x")
    s3.put_object(Bucket=bucket, Key="other", Body=b"y")
    url = boto3_client(gateway, signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "secret"}, ExpiresIn=300
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urlopen(gateway, url.replace("/secret?", "/other?"))
    assert exc.value.code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in exc.value.read()


def test_presigned_v4_expired_is_refused(
    gateway: Gateway, s3, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object(Bucket=bucket, Key="old", Body=b"x")
    # sign as if it were two hours ago with a one-minute lifetime: long expired, no sleeping
    signed_at = datetime.now(UTC) - timedelta(hours=2)

    def two_hours_ago(remove_tzinfo: bool = True) -> datetime:
        return signed_at.replace(tzinfo=None) if remove_tzinfo else signed_at

    # botocore signs in Python, or in awscrt when that is installed (it is: a dependency)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", two_hours_ago)
    monkeypatch.setattr(botocore.crt.auth, "get_current_datetime", two_hours_ago)
    url = boto3_client(gateway, signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "old"}, ExpiresIn=60
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urlopen(gateway, url)
    assert exc.value.code == 403
    body = exc.value.read()
    assert b"<Code>AccessDenied</Code>" in body, body


def test_multipart_by_hand(s3, bucket: str, payload_file) -> None:
    src = payload_file(5 * MiB + 12345)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp/obj", ContentType="x-test/mp")
    upload_id = upload["UploadId"]

    listed = s3.list_multipart_uploads(Bucket=bucket)
    assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == [("mp/obj", upload_id)]

    parts, md5s = [], []
    with src.open("rb") as f:
        for number, size in [(1, 5 * MiB), (2, 12345)]:
            chunk = f.read(size)
            md5s.append(hashlib.md5(chunk).digest())
            etag = s3.upload_part(
                Bucket=bucket, Key="mp/obj", UploadId=upload_id, PartNumber=number, Body=chunk
            )["ETag"]
            assert etag == f'"{md5s[-1].hex()}"'
            parts.append({"PartNumber": number, "ETag": etag})

    listed_parts = s3.list_parts(Bucket=bucket, Key="mp/obj", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed_parts] == [
        (1, parts[0]["ETag"], 5 * MiB),
        (2, parts[1]["ETag"], 12345),
    ]
    # not visible before Complete
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="mp/obj")

    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp/obj", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    expected_etag = f'"{hashlib.md5(b"".join(md5s)).hexdigest()}-2"'
    assert done["ETag"] == expected_etag
    head = s3.head_object(Bucket=bucket, Key="mp/obj")
    assert head["ETag"] == expected_etag
    assert head["ContentLength"] == src.stat().st_size
    assert head["ContentType"] == "x-test/mp"
    digest = hashlib.sha256(read_body(s3, bucket, "mp/obj")).hexdigest()
    assert digest == file_sha256(src)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_multipart_abort_leaves_nothing(s3, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="gone", UploadId=upload_id, PartNumber=1, Body=b"z" * 1000)
    s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=upload_id)

    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="gone", UploadId=upload_id)
    assert error_code(exc) == "NoSuchUpload"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="gone",
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]},
        )
    assert error_code(exc) == "NoSuchUpload"


def test_buckets(s3) -> None:
    name = f"t-{secrets.token_hex(6)}"
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    assert s3.get_bucket_location(Bucket=name).get("LocationConstraint") in (None, "us-east-1")
    s3.put_object(Bucket=name, Key="x", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert error_code(exc) == "BucketNotEmpty"
    s3.delete_object(Bucket=name, Key="x")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
