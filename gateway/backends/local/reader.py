"""Reading from the local store: an object opened with its info taken from the same
descriptor, small objects read along with the open, and the rest sent with sendfile(2) (no
copy through Python) or yielded in pieces read ahead on the thread pool."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from gateway.backends.base import (
    ByteRange,
    Conditions,
    ObjectInfo,
    ObjectPartsPage,
    ObjectReader,
    no_such_key,
)
from gateway.backends.local.layout import Target, require_bucket
from gateway.backends.local.nowait import open_cached, read_cached
from gateway.backends.local.partlayout import parts_page, read_layout
from gateway.backends.local.pool import DiskPool
from gateway.backends.local.records import get_meta, object_info
from gateway.protocol.conditions import check_conditions
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.protocol.parts import part_span
from gateway.protocol.ranges import parse_range

#: size of the pieces a GET yields
READ_CHUNK = 1024 * 1024
#: objects up to this size are read together with the open, in a single thread hop
INLINE_READ = 256 * 1024
#: most bytes one sendfile(2) call may move (it returns early when the socket fills anyway)
SENDFILE_MAX = 16 * 1024 * 1024
OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC


def open_sync(t: Target) -> tuple[int, ObjectInfo]:
    """Open the object; its info comes from the open descriptor, so data and info agree."""
    try:
        fd = os.open(t.path, OPEN_FLAGS | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError, OSError) as exc:
        if isinstance(exc, FileNotFoundError | NotADirectoryError) or exc.errno == errno.ELOOP:
            require_bucket(t.bucket_dir, t.bucket)
            raise no_such_key(t.bucket, t.key) from None
        raise
    try:
        st = os.fstat(fd)
        record = get_meta(fd)
        is_dir = stat.S_ISDIR(st.st_mode)
        if (
            t.marker != is_dir
            or (is_dir and record is None)
            or not (is_dir or stat.S_ISREG(st.st_mode))
        ):
            raise no_such_key(t.bucket, t.key)
        return fd, object_info(t.key, st, record)
    except BaseException:
        os.close(fd)
        raise


def head_sync(t: Target, conditions: Conditions | None) -> ObjectInfo:
    fd, info = open_sync(t)
    os.close(fd)
    check_conditions(info, conditions)
    return info


def _layout_of(
    t: Target, conditions: Conditions | None
) -> tuple[ObjectInfo, dict[str, Any] | None]:
    """The object's info and its part layout (None when not known), read from one descriptor."""
    fd, info = open_sync(t)
    try:
        check_conditions(info, conditions)
        record = get_meta(fd) or {}
    finally:
        os.close(fd)
    return info, read_layout(t.bucket_dir, record) if info.parts_count else None


def part_range_sync(
    t: Target, number: int, conditions: Conditions | None
) -> tuple[ObjectInfo, ByteRange | None]:
    info, layout = _layout_of(t, conditions)
    if info.parts_count and layout is None:
        # completed before part layouts were kept, or its layout is lost
        raise S3Error(
            S3ErrorCode.NotImplemented,
            "This object's part sizes are not known: read it with a Range header instead.",
        )
    return info, part_span(layout["psz"] if layout else None, number, info.size)


def object_parts_sync(
    t: Target, marker: int, max_parts: int, conditions: Conditions | None
) -> tuple[ObjectInfo, ObjectPartsPage | None]:
    """GetObjectAttributes ``ObjectParts``: the count alone when the layout is not known."""
    info, layout = _layout_of(t, conditions)
    if not info.parts_count:
        return info, None
    if layout is None:
        return info, ObjectPartsPage(info.parts_count, None)
    return info, parts_page(layout, info.parts_count, marker, max_parts)


def open_for_read(
    t: Target, range_header: str | None, conditions: Conditions | None
) -> tuple[int | None, ObjectInfo, ByteRange | None, bytes]:
    fd, info = open_sync(t)
    try:
        check_conditions(info, conditions)
        byte_range = parse_range(range_header, info.size)
        start, length = (byte_range.start, byte_range.length) if byte_range else (0, info.size)
        # small objects come back with the open: one thread hop per GET
        first = os.pread(fd, length, start) if 0 < length <= INLINE_READ else b""
    except BaseException:
        os.close(fd)
        raise
    if len(first) == length:
        # all read (or nothing to read): close here, not on the event loop, where close()
        # gives up the GIL to busy worker threads (~20 us of a 4 KiB GET)
        os.close(fd)
        return None, info, byte_range, first
    return fd, info, byte_range, first


