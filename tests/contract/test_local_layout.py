"""The ``local`` backend's own promises: the on-disk layout an admin can read, atomic
placement, key safety. These are not part of the shared contract (an S3 server keeps its
bytes its own way), so they run on ``local`` only."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from gateway.backends.base import Conditions, WriteMeta
from gateway.backends.local import XATTR, LocalObjectStore
from gateway.backends.local import reader as reader_module
from gateway.backends.local.layout import Target
from gateway.backends.local.nowait import on_local_filesystem, read_cached
from gateway.backends.local.reader import head_from_cache, head_sync, open_from_cache
from gateway.protocol.errors import S3Error
from tests.contract.helpers import (
    Bytes,
    Failing,
    MiB,
    get,
    md5,
    pattern,
    put,
    raises,
    read_all,
)

BUCKET = "b"


def run_local(tmp_path: Path, fn: Callable[[LocalObjectStore, Path], Awaitable[None]]) -> None:
    async def main() -> None:
        root = tmp_path / "objects"
        store = LocalObjectStore(root)
        await store.start()
        try:
            await store.create_bucket(BUCKET)
            await fn(store, root)
        finally:
            await store.close()

    asyncio.run(main())


def tmp_entries(root: Path) -> list[str]:
    return sorted(os.listdir(root / ".minimo" / "tmp"))


def test_raw_bytes_and_xattr_on_disk(tmp_path: Path) -> None:
    async def t(store: LocalObjectStore, root: Path) -> None:
        data = pattern(MiB + 5)
        meta = WriteMeta("text/csv", {"run": "7"}, {"cache-control": "max-age=1"})
        etag = await store.put_object(BUCKET, "2026/run7/data.csv", Bytes(data), meta)
        path = root / BUCKET / "2026" / "run7" / "data.csv"
        assert path.read_bytes() == data  # exactly the object's bytes, nothing else
        record = json.loads(os.getxattr(path, XATTR))
        assert record["etag"] == etag == md5(data)
        assert record["type"] == "text/csv" and record["meta"] == {"run": "7"}
        assert record["headers"] == {"cache-control": "max-age=1"}
        assert tmp_entries(root) == []

    run_local(tmp_path, t)


def test_folder_marker_is_the_directory(tmp_path: Path) -> None:
    async def t(store: LocalObjectStore, root: Path) -> None:
        await put(store, BUCKET, "photos/", b"")
        assert (root / BUCKET / "photos").is_dir()
        assert json.loads(os.getxattr(root / BUCKET / "photos", XATTR))["etag"] == md5(b"")
        async with raises("InvalidRequest"):
            await put(store, BUCKET, "data/", b"markers hold no data")
        # an empty marker directory survives deletes of what was inside it
        await put(store, BUCKET, "photos/a.jpg", b"jpg")
        await store.delete_object(BUCKET, "photos/a.jpg")
        assert (root / BUCKET / "photos").is_dir()
        await store.delete_object(BUCKET, "photos/")
        assert not (root / BUCKET / "photos").exists()

    run_local(tmp_path, t)


def test_empty_parents_removed_but_not_the_bucket(tmp_path: Path) -> None:
    async def t(store: LocalObjectStore, root: Path) -> None:
        await put(store, BUCKET, "x/y/z/k", b"1")
        await put(store, BUCKET, "x/keep", b"2")
        await store.delete_object(BUCKET, "x/y/z/k")
        assert not (root / BUCKET / "x" / "y").exists()
        assert (root / BUCKET / "x" / "keep").exists()
        await store.delete_object(BUCKET, "x/keep")
        assert os.listdir(root / BUCKET) == []
        await store.head_bucket(BUCKET)

    run_local(tmp_path, t)


def test_path_conflicts(tmp_path: Path) -> None:
    async def t(store: LocalObjectStore, root: Path) -> None:
        await put(store, BUCKET, "file", b"f")
        async with raises("ObjectParentIsFile"):
            await put(store, BUCKET, "file/child", b"c")
        async with raises("ObjectParentIsFile"):
            await put(store, BUCKET, "file/", b"")
        await put(store, BUCKET, "dir/child", b"c")
        async with raises("ExistingObjectIsDirectory"):
            await put(store, BUCKET, "dir", b"d")
        async with raises("NoSuchKey"):
            await store.head_object(BUCKET, "dir")
        async with raises("NoSuchKey"):
            await store.head_object(BUCKET, "file/")
        await store.delete_object(BUCKET, "dir")  # not an object: nothing happens
        await store.delete_object(BUCKET, "file/")  # neither is this; "file" keeps its metadata
        assert (await store.head_object(BUCKET, "file")).etag == md5(b"f")
        assert await get(store, BUCKET, "dir/child") == b"c"
        # a leftover empty directory does not block an object of that name
        os.makedirs(root / BUCKET / "leftover" / "deeper")
        await put(store, BUCKET, "leftover", b"fine")
        assert await get(store, BUCKET, "leftover") == b"fine"
        assert tmp_entries(root) == []

    run_local(tmp_path, t)


@pytest.mark.parametrize(
    "key", ["../escape", "a/../../b", "a/./b", "./a", "/abs", "a//b", "a\x00b", "..", "."]
)
def test_keys_that_would_escape_are_refused(tmp_path: Path, key: str) -> None:
    async def t(store: LocalObjectStore, root: Path) -> None:
        async with raises("InvalidObjectName") as caught:
            await put(store, BUCKET, key, b"evil")
        assert caught[0].status == 400 and caught[0].message
        for call in (store.head_object(BUCKET, key), store.delete_object(BUCKET, key)):
            async with raises("InvalidObjectName"):
                await call
        assert sorted(os.listdir(root)) == [".minimo", BUCKET]
        assert os.listdir(root / BUCKET) == []

    run_local(tmp_path, t)


def test_bucket_names_cannot_reach_internal_state(tmp_path: Path) -> None:
    async def t(store: LocalObjectStore, root: Path) -> None:
        for name in (".minimo", "..", "a/b", ""):
            async with raises("InvalidBucketName"):
                await store.create_bucket(name)
            async with raises("InvalidBucketName"):
                await store.list_objects(name)
        assert [b.name for b in await store.list_buckets()] == [BUCKET]

    run_local(tmp_path, t)


def test_long_segments_and_keys(tmp_path: Path) -> None:
    async def t(store: LocalObjectStore, root: Path) -> None:
        async with raises("KeyTooLongError"):
            await put(store, BUCKET, "s" * 256, b"x")  # one filesystem name too long
        async with raises("KeyTooLongError"):
            await put(store, BUCKET, "é" * 513, b"x")  # 1026 bytes of UTF-8

    run_local(tmp_path, t)


def test_failed_writes_leave_no_temp_files(tmp_path: Path) -> None:
    async def t(store: LocalObjectStore, root: Path) -> None:
        data = pattern(12 * MiB)  # several write batches before the failure
        async with raises("BadDigest"):
            await store.put_object(BUCKET, "k", Failing(data, 9 * MiB, MiB), WriteMeta())
        upload_id = await store.create_multipart_upload(BUCKET, "m", WriteMeta())
        async with raises("BadDigest"):
            await store.upload_part(BUCKET, "m", upload_id, 1, Failing(data, 5 * MiB, MiB))
        assert tmp_entries(root) == []
        assert os.listdir(root / BUCKET) == []

    run_local(tmp_path, t)


def test_cancelled_write_leaves_nothing(tmp_path: Path) -> None:
    started = asyncio.Event()

    class Stalls(Bytes):
        async def __aiter__(self):  # type: ignore[override]
            yield pattern(6 * MiB)  # more than one write batch: a disk write is in flight
            started.set()
            await asyncio.sleep(3600)  # a client that goes quiet: the request gets cancelled
            yield b"never"

    async def t(store: LocalObjectStore, root: Path) -> None:
        task = asyncio.create_task(store.put_object(BUCKET, "k", Stalls(b""), WriteMeta()))
        await started.wait()
        # the batch is handed to a worker thread, which creates the temp file when it starts:
        # cancel once it has, or the loop below may see "no file" before the file exists
        for _ in range(1000):
            if tmp_entries(root):
                break
            await asyncio.sleep(0.01)
        assert tmp_entries(root), "the first batch never reached the disk"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # a cancelled write does not wait for its batch; the file goes when the batch ends
        for _ in range(1000):
            if not tmp_entries(root):
                break
            await asyncio.sleep(0.01)
        assert tmp_entries(root) == []
        async with raises("NoSuchKey"):
            await store.head_object(BUCKET, "k")

    run_local(tmp_path, t)


def test_md5_from_the_body_is_used(tmp_path: Path) -> None:
    class Hashed(Bytes):
        md5_hex: str | None = None

        async def __aiter__(self):  # type: ignore[override]
            async for piece in super().__aiter__():
                yield piece
            self.md5_hex = "0" * 32  # what the auth layer computed while verifying

    async def t(store: LocalObjectStore, root: Path) -> None:
        assert await store.put_object(BUCKET, "k", Hashed(b"data"), WriteMeta()) == "0" * 32

        class Unhashed(Hashed):
            async def __aiter__(self):  # type: ignore[override]
                async for piece in Bytes.__aiter__(self):
                    yield piece  # md5_hex stays None: the store hashes the file itself

        assert await store.put_object(BUCKET, "k2", Unhashed(b"data"), WriteMeta()) == md5(b"data")

    run_local(tmp_path, t)


def test_foreign_files_are_listed_and_served(tmp_path: Path) -> None:
    async def t(store: LocalObjectStore, root: Path) -> None:
        (root / BUCKET / "by-hand").mkdir()
        (root / BUCKET / "by-hand" / "f.txt").write_bytes(b"admin copied this")
        (root / BUCKET / "empty-dir").mkdir()
        page = await store.list_objects(BUCKET, delimiter="/")
        assert page.prefixes == ["by-hand/"]  # the empty directory is no prefix
        assert await get(store, BUCKET, "by-hand/f.txt") == b"admin copied this"
        info = await store.head_object(BUCKET, "by-hand/f.txt")
        assert info.size == 17 and info.etag

    run_local(tmp_path, t)


def test_small_reads_answer_alike_from_the_cache_and_from_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small object in the page cache is read on the event loop (no thread hand-off); one the
    kernel cannot answer from memory goes to the thread pool. Both answer the same bytes, info,
    ranges and conditions. The disk leg is forced by having the cached open refuse, as it does
    for pages the kernel dropped: dropping them (fadvise DONTNEED) is only advice, and a page
    still in another CPU's LRU batch survives it."""

    async def t(store: LocalObjectStore, root: Path) -> None:
        data = pattern(4096)
        meta = WriteMeta("text/csv", {"run": "7"})
        etag = await store.put_object(BUCKET, "small.csv", Bytes(data), meta)
        path = root / BUCKET / "small.csv"
        target = Target(BUCKET, "small.csv", str(root / BUCKET), str(path), False)

        answers = []
        for cached in (True, False):
            if cached:
                assert open_from_cache(target, None, None) is not None
            else:
                monkeypatch.setattr(reader_module, "open_cached", lambda path, flags: None)
                assert open_from_cache(target, None, None) is None
            reader = await store.open_object(BUCKET, "small.csv")
            body = await read_all(reader)
            ranged = await get(store, BUCKET, "small.csv", range_header="bytes=10-19")
            async with raises("NotModified"):
                await store.open_object(
                    BUCKET, "small.csv", conditions=Conditions(if_none_match=f'"{etag}"')
                )
            answers.append((body, reader.info, ranged))
        monkeypatch.undo()
        assert answers[0] == answers[1]
        assert answers[0][0] == data and answers[0][2] == data[10:20]
        assert answers[0][1].content_type == "text/csv" and answers[0][1].metadata == {"run": "7"}
        # HEAD reads no bytes: answered on the event loop, as the thread pool answers it
        assert head_from_cache(target, None) == head_sync(target, None) == answers[0][1]
        assert await store.head_object(BUCKET, "small.csv") == answers[0][1]
        async with raises("PreconditionFailed"):
            await store.head_object(BUCKET, "small.csv", Conditions(if_match='"other"'))

    run_local(tmp_path, t)


