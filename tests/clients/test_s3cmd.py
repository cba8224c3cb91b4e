"""s3cmd 2.4 against every gateway: bucket and object commands, multipart, sync.

s3cmd reads a config file; each test writes its own in tmp with path-style addressing
(host_bucket without ``%(bucket)s``) and SigV4 only. Downloads are compared byte for byte.
"""

from __future__ import annotations

import filecmp
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import file_sha256
from tests.servers import Gateway

S3CMD = Path(sys.executable).parent / "s3cmd"

S3cmd = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def s3cmd(gateway: Gateway, tmp_path: Path) -> S3cmd:
    url = urlsplit(gateway.endpoint)
    https = url.scheme == "https"
    lines = [
        "[default]",
        f"access_key = {gateway.access_key}",
        f"secret_key = {gateway.secret_key}",
        f"host_base = {url.netloc}",
        f"host_bucket = {url.netloc}",
        f"use_https = {https}",
        "signature_v2 = False",
        "bucket_location = us-east-1",
        # One retry at most: retries would hide requests the gateway got wrong.
        "max_retries = 1",
        "progress_meter = False",
    ]
    if https:
        lines += [
            f"ca_certs_file = {gateway.ca_file}",
            "check_ssl_certificate = True",
            "check_ssl_hostname = True",
        ]
    config = tmp_path / "s3cmd.cfg"
    config.write_text("\n".join(lines) + "\n")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, str(S3CMD), "-c", str(config), *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert proc.returncode == 0, (
                f"s3cmd {' '.join(args)} exited {proc.returncode}:\n"
                f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
            )
        return proc

    return run


def listed_uris(output: str) -> list[str]:
    """The s3:// URIs in ``s3cmd ls``/``la`` output (the last column; keys have no spaces)."""
    return [line.split()[-1] for line in output.splitlines() if "s3://" in line]


def test_mb_ls_rb(s3cmd: S3cmd, s3) -> None:
    name = f"t-{secrets.token_hex(6)}"
    s3cmd("mb", f"s3://{name}")
    assert name in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert f"s3://{name}" in listed_uris(s3cmd("ls").stdout)
    s3cmd("rb", f"s3://{name}")
    assert name not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_put_get_ls_la_info_del(s3cmd: S3cmd, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello from s3cmd\n" * 1000)
    s3cmd("put", str(src), f"s3://{bucket}/dir/hello.txt")
    s3cmd("put", str(src), f"s3://{bucket}/top.txt")

    top = s3cmd("ls", f"s3://{bucket}").stdout
    assert f"s3://{bucket}/top.txt" in listed_uris(top)
    assert any(
        line.split()[-1] == f"s3://{bucket}/dir/" and "DIR" in line for line in top.splitlines()
    )
    recursive = listed_uris(s3cmd("ls", "--recursive", f"s3://{bucket}").stdout)
    assert sorted(recursive) == [f"s3://{bucket}/dir/hello.txt", f"s3://{bucket}/top.txt"]
    everything = listed_uris(s3cmd("la").stdout)
    assert f"s3://{bucket}/top.txt" in everything

    info = s3cmd("info", f"s3://{bucket}/dir/hello.txt").stdout
    assert f"File size: {src.stat().st_size}" in info
    assert "MD5 sum:" in info
    bucket_info = s3cmd("info", f"s3://{bucket}").stdout
    assert "Location:" in bucket_info and "us-east-1" in bucket_info

    down = tmp_path / "down.txt"
    s3cmd("get", f"s3://{bucket}/dir/hello.txt", str(down))
    assert filecmp.cmp(src, down, shallow=False)

    s3cmd("del", f"s3://{bucket}/dir/hello.txt")
    recursive = listed_uris(s3cmd("ls", "--recursive", f"s3://{bucket}").stdout)
    assert recursive == [f"s3://{bucket}/top.txt"]
    missing = s3cmd("get", f"s3://{bucket}/dir/hello.txt", str(tmp_path / "no.txt"), check=False)
    assert missing.returncode != 0


def test_multipart_put_and_get(s3cmd: S3cmd, s3, bucket: str, payload_file, tmp_path: Path) -> None:
    big = payload_file(21 * 1024 * 1024, "big.bin")
    s3cmd("put", "--multipart-chunk-size-mb=5", str(big), f"s3://{bucket}/big.bin")
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == big.stat().st_size
    assert head["ETag"].strip('"').endswith("-5"), head["ETag"]  # 21 MiB in 5 MiB parts
    down = tmp_path / "down.bin"
    s3cmd("get", f"s3://{bucket}/big.bin", str(down))
    assert file_sha256(down) == file_sha256(big)


def test_sync_up_and_down(s3cmd: S3cmd, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = {
        "a.txt": b"alpha\n",
        "sub/b.txt": b"bravo\n" * 50,
        "sub/deeper/c.bin": secrets.token_bytes(50_000),
        "données/été.txt": b"unicode\n",
    }
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)

    first = s3cmd("sync", f"{src}/", f"s3://{bucket}/mirror/").stdout
    assert first.count("upload:") == len(files), first
    second = s3cmd("sync", f"{src}/", f"s3://{bucket}/mirror/").stdout
    assert "upload:" not in second, second

    down = tmp_path / "down"
    down.mkdir()
    s3cmd("sync", f"s3://{bucket}/mirror/", f"{down}/")
    for rel in files:
        assert filecmp.cmp(src / rel, down / rel, shallow=False), rel
    assert sorted(p.relative_to(down).as_posix() for p in down.rglob("*") if p.is_file()) == sorted(
        files
    )