def open_from_cache(
    t: Target, range_header: str | None, conditions: Conditions | None
) -> tuple[None, ObjectInfo, ByteRange | None, bytes] | None:
    """:func:`open_for_read` of a small object on the event loop, without a thread hand-off,
    when the kernel can answer every step from memory (:mod:`.nowait`); None sends the caller
    to :func:`open_for_read` on the thread pool: a large object, a marker, anything not cached,
    and every error (so that errors keep one source). The xattr read is the one step that
    cannot refuse: a small record lives in the inode the open has just found in memory, a
    large one (much user metadata) in one more block, which the disk may have to supply when
    it is not cached; that is one block, never an object's bytes."""
    fd = None if t.marker else open_cached(t.path, OPEN_FLAGS | os.O_NOFOLLOW)
    if fd is None:
        return None
    try:
        info = _file_info(t, fd, INLINE_READ)
        if info is None:
            return None
        check_conditions(info, conditions)
        byte_range = parse_range(range_header, info.size)
        start, length = (byte_range.start, byte_range.length) if byte_range else (0, info.size)
        data = read_cached(fd, length, start)
        return None if data is None else (None, info, byte_range, data)
    except OSError:
        return None
    finally:
        os.close(fd)


def head_from_cache(t: Target, conditions: Conditions | None) -> ObjectInfo | None:
    """:func:`head_sync` on the event loop when the open is answered from the kernel's caches
    (as :func:`open_from_cache`, of any size: nothing is read); None sends the caller to
    :func:`head_sync` on the thread pool."""
    fd = None if t.marker else open_cached(t.path, OPEN_FLAGS | os.O_NOFOLLOW)
    if fd is None:
        return None
    try:
        info = _file_info(t, fd, None)
    except OSError:
        return None
    finally:
        os.close(fd)
    if info is not None:
        check_conditions(info, conditions)
    return info


def _file_info(t: Target, fd: int, max_size: int | None) -> ObjectInfo | None:
    """The info of the regular file open as ``fd`` (None for anything else, or a file over
    ``max_size``), as :func:`open_sync` reads it."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (max_size is not None and st.st_size > max_size):
        return None
    return object_info(t.key, st, get_meta(fd))


def _send_some(sock: int, fd: int, offset: int, count: int) -> int | None:
    """One sendfile(2) call on a non-blocking socket: bytes sent, or None when it is full."""
    try:
        return os.sendfile(sock, fd, offset, min(count, SENDFILE_MAX))
    except (BlockingIOError, InterruptedError):
        return None


class LocalReader(ObjectReader):
    """Yields a file's bytes in READ_CHUNK pieces, reading the next piece while one is sent."""

    def __init__(
        self,
        pool: DiskPool,
        fd: int | None,
        info: ObjectInfo,
        byte_range: ByteRange | None,
        first: bytes,
    ) -> None:
        self.info = info
        self.byte_range = byte_range
        self._pool = pool
        self._fd: int | None = fd
        start, length = (byte_range.start, byte_range.length) if byte_range else (0, info.size)
        self._first = first
        self._offset = start + len(first)
        self._remaining = length - len(first)
        self._pending: asyncio.Future[bytes] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    def _read_next(self) -> asyncio.Future[bytes] | None:
        if self._remaining <= 0 or self._fd is None:
            return None
        size = min(READ_CHUNK, self._remaining)
        self._pending = self._pool.submit(os.pread, self._fd, size, self._offset)
        return self._pending

    async def _chunks(self) -> AsyncIterator[bytes]:
        try:
            if self._first:
                yield self._first
                self._first = b""
            future = self._read_next()
            while future is not None:
                data = await future
                self._pending = None
                if not data:
                    # the file shrank under us (edited on disk): never send made-up bytes
                    raise S3Error(
                        S3ErrorCode.InternalError, "The object changed on disk while being read."
                    )
                self._offset += len(data)
                self._remaining -= len(data)
                future = self._read_next()  # read ahead while this piece goes out
                yield data
        finally:
            await self.aclose()

    async def send_file(self, sock: int, writable: Callable[[], Awaitable[None]]) -> None:
        """Send the remaining bytes to the non-blocking socket ``sock`` with sendfile(2).

        Instead of iterating: the kernel moves page-cache pages to the socket, with no copy
        through Python and a thread hop per socket-buffer-full rather than per READ_CHUNK.
        Each call runs on the thread pool (a cold file may wait for the disk); when the
        socket is full, ``writable()`` waits on the event loop. Closes the file at the end.
        """
        try:
            first, self._first = memoryview(self._first), b""
            while first:  # bytes read with the open (small objects) go out first
                try:
                    first = first[os.write(sock, first) :]
                except (BlockingIOError, InterruptedError):
                    await writable()
            while self._remaining > 0 and self._fd is not None:
                future = self._pool.submit(
                    _send_some, sock, self._fd, self._offset, self._remaining
                )
                self._pending = future
                sent = await future
                self._pending = None
                if sent is None:
                    await writable()
                    continue
                if sent == 0:
                    # the file shrank under us (edited on disk): never send made-up bytes
                    raise S3Error(
                        S3ErrorCode.InternalError, "The object changed on disk while being read."
                    )
                self._offset += sent
                self._remaining -= sent
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        pending = self._pending
        if pending is not None and not pending.done():
            # a read is still using the descriptor: close it only once that read ends
            pending.add_done_callback(lambda _f: os.close(fd))
        else:
            os.close(fd)
