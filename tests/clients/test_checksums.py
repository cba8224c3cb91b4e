"""Checksums kept and returned (issue 10, item 2): aws cli, boto3 and minio-py each write with a
checksum and read it back with checksum mode, on both object backends.

boto3 over HTTPS sends its checksum in an aws-chunked trailer, over HTTP as a header, so the
matrix covers both ways a checksum arrives. Expected values are computed here from the bytes.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from minio import Minio

from gateway.protocol.checksums import checksum_b64
from tests.clients.test_awscli import AwsCli, aws  # noqa: F401 - the aws fixture
from tests.clients.test_minio import mc  # noqa: F401 - the mc fixture
from tests.conftest import boto3_client
from tests.servers import Gateway

BOTH = pytest.mark.parametrize("gateway", ["local-http", "s3-http"], indirect=True)
ALGORITHMS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]


def checksum_headers(response: dict) -> dict[str, str]:
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    return {k: v for k, v in headers.items() if k.startswith("x-amz-checksum-")}


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.mark.parametrize(
    "gateway", ["local-http", "local-https", "s3-http", "s3-https"], indirect=True
)
def test_boto3_put_with_each_algorithm_reads_it_back(gateway: Gateway, bucket: str) -> None:
    s3 = boto3_client(gateway)
    data = secrets.token_bytes(300_000)
    for algorithm in ALGORITHMS:
        key = f"k-{algorithm}"
        put = s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm=algorithm)
        expected = checksum_b64(algorithm.lower(), data)
        assert put[f"Checksum{algorithm}"] == expected
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert head[f"Checksum{algorithm}"] == expected
        assert head["ChecksumType"] == "FULL_OBJECT"
        got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert got[f"Checksum{algorithm}"] == expected
        assert got["Body"].read() == data  # botocore also validates the checksum it was given
        # without checksum mode, no checksum is answered (as S3 does)
        assert checksum_headers(s3.head_object(Bucket=bucket, Key=key)) == {}


@BOTH
def test_put_without_checksum_answers_minimo_sha256(gateway: Gateway, bucket: str) -> None:
    """A client that sends no checksum gets minimo's own SHA-256 as the object's checksum."""
    s3 = boto3_client(
        gateway, request_checksum_calculation="when_required", signature_version="s3v4"
    )
    data = b"no checksum sent" * 1000
    put = s3.put_object(Bucket=bucket, Key="plain", Body=data)
    assert put["ChecksumSHA256"] == sha256_b64(data)
    head = s3.head_object(Bucket=bucket, Key="plain", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == sha256_b64(data)
    assert head["ChecksumType"] == "FULL_OBJECT"


@BOTH
def test_ranged_get_answers_no_checksum(gateway: Gateway, bucket: str) -> None:
    s3 = boto3_client(gateway)
    s3.put_object(Bucket=bucket, Key="k", Body=b"0123456789", ChecksumAlgorithm="CRC32")
    got = s3.get_object(Bucket=bucket, Key="k", Range="bytes=2-4", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"234"
    assert checksum_headers(got) == {}


@BOTH
def test_aws_cli_checksum_round_trip(aws: AwsCli, bucket: str, tmp_path: Path) -> None:  # noqa: F811
    src = tmp_path / "file.bin"
    data = secrets.token_bytes(100_000)
    src.write_bytes(data)
    put = aws.api(
        "put-object",
        "--bucket",
        bucket,
        "--key",
        "cli.bin",
        "--body",
        str(src),
        "--checksum-algorithm",
        "SHA256",
    )
    assert put["ChecksumSHA256"] == sha256_b64(data)
    head = aws.api(
        "head-object", "--bucket", bucket, "--key", "cli.bin", "--checksum-mode", "ENABLED"
    )
    assert head["ChecksumSHA256"] == sha256_b64(data)
    out = tmp_path / "out.bin"
    got = aws.api(
        "get-object", "--bucket", bucket, "--key", "cli.bin", "--checksum-mode", "ENABLED", str(out)
    )
    assert got["ChecksumSHA256"] == sha256_b64(data)
    assert out.read_bytes() == data


@BOTH
def test_minio_checksum_round_trip(mc: Minio, bucket: str) -> None:  # noqa: F811
    """minio-py 7.2 has no checksum API: the header goes in as ``metadata`` (minio-py passes
    x-amz-* names through as headers), checksum mode in stat_object's extra headers."""
    import io

    data = secrets.token_bytes(50_000)
    crc = checksum_b64("crc32c", data)
    mc.put_object(
        bucket, "m.bin", io.BytesIO(data), len(data), metadata={"x-amz-checksum-crc32c": crc}
    )
    stat = mc.stat_object(bucket, "m.bin", extra_headers={"x-amz-checksum-mode": "ENABLED"})
    assert stat.metadata["x-amz-checksum-crc32c"] == crc
    assert stat.metadata["x-amz-checksum-type"] == "FULL_OBJECT"
    # a wrong checksum is refused, and nothing is stored
    with pytest.raises(Exception, match="BadDigest"):
        mc.put_object(
            bucket,
            "bad.bin",
            io.BytesIO(data),
            len(data),
            metadata={"x-amz-checksum-crc32c": checksum_b64("crc32c", b"other")},
        )


