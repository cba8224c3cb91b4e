"""Contract: a write keeps the checksum it is given, and head/open answer it, on every backend."""

from __future__ import annotations

import base64

from gateway.backends.base import KeepChecksum, ObjectStore, WriteMeta
from gateway.protocol.checksums import ALGORITHMS, checksum_b64
from tests.contract.helpers import Bytes, MiB, contract, get, pattern, put, raises, read_all

#: a small body (sent upstream in one request) and one streamed as aws-chunked with a trailer
SIZES = [1000, 2 * MiB + 3]


async def _put_kept(store: ObjectStore, bucket: str, key: str, data: bytes, algorithm: str) -> str:
    value = checksum_b64(algorithm, data)
    keep = KeepChecksum(algorithm, lambda: value)
    return await store.put_object(bucket, key, Bytes(data), WriteMeta(), checksum=keep)


@contract
async def test_put_keeps_checksum(store: ObjectStore, bucket: str) -> None:
    for size in SIZES:
        data = pattern(size, seed=size)
        for algorithm in sorted(ALGORITHMS):
            key = f"{algorithm}-{size}"
            await _put_kept(store, bucket, key, data, algorithm)
            info = await store.head_object(bucket, key)
            assert info.checksum is not None, key
            assert (info.checksum.algorithm, info.checksum.value, info.checksum.type) == (
                algorithm,
                checksum_b64(algorithm, data),
                "FULL_OBJECT",
            )
            reader = await store.open_object(bucket, key)
            assert reader.info.checksum == info.checksum
            assert await read_all(reader) == data


@contract
async def test_empty_object_keeps_checksum(store: ObjectStore, bucket: str) -> None:
    await _put_kept(store, bucket, "empty", b"", "crc32")
    await _put_kept(store, bucket, "folder/", b"", "sha256")
    for key, algorithm in (("empty", "crc32"), ("folder/", "sha256")):
        info = await store.head_object(bucket, key)
        assert info.checksum is not None and info.checksum.algorithm == algorithm
        assert info.checksum.value == checksum_b64(algorithm, b"")
    assert await get(store, bucket, "empty") == b""


@contract
async def test_copy_keeps_full_object_checksum(store: ObjectStore, bucket: str) -> None:
    data = pattern(70_000, seed=3)
    await _put_kept(store, bucket, "src", data, "crc32c")
    await store.copy_object(bucket, "src", bucket, "dst", meta=WriteMeta())
    info = await store.head_object(bucket, "dst")
    assert info.checksum is not None
    assert (info.checksum.algorithm, info.checksum.value) == (
        "crc32c",
        checksum_b64("crc32c", data),
    )


async def _multipart(store: ObjectStore, bucket: str, key: str, parts: list[bytes]) -> str:
    upload = await store.create_multipart_upload(bucket, key, WriteMeta())
    listed = []
    for number, data in enumerate(parts, start=1):
        etag = await store.upload_part(bucket, key, upload, number, Bytes(data))
        listed.append((number, etag))
    return await store.complete_multipart_upload(bucket, key, upload, listed)


@contract
async def test_part_range_of_a_multipart_object(store: ObjectStore, bucket: str) -> None:
    parts = [pattern(5 * MiB, seed=1), pattern(5 * MiB, seed=2), pattern(1234, seed=3)]
    etag = await _multipart(store, bucket, "mp", parts)
    total = sum(len(p) for p in parts)
    start = 0
    for number, data in enumerate(parts, start=1):
        info, span = await store.part_range(bucket, "mp", number)
        assert info.etag == etag and info.parts_count == 3 and info.size == total
        assert span is not None
        assert (span.start, span.end, span.total) == (start, start + len(data) - 1, total)
        got = await get(store, bucket, "mp", range_header=f"bytes={span.start}-{span.end}")
        assert got == data
        start += len(data)
    async with raises("InvalidPartNumber"):
        await store.part_range(bucket, "mp", 4)


@contract
async def test_part_range_of_a_single_object(store: ObjectStore, bucket: str) -> None:
    await put(store, bucket, "one", b"0123456789")
    info, span = await store.part_range(bucket, "one", 1)
    assert not info.parts_count
    assert span is not None and (span.start, span.end, span.total) == (0, 9, 10)
    async with raises("InvalidPartNumber"):
        await store.part_range(bucket, "one", 2)
    async with raises("NoSuchKey"):
        await store.part_range(bucket, "missing", 1)


async def _checked_upload(
    store: ObjectStore, bucket: str, key: str, parts: list[bytes], algorithm: str, kind: str
) -> tuple[str, str]:
    """A multipart upload that keeps ``algorithm``; returns the ETag and the upload id."""
    upload = await store.create_multipart_upload(
        bucket, key, WriteMeta(), checksum=(algorithm, kind)
    )
    listed, sums = [], {}
    for number, data in enumerate(parts, start=1):
        value = checksum_b64(algorithm, data)
        keep = KeepChecksum(algorithm, lambda v=value: v)
        etag = await store.upload_part(bucket, key, upload, number, Bytes(data), checksum=keep)
        listed.append((number, etag))
        sums[number] = (algorithm, value)
    page = await store.list_parts(bucket, key, upload)
    assert [p.checksum.value if p.checksum else None for p in page.parts] == [
        v for _, v in sums.values()
    ]
    etag = await store.complete_multipart_upload(bucket, key, upload, listed, part_checksums=sums)
    return etag, upload


@contract
async def test_multipart_composite_and_full_object_checksums(
    store: ObjectStore, bucket: str
) -> None:
    parts = [pattern(5 * MiB, seed=7), pattern(777, seed=8)]
    whole = b"".join(parts)
    cases = [
        ("crc32", "COMPOSITE"),
        ("sha256", "COMPOSITE"),
        ("crc32c", "FULL_OBJECT"),
        ("crc64nvme", "FULL_OBJECT"),
    ]
    for algorithm, kind in cases:
        key = f"mp-{algorithm}-{kind}"
        await _checked_upload(store, bucket, key, parts, algorithm, kind)
        info = await store.head_object(bucket, key)
        assert info.checksum is not None, key
        if kind == "FULL_OBJECT":
            expected = checksum_b64(algorithm, whole)
        else:
            digests = b"".join(base64.b64decode(checksum_b64(algorithm, p)) for p in parts)
            expected = checksum_b64(algorithm, digests) + "-2"
        assert (info.checksum.algorithm, info.checksum.value, info.checksum.type) == (
            algorithm,
            expected,
            kind,
        )


@contract
async def test_multipart_checksum_rules(store: ObjectStore, bucket: str) -> None:
    data = pattern(1000, seed=9)
    upload = await store.create_multipart_upload(
        bucket, "k", WriteMeta(), checksum=("crc32", "COMPOSITE")
    )
    async with raises("InvalidRequest"):  # a part without the upload's checksum
        await store.upload_part(bucket, "k", upload, 1, Bytes(data))
    value = checksum_b64("crc32", data)
    keep = KeepChecksum("crc32", lambda: value)
    etag = await store.upload_part(bucket, "k", upload, 1, Bytes(data), checksum=keep)
    async with raises("InvalidRequest"):  # the complete request must repeat it
        await store.complete_multipart_upload(bucket, "k", upload, [(1, etag)])
    await store.complete_multipart_upload(
        bucket, "k", upload, [(1, etag)], part_checksums={1: ("crc32", value)}
    )
