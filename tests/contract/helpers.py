"""Bodies and the runner shared by the object-store contract tests.

A contract test is ``async def test_x(store, bucket)`` decorated with :func:`contract`: it runs
once per backend (``local`` and ``s3`` in front of versitygw) on a fresh, started store and a
fresh bucket that is emptied and deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.backends.base import ObjectReader, ObjectStore
from gateway.protocol.errors import S3Error

MiB = 1024 * 1024
ContractTest = Callable[[ObjectStore, str], Awaitable[None]]


class Bytes:
    """A body of known bytes, yielded in pieces of ``chunk`` bytes."""

    def __init__(self, data: bytes, chunk: int = 64 * 1024) -> None:
        self.data = data
        self.size: int | None = len(data)
        self.chunk = chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self.data), self.chunk):
            await asyncio.sleep(0)  # let concurrent writers interleave
            yield self.data[i : i + self.chunk]


class Failing(Bytes):
    """Yields part of its bytes, then fails the way a bad checksum or lost client does."""

    def __init__(self, data: bytes, fail_after: int, chunk: int = 64 * 1024) -> None:
        super().__init__(data, chunk)
        self.fail_after = fail_after

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        async for piece in super().__aiter__():
            if sent + len(piece) > self.fail_after:
                raise S3Error("BadDigest", "test body fails on purpose")
            sent += len(piece)
            yield piece
        raise S3Error("BadDigest", "test body fails on purpose")


def pattern(size: int, seed: int = 0) -> bytes:
    """``size`` bytes that differ per seed and per position (so mixed-up parts show)."""
    block = hashlib.sha256(seed.to_bytes(8, "big")).digest() * 2048  # 64 KiB
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += counter.to_bytes(8, "big") + block[8:]
        counter += 1
    return bytes(out[:size])


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def read_all(reader: ObjectReader) -> bytes:
    try:
        return b"".join([piece async for piece in reader])
    finally:
        await reader.aclose()


async def get(store: ObjectStore, bucket: str, key: str, **kwargs: object) -> bytes:
    return await read_all(await store.open_object(bucket, key, **kwargs))  # type: ignore[arg-type]


async def put(store: ObjectStore, bucket: str, key: str, data: bytes, **kwargs: object) -> str:
    from gateway.backends.base import WriteMeta

    return await store.put_object(bucket, key, Bytes(data), WriteMeta(), **kwargs)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def raises(*codes: str) -> AsyncIterator[list[S3Error]]:
    """Expect an S3Error with one of ``codes``; the caught error is put in the yielded list."""
    caught: list[S3Error] = []
    try:
        yield caught
    except S3Error as exc:
        if exc.code not in codes:
            pytest.fail(f"expected S3 error {' or '.join(codes)}, got {exc.code}: {exc.message}")
        caught.append(exc)
    else:
        pytest.fail(f"expected S3 error {' or '.join(codes)}, nothing was raised")


async def all_keys(store: ObjectStore, bucket: str, **kwargs: object) -> list[str]:
    keys: list[str] = []
    after = ""
    while True:
        page = await store.list_objects(bucket, start_after=after, **kwargs)  # type: ignore[arg-type]
        keys += [o.key for o in page.objects]
        if not page.truncated:
            return keys
        assert page.next_marker
        after = page.next_marker


async def _cleanup(store: ObjectStore, bucket: str) -> None:
    """Best effort: abort uploads, delete every object, delete the bucket."""
    with contextlib.suppress(Exception):
        page = await store.list_multipart_uploads(bucket)
        for upload in page.uploads:
            with contextlib.suppress(Exception):
                await store.abort_multipart_upload(bucket, upload.key, upload.upload_id)
    with contextlib.suppress(Exception):
        # deepest keys first, so folder markers and their contents both go
        for key in sorted(await all_keys(store, bucket), key=len, reverse=True):
            with contextlib.suppress(Exception):
                await store.delete_object(bucket, key)
    with contextlib.suppress(Exception):
        await store.delete_bucket(bucket)


async def _run(make_store: Callable[[], ObjectStore], fn: ContractTest) -> None:
    store = make_store()
    await store.start()
    try:
        bucket = f"c-{secrets.token_hex(6)}"
        await store.create_bucket(bucket)
        try:
            await fn(store, bucket)
        finally:
            await _cleanup(store, bucket)
    finally:
        await store.close()


def contract(fn: ContractTest) -> Callable[..., None]:
    """Make ``async def test_x(store, bucket)`` a pytest test run on every backend.

    Not ``functools.wraps``: pytest would then read the wrapped signature and look for
    ``store`` and ``bucket`` fixtures.
    """

    def test(make_store: Callable[[], ObjectStore]) -> None:
        asyncio.run(_run(make_store, fn))

    test.__name__ = fn.__name__
    test.__qualname__ = fn.__qualname__
    test.__doc__ = fn.__doc__
    return test