def _multipart_upload(s3, bucket: str, key: str, parts: list[bytes], **kwargs) -> dict:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **kwargs)["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=data)
        done.append({"PartNumber": number, "ETag": part["ETag"]})
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done}
    )


@BOTH
def test_boto3_part_number_reads_one_part(gateway: Gateway, bucket: str) -> None:
    s3 = boto3_client(gateway)
    parts = [secrets.token_bytes(5 << 20), secrets.token_bytes(5 << 20), b"tail" * 100]
    _multipart_upload(s3, bucket, "mp", parts)
    total = sum(len(p) for p in parts)
    start = 0
    for number, data in enumerate(parts, start=1):
        got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=number)
        assert got["PartsCount"] == 3
        assert got["ContentRange"] == f"bytes {start}-{start + len(data) - 1}/{total}"
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["Body"].read() == data
        head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=number)
        assert head["PartsCount"] == 3 and head["ContentLength"] == len(data)
        start += len(data)
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=4)
    assert caught.value.response["Error"]["Code"] == "InvalidPartNumber"
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=1, Range="bytes=0-1")
    assert caught.value.response["Error"]["Code"] == "InvalidRequest"
    # a single PUT is one part: the whole object
    s3.put_object(Bucket=bucket, Key="one", Body=b"0123456789")
    got = s3.get_object(Bucket=bucket, Key="one", PartNumber=1)
    assert got["Body"].read() == b"0123456789"
    assert "PartsCount" not in got


@BOTH
def test_boto3_get_object_attributes(gateway: Gateway, bucket: str) -> None:
    s3 = boto3_client(gateway)
    data = secrets.token_bytes(10_000)
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm="SHA1")
    everything = ["ETag", "Checksum", "ObjectParts", "ObjectSize", "StorageClass"]
    attrs = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=everything)
    assert attrs["ETag"] == put["ETag"].strip('"')
    assert attrs["ObjectSize"] == len(data)
    assert attrs["StorageClass"] == "STANDARD"
    assert attrs["Checksum"] == {
        "ChecksumSHA1": checksum_b64("sha1", data),
        "ChecksumType": "FULL_OBJECT",
    }
    assert "ObjectParts" not in attrs and attrs["LastModified"]
    only = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ObjectSize"])
    assert only["ObjectSize"] == len(data) and "ETag" not in only
    _multipart_upload(s3, bucket, "mp", [secrets.token_bytes(5 << 20), b"end"])
    attrs = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=everything)
    assert attrs["ObjectParts"]["TotalPartsCount"] == 2
    assert attrs["ObjectSize"] == (5 << 20) + 3 and attrs["ETag"].endswith("-2")
    with pytest.raises(ClientError) as caught:
        s3.get_object_attributes(Bucket=bucket, Key="missing", ObjectAttributes=["ETag"])
    assert caught.value.response["Error"]["Code"] in ("NoSuchKey", "404")


@BOTH
def test_get_object_attributes_bad_header(gateway: Gateway, bucket: str) -> None:
    s3 = boto3_client(gateway)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as caught:
        s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["Colour"])
    assert caught.value.response["Error"]["Code"] == "InvalidArgument"


