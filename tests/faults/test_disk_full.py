"""A full disk (issue 8, item 3; docs/failures.md): a small tmpfs holds the local backend's
data directory, or the SQLite file, and is filled up. A write that does not fit answers
``507 InsufficientStorage`` with a Message naming the full store, leaves nothing behind (no
object, no temp file, no record), ``/_minimo/health`` answers 503 saying which store is full,
and once space is freed writes work again without a restart.

Needs root (``mount -t tmpfs``; tmpfs keeps ``user.*`` xattrs, which the local backend needs).
"""

from __future__ import annotations

import errno
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.faults.helpers import client, put, records_of, wait_for_health
from tests.servers import Gateway, run_gateway


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` for the test (unmounted after)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write a filler file into ``directory`` until its file system is full."""
    filler = directory / f".filler-{secrets.token_hex(4)}"
    block = b"\0" * (1 << 20)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        # the last partial block
        while True:
            try:
                if os.write(fd, b"\0" * 4096) == 0:
                    break
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    finally:
        os.close(fd)
    return filler


def _bucket(gw: Gateway) -> str:
    name = f"f-{secrets.token_hex(5)}"
    client(gw).create_bucket(Bucket=name)
    return name


def test_object_store_disk_full(tmp_path: Path) -> None:
    data = tmp_path / "gw"
    with ExitStack() as stack:
        objects = stack.enter_context(tmpfs(data / "objects", "16m"))
        gw = stack.enter_context(run_gateway(data))
        s3 = client(gw)
        bucket = _bucket(gw)
        assert put(s3, bucket, "before", b"fits").status == 200
        filler = fill(objects)

        answer = put(s3, bucket, "too-big", secrets.token_bytes(1 << 20))
        assert (answer.status, answer.code) == (507, "InsufficientStorage"), answer
        assert answer.message is not None
        assert answer.message.startswith("The object store is full"), answer.message
        assert str(objects) not in answer.message
        # nothing left behind: no object, no temp file, no record
        assert [p.name for p in (objects / ".minimo" / "tmp").iterdir()] == []
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        assert [o["Key"] for o in listed] == ["before"]
        assert records_of(gw, bucket, ["too-big"]) == {"too-big": None}

        down = wait_for_health(gw, 503)
        assert down["object_store"].startswith("full"), down
        assert down["metadata_store"] == "ok"

        filler.unlink()
        wait_for_health(gw, 200)
        assert put(s3, bucket, "too-big", secrets.token_bytes(1 << 20)).status == 200
        assert records_of(gw, bucket, ["too-big"])["too-big"] is not None


def test_metadata_store_disk_full(tmp_path: Path) -> None:
    """The SQLite file's file system full: writes answer 507 naming the metadata store."""
    data = tmp_path / "gw"
    with ExitStack() as stack:
        stack.enter_context(tmpfs(data, "24m"))
        # the objects on a file system of their own, so only the metadata store is full
        stack.enter_context(tmpfs(data / "objects", "64m"))
        gw = stack.enter_context(run_gateway(data))
        s3 = client(gw)
        bucket = _bucket(gw)
        assert put(s3, bucket, "before", b"fits").status == 200
        filler = fill(data)

        # SQLite first fills the room its files already have: write until a write fails
        failed = None
        for i in range(3000):
            answer = put(s3, bucket, f"k{i:05d}", b"x")
            if answer.status != 200:
                failed = answer
                break
        assert failed is not None, "3000 writes fitted on a full disk"
        assert (failed.status, failed.code) == (507, "InsufficientStorage"), failed
        assert failed.message is not None
        assert failed.message.startswith("The metadata store is full"), failed.message

        down = wait_for_health(gw, 503)
        assert down["metadata_store"].startswith("full"), down

        filler.unlink()
        wait_for_health(gw, 200)
        assert put(s3, bucket, "after", b"fits again").status == 200
        assert records_of(gw, bucket, ["after"])["after"] is not None
        # the write that failed left no record (its object: see docs/failures.md)
        assert records_of(gw, bucket, [failed.key])[failed.key] is None
