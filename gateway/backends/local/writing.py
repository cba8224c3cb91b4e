"""The write path's first half: a body streamed into a temp file in large batches on the
thread pool, hashed on the way when nothing else hashed it, written back early, and sealed
(metadata xattr, fsync) before :mod:`.placing` moves it into place.

Temp files live in ``.minimo/tmp`` on the same filesystem as the buckets, so the rename into
place is atomic; whatever fails, a write removes its temp file and re-raises unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import os
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.backends.base import Body
from gateway.backends.local.dirsync import DIRECTORY_SYNC
from gateway.backends.local.layout import Layout
from gateway.backends.local.pool import DiskPool
from gateway.backends.local.reader import READ_CHUNK
from gateway.backends.local.records import set_meta
from gateway.protocol.checksums import Checksum
from gateway.protocol.errors import S3Error, S3ErrorCode

T = TypeVar("T")

#: bytes gathered from the body before one write on the thread pool
WRITE_BATCH = 4 * 1024 * 1024
IOV_MAX = min(os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 16, 1024)


def _load_sync_file_range() -> Callable[[int, int, int], None] | None:
    """``sync_file_range(SYNC_FILE_RANGE_WRITE)`` when libc has it (Linux), else None.

    It starts writing a batch to disk without waiting, so the fsync at the end of a large
    upload only waits for the last few batches instead of the whole object.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int

    def start_writeback(fd: int, offset: int, length: int) -> None:
        fn(fd, offset, length, 2)  # SYNC_FILE_RANGE_WRITE; a failure only loses the head start

    return start_writeback


_start_writeback = _load_sync_file_range()


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def writev_all(fd: int, chunks: list[bytes]) -> int:
    """Write all chunks with as few system calls as possible and no joined copy."""
    total = 0
    for start in range(0, len(chunks), IOV_MAX):
        group = chunks[start : start + IOV_MAX]
        want = sum(len(c) for c in group)
        done = os.writev(fd, group)
        if done < want:  # a short write (rare for regular files): finish the group plainly
            write_all(fd, memoryview(b"".join(group))[done:])
        total += want
    return total


def fsync_dir(path: str) -> None:
    """Make a rename or link durable: the directory entry lives in the parent directory.
    Concurrent writers of one directory share its fsyncs (:mod:`.dirsync`)."""
    DIRECTORY_SYNC.sync(path)


