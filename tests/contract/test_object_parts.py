"""Contract: a multipart object's parts as S3 addresses them after completion, on every backend.

GetObjectAttributes ``ObjectParts`` pages through the parts (sizes, and each part's checksum
when the upload kept one); GET/HEAD ``partNumber`` reads one part, whatever the part sizes;
UploadPartCopy into an upload that keeps a checksum computes the copied part's.
"""

from __future__ import annotations

import base64

from gateway.backends.base import KeepChecksum, ObjectStore, WriteMeta
from gateway.protocol.checksums import checksum_b64
from tests.contract.helpers import Bytes, MiB, contract, get, pattern, put, raises


async def _upload(
    store: ObjectStore,
    bucket: str,
    key: str,
    parts: list[bytes],
    checksum: tuple[str, str] | None = None,
) -> str:
    upload = await store.create_multipart_upload(bucket, key, WriteMeta(), checksum=checksum)
    listed, sums = [], {}
    for number, data in enumerate(parts, start=1):
        keep = None
        if checksum is not None:
            value = checksum_b64(checksum[0], data)
            keep = KeepChecksum(checksum[0], lambda v=value: v)
            sums[number] = (checksum[0], value)
        etag = await store.upload_part(bucket, key, upload, number, Bytes(data), checksum=keep)
        listed.append((number, etag))
    return await store.complete_multipart_upload(bucket, key, upload, listed, part_checksums=sums)


async def _read_each_part(store: ObjectStore, bucket: str, key: str, parts: list[bytes]) -> None:
    """partNumber=N answers exactly the bytes of part N."""
    total = sum(len(p) for p in parts)
    start = 0
    for number, data in enumerate(parts, start=1):
        info, span = await store.part_range(bucket, key, number)
        assert info.parts_count == len(parts) and info.size == total
        assert span is not None, number
        assert (span.start, span.end) == (start, start + len(data) - 1), number
        got = await get(store, bucket, key, range_header=f"bytes={span.start}-{span.end}")
        assert got == data, number
        start += len(data)
    async with raises("InvalidPartNumber"):
        await store.part_range(bucket, key, len(parts) + 1)


@contract
async def test_object_parts_pages_with_part_checksums(store: ObjectStore, bucket: str) -> None:
    parts = [pattern(5 * MiB, seed=1), pattern(5 * MiB + 1, seed=2), pattern(333, seed=3)]
    await _upload(store, bucket, "mp", parts, ("sha256", "COMPOSITE"))
    info, page = await store.object_parts(bucket, "mp", max_parts=2)
    assert info.checksum is not None and info.checksum.type == "COMPOSITE"
    assert page is not None and page.count == 3
    if store.kind == "s3":
        # versitygw answers GetObjectAttributes without ObjectParts: only the count is known
        assert page.parts is None
    else:
        sums = [checksum_b64("sha256", p) for p in parts]
        assert page.parts is not None
        assert [(p.number, p.size) for p in page.parts] == [(1, 5 * MiB), (2, 5 * MiB + 1)]
        assert [p.checksum.value if p.checksum else None for p in page.parts] == sums[:2]
        assert page.truncated and page.next_marker == 2
        _, rest = await store.object_parts(bucket, "mp", part_marker=2, max_parts=2)
        assert rest is not None and rest.parts is not None
        assert [
            (p.number, p.size, p.checksum.value if p.checksum else None) for p in rest.parts
        ] == [(3, 333, sums[2])]
        assert not rest.truncated and rest.next_marker is None
        _, beyond = await store.object_parts(bucket, "mp", part_marker=3)
        assert beyond is not None and beyond.parts == [] and not beyond.truncated
    await _read_each_part(store, bucket, "mp", parts)


@contract
async def test_object_parts_without_part_checksums(store: ObjectStore, bucket: str) -> None:
    parts = [pattern(5 * MiB, seed=4), pattern(10, seed=5)]
    await _upload(store, bucket, "plain", parts)
    info, page = await store.object_parts(bucket, "plain")
    assert page is not None and page.count == 2
    if page.parts is not None:  # the local store knows the sizes; nothing knows checksums
        assert [(p.number, p.size, p.checksum) for p in page.parts] == [
            (1, 5 * MiB, None),
            (2, 10, None),
        ]
    await put(store, bucket, "single", b"one part")
    info, page = await store.object_parts(bucket, "single")
    assert page is None and info.size == 8
    async with raises("NoSuchKey"):
        await store.object_parts(bucket, "missing")


