"""minio-py 7.2 against every gateway: the calls MinIO's own Python SDK users rely on.

The client is built the way users build it (no region given, so it asks GetBucketLocation);
over HTTPS it trusts exactly the gateway's certificate. Downloads are compared byte for byte.
"""

from __future__ import annotations

import filecmp
import hashlib
import urllib.error
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error as MinioS3Error

from tests.conftest import file_sha256, urlopen
from tests.servers import Gateway

PART_SIZE = 5 * 1024 * 1024


@pytest.fixture
def mc(gateway: Gateway) -> Minio:
    url = urlsplit(gateway.endpoint)
    https = url.scheme == "https"
    http_client = None
    if https:
        http_client = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED",
            ca_certs=str(gateway.ca_file),
            retries=urllib3.Retry(total=0),
        )
    else:
        http_client = urllib3.PoolManager(retries=urllib3.Retry(total=0))
    return Minio(
        url.netloc,
        access_key=gateway.access_key,
        secret_key=gateway.secret_key,
        secure=https,
        http_client=http_client,
    )


def test_fput_fget_stat_small(mc: Minio, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "small.txt"
    src.write_bytes(b"minio small object\n" * 100)
    result = mc.fput_object(
        bucket,
        "docs/small.txt",
        str(src),
        content_type="text/plain",
        metadata={"x-amz-meta-project": "minimo", "Color": "blue"},
    )
    assert result.etag == hashlib.md5(src.read_bytes()).hexdigest()

    stat = mc.stat_object(bucket, "docs/small.txt")
    assert stat.size == src.stat().st_size
    assert stat.etag == result.etag
    assert stat.content_type == "text/plain"
    assert stat.metadata["x-amz-meta-project"] == "minimo"
    assert stat.metadata["x-amz-meta-color"] == "blue"

    down = tmp_path / "down.txt"
    mc.fget_object(bucket, "docs/small.txt", str(down))
    assert filecmp.cmp(src, down, shallow=False)


def test_fput_multipart(mc: Minio, bucket: str, payload_file, tmp_path: Path) -> None:
    big = payload_file(21 * 1024 * 1024, "big.bin")
    result = mc.fput_object(bucket, "big.bin", str(big), part_size=PART_SIZE)
    assert result.etag.endswith("-5"), result.etag  # 21 MiB in 5 MiB parts

    stat = mc.stat_object(bucket, "big.bin")
    assert stat.size == big.stat().st_size
    assert stat.etag == result.etag

    down = tmp_path / "down.bin"
    mc.fget_object(bucket, "big.bin", str(down))
    assert file_sha256(down) == file_sha256(big)


def test_list_objects(mc: Minio, s3, bucket: str) -> None:
    keys = ["a.txt", "dir/b.txt", "dir/sub/c.txt", "dir2/d.txt", "été/e.txt"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())

    flat = [(o.object_name, o.is_dir) for o in mc.list_objects(bucket)]
    assert flat == [
        ("a.txt", False),
        ("dir/", True),
        ("dir2/", True),
        ("été/", True),
    ]
    everything = [o.object_name for o in mc.list_objects(bucket, recursive=True)]
    assert everything == sorted(keys, key=lambda k: k.encode())
    under = [o.object_name for o in mc.list_objects(bucket, prefix="dir/", recursive=True)]
    assert under == ["dir/b.txt", "dir/sub/c.txt"]
    one_level = [o.object_name for o in mc.list_objects(bucket, prefix="dir/")]
    assert one_level == ["dir/b.txt", "dir/sub/"]
    sizes = {o.object_name: o.size for o in mc.list_objects(bucket, recursive=True)}
    assert sizes == {k: len(k.encode()) for k in keys}


def test_ranged_get(mc: Minio, s3, bucket: str) -> None:
    data = bytes(range(256)) * 1024
    s3.put_object(Bucket=bucket, Key="range.bin", Body=data)
    for offset, length in [(0, 1), (1000, 5000), (len(data) - 10, 10), (12345, 0)]:
        response = mc.get_object(bucket, "range.bin", offset=offset, length=length)
        try:
            got = response.read()
        finally:
            response.close()
            response.release_conn()
        want = data[offset : offset + length] if length else data[offset:]
        assert got == want, (offset, length)


def test_presigned_get(mc: Minio, gateway: Gateway, s3, bucket: str) -> None:
    data = b"presigned by minio-py\n" * 50
    s3.put_object(Bucket=bucket, Key="dir/shared file.txt", Body=data)
    url = mc.presigned_get_object(bucket, "dir/shared file.txt", expires=timedelta(minutes=5))
    with urlopen(gateway, url) as response:
        assert response.read() == data

    # The URL signs exactly this object: another key with the same query string is refused.
    tampered = url.replace("shared%20file.txt", "other.txt", 1)
    assert tampered != url
    with pytest.raises(urllib.error.HTTPError) as err:
        urlopen(gateway, tampered)
    assert err.value.code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in err.value.read()


def test_remove_object_and_objects(mc: Minio, s3, bucket: str) -> None:
    keys = [f"del/{i}.txt" for i in range(5)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")

    mc.remove_object(bucket, keys[0])
    with pytest.raises(MinioS3Error) as err:
        mc.stat_object(bucket, keys[0])
    assert err.value.code == "NoSuchKey"

    errors = list(mc.remove_objects(bucket, [DeleteObject(k) for k in [*keys[1:], "del/absent"]]))
    assert errors == []
    assert [o.object_name for o in mc.list_objects(bucket, recursive=True)] == []
