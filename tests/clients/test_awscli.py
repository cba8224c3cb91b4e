"""aws cli v1, run as a subprocess, against every gateway of the matrix.

Each test gets an isolated environment: keys and region from variables, empty config and
credentials files, so nothing on the machine (~/.aws, AWS_PROFILE...) can change what is sent.
Downloads are compared by hash, never loaded whole.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import file_sha256, urlopen
from tests.servers import Gateway

MiB = 1 << 20
AWS = Path(sys.executable).with_name("aws")


@dataclass
class AwsCli:
    gw: Gateway
    env: dict[str, str]
    cwd: Path

    def execute(self, *args: str, stdin: Path | None = None) -> subprocess.CompletedProcess:
        """Run ``aws ARGS`` against the gateway; stdout and stderr are captured as bytes."""
        cmd = [str(AWS), *args, "--endpoint-url", self.gw.endpoint]
        if self.gw.ca_file:
            cmd += ["--ca-bundle", str(self.gw.ca_file)]
        with stdin.open("rb") if stdin else open(os.devnull, "rb") as infile:
            self.last = subprocess.run(
                cmd, stdin=infile, capture_output=True, env=self.env, cwd=self.cwd, timeout=600
            )
        return self.last

    def run(self, *args: str, check: bool = True, stdin: Path | None = None) -> str:
        """Run ``aws ARGS``; return its stdout as text, asserting success unless told not to."""
        proc = self.execute(*args, stdin=stdin)
        out = proc.stdout.decode("utf-8", "replace")
        if check:
            assert proc.returncode == 0, (
                f"aws {' '.join(args)} exited {proc.returncode}\nstdout: {out}\n"
                f"stderr: {proc.stderr.decode('utf-8', 'replace')}"
            )
        return out

    def api(self, *args: str) -> dict:
        """Run ``aws s3api ARGS`` and parse its JSON output ({} when it printed nothing)."""
        out = self.run("s3api", *args, "--output", "json")
        return json.loads(out) if out.strip() else {}

    def config(self, text: str) -> None:
        Path(self.env["AWS_CONFIG_FILE"]).write_text(text)


@pytest.fixture
def aws(gateway: Gateway, tmp_path: Path) -> AwsCli:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config").write_text("")
    (home / "credentials").write_text("")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LC_ALL": "C.UTF-8",
        "PYTHONUTF8": "1",
        "AWS_ACCESS_KEY_ID": gateway.access_key,
        "AWS_SECRET_ACCESS_KEY": gateway.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    work = tmp_path / "work"
    work.mkdir()
    return AwsCli(gateway, env, work)


def listed_keys(s3, bucket: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def action_lines(output: str, action: str) -> list[str]:
    """The ``upload: ...`` / ``download: ...`` lines of an ``aws s3`` transfer command."""
    return [line for line in output.splitlines() if line.startswith(f"{action}:")]


def test_cp_small_up_and_down(aws: AwsCli, bucket: str, payload_file, tmp_path: Path) -> None:
    src = payload_file(3000, "small.txt")
    out = aws.run("s3", "cp", str(src), f"s3://{bucket}/docs/small.txt")
    assert "upload:" in out
    dst = tmp_path / "small.out"
    aws.run("s3", "cp", f"s3://{bucket}/docs/small.txt", str(dst))
    assert file_sha256(dst) == file_sha256(src)


def test_cp_multipart_21mib(aws: AwsCli, s3, bucket: str, payload_file, tmp_path: Path) -> None:
    """21 MiB crosses aws cli's 8 MiB threshold: a three-part upload and a ranged download."""
    src = payload_file(21 * MiB, "big.bin")
    aws.run("s3", "cp", str(src), f"s3://{bucket}/big.bin")
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == 21 * MiB
    assert head["ETag"].endswith('-3"'), head["ETag"]
    dst = tmp_path / "big.out"
    aws.run("s3", "cp", f"s3://{bucket}/big.bin", str(dst))
    assert file_sha256(dst) == file_sha256(src)


def test_cp_stdin_and_stdout(aws: AwsCli, bucket: str, payload_file, tmp_path: Path) -> None:
    """``cp -`` uploads a stream of unknown length; ``cp ... -`` streams the object back."""
    src = payload_file(200_000, "stream.bin")
    aws.run("s3", "cp", "-", f"s3://{bucket}/stream.bin", stdin=src)
    proc = aws.execute("s3", "cp", f"s3://{bucket}/stream.bin", "-")
    assert proc.returncode == 0, proc.stderr
    dst = tmp_path / "stream.out"
    dst.write_bytes(proc.stdout)
    assert file_sha256(dst) == file_sha256(src)