def test_pages_the_kernel_dropped_are_not_read_on_the_event_loop(tmp_path: Path) -> None:
    """Once the kernel has dropped a file's pages, the cached read refuses (the read would wait
    for the disk). Dropping is advice the kernel may defer, so it is asked again until it acts."""
    path = tmp_path / "cold.bin"
    path.write_bytes(pattern(4096))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # only clean pages can be dropped
        for _ in range(50):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            if read_cached(fd, 4096, 0) is None:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the kernel kept the file's pages through 50 requests to drop them")
        assert os.pread(fd, 4096, 0) == pattern(4096)  # a blocking read fetches them
        assert read_cached(fd, 4096, 0) == pattern(4096)  # and now they are in memory
    finally:
        os.close(fd)


def test_reads_on_the_event_loop_only_on_local_file_systems(tmp_path: Path) -> None:
    """On a network or FUSE file system even a cached open asks a server: the store reads there
    on its thread pool. Pseudo file systems are not local disks either."""
    assert not on_local_filesystem("/proc")
    assert not on_local_filesystem("/sys/fs")

    async def t(store: LocalObjectStore, root: Path) -> None:
        assert store._from_cache == on_local_filesystem(str(root))

    run_local(tmp_path, t)


def test_upload_ids_are_safe_command_line_arguments(tmp_path: Path) -> None:
    """`aws s3api upload-part --upload-id ID` takes an ID that begins with '-' for an option
    (CI saw it: "argument --upload-id: expected one argument"); no id begins so, or needs
    quoting in a shell or a URL."""

    async def t(store: LocalObjectStore, root: Path) -> None:
        ids = [await store.create_multipart_upload(BUCKET, f"k{n}", WriteMeta()) for n in range(64)]
        assert len(set(ids)) == 64
        assert [i for i in ids if not re.fullmatch(r"[0-9a-z]{32,}", i)] == []

    run_local(tmp_path, t)


