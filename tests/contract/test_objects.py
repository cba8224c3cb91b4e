"""Contract: buckets and single objects (put, head, get, delete), on every backend."""

from __future__ import annotations

import asyncio

from gateway.backends.base import ObjectStore, WriteMeta
from gateway.protocol.errors import S3Error
from tests.contract.helpers import Bytes, Failing, MiB, contract, get, md5, pattern, put, raises


@contract
async def test_check_passes(store: ObjectStore, bucket: str) -> None:
    await store.check()


@contract
async def test_bucket_lifecycle(store: ObjectStore, bucket: str) -> None:
    await store.head_bucket(bucket)
    assert bucket in [b.name for b in await store.list_buckets()]
    async with raises("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
        await store.create_bucket(bucket)
    other = bucket + "-x"
    await store.create_bucket(other)
    names = [b.name for b in await store.list_buckets()]
    assert names.index(bucket) < names.index(other)
    await store.delete_bucket(other)
    async with raises("NoSuchBucket"):
        await store.head_bucket(other)
    async with raises("NoSuchBucket"):
        await store.delete_bucket(other)


@contract
async def test_missing_bucket_errors(store: ObjectStore, bucket: str) -> None:
    missing = bucket + "-missing"
    async with raises("NoSuchBucket"):
        await put(store, missing, "k", b"x")
    async with raises("NoSuchBucket"):
        await store.head_object(missing, "k")
    async with raises("NoSuchBucket"):
        await store.open_object(missing, "k")
    async with raises("NoSuchBucket"):
        await store.list_objects(missing)


@contract
async def test_delete_bucket_not_empty(store: ObjectStore, bucket: str) -> None:
    await put(store, bucket, "deep/down/k", b"x")
    async with raises("BucketNotEmpty"):
        await store.delete_bucket(bucket)
    await store.delete_object(bucket, "deep/down/k")
    await store.delete_bucket(bucket)
    async with raises("NoSuchBucket"):
        await store.head_bucket(bucket)
    await store.create_bucket(bucket)  # the runner's cleanup expects it back


@contract
async def test_put_get_roundtrip_with_metadata(store: ObjectStore, bucket: str) -> None:
    data = pattern(3 * MiB + 17)
    meta = WriteMeta(
        content_type="application/x-test",
        metadata={"project": "minimo", "minimo-session": "s-123"},
        headers={"cache-control": "no-cache", "content-disposition": "attachment"},
    )
    etag = await store.put_object(bucket, "dir/data.bin", Bytes(data, 100_000), meta)
    assert etag == md5(data)
    info = await store.head_object(bucket, "dir/data.bin")
    assert (info.key, info.size, info.etag) == ("dir/data.bin", len(data), etag)
    assert info.content_type == "application/x-test"
    assert info.metadata == {"project": "minimo", "minimo-session": "s-123"}
    assert info.headers["cache-control"] == "no-cache"
    assert info.headers["content-disposition"] == "attachment"
    assert info.last_modified.tzinfo is not None
    reader = await store.open_object(bucket, "dir/data.bin")
    assert reader.byte_range is None
    assert reader.info.etag == etag and reader.info.size == len(data)
    received = bytearray()
    async for piece in reader:
        received += piece
    await reader.aclose()
    await reader.aclose()  # safe twice
    assert received == data


@contract
async def test_empty_object(store: ObjectStore, bucket: str) -> None:
    etag = await put(store, bucket, "empty", b"")
    assert etag == md5(b"")
    assert (await store.head_object(bucket, "empty")).size == 0
    assert await get(store, bucket, "empty") == b""


@contract
async def test_overwrite_replaces(store: ObjectStore, bucket: str) -> None:
    first = await put(store, bucket, "k", b"first version")
    second = await put(store, bucket, "k", b"second")
    assert first != second
    assert await get(store, bucket, "k") == b"second"
    assert (await store.head_object(bucket, "k")).etag == second


@contract
async def test_missing_key(store: ObjectStore, bucket: str) -> None:
    async with raises("NoSuchKey"):
        await store.head_object(bucket, "nope")
    async with raises("NoSuchKey"):
        await store.open_object(bucket, "nope")
    async with raises("NoSuchKey"):
        await store.open_object(bucket, "no/such/dir/key")


@contract
async def test_delete(store: ObjectStore, bucket: str) -> None:
    await store.delete_object(bucket, "never-existed")  # not an error
    await put(store, bucket, "a/b/c", b"x")
    await store.delete_object(bucket, "a/b/c")
    async with raises("NoSuchKey"):
        await store.head_object(bucket, "a/b/c")
    await store.delete_object(bucket, "a/b/c")  # again: still fine
    # the emptied "directories" are not listed
    page = await store.list_objects(bucket, delimiter="/")
    assert page.objects == [] and page.prefixes == []
    assert (await store.list_objects(bucket)).objects == []


@contract
async def test_failed_body_leaves_no_object(store: ObjectStore, bucket: str) -> None:
    data = pattern(2 * MiB)
    async with raises("BadDigest"):
        await store.put_object(bucket, "new", Failing(data, MiB), WriteMeta())
    async with raises("NoSuchKey"):
        await store.head_object(bucket, "new")
    assert (await store.list_objects(bucket)).objects == []
    # an existing object is not touched by a failed overwrite
    await put(store, bucket, "old", b"keep me")
    async with raises("BadDigest"):
        await store.put_object(bucket, "old", Failing(data, MiB), WriteMeta())
    assert await get(store, bucket, "old") == b"keep me"


@contract
async def test_if_none_match(store: ObjectStore, bucket: str) -> None:
    await put(store, bucket, "once", b"first", if_none_match=True)
    async with raises("PreconditionFailed"):
        await put(store, bucket, "once", b"second", if_none_match=True)
    assert await get(store, bucket, "once") == b"first"


@contract
async def test_if_match(store: ObjectStore, bucket: str) -> None:
    """A compare-and-swap overwrite: NoSuchKey without an object, 412 on another ETag."""
    async with raises("NoSuchKey"):
        await put(store, bucket, "cas", b"x", if_match='"' + "0" * 32 + '"')
    first = await put(store, bucket, "cas", b"first")
    second = await put(store, bucket, "cas", b"second", if_match=f'"{first}"')
    async with raises("PreconditionFailed"):
        await put(store, bucket, "cas", b"third", if_match=f'"{first}"')
    assert await get(store, bucket, "cas") == b"second"
    await put(store, bucket, "cas", b"third", if_match=second)  # unquoted works too
    assert await get(store, bucket, "cas") == b"third"


@contract
async def test_if_none_match_race_has_one_winner(store: ObjectStore, bucket: str) -> None:
    bodies = [pattern(256 * 1024, seed) for seed in range(6)]

    async def attempt(data: bytes) -> str | S3Error:
        try:
            return await store.put_object(
                bucket, "race", Bytes(data, 16 * 1024), WriteMeta(), if_none_match=True
            )
        except S3Error as exc:
            return exc

    results = await asyncio.gather(*(attempt(b) for b in bodies))
    winners = [i for i, r in enumerate(results) if isinstance(r, str)]
    losers = [r for r in results if isinstance(r, S3Error)]
    assert len(winners) == 1, results
    # versitygw may report a lost race as a conflict instead of a failed precondition
    assert all(e.code in ("PreconditionFailed", "ConditionalRequestConflict") for e in losers)
    assert await get(store, bucket, "race") == bodies[winners[0]]


@contract
async def test_concurrent_writers_never_mix(store: ObjectStore, bucket: str) -> None:
    bodies = [pattern(512 * 1024, seed) for seed in range(4)]
    etags = await asyncio.gather(
        *(store.put_object(bucket, "hot", Bytes(b, 16 * 1024), WriteMeta()) for b in bodies)
    )
    final = await get(store, bucket, "hot")
    assert final in bodies
    assert (await store.head_object(bucket, "hot")).etag == etags[bodies.index(final)]


@contract
async def test_unusual_keys_roundtrip(store: ObjectStore, bucket: str) -> None:
    keys = [
        "with space",
        "ünïcødé/日本語/ファイル.txt",
        "emoji-😀",
        "sym!$&'()*+,;=@[]~%",
        "dots.in.name..x",
        "trailing-dot.",
        ".hidden",
        "a" * 200 + "/" + "b" * 200,
    ]
    for i, key in enumerate(keys):
        await put(store, bucket, key, f"v{i}".encode())
    for i, key in enumerate(keys):
        assert await get(store, bucket, key) == f"v{i}".encode()
    listed = [o.key for o in (await store.list_objects(bucket)).objects]
    assert listed == sorted(keys, key=lambda k: k.encode())


@contract
async def test_key_too_long(store: ObjectStore, bucket: str) -> None:
    longest = "/".join(["k" * 200] * 5) + "/" + "k" * 19  # 1024 bytes
    assert len(longest.encode()) == 1024
    await put(store, bucket, longest, b"ok")
    assert await get(store, bucket, longest) == b"ok"
    async with raises("KeyTooLongError"):
        await put(store, bucket, longest + "k", b"no")


@contract
async def test_folder_marker(store: ObjectStore, bucket: str) -> None:
    await put(store, bucket, "folder/", b"")
    await put(store, bucket, "folder/file", b"inside")
    info = await store.head_object(bucket, "folder/")
    assert info.size == 0 and info.etag == md5(b"")
    assert await get(store, bucket, "folder/") == b""
    assert [o.key for o in (await store.list_objects(bucket)).objects] == [
        "folder/",
        "folder/file",
    ]
    top = await store.list_objects(bucket, delimiter="/")
    assert top.objects == [] and top.prefixes == ["folder/"]
    inside = await store.list_objects(bucket, prefix="folder/", delimiter="/")
    assert [o.key for o in inside.objects] == ["folder/", "folder/file"]
    await store.delete_object(bucket, "folder/")
    async with raises("NoSuchKey"):
        await store.head_object(bucket, "folder/")
    assert await get(store, bucket, "folder/file") == b"inside"
    await store.delete_object(bucket, "folder/file")
    assert (await store.list_objects(bucket, delimiter="/")).prefixes == []


@contract
async def test_bodies_in_odd_pieces(store: ObjectStore, bucket: str) -> None:
    tiny = pattern(20_000, 5)
    assert await store.put_object(bucket, "tiny", Bytes(tiny, 7), WriteMeta()) == md5(tiny)
    assert await get(store, bucket, "tiny") == tiny
    big = pattern(9 * MiB + 1, 6)  # a few write batches plus a remainder
    assert await store.put_object(bucket, "big", Bytes(big, 3 * MiB + 5), WriteMeta()) == md5(big)
    assert await get(store, bucket, "big") == big