def make_tree(root: Path) -> dict[str, bytes]:
    """A folder tree with nesting, non-ASCII names, spaces and ``+``; returns key -> content."""
    files = {
        "top.txt": b"top\n",
        "a/b/c/deep.bin": bytes(range(256)) * 40,
        "données/été.txt": "accents é\n".encode(),
        "with space/file + plus.txt": b"plus and space\n",
        "日本語/ファイル.txt": "ユニコード\n".encode(),
        "empty.dat": b"",
    }
    # Files written a moment ago can be newer than the second-precision LastModified S3 lists
    # after their upload, and aws cli then sends them again: date them an hour back, as any
    # real data set would be.
    an_hour_ago = time.time() - 3600
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, (an_hour_ago, an_hour_ago))
    return files


def test_sync_both_ways(aws: AwsCli, s3, bucket: str, tmp_path: Path) -> None:
    up = tmp_path / "tree"
    files = make_tree(up)
    prefix = f"s3://{bucket}/tree/"

    first = aws.run("s3", "sync", str(up), prefix)
    assert len(action_lines(first, "upload")) == len(files), first
    assert sorted(listed_keys(s3, bucket)) == sorted(f"tree/{k}" for k in files)

    # nothing changed: nothing may be sent again (sizes and times must agree)
    again = aws.run("s3", "sync", str(up), prefix)
    assert action_lines(again, "upload") == [], again

    # one file grows: only that one is sent
    (up / "top.txt").write_bytes(b"top, longer now\n")
    changed = aws.run("s3", "sync", str(up), prefix)
    assert len(action_lines(changed, "upload")) == 1, changed
    files["top.txt"] = b"top, longer now\n"

    down = tmp_path / "down"
    got = aws.run("s3", "sync", prefix, str(down))
    assert len(action_lines(got, "download")) == len(files), got
    for rel, content in files.items():
        assert (down / rel).read_bytes() == content, rel

    again = aws.run("s3", "sync", prefix, str(down))
    assert action_lines(again, "download") == [], again


def test_sync_delete(aws: AwsCli, s3, bucket: str, tmp_path: Path) -> None:
    up = tmp_path / "tree"
    files = make_tree(up)
    aws.run("s3", "sync", str(up), f"s3://{bucket}/")
    (up / "with space/file + plus.txt").unlink()
    out = aws.run("s3", "sync", "--delete", str(up), f"s3://{bucket}/")
    assert len(action_lines(out, "delete")) == 1, out
    assert sorted(listed_keys(s3, bucket)) == sorted(k for k in files if "plus" not in k)


def test_ls(aws: AwsCli, s3, bucket: str) -> None:
    for key in ["top.txt", "dir/a.txt", "dir/sub/b.txt"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"12345")

    buckets = aws.run("s3", "ls")
    assert bucket in buckets.split()

    flat = aws.run("s3", "ls", f"s3://{bucket}/")
    assert "PRE dir/" in flat
    assert "top.txt" in flat
    assert "a.txt" not in flat

    inside = aws.run("s3", "ls", f"s3://{bucket}/dir/")
    assert "PRE sub/" in inside and "a.txt" in inside

    recursive = aws.run("s3", "ls", "--recursive", f"s3://{bucket}/")
    names = [line.split(maxsplit=3)[3] for line in recursive.splitlines() if line.strip()]
    assert names == ["dir/a.txt", "dir/sub/b.txt", "top.txt"]