def test_upload_id_marker_pages_within_one_key(tmp_path: Path) -> None:
    async def t(store: LocalObjectStore, root: Path) -> None:
        ids = [await store.create_multipart_upload(BUCKET, "same", WriteMeta()) for _ in "abc"]
        ids.sort()
        page = await store.list_multipart_uploads(BUCKET, max_uploads=2)
        assert [u.upload_id for u in page.uploads] == ids[:2] and page.truncated
        page = await store.list_multipart_uploads(
            BUCKET,
            key_marker=page.next_key_marker or "",
            upload_id_marker=page.next_upload_id_marker or "",
        )
        assert [u.upload_id for u in page.uploads] == ids[2:] and not page.truncated
        # without an upload id marker, the key marker's key is skipped whole
        page = await store.list_multipart_uploads(BUCKET, key_marker="same")
        assert page.uploads == []

    run_local(tmp_path, t)


def test_concurrent_writes_and_deletes_in_one_directory(tmp_path: Path) -> None:
    async def t(store: LocalObjectStore, root: Path) -> None:
        async def churn(i: int) -> None:
            for _ in range(10):
                await put(store, BUCKET, f"shared/deep/k{i}", b"v")
                await store.delete_object(BUCKET, f"shared/deep/k{i}")

        async def keep(i: int) -> None:
            await put(store, BUCKET, f"shared/deep/keep{i}", b"v")

        await asyncio.gather(*(churn(i) for i in range(4)), *(keep(i) for i in range(4)))
        keys = [o.key for o in (await store.list_objects(BUCKET)).objects]
        assert keys == [f"shared/deep/keep{i}" for i in range(4)]

    run_local(tmp_path, t)


