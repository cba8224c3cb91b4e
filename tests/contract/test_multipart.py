"""Contract: multipart uploads, on every backend."""

from __future__ import annotations

import asyncio
import hashlib

from gateway.backends.base import MIN_PART_SIZE, ObjectStore, WriteMeta
from gateway.protocol.errors import S3Error
from tests.contract.helpers import Bytes, Failing, contract, get, md5, pattern, put, raises


def multipart_etag(*parts: bytes) -> str:
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f"{hashlib.md5(joined).hexdigest()}-{len(parts)}"


async def _upload(store: ObjectStore, bucket: str, key: str, upload_id: str, n: int, data: bytes):
    return await store.upload_part(bucket, key, upload_id, n, Bytes(data, 256 * 1024))


@contract
async def test_happy_path(store: ObjectStore, bucket: str) -> None:
    meta = WriteMeta(content_type="text/x-parts", metadata={"origin": "mpu"})
    upload_id = await store.create_multipart_upload(bucket, "big/object", meta)
    assert upload_id
    one, two = pattern(MIN_PART_SIZE, 1), pattern(1234, 2)
    e1 = await _upload(store, bucket, "big/object", upload_id, 1, one)
    e2 = await _upload(store, bucket, "big/object", upload_id, 2, two)
    assert (e1, e2) == (md5(one), md5(two))

    parts = await store.list_parts(bucket, "big/object", upload_id)
    assert [(p.number, p.etag, p.size) for p in parts.parts] == [
        (1, e1, len(one)),
        (2, e2, len(two)),
    ]
    assert not parts.truncated
    uploads = await store.list_multipart_uploads(bucket)
    assert [(u.key, u.upload_id) for u in uploads.uploads] == [("big/object", upload_id)]
    # an upload in flight is not an object yet
    async with raises("NoSuchKey"):
        await store.head_object(bucket, "big/object")

    etag = await store.complete_multipart_upload(
        bucket, "big/object", upload_id, [(1, f'"{e1}"'), (2, e2)]
    )
    assert etag == multipart_etag(one, two)
    info = await store.head_object(bucket, "big/object")
    assert (info.size, info.etag) == (len(one) + len(two), etag)
    assert info.content_type == "text/x-parts" and info.metadata == {"origin": "mpu"}
    assert await get(store, bucket, "big/object") == one + two
    assert (await store.list_multipart_uploads(bucket)).uploads == []
    async with raises("NoSuchUpload"):
        await store.list_parts(bucket, "big/object", upload_id)


@contract
async def test_single_small_part_and_replaced_part(store: ObjectStore, bucket: str) -> None:
    upload_id = await store.create_multipart_upload(bucket, "k", WriteMeta())
    await _upload(store, bucket, "k", upload_id, 1, b"first try")
    e1 = await _upload(store, bucket, "k", upload_id, 1, b"second try")
    parts = await store.list_parts(bucket, "k", upload_id)
    assert [(p.number, p.etag) for p in parts.parts] == [(1, e1)]
    etag = await store.complete_multipart_upload(bucket, "k", upload_id, [(1, e1)])
    assert etag == multipart_etag(b"second try")
    assert await get(store, bucket, "k") == b"second try"


@contract
async def test_list_parts_pagination(store: ObjectStore, bucket: str) -> None:
    upload_id = await store.create_multipart_upload(bucket, "k", WriteMeta())
    for n in (1, 2, 3, 5):
        await _upload(store, bucket, "k", upload_id, n, bytes([n]) * 10)
    page = await store.list_parts(bucket, "k", upload_id, max_parts=2)
    assert [p.number for p in page.parts] == [1, 2] and page.truncated
    assert page.next_marker == 2
    page = await store.list_parts(bucket, "k", upload_id, part_marker=2, max_parts=2)
    assert [p.number for p in page.parts] == [3, 5] and not page.truncated
    await store.abort_multipart_upload(bucket, "k", upload_id)


@contract
async def test_complete_errors_leave_upload_usable(store: ObjectStore, bucket: str) -> None:
    upload_id = await store.create_multipart_upload(bucket, "k", WriteMeta())
    small, last = pattern(1000, 1), pattern(10, 2)
    e1 = await _upload(store, bucket, "k", upload_id, 1, small)
    e2 = await _upload(store, bucket, "k", upload_id, 2, last)
    e3 = await _upload(store, bucket, "k", upload_id, 3, pattern(MIN_PART_SIZE, 3))
    async with raises("InvalidPart"):
        await store.complete_multipart_upload(bucket, "k", upload_id, [(4, e2)])
    async with raises("InvalidPart"):
        await store.complete_multipart_upload(bucket, "k", upload_id, [(1, e2)])
    async with raises("InvalidPartOrder"):
        await store.complete_multipart_upload(bucket, "k", upload_id, [(3, e3), (2, e2)])
    async with raises("EntityTooSmall"):
        await store.complete_multipart_upload(bucket, "k", upload_id, [(1, e1), (2, e2)])
    async with raises("NoSuchKey"):
        await store.head_object(bucket, "k")
    # nothing was consumed: the upload is still there and completes with a valid list
    listed = (await store.list_parts(bucket, "k", upload_id)).parts
    assert [p.number for p in listed] == [1, 2, 3]
    etag = await store.complete_multipart_upload(bucket, "k", upload_id, [(2, e2)])
    assert etag == multipart_etag(last)
    assert await get(store, bucket, "k") == last