@contract
async def test_part_numbers_with_many_part_sizes(store: ObjectStore, bucket: str) -> None:
    """17 parts of 17 different sizes: more than the 16 runs of sizes an object's xattr held
    before, which answered NotImplemented on the local store."""
    parts = [pattern(5 * MiB + 7 * n, seed=n) for n in range(16)] + [pattern(99, seed=99)]
    await _upload(store, bucket, "sizes", parts, ("crc32", "COMPOSITE"))
    await _read_each_part(store, bucket, "sizes", parts)
    _, page = await store.object_parts(bucket, "sizes", part_marker=15)
    assert page is not None and page.count == 17
    if page.parts is not None:
        assert [(p.number, p.size) for p in page.parts] == [(16, 5 * MiB + 105), (17, 99)]


@contract
async def test_upload_part_copy_keeps_the_part_checksum(store: ObjectStore, bucket: str) -> None:
    source = pattern(6 * MiB, seed=11)
    await put(store, bucket, "src", source)
    first = pattern(5 * MiB, seed=12)
    for algorithm, kind in (("crc32", "COMPOSITE"), ("sha256", "COMPOSITE")):
        key = f"copied-{algorithm}"
        upload = await store.create_multipart_upload(
            bucket, key, WriteMeta(), checksum=(algorithm, kind)
        )
        value = checksum_b64(algorithm, first)
        keep = KeepChecksum(algorithm, lambda v=value: v)
        e1 = await store.upload_part(bucket, key, upload, 1, Bytes(first), checksum=keep)
        copied = await store.upload_part_copy(
            bucket, key, upload, 2, bucket, "src", range_header="bytes=100-2099"
        )
        piece = source[100:2100]
        assert copied.checksum is not None, algorithm
        assert (copied.checksum.algorithm, copied.checksum.value) == (
            algorithm,
            checksum_b64(algorithm, piece),
        )
        listed = await store.list_parts(bucket, key, upload)
        assert [p.checksum.value if p.checksum else None for p in listed.parts] == [
            value,
            copied.checksum.value,
        ]
        sums = {1: (algorithm, value), 2: (algorithm, copied.checksum.value)}
        await store.complete_multipart_upload(
            bucket, key, upload, [(1, e1), (2, copied.etag)], part_checksums=sums
        )
        info = await store.head_object(bucket, key)
        digests = base64.b64decode(value) + base64.b64decode(copied.checksum.value)
        assert info.checksum is not None
        assert info.checksum.value == checksum_b64(algorithm, digests) + "-2"
        assert await get(store, bucket, key) == first + piece
    # an upload that keeps no checksum: the copied part has none either
    upload = await store.create_multipart_upload(bucket, "plain", WriteMeta())
    copied = await store.upload_part_copy(bucket, "plain", upload, 1, bucket, "src")
    assert copied.checksum is None
    await store.abort_multipart_upload(bucket, "plain", upload)


@contract
async def test_copied_range_of_a_source_with_the_same_checksum(
    store: ObjectStore, bucket: str
) -> None:
    """The part's checksum is of the copied range, not the source's own checksum (versitygw
    answers the source's; the s3 store then sends the range again as an UploadPart)."""
    source = pattern(MiB, seed=21)
    whole = checksum_b64("crc32", source)
    await store.put_object(
        bucket, "src", Bytes(source), WriteMeta(), checksum=KeepChecksum("crc32", lambda: whole)
    )
    upload = await store.create_multipart_upload(
        bucket, "dst", WriteMeta(), checksum=("crc32", "COMPOSITE")
    )
    part = await store.upload_part_copy(
        bucket, "dst", upload, 1, bucket, "src", range_header="bytes=10-5009"
    )
    assert part.checksum is not None
    assert part.checksum.value == checksum_b64("crc32", source[10:5010]) != whole
    everything = await store.upload_part_copy(bucket, "dst", upload, 2, bucket, "src")
    assert everything.checksum is not None and everything.checksum.value == whole
    listed = await store.list_parts(bucket, "dst", upload)
    assert [p.checksum.value if p.checksum else None for p in listed.parts] == [
        part.checksum.value,
        whole,
    ]
    await store.abort_multipart_upload(bucket, "dst", upload)