def test_stale_temp_files_are_cleaned_on_start(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    tmp = root / ".minimo" / "tmp"
    tmp.mkdir(parents=True)
    (tmp / "obj-old").write_bytes(b"crashed write")
    (tmp / "obj-young").write_bytes(b"another process is writing this")
    old = time.time() - 3 * 24 * 3600
    os.utime(tmp / "obj-old", (old, old))

    async def main() -> None:
        store = LocalObjectStore(root)
        await store.start()
        await store.close()

    asyncio.run(main())
    assert sorted(os.listdir(tmp)) == ["obj-young"]


def test_check_fails_without_a_writable_directory(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")

    async def main() -> None:
        store = LocalObjectStore(not_a_dir)
        with pytest.raises(S3Error):
            await store.check()
        await store.close()
        store = LocalObjectStore(tmp_path / "missing")
        with pytest.raises(S3Error):
            await store.check()
        await store.close()

    asyncio.run(main())


CRASHING_WRITER = """
import asyncio, sys
from pathlib import Path
from gateway.backends.base import WriteMeta
from gateway.backends.local import LocalObjectStore

class Endless:
    size = 1 << 30
    async def __aiter__(self):
        while True:
            yield b"z" * (1 << 20)
            await asyncio.sleep(0.001)

async def main():
    store = LocalObjectStore(Path(sys.argv[1]))
    await store.start()
    await store.put_object("b", "victim", Endless(), WriteMeta())

asyncio.run(main())
"""


def test_crash_mid_write_leaves_no_object(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    root = tmp_path / "objects"

    async def prepare() -> None:
        store = LocalObjectStore(root)
        await store.start()
        await store.create_bucket(BUCKET)
        await put(store, BUCKET, "victim", b"the old version")
        await store.close()

    asyncio.run(prepare())
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, str(root)], cwd=repo)
    try:
        tmp = root / ".minimo" / "tmp"
        for _ in range(3000):  # until some batches reached the disk
            sizes = [f.stat().st_size for f in tmp.iterdir()] if tmp.exists() else []
            if any(size >= 8 * MiB for size in sizes):
                break
            assert proc.poll() is None, "the writer exited early"
            time.sleep(0.01)
        else:
            pytest.fail("the writer never got going")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    async def check() -> None:
        store = LocalObjectStore(root)
        await store.start()
        try:
            assert await get(store, BUCKET, "victim") == b"the old version"
            assert [o.key for o in (await store.list_objects(BUCKET)).objects] == ["victim"]
        finally:
            await store.close()

    asyncio.run(check())


def test_small_put_is_checked_in_its_write_hop_and_the_refusal_still_comes_first(
    tmp_path: Path,
) -> None:
    """A small PUT's existence checks run in the write's thread hop, after its body was read;
    a refusal they give (here If-None-Match on an existing object, and a missing bucket) is
    still the answer when the body is bad too, as when the checks ran first. Nothing is left
    in the temp directory."""

    async def t(store: LocalObjectStore, root: Path) -> None:
        await put(store, BUCKET, "taken", b"first")
        small = pattern(4096)
        async with raises("PreconditionFailed"):
            await store.put_object(BUCKET, "taken", Bytes(small), WriteMeta(), if_none_match=True)
        async with raises("PreconditionFailed"):
            body = Failing(small, 1024, 1024)
            await store.put_object(BUCKET, "taken", body, WriteMeta(), if_none_match=True)
        async with raises("NoSuchBucket"):
            await store.put_object("missing", "k", Failing(small, 1024, 1024), WriteMeta())
        async with raises("BadDigest"):  # no check refuses it: the body's own error
            await store.put_object(BUCKET, "fresh", Failing(small, 1024, 1024), WriteMeta())
        assert await get(store, BUCKET, "taken") == b"first"
        assert tmp_entries(root) == []

    run_local(tmp_path, t)
