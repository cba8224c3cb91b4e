"""The ``s3`` object store backend against a real versitygw.

Each test drives :class:`gateway.backends.s3.S3ObjectStore` directly (no gateway in between) and
checks what the upstream holds afterwards, so forwarding, error mapping and streaming are all
exercised on the wire.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.backends import open_object_store
from gateway.backends.base import MIN_PART_SIZE, Conditions, ObjectReader, WriteMeta
from gateway.backends.s3 import S3ObjectStore
from gateway.config import Config
from gateway.protocol.errors import S3Error
from tests.servers import Versitygw

Run = Callable[[Callable[[S3ObjectStore], Awaitable[Any]]], Any]


class Payload:
    """A Body: ``data`` in ``piece``-sized chunks; raises ``fail`` once ``fail_at`` bytes went."""

    def __init__(
        self,
        data: bytes,
        *,
        piece: int = 64 * 1024,
        size: int | None = -1,
        fail_at: int | None = None,
        fail: BaseException | None = None,
    ) -> None:
        self.data = data
        self.piece = piece
        self.size = len(data) if size == -1 else size
        self.fail_at = fail_at
        self.fail = fail

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for offset in range(0, len(self.data), self.piece):
            if self.fail_at is not None and offset >= self.fail_at:
                assert self.fail is not None
                raise self.fail
            yield self.data[offset : offset + self.piece]
            await asyncio.sleep(0)


class Repeated:
    """A large Body generated on the fly (never held in memory), with its MD5 kept."""

    def __init__(self, size: int, seed: bytes) -> None:
        self.size = size
        self.block = hashlib.sha256(seed).digest() * (1 << 15)  # 1 MiB
        self.md5 = hashlib.md5()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        remaining = self.size
        while remaining > 0:
            piece = self.block[: min(remaining, len(self.block))]
            self.md5.update(piece)
            remaining -= len(piece)
            yield piece


async def read_all(reader: ObjectReader) -> bytes:
    try:
        return b"".join([piece async for piece in reader])
    finally:
        await reader.aclose()


def new_bucket() -> str:
    return f"s3b-{secrets.token_hex(5)}"


@pytest.fixture
def run(versitygw: Versitygw) -> Run:
    """Run ``fn(store)`` on a fresh event loop with a started store pointed at versitygw."""

    def runner(fn: Callable[[S3ObjectStore], Awaitable[Any]], **kwargs: Any) -> Any:
        async def main() -> Any:
            store = S3ObjectStore(
                versitygw.endpoint, versitygw.access_key, versitygw.secret_key, **kwargs
            )
            await store.start()
            try:
                return await fn(store)
            finally:
                await store.close()

        return asyncio.run(main())

    return runner


async def expect(code: str, awaitable: Awaitable[Any]) -> S3Error:
    with pytest.raises(S3Error) as info:
        await awaitable
    assert info.value.code == code, (info.value.code, info.value.message)
    return info.value


# -- buckets -----------------------------------------------------------------------------------
def test_bucket_lifecycle(run: Run) -> None:
    async def scenario(store: S3ObjectStore) -> None:
        name = new_bucket()
        await expect("NoSuchBucket", store.head_bucket(name))
        await store.create_bucket(name)
        await store.head_bucket(name)
        assert name in {b.name for b in await store.list_buckets()}
        created = next(b.created for b in await store.list_buckets() if b.name == name)
        assert created.tzinfo is not None
        err = await expect("BucketAlreadyOwnedByYou", store.create_bucket(name))
        assert err.status == 409
        await store.put_object(name, "k", Payload(b"x"), WriteMeta())
        await expect("BucketNotEmpty", store.delete_bucket(name))
        await store.delete_object(name, "k")
        await store.delete_bucket(name)
        await expect("NoSuchBucket", store.head_bucket(name))
        await expect("NoSuchBucket", store.delete_bucket(name))

    run(scenario)


def test_bucket_with_inflight_upload_is_not_empty(run: Run) -> None:
    async def scenario(store: S3ObjectStore) -> None:
        name = new_bucket()
        await store.create_bucket(name)
        upload_id = await store.create_multipart_upload(name, "pending", WriteMeta())
        await expect("BucketNotEmpty", store.delete_bucket(name))
        await store.abort_multipart_upload(name, "pending", upload_id)
        await store.delete_bucket(name)

    run(scenario)


# -- objects -----------------------------------------------------------------------------------
def test_put_head_get_roundtrip_with_metadata(run: Run) -> None:
    data = secrets.token_bytes(300_000)
    meta = WriteMeta(
        content_type="text/csv",
        metadata={"minimo-session": "s-123", "project": "run7"},
        headers={"cache-control": "no-cache", "content-disposition": "attachment"},
    )

    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        etag = await store.put_object(bucket, "dir/file.csv", Payload(data), meta)
        assert etag == hashlib.md5(data).hexdigest()
        info = await store.head_object(bucket, "dir/file.csv")
        assert (info.key, info.size, info.etag) == ("dir/file.csv", len(data), etag)
        assert info.content_type == "text/csv"
        assert info.metadata == {"minimo-session": "s-123", "project": "run7"}
        assert info.headers == {"cache-control": "no-cache", "content-disposition": "attachment"}
        assert info.last_modified.tzinfo is not None
        assert abs(info.last_modified - datetime.now(UTC)) < timedelta(hours=1)
        reader = await store.open_object(bucket, "dir/file.csv")
        assert reader.byte_range is None
        assert reader.info.metadata == info.metadata
        assert await read_all(reader) == data

    run(scenario)


@pytest.mark.parametrize(
    "size",
    [0, 1, 128 * 1024, 128 * 1024 + 1, 1024 * 1024, 2 * 1024 * 1024 + 1, 3 * 1024 * 1024 - 1],
)
def test_sizes_around_chunk_boundaries(run: Run, size: int) -> None:
    # odd piece sizes make pieces straddle the 1 MiB aws-chunked chunks sent upstream
    data = secrets.token_bytes(size)

    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        etag = await store.put_object(bucket, "k", Payload(data, piece=99_991), WriteMeta())
        assert etag == hashlib.md5(data).hexdigest()
        assert await read_all(await store.open_object(bucket, "k")) == data
        upload_id = await store.create_multipart_upload(bucket, "mp", WriteMeta())
        part = await store.upload_part(bucket, "mp", upload_id, 1, Payload(data, piece=77_777))
        assert part == etag
        await store.abort_multipart_upload(bucket, "mp", upload_id)

    run(scenario)


def test_body_shorter_or_longer_than_its_size_is_refused(run: Run) -> None:
    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        for size, declared in ((10, 11), (10, 9), (300_000, 300_001), (300_000, 299_999)):
            body = Payload(b"x" * size, size=declared)
            await expect("IncompleteBody", store.put_object(bucket, "k", body, WriteMeta()))
            await expect("NoSuchKey", store.head_object(bucket, "k"))

    run(scenario)


def test_large_object_streams_both_ways_in_big_pieces(run: Run) -> None:
    body = Repeated(24 * 1024 * 1024 + 17, b"large")

    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        etag = await store.put_object(bucket, "big", body, WriteMeta())
        assert etag == body.md5.hexdigest()
        reader = await store.open_object(bucket, "big")
        digest, total, biggest = hashlib.md5(), 0, 0
        try:
            async for piece in reader:
                digest.update(piece)
                total += len(piece)
                biggest = max(biggest, len(piece))
        finally:
            await reader.aclose()
        assert (total, digest.hexdigest()) == (body.size, etag)
        assert biggest <= 1024 * 1024

    run(scenario)


def test_odd_keys_survive(run: Run) -> None:
    # no "." or ".." segments and no trailing "/": versitygw's posix backend maps keys to paths
    # (it folds dot segments and keeps "dir/" keys for empty directory markers)
    keys = [
        "with space",
        "plus+sign",
        "percent%20literal",
        "ünïcödé/ключ/鍵",
        "q?x=1&y=2#frag",
        "tilde~star*quote'paren()",
        "semi;colon,comma=eq@at$",
        " leading and trailing spaces ",
    ]

    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        for key in keys:
            await store.put_object(bucket, key, Payload(key.encode()), WriteMeta())
        for key in keys:
            assert await read_all(await store.open_object(bucket, key)) == key.encode()
            assert (await store.head_object(bucket, key)).size == len(key.encode())
        page = await store.list_objects(bucket)
        assert [o.key for o in page.objects] == sorted(keys, key=str.encode)
        for key in keys:
            dst = "copy-" + key
            await store.copy_object(bucket, key, bucket, dst, meta=None)
            assert await read_all(await store.open_object(bucket, dst)) == key.encode()

    run(scenario)


def test_missing_objects_and_buckets(run: Run) -> None:
    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        err = await expect("NoSuchKey", store.head_object(bucket, "nope"))
        assert err.status == 404
        await expect("NoSuchKey", store.open_object(bucket, "nope"))
        await expect("NoSuchBucket", store.head_object("no-such-bucket-x", "k"))
        await expect("NoSuchBucket", store.open_object("no-such-bucket-x", "k"))
        await expect("NoSuchBucket", store.list_objects("no-such-bucket-x"))
        await expect(
            "NoSuchBucket", store.put_object("no-such-bucket-x", "k", Payload(b"x"), WriteMeta())
        )
        # deleting a missing key is not an error
        await store.delete_object(bucket, "nope")

    run(scenario)


def test_delete_object(run: Run) -> None:
    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        await store.put_object(bucket, "k", Payload(b"abc"), WriteMeta())
        await store.delete_object(bucket, "k")
        await expect("NoSuchKey", store.head_object(bucket, "k"))

    run(scenario)


def test_put_if_none_match(run: Run) -> None:
    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        await store.put_object(bucket, "once", Payload(b"1"), WriteMeta(), if_none_match=True)
        err = await expect(
            "PreconditionFailed",
            store.put_object(bucket, "once", Payload(b"2"), WriteMeta(), if_none_match=True),
        )
        assert err.status == 412
        assert await read_all(await store.open_object(bucket, "once")) == b"1"

    run(scenario)


def test_put_without_size_is_refused(run: Run) -> None:
    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        err = await expect(
            "MissingContentLength",
            store.put_object(bucket, "k", Payload(b"abc", size=None), WriteMeta()),
        )
        assert err.status == 411
        await expect("NoSuchKey", store.head_object(bucket, "k"))

    run(scenario)


class ClientWentAway(Exception):
    """Not an S3Error: the backend must pass any exception on unchanged."""


@pytest.mark.parametrize("size", [100_000, 3 * 1024 * 1024], ids=["small", "streamed"])
@pytest.mark.parametrize(
    "failure", [S3Error("BadDigest"), ClientWentAway("gone")], ids=["s3error", "other"]
)
def test_failing_body_leaves_no_object(run: Run, failure: BaseException, size: int) -> None:
    data = secrets.token_bytes(size)

    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        body = Payload(data, fail_at=len(data) // 2, fail=failure)
        with pytest.raises(type(failure)) as info:
            await store.put_object(bucket, "torn", body, WriteMeta())
        assert info.value is failure
        await expect("NoSuchKey", store.head_object(bucket, "torn"))
        # an existing object is not damaged by a failed overwrite either
        await store.put_object(bucket, "kept", Payload(b"old"), WriteMeta())
        body = Payload(data, fail_at=len(data) // 2, fail=failure)
        with pytest.raises(type(failure)):
            await store.put_object(bucket, "kept", body, WriteMeta())
        assert await read_all(await store.open_object(bucket, "kept")) == b"old"
        # and the pool still works
        assert [o.key for o in (await store.list_objects(bucket)).objects] == ["kept"]

    run(scenario)


def test_failing_part_leaves_no_part(run: Run) -> None:
    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        upload_id = await store.create_multipart_upload(bucket, "mp", WriteMeta())
        failure = S3Error("IncompleteBody")
        body = Payload(b"x" * 1_000_000, fail_at=500_000, fail=failure)
        with pytest.raises(S3Error) as info:
            await store.upload_part(bucket, "mp", upload_id, 1, body)
        assert info.value is failure
        assert (await store.list_parts(bucket, "mp", upload_id)).parts == []
        await store.abort_multipart_upload(bucket, "mp", upload_id)

    run(scenario)


# -- ranges and conditions ---------------------------------------------------------------------
def test_ranges(run: Run) -> None:
    data = bytes(range(256)) * 4  # 1024 bytes

    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        await store.put_object(bucket, "r", Payload(data), WriteMeta())

        async def ranged(header: str) -> tuple[Any, bytes, int]:
            reader = await store.open_object(bucket, "r", range_header=header)
            rng, size = reader.byte_range, reader.info.size
            return rng, await read_all(reader), size

        rng, got, size = await ranged("bytes=10-19")
        assert (rng.start, rng.end, rng.total, got, size) == (10, 19, 1024, data[10:20], 1024)
        rng, got, _ = await ranged("bytes=1000-")
        assert (rng.start, rng.end, got) == (1000, 1023, data[1000:])
        rng, got, _ = await ranged("bytes=-24")
        assert (rng.start, rng.end, got) == (1000, 1023, data[-24:])
        rng, got, _ = await ranged("bytes=1000-5000")
        assert (rng.start, rng.end, got) == (1000, 1023, data[1000:])
        # invalid or multiple ranges: the whole object
        for header in ("bytes=0-1,5-6", "bytes=x-y", "items=0-1", "bytes=5-2", "bytes=-"):
            rng, got, _ = await ranged(header)
            assert (rng, got) == (None, data), header
        err = await expect(
            "InvalidRange", store.open_object(bucket, "r", range_header="bytes=2000-")
        )
        assert err.status == 416

    run(scenario)


def test_conditions_on_read(run: Run) -> None:
    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        etag = await store.put_object(bucket, "c", Payload(b"conditional"), WriteMeta())
        past = datetime.now(UTC) - timedelta(days=1)
        future = datetime.now(UTC) + timedelta(days=1)
        modified = (await store.head_object(bucket, "c")).last_modified
        ok = [
            Conditions(if_match=f'"{etag}"'),
            Conditions(if_none_match='"other"'),
            Conditions(if_modified_since=past),
            Conditions(if_unmodified_since=future),
        ]
        for cond in ok:
            assert (await store.head_object(bucket, "c", cond)).etag == etag
            reader = await store.open_object(bucket, "c", conditions=cond)
            assert await read_all(reader) == b"conditional"
        failing = [
            ("PreconditionFailed", 412, Conditions(if_match='"other"')),
            ("PreconditionFailed", 412, Conditions(if_unmodified_since=past)),
            ("NotModified", 304, Conditions(if_none_match=f'"{etag}"')),
            ("NotModified", 304, Conditions(if_modified_since=modified)),
        ]
        for code, status, cond in failing:
            err = await expect(code, store.head_object(bucket, "c", cond))
            assert err.status == status, cond
            err = await expect(code, store.open_object(bucket, "c", conditions=cond))
            assert err.status == status, cond
            if code == "NotModified":  # a 304 carries the validators
                assert err.headers.get("ETag") == f'"{etag}"'

    run(scenario)


def test_early_close_releases_the_connection(run: Run) -> None:
    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        await store.put_object(bucket, "big", Repeated(8 * 1024 * 1024, b"e"), WriteMeta())
        # more readers abandoned half-way than the pool has connections
        for _ in range(6):
            reader = await store.open_object(bucket, "big")
            async for _piece in reader:
                break
            await reader.aclose()
            await reader.aclose()  # twice is fine
        assert (await store.head_object(bucket, "big")).size == 8 * 1024 * 1024

    run(scenario, max_connections=2)


@pytest.mark.parametrize("size", [300 * 1024, 1024 * 1024 + 17, 6 * 1024 * 1024])
def test_splice_after_the_whole_body_arrived(run: Run, size: int) -> None:
    """A busy gateway may reach send_file only after the upstream answer is complete in
    aiohttp's buffer (its parser already done with it): the body must still go out whole. Under
    concurrent load this cut 1 MiB GETs off mid-body (an AssertionError in aiohttp's
    pause_reading, which wants a parser)."""

    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        body = secrets.token_bytes(size)
        await store.put_object(bucket, "k", Payload(body), WriteMeta())
        reader = await store.open_object(bucket, "k")
        await asyncio.sleep(0.5)  # let every byte of the answer arrive before relaying
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        received = bytearray()

        def drain() -> None:
            while chunk := theirs.recv(1 << 16):
                received.extend(chunk)

        reading = threading.Thread(target=drain)
        reading.start()
        loop = asyncio.get_running_loop()

        async def writable() -> None:
            done = loop.create_future()
            loop.add_writer(ours.fileno(), lambda: done.done() or done.set_result(None))
            try:
                await done
            finally:
                loop.remove_writer(ours.fileno())

        try:
            sent = await reader.send_file(ours.fileno(), writable)  # type: ignore[attr-defined]
            if not sent:  # declined: the ordinary path sends it
                async for piece in reader:
                    ours.setblocking(True)
                    ours.sendall(piece)
        finally:
            await reader.aclose()
            ours.close()
            await asyncio.to_thread(reading.join, 30)
            theirs.close()
        assert hashlib.sha256(received).digest() == hashlib.sha256(body).digest()

    run(scenario)


# -- copy ----------------------------------------------------------------------------------------
def test_copy_object_directives_and_conditions(run: Run) -> None:
    async def scenario(store: S3ObjectStore) -> None:
        bucket, other = new_bucket(), new_bucket()
        await store.create_bucket(bucket)
        await store.create_bucket(other)
        meta = WriteMeta("text/plain", {"origin": "src"}, {"content-language": "en"})
        etag = await store.put_object(bucket, "src", Payload(b"copy me"), meta)

        result = await store.copy_object(bucket, "src", other, "same-meta", meta=None)
        assert result.etag == etag and result.last_modified.tzinfo is not None
        info = await store.head_object(other, "same-meta")
        assert (info.content_type, info.metadata, info.headers) == (
            "text/plain",
            {"origin": "src"},
            {"content-language": "en"},
        )

        new_meta = WriteMeta("application/json", {"origin": "copy"})
        await store.copy_object(bucket, "src", bucket, "new-meta", meta=new_meta)
        info = await store.head_object(bucket, "new-meta")
        assert (info.content_type, info.metadata) == ("application/json", {"origin": "copy"})
        assert await read_all(await store.open_object(bucket, "new-meta")) == b"copy me"

        await store.copy_object(
            bucket, "src", bucket, "cond-ok", meta=None, conditions=Conditions(if_match=etag)
        )
        await expect(
            "PreconditionFailed",
            store.copy_object(
                bucket, "src", bucket, "cond-no", meta=None, conditions=Conditions("nope")
            ),
        )
        await expect("NoSuchKey", store.head_object(bucket, "cond-no"))
        # date conditions on the source: a failing one is 412 (never 304) for a copy
        modified = (await store.head_object(bucket, "src")).last_modified
        for cond in (
            Conditions(if_modified_since=modified),
            Conditions(if_unmodified_since=modified - timedelta(days=1)),
            Conditions(if_none_match=f'"{etag}"'),
        ):
            err = await expect(
                "PreconditionFailed",
                store.copy_object(bucket, "src", bucket, "cond-no", meta=None, conditions=cond),
            )
            assert err.status == 412
        await expect("NoSuchKey", store.head_object(bucket, "cond-no"))
        since = Conditions(if_modified_since=modified - timedelta(days=1))
        await store.copy_object(bucket, "src", bucket, "cond-ok2", meta=None, conditions=since)
        assert (await store.head_object(bucket, "cond-ok2")).etag == etag
        await expect("NoSuchKey", store.copy_object(bucket, "absent", bucket, "x", meta=None))

    run(scenario)


# -- listing -------------------------------------------------------------------------------------
LIST_KEYS = [
    "a-x",
    "a/1",
    "a/2",
    "a/b/3",
    "a0",
    "b",
    "c/d/e",
    "c/f",
    "sp ace+plus",
    "ü/x",
    "z",
]


async def _filled_bucket(store: S3ObjectStore) -> str:
    bucket = new_bucket()
    await store.create_bucket(bucket)
    await asyncio.gather(
        *(store.put_object(bucket, k, Payload(k.encode()), WriteMeta()) for k in LIST_KEYS)
    )
    return bucket


def _expected(prefix: str, delimiter: str) -> list[str]:
    """The entries (keys and common prefixes) S3 semantics give, in UTF-8 byte order."""
    entries: set[str] = set()
    for key in LIST_KEYS:
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            entries.add(prefix + rest[: rest.index(delimiter) + len(delimiter)])
        else:
            entries.add(key)
    return sorted(entries, key=str.encode)


@pytest.mark.parametrize(
    ("prefix", "delimiter"), [("", ""), ("", "/"), ("a", "/"), ("a/", "/"), ("c/", "")]
)
def test_list_pages_cover_everything_once(run: Run, prefix: str, delimiter: str) -> None:
    async def scenario(store: S3ObjectStore) -> None:
        bucket = await _filled_bucket(store)
        full = await store.list_objects(bucket, prefix=prefix, delimiter=delimiter)
        assert not full.truncated
        entries = [o.key for o in full.objects] + full.prefixes
        assert sorted(entries, key=str.encode) == _expected(prefix, delimiter)
        for page_size in (1, 2, 3):
            seen: list[str] = []
            marker = ""
            while True:
                page = await store.list_objects(
                    bucket,
                    prefix=prefix,
                    delimiter=delimiter,
                    start_after=marker,
                    max_keys=page_size,
                )
                got = sorted([o.key for o in page.objects] + page.prefixes, key=str.encode)
                assert len(got) <= page_size
                seen += got
                if not page.truncated:
                    break
                assert page.next_marker == got[-1]
                marker = page.next_marker
            assert seen == _expected(prefix, delimiter), page_size

    run(scenario)


def test_list_details_and_edges(run: Run) -> None:
    async def scenario(store: S3ObjectStore) -> None:
        bucket = await _filled_bucket(store)
        page = await store.list_objects(bucket, prefix="c/f")
        [obj] = page.objects
        assert (obj.key, obj.size, obj.etag) == ("c/f", 3, hashlib.md5(b"c/f").hexdigest())
        assert obj.last_modified.tzinfo is not None
        assert page.next_marker == "c/f"
        # a common prefix given as start_after is skipped whole
        page = await store.list_objects(bucket, delimiter="/", start_after="a/")
        assert "a/" not in page.prefixes
        assert [o.key for o in page.objects][:1] == ["a0"]
        # start_after is exclusive
        page = await store.list_objects(bucket, start_after="b")
        assert page.objects[0].key == "c/d/e"
        empty = await store.list_objects(bucket, max_keys=0)
        assert (empty.objects, empty.prefixes) == ([], [])
        nothing = await store.list_objects(bucket, prefix="nothing-here/")
        assert (nothing.objects, nothing.prefixes, nothing.truncated) == ([], [], False)
        assert nothing.next_marker is None

    run(scenario)


# -- multipart -----------------------------------------------------------------------------------
def test_multipart_upload_complete(run: Run) -> None:
    part1 = Repeated(MIN_PART_SIZE, b"p1")
    part2_data = secrets.token_bytes(1234)

    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        meta = WriteMeta("video/mp4", {"minimo-session": "s-9"})
        upload_id = await store.create_multipart_upload(bucket, "mp/obj", meta)
        assert upload_id
        etag1 = await store.upload_part(bucket, "mp/obj", upload_id, 1, part1)
        etag2 = await store.upload_part(bucket, "mp/obj", upload_id, 2, Payload(part2_data))
        assert etag1 == part1.md5.hexdigest() and etag2 == hashlib.md5(part2_data).hexdigest()

        uploads = await store.list_multipart_uploads(bucket)
        assert [(u.key, u.upload_id) for u in uploads.uploads] == [("mp/obj", upload_id)]
        folded = await store.list_multipart_uploads(bucket, delimiter="/")
        assert (folded.uploads, folded.prefixes) == ([], ["mp/"])

        parts = await store.list_parts(bucket, "mp/obj", upload_id)
        assert [(p.number, p.etag, p.size) for p in parts.parts] == [
            (1, etag1, MIN_PART_SIZE),
            (2, etag2, 1234),
        ]
        first = await store.list_parts(bucket, "mp/obj", upload_id, max_parts=1)
        assert (len(first.parts), first.truncated, first.next_marker) == (1, True, 1)
        rest = await store.list_parts(bucket, "mp/obj", upload_id, part_marker=1)
        assert [p.number for p in rest.parts] == [2] and not rest.truncated

        etag = await store.complete_multipart_upload(
            bucket, "mp/obj", upload_id, [(1, etag1), (2, f'"{etag2}"')]
        )
        combined = hashlib.md5(bytes.fromhex(etag1) + bytes.fromhex(etag2)).hexdigest()
        assert etag == f"{combined}-2"
        info = await store.head_object(bucket, "mp/obj")
        assert (info.size, info.etag, info.content_type, info.metadata) == (
            MIN_PART_SIZE + 1234,
            etag,
            "video/mp4",
            {"minimo-session": "s-9"},
        )
        tail = await store.open_object(bucket, "mp/obj", range_header="bytes=-1234")
        assert await read_all(tail) == part2_data
        assert (await store.list_multipart_uploads(bucket)).uploads == []
        await expect("NoSuchUpload", store.list_parts(bucket, "mp/obj", upload_id))

    run(scenario)


def test_multipart_errors(run: Run) -> None:
    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        upload_id = await store.create_multipart_upload(bucket, "k", WriteMeta())
        small = await store.upload_part(bucket, "k", upload_id, 1, Payload(b"tiny"))
        await store.upload_part(bucket, "k", upload_id, 2, Payload(b"tiny too"))
        await expect(
            "InvalidPart",
            store.complete_multipart_upload(bucket, "k", upload_id, [(1, "0" * 32)]),
        )
        err = await expect(
            "EntityTooSmall",
            store.complete_multipart_upload(
                bucket, "k", upload_id, [(1, small), (2, hashlib.md5(b"tiny too").hexdigest())]
            ),
        )
        assert err.status == 400
        await expect("NoSuchKey", store.head_object(bucket, "k"))
        await store.abort_multipart_upload(bucket, "k", upload_id)
        await expect("NoSuchUpload", store.upload_part(bucket, "k", upload_id, 1, Payload(b"late")))
        await expect("NoSuchUpload", store.abort_multipart_upload(bucket, "k", "bogus-id"))
        await expect(
            "NoSuchUpload", store.complete_multipart_upload(bucket, "k", "bogus", [(1, small)])
        )
        # an aborted upload is gone, whatever parts are named
        await expect(
            "NoSuchUpload", store.complete_multipart_upload(bucket, "k", upload_id, [(1, small)])
        )

    run(scenario)


def test_upload_part_copy(run: Run) -> None:
    data = secrets.token_bytes(MIN_PART_SIZE + 1000)

    async def scenario(store: S3ObjectStore) -> None:
        bucket = new_bucket()
        await store.create_bucket(bucket)
        src_etag = await store.put_object(bucket, "src", Payload(data, piece=1 << 20), WriteMeta())
        upload_id = await store.create_multipart_upload(bucket, "dst", WriteMeta())
        first = await store.upload_part_copy(
            bucket,
            "dst",
            upload_id,
            1,
            bucket,
            "src",
            range_header=f"bytes=0-{MIN_PART_SIZE - 1}",
        )
        second = await store.upload_part_copy(
            bucket,
            "dst",
            upload_id,
            2,
            bucket,
            "src",
            range_header=f"bytes={MIN_PART_SIZE}-{len(data) - 1}",
        )
        third = await store.upload_part_copy(
            bucket,
            "dst",
            upload_id,
            3,
            bucket,
            "src",
            range_header=f"bytes={len(data) - 10}-{len(data) - 1}",
        )
        for open_range in (f"bytes={MIN_PART_SIZE}-", "bytes=-10"):  # S3 takes FIRST-LAST only
            await expect(
                "InvalidArgument",
                store.upload_part_copy(
                    bucket, "dst", upload_id, 3, bucket, "src", range_header=open_range
                ),
            )
        assert first.etag == hashlib.md5(data[:MIN_PART_SIZE]).hexdigest()
        assert second.etag == hashlib.md5(data[MIN_PART_SIZE:]).hexdigest()
        assert third.etag == hashlib.md5(data[-10:]).hexdigest()
        await expect(
            "PreconditionFailed",
            store.upload_part_copy(
                bucket, "dst", upload_id, 4, bucket, "src", conditions=Conditions("nope")
            ),
        )
        await expect(
            "InvalidArgument",
            store.upload_part_copy(
                bucket, "dst", upload_id, 4, bucket, "src", range_header="bytes=9-1"
            ),
        )
        whole = await store.upload_part_copy(
            bucket, "dst", upload_id, 4, bucket, "src", conditions=Conditions(if_match=src_etag)
        )
        assert whole.etag == src_etag
        await store.complete_multipart_upload(
            bucket, "dst", upload_id, [(1, first.etag), (3, third.etag)]
        )
        expected = data[:MIN_PART_SIZE] + data[-10:]
        assert await read_all(await store.open_object(bucket, "dst")) == expected

    run(scenario)


# -- the upstream itself -------------------------------------------------------------------------
def test_check_passes(run: Run) -> None:
    run(lambda store: store.check())


@pytest.fixture
def dead_endpoint() -> str:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_unreachable_endpoint_is_service_unavailable(dead_endpoint: str) -> None:
    async def scenario() -> None:
        store = S3ObjectStore(dead_endpoint, "k", "s", connect_timeout=2)
        await store.start()
        try:
            for op in (
                store.check(),
                store.list_buckets(),
                store.head_object("b", "k"),
                store.open_object("b", "k"),
                store.put_object("b", "k", Payload(b"abc"), WriteMeta()),
                store.list_objects("b"),
            ):
                err = await expect("ServiceUnavailable", op)
                assert err.status == 503
                assert err.headers["Retry-After"].isdigit()
                # which store, but no address or driver text (that is in the server log)
                assert err.message.startswith("The object store is unavailable")
                assert dead_endpoint not in err.message and "127.0.0.1" not in err.message
        finally:
            await store.close()

    asyncio.run(scenario())


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_read_timeout_is_service_unavailable(silent_endpoint: str) -> None:
    async def scenario() -> None:
        store = S3ObjectStore(silent_endpoint, "k", "s", read_timeout=0.5)
        await store.start()
        try:
            err = await expect("ServiceUnavailable", store.head_bucket("b"))
            assert "did not answer in time" in err.message
            assert silent_endpoint not in err.message
            await expect("ServiceUnavailable", store.check())
        finally:
            await store.close()

    asyncio.run(scenario())


def test_wrong_gateway_credentials_are_not_blamed_on_the_client(versitygw: Versitygw) -> None:
    async def scenario() -> None:
        store = S3ObjectStore(versitygw.endpoint, versitygw.access_key, "wrong-secret")
        await store.start()
        try:
            err = await expect("ServiceUnavailable", store.list_buckets())
            assert "refused the gateway's own credentials" in err.message
            assert err.status == 503 and versitygw.endpoint not in err.message
            await expect("ServiceUnavailable", store.check())
        finally:
            await store.close()

    asyncio.run(scenario())


def test_constructor_rejects_non_http_endpoints() -> None:
    with pytest.raises(ValueError):
        S3ObjectStore("ftp://example.org", "k", "s")


def test_factory_picks_backend(versitygw: Versitygw, tmp_path) -> None:
    config = Config(
        data_dir=tmp_path,
        s3_endpoint=versitygw.endpoint,
        s3_access_key=versitygw.access_key,
        s3_secret_key=versitygw.secret_key,
    )
    store = open_object_store(config)
    assert isinstance(store, S3ObjectStore) and store.kind == "s3"
    local = open_object_store(Config(data_dir=tmp_path))
    assert local.kind == "local"
    # the capabilities callers ask instead of the name: who hashes for the ETag, where on disk
    assert local.needs_body_md5 and not store.needs_body_md5
    assert local.local_dir == Config(data_dir=tmp_path).objects_dir and store.local_dir is None
    with pytest.raises(ValueError):
        open_object_store(Config(data_dir=tmp_path, s3_endpoint=versitygw.endpoint))


class FakeUpstream:
    """A loopback HTTP server answering every request with ``200`` and ``answer``.

    With ``drop=True`` it drops every other connection without answering, like an upstream
    closing a keep-alive connection just as a request is sent. ``requests`` counts requests.
    Real upstreams do these things rarely and at random; this makes them happen on cue.
    """

    def __init__(self, answer: bytes, *, drop: bool = False) -> None:
        self.answer = answer
        self.drop = drop
        self.requests = 0
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.server.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.requests += 1
                if self.drop and self.requests % 2 == 1:
                    continue
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nConnection: close\r\n"
                    + f"Content-Length: {len(self.answer)}\r\n\r\n".encode()
                    + self.answer
                )

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.server.close()


def test_dropped_connection_is_retried_once_for_idempotent_requests() -> None:
    upstream = FakeUpstream(
        b"<ListAllMyBucketsResult><Buckets><Bucket><Name>one</Name>"
        b"<CreationDate>2026-01-02T03:04:05.000Z</CreationDate></Bucket></Buckets>"
        b"</ListAllMyBucketsResult>",
        drop=True,
    )

    async def scenario() -> None:
        store = S3ObjectStore(upstream.endpoint, "k", "s")
        await store.start()
        try:
            [bucket] = await store.list_buckets()
            assert bucket.name == "one" and bucket.created.year == 2026
            assert upstream.requests == 2
            # a POST is never repeated: the first attempt may have started an upload
            await expect("ServiceUnavailable", store.create_multipart_upload("b", "k", WriteMeta()))
            assert upstream.requests == 3
        finally:
            await store.close()

    try:
        asyncio.run(scenario())
    finally:
        upstream.close()


@pytest.mark.parametrize(
    ("code", "status", "passed_as"),
    [
        # a failing object store is a 503 naming it (docs/failures.md), not its 500
        ("InternalError", 503, "ServiceUnavailable"),
        ("SlowDown", 503, "SlowDown"),
        ("InvalidPart", 400, "InvalidPart"),
    ],
)
def test_error_inside_a_200_answer(code: str, status: int, passed_as: str) -> None:
    # S3 may answer Complete and Copy with 200, keep the connection alive with whitespace while
    # it works, and only then report an error
    upstream = FakeUpstream(
        b"\n \n \n<?xml version='1.0' encoding='UTF-8'?>"
        + f"<Error><Code>{code}</Code><Message>went wrong</Message></Error>".encode()
    )

    async def scenario() -> None:
        store = S3ObjectStore(upstream.endpoint, "k", "s")
        await store.start()
        try:
            err = await expect(
                passed_as, store.complete_multipart_upload("b", "k", "u", [(1, "e")])
            )
            assert err.status == status
            if passed_as == code:
                assert err.message == "went wrong"
            else:
                assert err.message.startswith("The object store is unavailable")
            err = await expect(passed_as, store.copy_object("b", "k", "b", "k2", meta=None))
            assert err.status == status
        finally:
            await store.close()

    try:
        asyncio.run(scenario())
    finally:
        upstream.close()


def test_whitespace_before_a_200_result() -> None:
    upstream = FakeUpstream(
        b"\n \n<?xml version='1.0' encoding='UTF-8'?><CompleteMultipartUploadResult>"
        b"<ETag>&quot;0123-2&quot;</ETag></CompleteMultipartUploadResult>"
    )

    async def scenario() -> None:
        store = S3ObjectStore(upstream.endpoint, "k", "s")
        await store.start()
        try:
            assert await store.complete_multipart_upload("b", "k", "u", [(1, "e")]) == "0123-2"
        finally:
            await store.close()

    try:
        asyncio.run(scenario())
    finally:
        upstream.close()


class _SlowBody:
    """A client body that trickles in: the upload task is waiting for it most of the time."""

    size = 4 << 20

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.size // (64 * 1024)):
            yield b"\0" * (64 * 1024)
            await asyncio.sleep(0.01)


def test_upstream_reset_mid_upload_is_service_unavailable() -> None:
    """The upstream dies while a streamed upload is going out: the object store's 503, not the
    CancelledError aiohttp uses to stop feeding the upload (which made the gateway drop its
    client's connection without any answer; seen by tests/faults)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def reset_after_some_bytes() -> None:
        conn, _ = server.accept()
        conn.recv(64 * 1024)
        # SO_LINGER 0: close with RST, as a killed process's socket does
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    thread = threading.Thread(target=reset_after_some_bytes, daemon=True)
    thread.start()

    async def scenario() -> None:
        store = S3ObjectStore(f"http://127.0.0.1:{server.getsockname()[1]}", "k", "s")
        await store.start()
        try:
            err = await expect(
                "ServiceUnavailable", store.put_object("b", "k", _SlowBody(), WriteMeta())
            )
            assert err.status == 503
        finally:
            await store.close()

    try:
        asyncio.run(scenario())
    finally:
        thread.join(timeout=10)
        server.close()