@contract
async def test_unknown_upload(store: ObjectStore, bucket: str) -> None:
    bogus = "bogus-upload-id"
    async with raises("NoSuchUpload"):
        await _upload(store, bucket, "k", bogus, 1, b"x")
    async with raises("NoSuchUpload"):
        await store.complete_multipart_upload(bucket, "k", bogus, [(1, md5(b"x"))])
    async with raises("NoSuchUpload"):
        await store.abort_multipart_upload(bucket, "k", bogus)
    async with raises("NoSuchUpload"):
        await store.list_parts(bucket, "k", bogus)


@contract
async def test_bad_part_number(store: ObjectStore, bucket: str) -> None:
    upload_id = await store.create_multipart_upload(bucket, "k", WriteMeta())
    for number in (0, 10001):
        async with raises("InvalidArgument"):
            await _upload(store, bucket, "k", upload_id, number, b"x")
    await store.abort_multipart_upload(bucket, "k", upload_id)


@contract
async def test_abort_leaves_nothing(store: ObjectStore, bucket: str) -> None:
    upload_id = await store.create_multipart_upload(bucket, "gone", WriteMeta())
    await _upload(store, bucket, "gone", upload_id, 1, pattern(MIN_PART_SIZE))
    await store.abort_multipart_upload(bucket, "gone", upload_id)
    assert (await store.list_multipart_uploads(bucket)).uploads == []
    assert (await store.list_objects(bucket)).objects == []
    async with raises("NoSuchUpload"):
        await _upload(store, bucket, "gone", upload_id, 2, b"late")
    async with raises("NoSuchUpload"):
        await store.complete_multipart_upload(bucket, "gone", upload_id, [(1, md5(b"x"))])
    await store.delete_bucket(bucket)  # nothing at all is left behind
    await store.create_bucket(bucket)


@contract
async def test_failed_part_body_stores_no_part(store: ObjectStore, bucket: str) -> None:
    upload_id = await store.create_multipart_upload(bucket, "k", WriteMeta())
    async with raises("BadDigest"):
        await store.upload_part(bucket, "k", upload_id, 1, Failing(pattern(300_000), 100_000))
    assert (await store.list_parts(bucket, "k", upload_id)).parts == []
    await store.abort_multipart_upload(bucket, "k", upload_id)


@contract
async def test_in_flight_upload_keeps_bucket(store: ObjectStore, bucket: str) -> None:
    upload_id = await store.create_multipart_upload(bucket, "pending", WriteMeta())
    async with raises("BucketNotEmpty"):
        await store.delete_bucket(bucket)
    await store.abort_multipart_upload(bucket, "pending", upload_id)


@contract
async def test_list_multipart_uploads(store: ObjectStore, bucket: str) -> None:
    ids = {}
    for key in ("a/1", "a/2", "b", "c/d/e"):
        ids[key] = await store.create_multipart_upload(bucket, key, WriteMeta())
    second = await store.create_multipart_upload(bucket, "b", WriteMeta())
    page = await store.list_multipart_uploads(bucket)
    assert [u.key for u in page.uploads] == ["a/1", "a/2", "b", "b", "c/d/e"]
    assert {u.upload_id for u in page.uploads if u.key == "b"} == {ids["b"], second}
    assert all(u.initiated.tzinfo is not None for u in page.uploads)

    page = await store.list_multipart_uploads(bucket, prefix="a/")
    assert [u.key for u in page.uploads] == ["a/1", "a/2"]
    page = await store.list_multipart_uploads(bucket, delimiter="/")
    assert [u.key for u in page.uploads] == ["b", "b"] and page.prefixes == ["a/", "c/"]

    # paging by key visits every key once (versitygw refuses any upload-id-marker, so
    # paging inside one key is checked on the local backend only, in test_local_layout.py)
    seen: list[str] = []
    key_marker = ""
    while True:
        page = await store.list_multipart_uploads(bucket, key_marker=key_marker, max_uploads=1)
        seen += [u.key for u in page.uploads]
        if not page.truncated:
            break
        assert page.next_key_marker == seen[-1]
        key_marker = page.next_key_marker
    assert seen == ["a/1", "a/2", "b", "c/d/e"]


