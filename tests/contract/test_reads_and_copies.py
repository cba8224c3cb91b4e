"""Contract: ranged reads, conditional requests and server-side copies, on every backend."""

from __future__ import annotations

from datetime import timedelta

from gateway.backends.base import Conditions, ObjectStore, WriteMeta
from tests.contract.helpers import Bytes, MiB, contract, get, md5, pattern, put, raises

DATA = bytes(range(256)) * 40  # 10240 bytes


@contract
async def test_ranges(store: ObjectStore, bucket: str) -> None:
    await put(store, bucket, "r", DATA)
    cases = {
        "bytes=0-9": (0, 9),
        "bytes=100-": (100, len(DATA) - 1),
        "bytes=-16": (len(DATA) - 16, len(DATA) - 1),
        "bytes=10000-99999": (10000, len(DATA) - 1),  # end past the object is clamped
        "bytes=-999999": (0, len(DATA) - 1),  # suffix longer than the object: all of it
        f"bytes={len(DATA) - 1}-": (len(DATA) - 1, len(DATA) - 1),
    }
    for header, (start, end) in cases.items():
        reader = await store.open_object(bucket, "r", range_header=header)
        assert reader.byte_range is not None, header
        assert (reader.byte_range.start, reader.byte_range.end) == (start, end), header
        assert reader.byte_range.total == len(DATA)
        assert reader.info.size == len(DATA)
        body = b"".join([piece async for piece in reader])
        await reader.aclose()
        assert body == DATA[start : end + 1], header


@contract
async def test_large_range_streams_in_pieces(store: ObjectStore, bucket: str) -> None:
    data = pattern(5 * MiB + 3)
    await put(store, bucket, "big", data)
    start, end = MiB - 5, 4 * MiB + 7
    assert (
        await get(store, bucket, "big", range_header=f"bytes={start}-{end}")
        == data[start : end + 1]
    )


@contract
async def test_unsatisfiable_range(store: ObjectStore, bucket: str) -> None:
    await put(store, bucket, "r", DATA)
    for header in (f"bytes={len(DATA)}-", "bytes=999999-1000000"):
        async with raises("InvalidRange") as caught:
            await store.open_object(bucket, "r", range_header=header)
        assert caught[0].status == 416


@contract
async def test_ignored_ranges_serve_whole_object(store: ObjectStore, bucket: str) -> None:
    await put(store, bucket, "r", DATA)
    for header in ("items=0-5", "bytes=abc", "bytes=5-2"):
        reader = await store.open_object(bucket, "r", range_header=header)
        assert reader.byte_range is None, header
        assert b"".join([piece async for piece in reader]) == DATA
        await reader.aclose()


@contract
async def test_conditions(store: ObjectStore, bucket: str) -> None:
    etag = await put(store, bucket, "c", b"conditional")
    info = await store.head_object(bucket, "c")
    before = info.last_modified - timedelta(days=1)
    after = info.last_modified + timedelta(days=1)
    holds = [
        Conditions(if_match=f'"{etag}"'),
        Conditions(if_match="*"),
        Conditions(if_none_match='"other"'),
        Conditions(if_modified_since=before),
        Conditions(if_unmodified_since=after),
        Conditions(if_unmodified_since=info.last_modified),
        # If-Match true wins over a failing If-Unmodified-Since
        Conditions(if_match=f'"{etag}"', if_unmodified_since=before),
    ]
    for cond in holds:
        assert (await store.head_object(bucket, "c", cond)).etag == etag, cond
        assert await get(store, bucket, "c", conditions=cond) == b"conditional", cond
    fails = {
        "PreconditionFailed": [
            Conditions(if_match='"other"'),
            Conditions(if_unmodified_since=before),
        ],
        "NotModified": [
            Conditions(if_none_match=f'"{etag}"'),
            Conditions(if_none_match="*"),
            Conditions(if_modified_since=after),
            Conditions(if_modified_since=info.last_modified),
            # If-None-Match false wins over a true If-Modified-Since
            Conditions(if_none_match=f'"{etag}"', if_modified_since=before),
        ],
    }
    for code, conds in fails.items():
        for cond in conds:
            async with raises(code):
                await store.head_object(bucket, "c", cond)
            async with raises(code):
                await store.open_object(bucket, "c", conditions=cond)