def test_rm(aws: AwsCli, s3, bucket: str) -> None:
    for key in ["keep.txt", "one.txt", "dir/a", "dir/b", "dir/sub/c"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    aws.run("s3", "rm", f"s3://{bucket}/one.txt")
    assert sorted(listed_keys(s3, bucket)) == ["dir/a", "dir/b", "dir/sub/c", "keep.txt"]
    out = aws.run("s3", "rm", "--recursive", f"s3://{bucket}/dir/")
    assert len(action_lines(out, "delete")) == 3, out
    assert listed_keys(s3, bucket) == ["keep.txt"]


def test_mb_rb(aws: AwsCli, s3, tmp_path: Path) -> None:
    name = f"t-mb-{os.urandom(4).hex()}"
    aws.run("s3", "mb", f"s3://{name}")
    assert name in aws.run("s3", "ls").split()
    s3.put_object(Bucket=name, Key="x", Body=b"x")

    aws.run("s3", "rb", f"s3://{name}", check=False)
    assert aws.last.returncode != 0
    assert b"BucketNotEmpty" in aws.last.stderr

    aws.run("s3", "rb", "--force", f"s3://{name}")
    assert name not in aws.run("s3", "ls").split()


def test_s3api_objects(aws: AwsCli, s3, bucket: str, tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_bytes(b"0123456789abcdefghij")
    put = aws.api(
        "put-object", "--bucket", bucket, "--key", "dir/obj.txt", "--body", str(body),
        "--metadata", "run=7,operator=ada", "--content-type", "text/plain",
    )  # fmt: skip
    assert put["ETag"].strip('"')

    head = aws.api("head-object", "--bucket", bucket, "--key", "dir/obj.txt")
    assert head["Metadata"] == {"run": "7", "operator": "ada"}
    assert head["ContentType"] == "text/plain"
    assert head["ContentLength"] == 20
    assert head["ETag"] == put["ETag"]

    part = tmp_path / "part.out"
    got = aws.api(
        "get-object", "--bucket", bucket, "--key", "dir/obj.txt", "--range", "bytes=2-5", str(part)
    )
    assert part.read_bytes() == b"2345"
    assert got["ContentRange"] == "bytes 2-5/20"

    aws.api(
        "copy-object", "--bucket", bucket, "--key", "copy/obj.txt",
        "--copy-source", f"{bucket}/dir/obj.txt",
    )  # fmt: skip
    assert s3.get_object(Bucket=bucket, Key="copy/obj.txt")["Body"].read() == body.read_bytes()
    s3.put_object(Bucket=bucket, Key="top", Body=b"t")

    listing = aws.api("list-objects-v2", "--bucket", bucket, "--delimiter", "/")
    assert [o["Key"] for o in listing["Contents"]] == ["top"]
    assert [p["Prefix"] for p in listing["CommonPrefixes"]] == ["copy/", "dir/"]

    deleted = aws.api(
        "delete-objects", "--bucket", bucket,
        "--delete", json.dumps({"Objects": [{"Key": "dir/obj.txt"}, {"Key": "copy/obj.txt"}]}),
    )  # fmt: skip
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["copy/obj.txt", "dir/obj.txt"]
    assert listed_keys(s3, bucket) == ["top"]


def test_s3api_multipart_by_hand(
    aws: AwsCli, s3, bucket: str, payload_file, tmp_path: Path
) -> None:
    part1 = payload_file(5 * MiB, "part1.bin")
    part2 = payload_file(777, "part2.bin")
    upload_id = aws.api("create-multipart-upload", "--bucket", bucket, "--key", "mp.bin")[
        "UploadId"
    ]
    parts = []
    for number, path in [(1, part1), (2, part2)]:
        etag = aws.api(
            "upload-part", "--bucket", bucket, "--key", "mp.bin", "--upload-id", upload_id,
            "--part-number", str(number), "--body", str(path),
        )["ETag"]  # fmt: skip
        parts.append({"PartNumber": number, "ETag": etag})

    listed = aws.api("list-parts", "--bucket", bucket, "--key", "mp.bin", "--upload-id", upload_id)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2]

    manifest = tmp_path / "parts.json"
    manifest.write_text(json.dumps({"Parts": parts}))
    done = aws.api(
        "complete-multipart-upload", "--bucket", bucket, "--key", "mp.bin",
        "--upload-id", upload_id, "--multipart-upload", f"file://{manifest}",
    )  # fmt: skip
    assert done["ETag"].endswith('-2"')

    dst = tmp_path / "mp.out"
    aws.run("s3", "cp", f"s3://{bucket}/mp.bin", str(dst))
    joined = tmp_path / "joined.bin"
    with joined.open("wb") as out:
        out.write(part1.read_bytes())
        out.write(part2.read_bytes())
    assert file_sha256(dst) == file_sha256(joined)


@pytest.mark.parametrize("version", ["v2", "v4"])
def test_presign(aws: AwsCli, s3, bucket: str, version: str) -> None:
    key = "shared/a b+c.txt"
    s3.put_object(Bucket=bucket, Key=key, Body=b"presigned by aws cli")
    if version == "v4":
        aws.config("[default]\ns3 =\n  signature_version = s3v4\n")
    url = aws.run("s3", "presign", f"s3://{bucket}/{key}", "--expires-in", "300").strip()
    # aws cli v1 presigns with SigV2 unless told otherwise: check we test what we think
    assert ("X-Amz-Signature=" in url) == (version == "v4"), url
    with urlopen(aws.gw, url) as response:
        assert response.read() == b"presigned by aws cli"