@BOTH
@pytest.mark.parametrize(("algorithm", "kind"), [("CRC32", "COMPOSITE"), ("CRC32C", "FULL_OBJECT")])
def test_boto3_multipart_checksums(
    gateway: Gateway, bucket: str, algorithm: str, kind: str
) -> None:
    s3 = boto3_client(gateway)
    parts = [secrets.token_bytes(5 << 20), secrets.token_bytes(1000)]
    created = s3.create_multipart_upload(
        Bucket=bucket, Key="mp", ChecksumAlgorithm=algorithm, ChecksumType=kind
    )
    assert (created["ChecksumAlgorithm"], created["ChecksumType"]) == (algorithm, kind)
    upload = created["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        part = s3.upload_part(
            Bucket=bucket,
            Key="mp",
            UploadId=upload,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm=algorithm,
        )
        assert part[f"Checksum{algorithm}"] == checksum_b64(algorithm.lower(), data)
        done.append(
            {
                "PartNumber": number,
                "ETag": part["ETag"],
                f"Checksum{algorithm}": part[f"Checksum{algorithm}"],
            }
        )
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload)["Parts"]
    assert [p[f"Checksum{algorithm}"] for p in listed] == [d[f"Checksum{algorithm}"] for d in done]
    completed = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": done}
    )
    if kind == "FULL_OBJECT":
        expected = checksum_b64(algorithm.lower(), b"".join(parts))
    else:
        digests = b"".join(base64.b64decode(checksum_b64(algorithm.lower(), p)) for p in parts)
        expected = checksum_b64(algorithm.lower(), digests) + "-2"
    assert completed[f"Checksum{algorithm}"] == expected
    assert completed["ChecksumType"] == kind
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected and head["ChecksumType"] == kind
    attrs = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["Checksum"])
    assert attrs["Checksum"] == {f"Checksum{algorithm}": expected, "ChecksumType": kind}


@BOTH
def test_boto3_upload_file_multipart_reads_back(
    gateway: Gateway, bucket: str, tmp_path: Path
) -> None:
    """boto3's transfer manager (default CRC32 on every part) completes and reads back."""
    from boto3.s3.transfer import TransferConfig

    src = tmp_path / "big.bin"
    src.write_bytes(secrets.token_bytes(11 << 20))
    s3 = boto3_client(gateway)
    config = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    s3.upload_file(str(src), bucket, "big.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big.bin", ChecksumMode="ENABLED")
    assert head["ContentLength"] == 11 << 20
    assert checksum_headers(head), "a multipart object written with checksums keeps one"
    dst = tmp_path / "out.bin"
    s3.download_file(bucket, "big.bin", str(dst))
    assert dst.read_bytes() == src.read_bytes()


@BOTH
def test_checksum_bad_input(gateway: Gateway, bucket: str) -> None:
    """Checksum requests S3 refuses get its XML errors (never a 500), and store nothing."""
    s3 = boto3_client(gateway)
    for algorithm, kind in (("CRC64NVME", "COMPOSITE"), ("SHA256", "FULL_OBJECT")):
        with pytest.raises(ClientError) as caught:
            s3.create_multipart_upload(
                Bucket=bucket, Key="k", ChecksumAlgorithm=algorithm, ChecksumType=kind
            )
        assert caught.value.response["Error"]["Code"] == "InvalidRequest"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="SHA256")
    with pytest.raises(ClientError) as caught:  # a part with another algorithm's checksum
        s3.upload_part(
            Bucket=bucket,
            Key="k",
            UploadId=upload["UploadId"],
            PartNumber=1,
            Body=b"x",
            ChecksumAlgorithm="CRC32",
        )
    assert caught.value.response["Error"]["Code"] == "InvalidRequest"
    with pytest.raises(ClientError) as caught:  # a checksum that is not the body's
        s3.put_object(
            Bucket=bucket, Key="bad", Body=b"abc", ChecksumSHA1=checksum_b64("sha1", b"x")
        )
    assert caught.value.response["Error"]["Code"] == "BadDigest"
    with pytest.raises(ClientError) as caught:
        s3.head_object(Bucket=bucket, Key="bad")
    assert caught.value.response["Error"]["Code"] == "404"


@BOTH
def test_aws_cli_multipart_cp_reads_back_checksum(
    aws: AwsCli,  # noqa: F811
    bucket: str,
    tmp_path: Path,
) -> None:
    """``aws s3 cp`` of 9 MiB is a two-part upload; the object keeps the checksum aws cli sent."""
    src = tmp_path / "big.bin"
    src.write_bytes(secrets.token_bytes(9 << 20))
    aws.run("s3", "cp", str(src), f"s3://{bucket}/big.bin")
    head = aws.api(
        "head-object", "--bucket", bucket, "--key", "big.bin", "--checksum-mode", "ENABLED"
    )
    assert head["ContentLength"] == 9 << 20
    kept = {k: v for k, v in head.items() if k.startswith("Checksum")}
    assert kept, f"no checksum kept: {head}"
    out = tmp_path / "out.bin"
    aws.run("s3", "cp", f"s3://{bucket}/big.bin", str(out))
    assert out.read_bytes() == src.read_bytes()
