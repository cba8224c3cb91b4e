"""The ``local`` object store: buckets and objects as plain directories and files.

Layout under ``root`` (an admin can read the raw data with ordinary tools):

* ``root/<bucket>/``            one directory per bucket
* ``root/<bucket>/<key>``       one file per object, holding exactly the object's bytes
* ``root/<bucket>/<key>/``      a key ending in ``/`` (folder marker) is the directory itself
* xattr ``user.minimo``         JSON with ETag, content type, user metadata, stored headers and
                                the multipart part count, on the file (or marker directory)
* ``root/.minimo/tmp/``         temp files; same filesystem, so rename into place is atomic.
                                Named ``<tag>-<instance id>-<n>``: the instance id
                                (gateway.instance) tells recovery which process owns one
* ``root/.minimo/multipart/<bucket>/<upload id>/``  ``upload.json`` and one file per part

Bucket names never start with ``.``, so ``.minimo`` cannot collide with a bucket.

Writes stream into a temp file, fsync it, set the xattr and only then rename it into place, so
an object is visible with its metadata only when complete. ``If-None-Match: *`` uses ``link``
instead of ``rename`` because link refuses to replace an existing name: exactly one of several
concurrent writers wins. All file I/O runs on a private thread pool in large batches, so the
event loop never waits on the disk and does few thread hops per object.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import functools
import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from gateway.backends.base import (
    MAX_KEY_BYTES,
    MAX_PART_NUMBER,
    MAX_PART_SIZE,
    MIN_PART_SIZE,
    Body,
    BucketInfo,
    ByteRange,
    Conditions,
    CopyResult,
    DeadOwner,
    Leftover,
    ListPage,
    ObjectInfo,
    ObjectReader,
    ObjectStore,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
    WriteMeta,
    no_such_bucket,
    no_such_key,
)
from gateway.instance import instance_id, owner_of
from gateway.protocol.conditions import check_conditions
from gateway.protocol.errors import S3Error, log_outage, storage_full
from gateway.protocol.ranges import parse_range

T = TypeVar("T")

XATTR = "user.minimo"
#: bytes gathered from the body before one write on the thread pool
WRITE_BATCH = 4 * 1024 * 1024
#: size of the pieces a GET yields
READ_CHUNK = 1024 * 1024
#: objects up to this size are read together with the open, in a single thread hop
INLINE_READ = 256 * 1024
#: most bytes one sendfile(2) call may move (it returns early when the socket fills anyway)
SENDFILE_MAX = 16 * 1024 * 1024
#: longest file name ext4 and most Linux filesystems accept, in bytes
MAX_SEGMENT_BYTES = 255
#: temp files older than this are leftovers of a crash (live writes finish much sooner)
STALE_TMP_SECONDS = 24 * 3600
EMPTY_MD5 = hashlib.md5(b"").hexdigest()
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,128}\Z")
_PART_FILE = re.compile(r"part-(\d{5})\Z")
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC
_IOV_MAX = min(os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 16, 1024)


# -- small helpers -------------------------------------------------------------------------------
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


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _writev_all(fd: int, chunks: list[bytes]) -> int:
    """Write all chunks with as few system calls as possible and no joined copy."""
    total = 0
    for start in range(0, len(chunks), _IOV_MAX):
        group = chunks[start : start + _IOV_MAX]
        want = sum(len(c) for c in group)
        done = os.writev(fd, group)
        if done < want:  # a short write (rare for regular files): finish the group plainly
            _write_all(fd, memoryview(b"".join(group))[done:])
        total += want
    return total


def _send_some(sock: int, fd: int, offset: int, count: int) -> int | None:
    """One sendfile(2) call on a non-blocking socket: bytes sent, or None when it is full."""
    try:
        return os.sendfile(sock, fd, offset, min(count, SENDFILE_MAX))
    except (BlockingIOError, InterruptedError):
        return None


def _fsync_dir(path: str) -> None:
    """Make a rename or link durable: the directory entry lives in the parent directory."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _get_meta(path_or_fd: str | int) -> dict[str, Any] | None:
    """The ``user.minimo`` xattr as a dict, or None when absent or unreadable."""
    try:
        raw = os.getxattr(path_or_fd, XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.ENOENT, errno.ENOTDIR):
            return None
        raise
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _encode_meta(etag: str, meta: WriteMeta, parts: int | None = None) -> bytes:
    record: dict[str, Any] = {"etag": etag, "mtime": time.time()}
    if meta.content_type:
        record["type"] = meta.content_type
    if meta.metadata:
        record["meta"] = meta.metadata
    if meta.headers:
        record["headers"] = meta.headers
    if parts:
        record["parts"] = parts
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


def _meta_of(record: dict[str, Any] | None) -> WriteMeta:
    record = record or {}
    return WriteMeta(
        content_type=record.get("type"),
        metadata=dict(record.get("meta") or {}),
        headers=dict(record.get("headers") or {}),
    )


#: errors that mean the file system (or the user's quota) is full
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: below this much free space, an ENOSPC from setxattr means a full disk, not a big xattr
_NEARLY_FULL_BYTES = 1 << 20


def _nearly_full(path_or_fd: str | int) -> bool:
    try:
        st = os.fstatvfs(path_or_fd) if isinstance(path_or_fd, int) else os.statvfs(path_or_fd)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _NEARLY_FULL_BYTES or bool(st.f_files and not st.f_favail)