class TempFile:
    """A temp file being filled on the thread pool, hashed on the way when asked."""

    def __init__(self, path: str, hasher: Any | None, writeback: bool = False) -> None:
        self.path = path
        self.hasher = hasher
        self.fd: int | None = None
        self.size = 0
        #: start disk writes early (only worth it when the file will be fsync'd)
        self.writeback = writeback and _start_writeback is not None

    def open(self) -> int:
        if self.fd is None:
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            try:
                self.fd = os.open(self.path, flags, 0o644)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                self.fd = os.open(self.path, flags, 0o644)
        return self.fd

    def write(self, chunks: list[bytes], *, last: bool = False) -> None:
        """Append ``chunks``; ``last``: the file is sealed (fsync'd) right after, so starting
        the writeback early would gain nothing (and cost a system call per small object)."""
        fd = self.open()
        if not chunks:
            return
        if self.hasher is not None:
            for chunk in chunks:
                self.hasher.update(chunk)
        length = writev_all(fd, chunks)
        if self.writeback and not last and _start_writeback is not None:
            _start_writeback(fd, self.size, length)
        self.size += length

    def md5_hex(self, given: str | None) -> str:
        if given:
            return given
        if self.hasher is not None:
            return self.hasher.hexdigest()
        # the body promised an MD5 but had none: hash what we wrote
        hasher = hashlib.md5()
        offset = 0
        while chunk := os.pread(self.open(), READ_CHUNK, offset):
            hasher.update(chunk)
            offset += len(chunk)
        return hasher.hexdigest()

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def discard(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def seal(temp: TempFile, meta: bytes, *, fsync: bool) -> None:
    """Give the finished temp file its metadata xattr and make both durable, then close it."""
    fd = temp.open()
    set_meta(fd, meta)
    if fsync:
        os.fsync(fd)
    temp.close()


def copy_into(
    src_fd: int,
    temp: TempFile,
    offset: int,
    length: int,
    hashed: bool,
    also: Checksum | None = None,
) -> str | None:
    """Copy bytes between descriptors; return their MD5 when ``hashed`` (``also`` is fed
    the same bytes: a copied part's checksum)."""
    dst = temp.open()
    if not hashed:
        try:
            while length > 0:
                n = os.copy_file_range(src_fd, dst, length, offset)
                if n == 0:
                    raise S3Error(
                        S3ErrorCode.InternalError, "The source changed on disk while copied."
                    )
                offset += n
                length -= n
                temp.size += n
            return None
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
    hasher = hashlib.md5()
    while length > 0:
        data = os.pread(src_fd, min(READ_CHUNK, length), offset)
        if not data:
            raise S3Error(S3ErrorCode.InternalError, "The source changed on disk while copied.")
        hasher.update(data)
        if also is not None:
            also.update(data)
        write_all(dst, data)
        offset += len(data)
        length -= len(data)
        temp.size += len(data)
    return hasher.hexdigest()


async def stream_into_temp(
    pool: DiskPool, layout: Layout, body: Body, finish: Callable[[TempFile, str | None], T]
) -> T:
    """Stream ``body`` into a new temp file, then run ``finish`` on the thread pool.

    ``finish(temp, md5_from_body)`` seals and places the file. Whatever fails (the body,
    the disk, ``finish``), the temp file is removed and the exception re-raised unchanged.
    """
    # the auth layer's body may hash while verifying; then hashing again would be waste
    body_hashes = hasattr(body, "md5_hex")
    temp = TempFile(layout.tmp_path(), None if body_hashes else hashlib.md5(), layout.fsync)
    pending: list[bytes] = []
    pending_len = 0
    inflight: asyncio.Future[Any] | None = None
    try:
        async for chunk in body:
            if not chunk:
                continue
            pending.append(chunk)
            pending_len += len(chunk)
            if len(pending) >= IOV_MAX:
                # many tiny pieces: one bytes object costs less memory than a long list
                pending = [b"".join(pending)]
            if pending_len >= WRITE_BATCH:
                if inflight is not None:
                    await inflight
                # the next batch is gathered while this one is written
                inflight = pool.submit(temp.write, pending)
                pending, pending_len = [], 0
        if inflight is not None:
            await inflight
            inflight = None
        given = getattr(body, "md5_hex", None) if body_hashes else None
        if body.size is not None and temp.size + pending_len != body.size:
            raise S3Error(S3ErrorCode.IncompleteBody)
        # tracked like a batch: if we are cancelled now, the file is not touched under it
        done: asyncio.Future[T] = pool.submit(_finish, temp, pending, given, finish)
        inflight = done
        result = await done
        inflight = None
        return result
    except BaseException as exc:
        await _discard(temp, inflight, isinstance(exc, asyncio.CancelledError))
        raise


async def _discard(temp: TempFile, inflight: asyncio.Future[Any] | None, cancelled: bool) -> None:
    """Remove a failed write's temp file, once no batch write is using it any more."""

    def later(future: asyncio.Future[Any]) -> None:
        if not future.cancelled():
            future.exception()  # retrieved: a disk error here is not news
        temp.discard()

    if inflight is None or inflight.done():
        if inflight is not None:
            later(inflight)
        else:
            temp.discard()
        return
    if not cancelled:
        # wait for the one batch in flight, so the caller sees nothing left behind
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([inflight])
        if inflight.done():
            later(inflight)
            return
    # cancelled: do not wait; the file goes as soon as the write finishes
    inflight.add_done_callback(later)


def _finish(
    temp: TempFile,
    pending: list[bytes],
    given: str | None,
    finish: Callable[[TempFile, str | None], T],
) -> T:
    temp.write(pending, last=True)
    try:
        return finish(temp, given)
    except BaseException:
        temp.discard()
        raise