@contract
async def test_concurrent_completes_do_not_corrupt(store: ObjectStore, bucket: str) -> None:
    upload_id = await store.create_multipart_upload(bucket, "k", WriteMeta())
    one, two = pattern(MIN_PART_SIZE, 7), pattern(4321, 8)
    e1 = await _upload(store, bucket, "k", upload_id, 1, one)
    e2 = await _upload(store, bucket, "k", upload_id, 2, two)

    async def complete() -> str | S3Error:
        try:
            return await store.complete_multipart_upload(bucket, "k", upload_id, [(1, e1), (2, e2)])
        except S3Error as exc:
            return exc

    results = await asyncio.gather(complete(), complete(), complete())
    done = [r for r in results if isinstance(r, str)]
    assert done and set(done) == {multipart_etag(one, two)}, results
    assert all(r.code == "NoSuchUpload" for r in results if isinstance(r, S3Error))
    assert await get(store, bucket, "k") == one + two


@contract
async def test_upload_part_copy(store: ObjectStore, bucket: str) -> None:
    source = pattern(MIN_PART_SIZE + 100, 3)
    await put(store, bucket, "src", source)
    upload_id = await store.create_multipart_upload(bucket, "dst", WriteMeta())
    whole = await store.upload_part_copy(bucket, "dst", upload_id, 1, bucket, "src")
    assert whole.etag == md5(source) and whole.last_modified.tzinfo is not None
    ranged = await store.upload_part_copy(
        bucket, "dst", upload_id, 2, bucket, "src", range_header="bytes=10-19"
    )
    assert ranged.etag == md5(source[10:20])
    async with raises("NoSuchKey"):
        await store.upload_part_copy(bucket, "dst", upload_id, 3, bucket, "missing")
    etag = await store.complete_multipart_upload(
        bucket, "dst", upload_id, [(1, whole.etag), (2, ranged.etag)]
    )
    assert etag == multipart_etag(source, source[10:20])
    assert await get(store, bucket, "dst") == source + source[10:20]


@contract
async def test_upload_part_copy_range_is_strict(store: ObjectStore, bucket: str) -> None:
    """Only bytes=FIRST-LAST inside the source: never the whole or a shorter source instead."""
    source = pattern(1000, 5)
    await put(store, bucket, "src", source)
    upload_id = await store.create_multipart_upload(bucket, "dst", WriteMeta())
    for bad in ("bytes=5-", "bytes=-10", "bytes=9-3", "bytes=0-1,3-4", "items=0-1", "", "0-9"):
        async with raises("InvalidArgument"):
            await store.upload_part_copy(
                bucket, "dst", upload_id, 1, bucket, "src", range_header=bad
            )
    for past in ("bytes=0-1000", "bytes=1000-1001", "bytes=990-5000"):
        async with raises("InvalidRange"):
            await store.upload_part_copy(
                bucket, "dst", upload_id, 1, bucket, "src", range_header=past
            )
    last = await store.upload_part_copy(
        bucket, "dst", upload_id, 1, bucket, "src", range_header="bytes=999-999"
    )
    assert last.etag == md5(source[999:])
    page = await store.list_parts(bucket, "dst", upload_id)
    assert [(p.number, p.size) for p in page.parts] == [(1, 1)]
    await store.abort_multipart_upload(bucket, "dst", upload_id)


@contract
async def test_conditional_complete(store: ObjectStore, bucket: str) -> None:
    """If-None-Match / If-Match on a completion; a failed condition leaves the upload usable."""
    first = await put(store, bucket, "k", b"first")
    upload_id = await store.create_multipart_upload(bucket, "k", WriteMeta())
    part = await _upload(store, bucket, "k", upload_id, 1, b"second")
    async with raises("PreconditionFailed"):
        await store.complete_multipart_upload(
            bucket, "k", upload_id, [(1, part)], if_none_match=True
        )
    async with raises("PreconditionFailed"):
        await store.complete_multipart_upload(
            bucket, "k", upload_id, [(1, part)], if_match='"' + "0" * 32 + '"'
        )
    assert await get(store, bucket, "k") == b"first"
    etag = await store.complete_multipart_upload(
        bucket, "k", upload_id, [(1, part)], if_match=f'"{first}"'
    )
    assert etag == multipart_etag(b"second") and await get(store, bucket, "k") == b"second"
    upload_id = await store.create_multipart_upload(bucket, "absent", WriteMeta())
    part = await _upload(store, bucket, "absent", upload_id, 1, b"x")
    async with raises("NoSuchKey"):
        await store.complete_multipart_upload(
            bucket, "absent", upload_id, [(1, part)], if_match=f'"{etag}"'
        )
    await store.complete_multipart_upload(
        bucket, "absent", upload_id, [(1, part)], if_none_match=True
    )