@contract
async def test_copy_keeps_metadata(store: ObjectStore, bucket: str) -> None:
    data = pattern(300_000)
    meta = WriteMeta("text/x-src", {"a": "1"}, {"content-language": "en"})
    etag = await store.put_object(bucket, "src", Bytes(data), meta)
    result = await store.copy_object(bucket, "src", bucket, "dir/copy", meta=None)
    assert result.etag == etag and result.last_modified.tzinfo is not None
    info = await store.head_object(bucket, "dir/copy")
    assert (info.size, info.etag, info.content_type) == (len(data), etag, "text/x-src")
    assert info.metadata == {"a": "1"} and info.headers.get("content-language") == "en"
    assert await get(store, bucket, "dir/copy") == data


@contract
async def test_copy_replaces_metadata(store: ObjectStore, bucket: str) -> None:
    await store.put_object(bucket, "src", Bytes(b"x" * 10), WriteMeta("a/b", {"old": "1"}))
    await store.copy_object(
        bucket, "src", bucket, "dst", meta=WriteMeta("text/plain", {"new": "2"})
    )
    info = await store.head_object(bucket, "dst")
    assert info.content_type == "text/plain" and info.metadata == {"new": "2"}
    # copying onto itself is allowed when the metadata changes
    await store.copy_object(bucket, "src", bucket, "src", meta=WriteMeta("c/d", {"v": "3"}))
    info = await store.head_object(bucket, "src")
    assert info.content_type == "c/d" and info.metadata == {"v": "3"}
    assert await get(store, bucket, "src") == b"x" * 10


@contract
async def test_copy_across_buckets_and_errors(store: ObjectStore, bucket: str) -> None:
    other = bucket + "-dst"
    await store.create_bucket(other)
    try:
        etag = await put(store, bucket, "src", b"cross")
        await store.copy_object(bucket, "src", other, "k", meta=None)
        assert await get(store, other, "k") == b"cross"
        async with raises("NoSuchKey"):
            await store.copy_object(bucket, "missing", other, "k2", meta=None)
        async with raises("NoSuchBucket"):
            await store.copy_object(bucket, "src", other + "-none", "k", meta=None)
        async with raises("InvalidRequest"):
            await store.copy_object(bucket, "src", bucket, "src", meta=None)
        async with raises("PreconditionFailed"):
            await store.copy_object(
                bucket, "src", other, "k3", meta=None, conditions=Conditions(if_match='"no"')
            )
        async with raises("PreconditionFailed"):
            await store.copy_object(
                bucket, "src", other, "k3", meta=None, conditions=Conditions(if_none_match=etag)
            )
        ok = await store.copy_object(
            bucket, "src", other, "k3", meta=None, conditions=Conditions(if_match=etag)
        )
        assert ok.etag == md5(b"cross")
    finally:
        for key in ("k", "k3"):
            await store.delete_object(other, key)
        await store.delete_bucket(other)


@contract
async def test_copy_of_multipart_object(store: ObjectStore, bucket: str) -> None:
    upload_id = await store.create_multipart_upload(bucket, "mp", WriteMeta())
    one, two = pattern(5 * MiB, 1), b"tail"
    e1 = await store.upload_part(bucket, "mp", upload_id, 1, Bytes(one, MiB))
    e2 = await store.upload_part(bucket, "mp", upload_id, 2, Bytes(two))
    await store.complete_multipart_upload(bucket, "mp", upload_id, [(1, e1), (2, e2)])
    await store.copy_object(bucket, "mp", bucket, "mp-copy", meta=None)
    assert await get(store, bucket, "mp-copy") == one + two