def _disk_errors(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` (on the thread pool), turning a full disk or quota into the S3 error
    (507 InsufficientStorage). The callers' cleanup (temp files removed, nothing placed) runs
    as for any other failure: a write that did not fit leaves nothing behind."""
    try:
        return fn(*args)
    except OSError as exc:
        if exc.errno in _FULL_ERRNOS:
            log_outage("object", "full", f"{exc.strerror}: {exc.filename or ''}")
            raise storage_full("object") from None
        raise


def _set_meta(path_or_fd: str | int, data: bytes, flags: int = 0) -> None:
    try:
        os.setxattr(path_or_fd, XATTR, data, flags)
    except OSError as exc:
        if exc.errno in _FULL_ERRNOS and _nearly_full(path_or_fd):
            raise  # a full disk (see _disk_errors), not metadata too large
        if exc.errno in (errno.E2BIG, errno.ENOSPC, errno.ERANGE):
            raise S3Error(
                "MetadataTooLarge",
                "The object's metadata and headers are too large to store beside it "
                "(the local backend keeps them in one extended attribute of at most ~4 KiB).",
            ) from exc
        raise


def _foreign_etag(st: os.stat_result) -> str:
    """A stable stand-in ETag for a file put on disk by hand (no xattr): not an MD5."""
    return hashlib.md5(f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}".encode()).hexdigest()


def _info(key: str, st: os.stat_result, record: dict[str, Any] | None) -> ObjectInfo:
    is_dir = stat.S_ISDIR(st.st_mode)
    rec = record or {}
    when = rec.get("mtime") if is_dir else None
    meta = _meta_of(rec)
    return ObjectInfo(
        key=key,
        size=0 if is_dir else st.st_size,
        etag=rec.get("etag") or (EMPTY_MD5 if is_dir else _foreign_etag(st)),
        last_modified=_utc(float(when) if when is not None else st.st_mtime),
        content_type=meta.content_type,
        metadata=meta.metadata,
        headers=meta.headers,
    )


def _multipart_etag(part_etags: list[str]) -> str:
    digest = hashlib.md5(b"".join(bytes.fromhex(e) for e in part_etags)).hexdigest()
    return f"{digest}-{len(part_etags)}"


def _clean_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


def _bad_key(key: str, why: str) -> S3Error:
    return S3Error("InvalidObjectName", f"The key {key!r} is not valid: {why}.")


def _check_key(key: str) -> None:
    """Refuse keys that would escape the bucket or map ambiguously onto the filesystem."""
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad_key(key, "keys must be valid UTF-8") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", resource=None)
    if not key:
        raise _bad_key(key, "keys may not be empty")
    if "\x00" in key:
        raise _bad_key(key, "keys may not contain NUL characters")
    if key.startswith("/"):
        raise _bad_key(key, "keys may not start with '/'")
    segments = key.split("/")
    if key.endswith("/"):
        segments.pop()  # a folder marker: the trailing '/' names the directory itself
    for segment in segments:
        if segment in ("", ".", ".."):
            raise _bad_key(key, "keys may not contain '.', '..' or empty ('//') path segments")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise S3Error(
                "KeyTooLongError",
                f"Each '/'-separated part of a key is at most {MAX_SEGMENT_BYTES} bytes "
                "on the local backend (a filesystem name limit).",
            )


def _check_bucket(bucket: str) -> None:
    if not bucket or bucket.startswith(".") or "/" in bucket or "\x00" in bucket:
        raise S3Error("InvalidBucketName", f"The bucket name {bucket!r} is not valid.")


def _parent_is_file(key: str) -> S3Error:
    return S3Error(
        "ObjectParentIsFile",
        f"Cannot store {key!r}: a part of its path is an existing object. "
        "Delete that object or choose another key.",
    )


def _is_directory(key: str) -> S3Error:
    return S3Error(
        "ExistingObjectIsDirectory",
        f"Cannot store {key!r}: other objects are stored under {key + '/'!r}.",
    )


@dataclass(slots=True, frozen=True)
class _Target:
    """Where one key lives on disk."""

    bucket: str
    key: str
    bucket_dir: str
    path: str  # without the trailing '/' of a folder marker
    marker: bool

    @property
    def parent(self) -> str:
        return os.path.dirname(self.path)


class _TempFile:
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

    def write(self, chunks: list[bytes]) -> None:
        fd = self.open()
        if not chunks:
            return
        if self.hasher is not None:
            for chunk in chunks:
                self.hasher.update(chunk)
        length = _writev_all(fd, chunks)
        if self.writeback and _start_writeback is not None:
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


class _LocalReader(ObjectReader):
    """Yields a file's bytes in READ_CHUNK pieces, reading the next piece while one is sent."""

    def __init__(
        self,
        store: LocalObjectStore,
        fd: int | None,
        info: ObjectInfo,
        byte_range: ByteRange | None,
        first: bytes,
    ) -> None:
        self.info = info
        self.byte_range = byte_range
        self._store = store
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
        self._pending = self._store._submit(os.pread, self._fd, size, self._offset)
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
                    raise S3Error("InternalError", "The object changed on disk while being read.")
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
                future = self._store._submit(
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
                    raise S3Error("InternalError", "The object changed on disk while being read.")
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


class LocalObjectStore(ObjectStore):
    """Objects as files under ``root``. Safe to share between processes on the same host."""

    kind = "local"

    def __init__(self, root: Path, *, fsync: bool = True, threads: int = 32) -> None:
        # threads mostly wait in fsync; more of them let the filesystem journal commit many
        # small writes together (threads are only started when needed)
        self.root = Path(root)
        self._root = str(self.root)
        self._state = os.path.join(self._root, ".minimo")
        self._tmp = os.path.join(self._state, "tmp")
        #: temp names: the instance id (several gateways may share a root; recovery tells a dead
        #: process's leftovers by it), then a counter
        self._tmp_counter = itertools.count()
        self._multipart = os.path.join(self._state, "multipart")
        self._fsync = fsync
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None

    # -- plumbing ----------------------------------------------------------------------------
    def _submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="minimo-local")
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._pool, functools.partial(_disk_errors, fn, *args))

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._submit(fn, *args)

    def _tmp_path(self, tag: str = "obj") -> str:
        # unique without a getrandom() call per write: that call gives up the GIL on the event
        # loop, and under load getting it back cost ~35 us a small PUT
        return os.path.join(self._tmp, f"{tag}-{instance_id()}-{next(self._tmp_counter):x}")

    def _bucket_dir(self, bucket: str) -> str:
        _check_bucket(bucket)
        return os.path.join(self._root, bucket)

    def _target(self, bucket: str, key: str) -> _Target:
        bucket_dir = self._bucket_dir(bucket)
        _check_key(key)
        marker = key.endswith("/")
        path = os.path.join(bucket_dir, key[:-1] if marker else key)
        return _Target(bucket, key, bucket_dir, path, marker)

    def _require_bucket(self, bucket_dir: str, bucket: str) -> None:
        if not os.path.isdir(bucket_dir):
            raise no_such_bucket(bucket)

    async def start(self) -> None:
        await self._run(self._start_sync)

    def _start_sync(self) -> None:
        os.makedirs(self._tmp, exist_ok=True)
        os.makedirs(self._multipart, exist_ok=True)
        # temp files of crashed writes; young ones may belong to another live process
        cutoff = time.time() - STALE_TMP_SECONDS
        for entry in os.scandir(self._tmp):
            if entry.name.startswith(f"{_COMPLETING}-"):
                continue  # an upload whose completion was interrupted: recovery puts it back
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown)

    async def check(self) -> None:
        await self._run(self._check_sync)

    def _check_sync(self) -> None:
        if not os.path.isdir(self._root):
            raise S3Error("ServiceUnavailable", f"The data directory {self._root} does not exist.")
        os.makedirs(self._tmp, exist_ok=True)
        if not os.access(self._root, os.W_OK) or not os.access(self._tmp, os.W_OK):
            raise S3Error("ServiceUnavailable", f"The data directory {self._root} is not writable.")

    async def leftovers(self, dead: DeadOwner, *, repair: bool) -> list[Leftover]:
        return await self._run(self._leftovers_sync, dead, repair)

    def _leftovers_sync(self, dead: DeadOwner, repair: bool) -> list[Leftover]:
        found: list[Leftover] = []
        try:
            entries = list(os.scandir(self._tmp))
        except FileNotFoundError:
            return found
        now = time.time()
        for entry in entries:
            tag, _, rest = entry.name.partition("-")
            owner = owner_of(rest)
            if owner == instance_id():
                continue  # this process's own writes in progress
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # finished meanwhile
            # a directory renamed here (a claimed upload) keeps its old mtime; ctime moved
            age = now - max(st.st_mtime, st.st_ctime)
            if not dead(owner, age):
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            size = _tree_size(entry.path) if is_dir else st.st_size
            name = f".minimo/tmp/{entry.name}"
            if tag == _COMPLETING and is_dir:
                found.append(self._interrupted_complete(entry.path, name, owner, size, repair))
                continue
            leftover = Leftover(
                "temp_file", name, owner, size, "temp file of a write whose process is gone"
            )
            if repair:
                _remove_tree(entry.path, is_dir)
                leftover.repaired = True
            found.append(leftover)
        return found

    def _interrupted_complete(
        self, path: str, name: str, owner: str | None, size: int, repair: bool
    ) -> Leftover:
        """A claimed upload (CompleteMultipartUpload) of a dead process: put back under
        ``multipart/`` when it was not done (upload.json still there), so it can be listed,
        completed again or aborted; removed when it was done."""
        try:
            with open(os.path.join(path, "upload.json"), "rb") as f:
                record = json.load(f)
        except FileNotFoundError:
            record = None  # the completion was done: only its cleanup was interrupted
        except (OSError, ValueError):
            record = {}
        bucket = record.get("bucket") if isinstance(record, dict) else None
        upload_id = record.get("upload_id") if isinstance(record, dict) else None
        restorable = (
            isinstance(bucket, str)
            and isinstance(upload_id, str)
            and _UPLOAD_ID.match(upload_id) is not None
            and os.path.isdir(os.path.join(self._root, bucket))
        )
        if record is None:
            detail = "what a completed multipart upload left behind"
        elif restorable:
            detail = (
                f"multipart upload {upload_id} of s3://{bucket}/{record.get('key', '')} whose "
                "completion was interrupted (put back: it can be listed, completed or aborted)"
            )
        else:
            detail = "multipart upload whose completion was interrupted (bucket or id unknown)"
        leftover = Leftover("interrupted_complete", name, owner, size, detail)
        if not repair:
            return leftover
        if restorable:
            assert isinstance(bucket, str) and isinstance(upload_id, str)
            updir = os.path.join(self._multipart, bucket, upload_id)
            os.makedirs(os.path.dirname(updir), exist_ok=True)
            try:
                os.rename(path, updir)
            except OSError:
                _remove_tree(path, True)  # the id is taken again (cannot happen) or gone
        else:
            _remove_tree(path, True)
        leftover.repaired = True
        return leftover

    # -- buckets -----------------------------------------------------------------------------
    async def list_buckets(self) -> list[BucketInfo]:
        return await self._run(self._list_buckets_sync)

    def _list_buckets_sync(self) -> list[BucketInfo]:
        buckets = []
        for entry in os.scandir(self._root):
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            record = _get_meta(entry.path) or {}
            created = record.get("created") or entry.stat(follow_symlinks=False).st_mtime
            buckets.append(BucketInfo(entry.name, _utc(float(created))))
        buckets.sort(key=lambda b: b.name)
        return buckets

    async def create_bucket(self, bucket: str) -> None:
        await self._run(self._create_bucket_sync, self._bucket_dir(bucket), bucket)

    def _create_bucket_sync(self, bucket_dir: str, bucket: str) -> None:
        try:
            os.mkdir(bucket_dir)
        except FileExistsError:
            raise S3Error("BucketAlreadyOwnedByYou", resource=f"/{bucket}") from None
        except FileNotFoundError:
            os.makedirs(self._root, exist_ok=True)
            return self._create_bucket_sync(bucket_dir, bucket)
        # a directory's mtime moves with its content, so the creation time is kept apart
        _set_meta(bucket_dir, json.dumps({"created": time.time()}).encode())
        _fsync_dir(self._root)

    async def delete_bucket(self, bucket: str) -> None:
        await self._run(self._delete_bucket_sync, self._bucket_dir(bucket), bucket)

    def _delete_bucket_sync(self, bucket_dir: str, bucket: str) -> None:
        self._require_bucket(bucket_dir, bucket)
        uploads = os.path.join(self._multipart, bucket)
        if (os.path.isdir(uploads) and any(True for _ in os.scandir(uploads))) or _holds_object(
            bucket_dir
        ):
            raise S3Error("BucketNotEmpty", resource=f"/{bucket}")
        # only empty directories are left (pruned leftovers): remove them bottom-up
        for dirpath, _dirs, _files in os.walk(bucket_dir, topdown=False):
            if dirpath != bucket_dir:
                try:
                    os.rmdir(dirpath)
                except OSError:
                    raise S3Error("BucketNotEmpty", resource=f"/{bucket}") from None
        try:
            os.rmdir(bucket_dir)
        except FileNotFoundError:
            raise no_such_bucket(bucket) from None
        except OSError:
            raise S3Error("BucketNotEmpty", resource=f"/{bucket}") from None
        shutil.rmtree(uploads, ignore_errors=True)

    async def head_bucket(self, bucket: str) -> None:
        bucket_dir = self._bucket_dir(bucket)
        if not await self._run(os.path.isdir, bucket_dir):
            raise no_such_bucket(bucket)

    # -- writing -----------------------------------------------------------------------------
    async def _stream(self, body: Body, finish: Callable[[_TempFile, str | None], T]) -> T:
        """Stream ``body`` into a new temp file, then run ``finish`` on the thread pool.

        ``finish(temp, md5_from_body)`` seals and places the file. Whatever fails (the body,
        the disk, ``finish``), the temp file is removed and the exception re-raised unchanged.
        """
        # the auth layer's body may hash while verifying; then hashing again would be waste
        body_hashes = hasattr(body, "md5_hex")
        temp = _TempFile(self._tmp_path(), None if body_hashes else hashlib.md5(), self._fsync)
        pending: list[bytes] = []
        pending_len = 0
        inflight: asyncio.Future[Any] | None = None
        try:
            async for chunk in body:
                if not chunk:
                    continue
                pending.append(chunk)
                pending_len += len(chunk)
                if len(pending) >= _IOV_MAX:
                    # many tiny pieces: one bytes object costs less memory than a long list
                    pending = [b"".join(pending)]
                if pending_len >= WRITE_BATCH:
                    if inflight is not None:
                        await inflight
                    # the next batch is gathered while this one is written
                    inflight = self._submit(temp.write, pending)
                    pending, pending_len = [], 0
            if inflight is not None:
                await inflight
                inflight = None
            given = getattr(body, "md5_hex", None) if body_hashes else None
            if body.size is not None and temp.size + pending_len != body.size:
                raise S3Error("IncompleteBody")
            # tracked like a batch: if we are cancelled now, the file is not touched under it
            done: asyncio.Future[T] = self._submit(self._finish, temp, pending, given, finish)
            inflight = done
            result = await done
            inflight = None
            return result
        except BaseException as exc:
            await self._discard(temp, inflight, isinstance(exc, asyncio.CancelledError))
            raise

    @staticmethod
    async def _discard(
        temp: _TempFile, inflight: asyncio.Future[Any] | None, cancelled: bool
    ) -> None:
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

    @staticmethod
    def _finish(
        temp: _TempFile,
        pending: list[bytes],
        given: str | None,
        finish: Callable[[_TempFile, str | None], T],
    ) -> T:
        temp.write(pending)
        try:
            return finish(temp, given)
        except BaseException:
            temp.discard()
            raise

    def _ensure_parents(self, t: _Target) -> None:
        """Create the directories above ``t`` (never the bucket itself)."""
        parent = t.parent
        if os.path.isdir(parent):
            return
        if not os.path.isdir(t.bucket_dir):
            raise no_such_bucket(t.bucket)
        rel = os.path.relpath(parent, t.bucket_dir)
        current = t.bucket_dir
        for segment in rel.split(os.sep):
            current = os.path.join(current, segment)
            try:
                os.mkdir(current)
            except FileExistsError:
                if not os.path.isdir(current):
                    raise _parent_is_file(t.key) from None
            except NotADirectoryError:
                raise _parent_is_file(t.key) from None
            except FileNotFoundError:
                # the bucket or a parent vanished; a concurrent delete pruned it: caller retries
                if not os.path.isdir(t.bucket_dir):
                    raise no_such_bucket(t.bucket) from None
                raise

    def _clear_empty_dir(self, t: _Target) -> None:
        """``t.path`` is a directory where a file should go: remove it if it holds no object
        (leftover empty directories, e.g. after a crash), else refuse."""
        if _get_meta(t.path) is None and not _holds_object(t.path):
            for dirpath, _dirs, _files in os.walk(t.path, topdown=False):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
            if not os.path.isdir(t.path):
                return
        raise _is_directory(t.key)

    def _place_file(self, src: str, t: _Target, exclusive: bool) -> None:
        """Move the sealed temp file ``src`` to ``t`` atomically (link for If-None-Match)."""
        for _attempt in range(8):
            try:
                self._ensure_parents(t)
                if exclusive:
                    os.link(src, t.path)
                    os.unlink(src)
                else:
                    os.rename(src, t.path)
            except FileExistsError:
                if os.path.isdir(t.path):
                    self._clear_empty_dir(t)
                    continue
                raise S3Error(
                    "PreconditionFailed",
                    f"{t.key!r} already exists (If-None-Match: *).",
                    extra={"Condition": "If-None-Match"},
                ) from None
            except IsADirectoryError:
                self._clear_empty_dir(t)
                continue
            except NotADirectoryError:
                raise _parent_is_file(t.key) from None
            except FileNotFoundError:
                continue  # a concurrent delete removed an empty parent: create it again
            if self._fsync:
                _fsync_dir(t.parent)
            return
        raise S3Error("SlowDown", f"{t.key!r} is being changed concurrently; try again.")

    def _place_marker(self, t: _Target, meta: bytes, exclusive: bool) -> None:
        """A folder marker is its directory carrying the metadata xattr."""
        for _attempt in range(8):
            try:
                self._ensure_parents(t)
                try:
                    os.mkdir(t.path)
                except FileExistsError:
                    if not os.path.isdir(t.path):
                        raise _parent_is_file(t.key) from None
                _set_meta(t.path, meta, os.XATTR_CREATE if exclusive else 0)
            except FileExistsError:
                raise S3Error(
                    "PreconditionFailed",
                    f"{t.key!r} already exists (If-None-Match: *).",
                    extra={"Condition": "If-None-Match"},
                ) from None
            except NotADirectoryError:
                raise _parent_is_file(t.key) from None
            except FileNotFoundError:
                continue
            if self._fsync:
                _fsync_dir(t.parent)
            return
        raise S3Error("SlowDown", f"{t.key!r} is being changed concurrently; try again.")

    def _seal(self, temp: _TempFile, meta: bytes) -> None:
        fd = temp.open()
        _set_meta(fd, meta)
        if self._fsync:
            os.fsync(fd)
        temp.close()

    async def put_object(
        self, bucket: str, key: str, body: Body, meta: WriteMeta, *, if_none_match: bool = False
    ) -> str:
        t = self._target(bucket, key)
        if body.size is not None and body.size > MAX_PART_SIZE:
            raise S3Error("EntityTooLarge")
        # a few stat calls on hot metadata: cheaper inline than a thread hop per small PUT
        self._precheck(t, if_none_match)
        if t.marker:
            return await self._put_marker(t, body, meta, if_none_match)

        def finish(temp: _TempFile, given: str | None) -> str:
            etag = temp.md5_hex(given)
            self._seal(temp, _encode_meta(etag, meta))
            self._place_file(temp.path, t, if_none_match)
            return etag

        return await self._stream(body, finish)

    def _precheck(self, t: _Target, if_none_match: bool) -> None:
        """Fail before reading a body that could never be stored (checked again at the end)."""
        self._require_bucket(t.bucket_dir, t.bucket)
        try:
            st = os.stat(t.path)
        except FileNotFoundError:
            return
        except NotADirectoryError:
            raise _parent_is_file(t.key) from None
        if t.marker:
            if not stat.S_ISDIR(st.st_mode):
                raise _parent_is_file(t.key)
            exists = _get_meta(t.path) is not None
        else:
            if stat.S_ISDIR(st.st_mode):
                if _get_meta(t.path) is not None or _holds_object(t.path):
                    raise _is_directory(t.key)
                return
            exists = True
        if exists and if_none_match:
            raise S3Error(
                "PreconditionFailed",
                f"{t.key!r} already exists (If-None-Match: *).",
                extra={"Condition": "If-None-Match"},
            )

    async def _put_marker(self, t: _Target, body: Body, meta: WriteMeta, exclusive: bool) -> str:
        if body.size:
            raise _marker_with_data(t.key)
        async for chunk in body:  # consume (and let the body verify) an empty stream
            if chunk:
                raise _marker_with_data(t.key)
        await self._run(self._place_marker, t, _encode_meta(EMPTY_MD5, meta), exclusive)
        return EMPTY_MD5

    # -- reading -----------------------------------------------------------------------------
    def _open_sync(self, t: _Target) -> tuple[int, ObjectInfo]:
        """Open the object; its info comes from the open descriptor, so data and info agree."""
        try:
            fd = os.open(t.path, _OPEN_FLAGS | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError, OSError) as exc:
            if isinstance(exc, FileNotFoundError | NotADirectoryError) or exc.errno == errno.ELOOP:
                self._require_bucket(t.bucket_dir, t.bucket)
                raise no_such_key(t.bucket, t.key) from None
            raise
        try:
            st = os.fstat(fd)
            record = _get_meta(fd)
            is_dir = stat.S_ISDIR(st.st_mode)
            if (
                t.marker != is_dir
                or (is_dir and record is None)
                or not (is_dir or stat.S_ISREG(st.st_mode))
            ):
                raise no_such_key(t.bucket, t.key)
            return fd, _info(t.key, st, record)
        except BaseException:
            os.close(fd)
            raise

    def _head_sync(self, t: _Target, conditions: Conditions | None) -> ObjectInfo:
        fd, info = self._open_sync(t)
        os.close(fd)
        check_conditions(info, conditions)
        return info

    async def head_object(
        self, bucket: str, key: str, conditions: Conditions | None = None
    ) -> ObjectInfo:
        return await self._run(self._head_sync, self._target(bucket, key), conditions)

    def _open_for_read(
        self, t: _Target, range_header: str | None, conditions: Conditions | None
    ) -> tuple[int | None, ObjectInfo, ByteRange | None, bytes]:
        fd, info = self._open_sync(t)
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

    async def open_object(
        self,
        bucket: str,
        key: str,
        *,
        range_header: str | None = None,
        conditions: Conditions | None = None,
    ) -> ObjectReader:
        t = self._target(bucket, key)
        fd, info, byte_range, first = await self._run(
            self._open_for_read, t, range_header, conditions
        )
        return _LocalReader(self, fd, info, byte_range, first)

    # -- copy --------------------------------------------------------------------------------
    def _copy_into(
        self, src_fd: int, temp: _TempFile, offset: int, length: int, hashed: bool
    ) -> str | None:
        """Copy bytes between descriptors; return their MD5 when ``hashed``."""
        dst = temp.open()
        if not hashed:
            try:
                while length > 0:
                    n = os.copy_file_range(src_fd, dst, length, offset)
                    if n == 0:
                        raise S3Error("InternalError", "The source changed on disk while copied.")
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
                raise S3Error("InternalError", "The source changed on disk while copied.")
            hasher.update(data)
            _write_all(dst, data)
            offset += len(data)
            length -= len(data)
            temp.size += len(data)
        return hasher.hexdigest()

    async def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        *,
        meta: WriteMeta | None,
        conditions: Conditions | None = None,
    ) -> CopyResult:
        src = self._target(src_bucket, src_key)
        dst = self._target(dst_bucket, dst_key)
        if meta is None and src == dst:
            raise S3Error(
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself "
                "without changing the object's metadata (use the REPLACE metadata directive).",
            )
        return await self._run(self._copy_sync, src, dst, meta, conditions)

    def _copy_sync(
        self, src: _Target, dst: _Target, meta: WriteMeta | None, conditions: Conditions | None
    ) -> CopyResult:
        fd, info = self._open_sync(src)
        try:
            check_conditions(info, conditions, copy_source=True)
            self._require_bucket(dst.bucket_dir, dst.bucket)
            new_meta = (
                meta
                if meta is not None
                else WriteMeta(info.content_type, dict(info.metadata), dict(info.headers))
            )
            if dst.marker:
                if info.size:
                    raise _marker_with_data(dst.key)
                self._place_marker(dst, _encode_meta(EMPTY_MD5, new_meta), False)
                return CopyResult(EMPTY_MD5, self._head_sync(dst, None).last_modified)
            temp = _TempFile(self._tmp_path("copy"), None)
            try:
                # a plain ETag is the content's MD5 and stays valid; a multipart one does not
                plain = "-" not in info.etag and bool(_get_meta(fd))
                digest = self._copy_into(fd, temp, 0, info.size, hashed=not plain)
                etag = digest or info.etag
                self._seal(temp, _encode_meta(etag, new_meta))
                self._place_file(temp.path, dst, False)
            except BaseException:
                temp.discard()
                raise
        finally:
            os.close(fd)
        return CopyResult(etag, _utc(os.stat(dst.path).st_mtime))

    # -- delete ------------------------------------------------------------------------------
    async def delete_object(self, bucket: str, key: str) -> None:
        await self._run(self._delete_sync, self._target(bucket, key))

    def _delete_sync(self, t: _Target) -> None:
        self._require_bucket(t.bucket_dir, t.bucket)
        try:
            if t.marker:
                if not stat.S_ISDIR(os.lstat(t.path).st_mode):
                    return  # "k/" names no object when "k" is a file (whose xattr stays)
                os.removexattr(t.path, XATTR)
                start = t.path
            else:
                if stat.S_ISDIR(os.lstat(t.path).st_mode):
                    return  # a directory of other objects, not an object
                os.unlink(t.path)
                start = t.parent
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            if exc.errno == errno.ENODATA:
                return
            raise
        if self._fsync:
            try:
                _fsync_dir(os.path.dirname(t.path))
            except FileNotFoundError:
                return  # a concurrent delete already pruned the emptied directory
        self._prune(t.bucket_dir, start)

    @staticmethod
    def _prune(bucket_dir: str, start: str) -> None:
        """Remove now-empty directories up to (never including) the bucket directory."""
        current = start
        while current != bucket_dir and current.startswith(bucket_dir + os.sep):
            if _get_meta(current) is not None:
                return  # a folder marker is an object, even when empty
            try:
                os.rmdir(current)
            except OSError:
                return
            current = os.path.dirname(current)

    # -- listing -----------------------------------------------------------------------------
    async def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        bucket_dir = self._bucket_dir(bucket)
        return await self._run(
            self._list_sync, bucket, bucket_dir, prefix, delimiter, start_after, max_keys
        )

    def _list_sync(
        self,
        bucket: str,
        bucket_dir: str,
        prefix: str,
        delimiter: str,
        start_after: str,
        max_keys: int,
    ) -> ListPage:
        self._require_bucket(bucket_dir, bucket)
        page = ListPage([], [], False)
        if max_keys <= 0:
            return page
        walk = _Walk(bucket_dir, prefix, delimiter, start_after)
        count = 0
        for key, path, record in walk.entries():
            if delimiter and (cut := key.find(delimiter, len(prefix))) >= 0:
                common = key[: cut + len(delimiter)]
                if common == walk.folded:
                    continue  # already emitted (or skipped as start_after)
                walk.folded = common  # everything else under it folds too: skip it
                if common == start_after:
                    continue  # the previous page ended on this prefix
                if count == max_keys:
                    page.truncated = True
                    break
                page.prefixes.append(common)
                page.next_marker = common
                count += 1
                continue
            if count == max_keys:
                page.truncated = True
                break
            try:
                st = os.stat(path)
                if record is None and not stat.S_ISDIR(st.st_mode):
                    record = _get_meta(path)
            except (FileNotFoundError, NotADirectoryError):
                continue  # deleted while we listed
            page.objects.append(_info(key, st, record))
            page.next_marker = key
            count += 1
        return page

    # -- multipart ---------------------------------------------------------------------------
    def _upload_dir(self, bucket: str, upload_id: str) -> str:
        if not _UPLOAD_ID.match(upload_id or ""):
            raise S3Error("NoSuchUpload", f"The upload id {upload_id!r} does not exist.")
        return os.path.join(self._multipart, bucket, upload_id)

    def _load_upload(self, updir: str, key: str, upload_id: str) -> dict[str, Any]:
        try:
            with open(os.path.join(updir, "upload.json"), "rb") as f:
                record = json.load(f)
        except (FileNotFoundError, NotADirectoryError, ValueError):
            raise _no_such_upload(upload_id) from None
        if record.get("key") != key:
            raise _no_such_upload(upload_id)
        return record

    async def create_multipart_upload(self, bucket: str, key: str, meta: WriteMeta) -> str:
        t = self._target(bucket, key)
        return await self._run(self._create_upload_sync, t, meta)

    def _create_upload_sync(self, t: _Target, meta: WriteMeta) -> str:
        self._require_bucket(t.bucket_dir, t.bucket)
        upload_id = secrets.token_urlsafe(24)
        updir = os.path.join(self._multipart, t.bucket, upload_id)
        # build the upload in tmp, then rename: a half-created upload is never listed
        staging = self._tmp_path("upload")
        os.makedirs(staging)
        record = {
            "key": t.key,
            # where it lives, so recovery can put back an upload whose completion was killed
            "bucket": t.bucket,
            "upload_id": upload_id,
            "initiated": time.time(),
            "type": meta.content_type,
            "meta": meta.metadata,
            "headers": meta.headers,
        }
        with open(os.path.join(staging, "upload.json"), "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.makedirs(os.path.dirname(updir), exist_ok=True)
        os.rename(staging, updir)
        return upload_id

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, part_number: int, body: Body
    ) -> str:
        t = self._target(bucket, key)
        _check_part_number(part_number)
        updir = self._upload_dir(bucket, upload_id)
        if body.size is not None and body.size > MAX_PART_SIZE:
            raise S3Error("EntityTooLarge")
        await self._run(self._load_upload, updir, t.key, upload_id)

        def finish(temp: _TempFile, given: str | None) -> str:
            etag = temp.md5_hex(given)
            self._place_part(temp, updir, part_number, etag, upload_id)
            return etag

        return await self._stream(body, finish)

    def _place_part(
        self, temp: _TempFile, updir: str, part_number: int, etag: str, upload_id: str
    ) -> None:
        self._seal(temp, json.dumps({"etag": etag}).encode())
        try:
            os.rename(temp.path, os.path.join(updir, f"part-{part_number:05d}"))
        except (FileNotFoundError, NotADirectoryError):
            raise _no_such_upload(upload_id) from None  # aborted or completed meanwhile

    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        src_bucket: str,
        src_key: str,
        *,
        range_header: str | None = None,
        conditions: Conditions | None = None,
    ) -> CopyResult:
        t = self._target(bucket, key)
        src = self._target(src_bucket, src_key)
        _check_part_number(part_number)
        updir = self._upload_dir(bucket, upload_id)
        return await self._run(
            self._part_copy_sync, t, upload_id, updir, part_number, src, range_header, conditions
        )

    def _part_copy_sync(
        self,
        t: _Target,
        upload_id: str,
        updir: str,
        part_number: int,
        src: _Target,
        range_header: str | None,
        conditions: Conditions | None,
    ) -> CopyResult:
        self._load_upload(updir, t.key, upload_id)
        fd, info = self._open_sync(src)
        try:
            check_conditions(info, conditions, copy_source=True)
            byte_range = parse_range(range_header, info.size)
            start, length = (byte_range.start, byte_range.length) if byte_range else (0, info.size)
            if length > MAX_PART_SIZE:
                raise S3Error("EntityTooLarge")
            temp = _TempFile(self._tmp_path("part"), None)
            try:
                etag = self._copy_into(fd, temp, start, length, hashed=True) or EMPTY_MD5
                self._place_part(temp, updir, part_number, etag, upload_id)
            except BaseException:
                temp.discard()
                raise
        finally:
            os.close(fd)
        return CopyResult(etag, _utc(time.time()))

    def _parts_sync(self, updir: str) -> dict[int, tuple[str, os.stat_result]]:
        parts = {}
        for entry in os.scandir(updir):
            match = _PART_FILE.match(entry.name)
            if match is None:
                continue
            try:
                record = _get_meta(entry.path) or {}
                parts[int(match.group(1))] = (record.get("etag", ""), entry.stat())
            except FileNotFoundError:
                continue  # replaced by a concurrent upload of the same part
        return parts

    async def list_parts(
        self, bucket: str, key: str, upload_id: str, *, part_marker: int = 0, max_parts: int = 1000
    ) -> PartsPage:
        t = self._target(bucket, key)
        updir = self._upload_dir(bucket, upload_id)
        return await self._run(self._list_parts_sync, t, upload_id, updir, part_marker, max_parts)

    def _list_parts_sync(
        self, t: _Target, upload_id: str, updir: str, part_marker: int, max_parts: int
    ) -> PartsPage:
        self._load_upload(updir, t.key, upload_id)
        try:
            parts = self._parts_sync(updir)
        except FileNotFoundError:
            raise _no_such_upload(upload_id) from None
        numbers = sorted(n for n in parts if n > part_marker)
        shown = numbers[: max(0, max_parts)]
        page = PartsPage(
            [
                PartInfo(n, parts[n][0], parts[n][1].st_size, _utc(parts[n][1].st_mtime))
                for n in shown
            ],
            truncated=len(numbers) > len(shown),
        )
        page.next_marker = shown[-1] if shown else None
        return page

    async def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> str:
        t = self._target(bucket, key)
        updir = self._upload_dir(bucket, upload_id)
        if not parts:
            raise S3Error("MalformedXML", "CompleteMultipartUpload needs at least one part.")
        numbers = [n for n, _ in parts]
        if any(b <= a for a, b in itertools.pairwise(numbers)):
            raise S3Error("InvalidPartOrder")
        return await self._run(self._complete_sync, t, upload_id, updir, parts)

    def _complete_sync(
        self, t: _Target, upload_id: str, updir: str, wanted: list[tuple[int, str]]
    ) -> str:
        record = self._load_upload(updir, t.key, upload_id)
        # claim the upload by moving it away: of two concurrent completes only one gets it
        claimed = self._tmp_path(_COMPLETING)
        try:
            os.rename(updir, claimed)
        except (FileNotFoundError, NotADirectoryError):
            raise _no_such_upload(upload_id) from None
        try:
            etag = self._assemble(t, claimed, record, wanted)
        except BaseException:
            os.rename(claimed, updir)  # nothing happened: the client may fix the list and retry
            raise
        # upload.json goes first: a claimed upload without it is done (recovery removes what
        # is left), one with it was interrupted before it was done (recovery puts it back)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(claimed, "upload.json"))
        shutil.rmtree(claimed, ignore_errors=True)
        bucket_uploads = os.path.dirname(updir)
        with contextlib.suppress(OSError):
            os.rmdir(bucket_uploads)  # only succeeds when no other upload is in flight
        return etag

    def _assemble(
        self, t: _Target, claimed: str, record: dict[str, Any], wanted: list[tuple[int, str]]
    ) -> str:
        have = self._parts_sync(claimed)
        files = []
        for index, (number, etag) in enumerate(wanted):
            found = have.get(number)
            if found is None or found[0] != _clean_etag(etag):
                raise S3Error(
                    "InvalidPart",
                    f"Part {number} with ETag {etag} was not uploaded (or was replaced).",
                    extra={"PartNumber": str(number), "ETag": etag},
                )
            if index < len(wanted) - 1 and found[1].st_size < MIN_PART_SIZE:
                raise S3Error(
                    "EntityTooSmall",
                    f"Part {number} is {found[1].st_size} bytes; every part but the last must "
                    f"be at least {MIN_PART_SIZE} bytes.",
                    extra={"PartNumber": str(number)},
                )
            files.append(os.path.join(claimed, f"part-{number:05d}"))
        etag = _multipart_etag([_clean_etag(e) for _, e in wanted])
        meta = _meta_of(record)
        if t.marker:
            if any(os.path.getsize(f) for f in files):
                raise _marker_with_data(t.key)
            self._place_marker(t, _encode_meta(etag, meta, len(files)), False)
            return etag
        temp = _TempFile(self._tmp_path("mpu"), None)
        try:
            for path in files:
                src = os.open(path, _OPEN_FLAGS)
                try:
                    self._copy_into(src, temp, 0, os.fstat(src).st_size, hashed=False)
                finally:
                    os.close(src)
            self._seal(temp, _encode_meta(etag, meta, len(files)))
            self._place_file(temp.path, t, False)
        except BaseException:
            temp.discard()
            raise
        return etag

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        t = self._target(bucket, key)
        updir = self._upload_dir(bucket, upload_id)
        await self._run(self._abort_sync, t, upload_id, updir)

    def _abort_sync(self, t: _Target, upload_id: str, updir: str) -> None:
        self._require_bucket(t.bucket_dir, t.bucket)
        self._load_upload(updir, t.key, upload_id)
        doomed = self._tmp_path("abort")
        try:
            os.rename(updir, doomed)  # atomic: a racing complete either got it or never will
        except (FileNotFoundError, NotADirectoryError):
            raise _no_such_upload(upload_id) from None
        shutil.rmtree(doomed, ignore_errors=True)

    async def list_multipart_uploads(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadsPage:
        bucket_dir = self._bucket_dir(bucket)
        return await self._run(
            self._list_uploads_sync,
            bucket,
            bucket_dir,
            prefix,
            delimiter,
            key_marker,
            upload_id_marker,
            max_uploads,
        )

    def _list_uploads_sync(
        self,
        bucket: str,
        bucket_dir: str,
        prefix: str,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        max_uploads: int,
    ) -> UploadsPage:
        self._require_bucket(bucket_dir, bucket)
        uploads = []
        base = os.path.join(self._multipart, bucket)
        try:
            entries = list(os.scandir(base))
        except FileNotFoundError:
            entries = []
        for entry in entries:
            try:
                with open(os.path.join(entry.path, "upload.json"), "rb") as f:
                    record = json.load(f)
            except (OSError, ValueError):
                continue  # completed or aborted while we looked
            key = record.get("key", "")
            if key.startswith(prefix):
                uploads.append(UploadInfo(key, entry.name, _utc(float(record["initiated"]))))
        # (key, upload id) order: stable, and what the markers of the next page point into
        uploads.sort(key=lambda u: (u.key, u.upload_id))
        page = UploadsPage([], [], False)
        count = 0
        last_prefix = None
        for upload in uploads:
            if key_marker and (
                upload.key < key_marker
                or (
                    upload.key == key_marker
                    and (not upload_id_marker or upload.upload_id <= upload_id_marker)
                )
            ):
                continue
            common = None
            if delimiter and (cut := upload.key.find(delimiter, len(prefix))) >= 0:
                common = upload.key[: cut + len(delimiter)]
                if common in (last_prefix, key_marker):
                    continue
            if count >= max_uploads:
                page.truncated = True
                break
            count += 1
            if common is not None:
                page.prefixes.append(common)
                last_prefix = common
                page.next_key_marker, page.next_upload_id_marker = common, None
            else:
                page.uploads.append(upload)
                page.next_key_marker = upload.key
                page.next_upload_id_marker = upload.upload_id
        return page


#: the temp name tag of an upload claimed by CompleteMultipartUpload
_COMPLETING = "complete"


def _tree_size(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _remove_tree(path: str, is_dir: bool) -> None:
    if is_dir:
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _no_such_upload(upload_id: str) -> S3Error:
    return S3Error(
        "NoSuchUpload",
        f"The multipart upload {upload_id!r} does not exist: it was completed, aborted or "
        "never created.",
        extra={"UploadId": upload_id},
    )


def _marker_with_data(key: str) -> S3Error:
    return S3Error(
        "InvalidRequest",
        f"{key!r} ends in '/', which makes it a folder marker; the local backend stores folder "
        "markers as directories, so they cannot hold data.",
    )


def _check_part_number(number: int) -> None:
    if not 1 <= number <= MAX_PART_NUMBER:
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive.",
            extra={"ArgumentName": "partNumber", "ArgumentValue": str(number)},
        )


def _holds_object(path: str) -> bool:
    """True when the directory holds at least one object (stops at the first one found)."""
    try:
        entries = os.scandir(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    with entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                return True
            if entry.is_dir(follow_symlinks=False) and (
                _get_meta(entry.path) is not None or _holds_object(entry.path)
            ):
                return True
    return False


class _Walk:
    """Keys of one bucket in UTF-8 byte order, lazily, skipping what a page cannot contain.

    Python compares ``str`` by code point, which is the same order as UTF-8 bytes, so names
    are sorted as strings; a directory sorts as ``name + "/"`` because that is how every key
    inside it continues.
    """

    def __init__(self, bucket_dir: str, prefix: str, delimiter: str, start_after: str) -> None:
        self.bucket_dir = bucket_dir
        self.prefix = prefix
        self.delimiter = delimiter
        self.start_after = start_after
        #: set by the consumer to the last common prefix emitted: subtrees under it are skipped
        self.folded: str | None = None

    def entries(self) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
        """(key, path, xattr record if already read) for every key after start_after."""
        # start in the deepest directory the prefix names instead of at the bucket's top
        rel = self.prefix[: self.prefix.rfind("/") + 1]
        if rel:
            segments = rel[:-1].split("/")
            if any(s in ("", ".", "..") or "\x00" in s for s in segments):
                return  # no stored key can have such a prefix
            path = os.path.join(self.bucket_dir, rel[:-1])
            if not os.path.isdir(path):
                return  # nothing stored below it (or it is an object, not a directory)
            if rel == self.prefix and rel > self.start_after:
                record = _get_meta(path)
                if record is not None:
                    yield rel, path, record
        else:
            path = self.bucket_dir
        yield from self._walk(path, rel)

    def _walk(self, dirpath: str, rel: str) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
        try:
            with os.scandir(dirpath) as it:
                items = []
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        items.append((entry.name + "/", entry.path, True))
                    elif entry.is_file(follow_symlinks=False):
                        items.append((entry.name, entry.path, False))
        except (FileNotFoundError, NotADirectoryError):
            return
        items.sort()
        prefix, start_after = self.prefix, self.start_after
        for name, path, is_dir in items:
            key = rel + name
            if not is_dir:
                if key > start_after and key.startswith(prefix):
                    yield key, path, None
                continue
            # key is "dir/": every key inside starts with it
            if not (key.startswith(prefix) or prefix.startswith(key)):
                continue
            if key < start_after and not start_after.startswith(key):
                continue  # the whole subtree sorts before start_after
            if self.folded is not None and key.startswith(self.folded):
                continue
            if (
                self.delimiter == "/"
                and key.startswith(prefix)
                and "/" not in key[len(prefix) : -1]
                and not (start_after.startswith(key) and start_after != key)
            ):
                # the directory folds into exactly one common prefix: do not descend,
                # only check that it holds an object at all
                if key != start_after and (_get_meta(path) is not None or _holds_object(path)):
                    yield key, path, None
                continue
            if key.startswith(prefix) and key > start_after:
                record = _get_meta(path)
                if record is not None:
                    yield key, path, record
            yield from self._walk(path, key)
