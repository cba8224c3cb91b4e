""":class:`LocalObjectStore`: the ObjectStore interface over the package's parts.

Each operation checks its names on the event loop, then runs its file work in one hop on the
thread pool (:mod:`.pool`). Writes stream the body into a temp file (:mod:`.writing`), seal it
and move it into place (:mod:`.placing`); copies and deletes are here, because they are the
object operations that are neither a write of a body nor a read.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
from pathlib import Path

from gateway.backends.base import (
    MAX_PART_SIZE,
    Body,
    BucketInfo,
    ByteRange,
    Conditions,
    CopyResult,
    DeadOwner,
    KeepChecksum,
    Leftover,
    ListPage,
    ObjectInfo,
    ObjectPartsPage,
    ObjectReader,
    ObjectStore,
    PartsPage,
    UploadsPage,
    WriteMeta,
    kept,
    no_such_bucket,
)
from gateway.backends.local import buckets
from gateway.backends.local.layout import Layout, Target, marker_with_data, require_bucket
from gateway.backends.local.leftovers import find_leftovers, sweep_stale_temp
from gateway.backends.local.lister import list_page
from gateway.backends.local.multipart import Uploads, check_part_checksum, check_part_number
from gateway.backends.local.nowait import on_local_filesystem
from gateway.backends.local.partlayout import drop_replaced, named_sidecar
from gateway.backends.local.placing import place_file, place_marker, precheck
from gateway.backends.local.pool import DiskPool
from gateway.backends.local.reader import (
    LocalReader,
    head_from_cache,
    head_sync,
    object_parts_sync,
    open_for_read,
    open_from_cache,
    open_sync,
    part_range_sync,
)
from gateway.backends.local.records import EMPTY_MD5, XATTR, encode_meta, get_meta, utc
from gateway.backends.local.writing import TempFile, copy_into, fsync_dir, seal, stream_into_temp
from gateway.protocol.conditions import check_conditions
from gateway.protocol.errors import S3Error, S3ErrorCode

#: PUT bodies up to this size are read before the checks that may refuse them, which then run
#: in the write's one hop to the thread pool: the event loop makes no system call of its own
#: (each one hands the GIL to the pool's threads and waits to get it back). The client has sent
#: such a body with its headers anyway, unless it waits for ``100 Continue``.
CHECK_LATE_MAX = 64 * 1024


def _checked_late(body: Body) -> bool:
    """Whether a PUT of ``body`` runs its existence checks in the write's own thread hop."""
    size = body.size
    return (
        size is not None and size <= CHECK_LATE_MAX and not getattr(body, "awaits_continue", False)
    )


class LocalObjectStore(ObjectStore):
    """Objects as files under ``root``. Safe to share between processes on the same host."""

    kind = "local"
    needs_body_md5 = True

    def __init__(self, root: Path, *, fsync: bool = True, threads: int = 32) -> None:
        self.root = Path(root)
        self._layout = Layout(self.root, fsync=fsync)
        self._pool = DiskPool(threads)
        self._uploads = Uploads(self._layout)
        #: small reads and HEADs on the event loop when the kernel has them (set by start():
        #: only on a local disk file system, see gateway.backends.local.nowait)
        self._from_cache = False

    @property
    def local_dir(self) -> Path:
        return self.root

    async def start(self) -> None:
        await self._pool.run(self._start_sync)

    def _start_sync(self) -> None:
        self._from_cache = on_local_filesystem(self._layout.root)
        os.makedirs(self._layout.tmp, exist_ok=True)
        os.makedirs(self._layout.multipart, exist_ok=True)
        sweep_stale_temp(self._layout)

    async def close(self) -> None:
        await self._pool.close()

    async def check(self) -> None:
        await self._pool.run(self._check_sync)

    def _check_sync(self) -> None:
        root, tmp = self._layout.root, self._layout.tmp
        if not os.path.isdir(root):
            raise S3Error(
                S3ErrorCode.ServiceUnavailable, f"The data directory {root} does not exist."
            )
        os.makedirs(tmp, exist_ok=True)
        if not os.access(root, os.W_OK) or not os.access(tmp, os.W_OK):
            raise S3Error(
                S3ErrorCode.ServiceUnavailable, f"The data directory {root} is not writable."
            )

    async def leftovers(
        self, dead: DeadOwner, *, repair: bool, thorough: bool = False
    ) -> list[Leftover]:
        return await self._pool.run(
            find_leftovers, self._layout, self._uploads, dead, repair, thorough
        )

    # -- buckets -----------------------------------------------------------------------------
    async def list_buckets(self) -> list[BucketInfo]:
        return await self._pool.run(buckets.list_buckets, self._layout)

    async def create_bucket(self, bucket: str) -> None:
        bucket_dir = self._layout.bucket_dir(bucket)
        await self._pool.run(buckets.create_bucket, self._layout, bucket_dir, bucket)

    async def delete_bucket(self, bucket: str) -> None:
        bucket_dir = self._layout.bucket_dir(bucket)
        await self._pool.run(buckets.delete_bucket, self._layout, bucket_dir, bucket)

    async def head_bucket(self, bucket: str) -> None:
        bucket_dir = self._layout.bucket_dir(bucket)
        if not await self._pool.run(os.path.isdir, bucket_dir):
            raise no_such_bucket(bucket)

    # -- writing -----------------------------------------------------------------------------
    async def put_object(
        self,
        bucket: str,
        key: str,
        body: Body,
        meta: WriteMeta,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        checksum: KeepChecksum | None = None,
    ) -> str:
        t = self._layout.target(bucket, key)
        if body.size is not None and body.size > MAX_PART_SIZE:
            raise S3Error(S3ErrorCode.EntityTooLarge)
        checked_late = not t.marker and _checked_late(body)
        if not checked_late:
            # fail before reading a body that could never be stored
            precheck(t, if_none_match, if_match)
        if t.marker:
            return await self._put_marker(t, body, meta, if_none_match, if_match, checksum)
        fsync = self._layout.fsync

        def finish(temp: TempFile, given: str | None) -> str:
            if checked_late:
                precheck(t, if_none_match, if_match)
            etag = temp.md5_hex(given)
            seal(temp, encode_meta(etag, meta, checksum=kept(checksum)), fsync=fsync)
            place_file(temp.path, t, if_none_match, fsync=fsync, if_match=if_match)
            return etag

        try:
            return await stream_into_temp(self._pool, self._layout, body, finish)
        except S3Error:
            if checked_late:
                # a refusal the early check would have given wins over the body's own error,
                # as when the check runs first
                try:
                    await self._pool.run(precheck, t, if_none_match, if_match)
                except S3Error as refusal:
                    raise refusal from None
            raise

    async def _put_marker(
        self,
        t: Target,
        body: Body,
        meta: WriteMeta,
        exclusive: bool,
        if_match: str | None,
        checksum: KeepChecksum | None,
    ) -> str:
        if body.size:
            raise marker_with_data(t.key)
        async for chunk in body:  # consume (and let the body verify) an empty stream
            if chunk:
                raise marker_with_data(t.key)
        meta_bytes = encode_meta(EMPTY_MD5, meta, checksum=kept(checksum))
        await self._pool.run(self._place_marker, t, meta_bytes, exclusive, if_match)
        return EMPTY_MD5

    def _place_marker(self, t: Target, meta: bytes, exclusive: bool, if_match: str | None) -> None:
        place_marker(t, meta, exclusive, fsync=self._layout.fsync, if_match=if_match)

    # -- reading -----------------------------------------------------------------------------
    async def head_object(
        self, bucket: str, key: str, conditions: Conditions | None = None
    ) -> ObjectInfo:
        t = self._layout.target(bucket, key)
        # no thread hand-off when the kernel has it
        info = head_from_cache(t, conditions) if self._from_cache else None
        return info if info is not None else await self._pool.run(head_sync, t, conditions)

    async def part_range(
        self, bucket: str, key: str, part_number: int, conditions: Conditions | None = None
    ) -> tuple[ObjectInfo, ByteRange | None]:
        t = self._layout.target(bucket, key)
        return await self._pool.run(part_range_sync, t, part_number, conditions)

    async def object_parts(
        self,
        bucket: str,
        key: str,
        *,
        part_marker: int = 0,
        max_parts: int = 1000,
        conditions: Conditions | None = None,
    ) -> tuple[ObjectInfo, ObjectPartsPage | None]:
        t = self._layout.target(bucket, key)
        return await self._pool.run(object_parts_sync, t, part_marker, max_parts, conditions)

    async def open_object(
        self,
        bucket: str,
        key: str,
        *,
        range_header: str | None = None,
        conditions: Conditions | None = None,
    ) -> ObjectReader:
        t = self._layout.target(bucket, key)
        # a small object in the kernel's caches is read right here: no thread hand-off
        opened = open_from_cache(t, range_header, conditions) if self._from_cache else None
        if opened is None:
            opened = await self._pool.run(open_for_read, t, range_header, conditions)
        fd, info, byte_range, first = opened
        return LocalReader(self._pool, fd, info, byte_range, first)

    # -- copy --------------------------------------------------------------------------------
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
        src = self._layout.target(src_bucket, src_key)
        dst = self._layout.target(dst_bucket, dst_key)
        if meta is None and src == dst:
            raise S3Error(
                S3ErrorCode.InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself "
                "without changing the object's metadata (use the REPLACE metadata directive).",
            )
        return await self._pool.run(self._copy_sync, src, dst, meta, conditions)

    def _copy_sync(
        self, src: Target, dst: Target, meta: WriteMeta | None, conditions: Conditions | None
    ) -> CopyResult:
        fsync = self._layout.fsync
        fd, info = open_sync(src)
        try:
            check_conditions(info, conditions, copy_source=True)
            require_bucket(dst.bucket_dir, dst.bucket)
            new_meta = (
                meta
                if meta is not None
                else WriteMeta(info.content_type, dict(info.metadata), dict(info.headers))
            )
            if dst.marker:
                if info.size:
                    raise marker_with_data(dst.key)
                place_marker(dst, encode_meta(EMPTY_MD5, new_meta), False, fsync=fsync)
                return CopyResult(EMPTY_MD5, head_sync(dst, None).last_modified)
            temp = TempFile(self._layout.tmp_path("copy"), None)
            try:
                # a plain ETag is the content's MD5 and stays valid; a multipart one does not
                plain = "-" not in info.etag and bool(get_meta(fd))
                digest = copy_into(fd, temp, 0, info.size, hashed=not plain)
                etag = digest or info.etag
                # the same bytes: a whole-object checksum stays true (a composite one names
                # parts the copy does not have)
                same = info.checksum
                if same is not None and same.type != "FULL_OBJECT":
                    same = None
                seal(temp, encode_meta(etag, new_meta, checksum=same), fsync=fsync)
                place_file(temp.path, dst, False, fsync=fsync)
            except BaseException:
                temp.discard()
                raise
        finally:
            os.close(fd)
        return CopyResult(etag, utc(os.stat(dst.path).st_mtime))

    # -- delete ------------------------------------------------------------------------------
    async def delete_object(self, bucket: str, key: str) -> None:
        await self._pool.run(self._delete_sync, self._layout.target(bucket, key))

    def _delete_sync(self, t: Target) -> None:
        require_bucket(t.bucket_dir, t.bucket)
        try:
            if t.marker:
                if not stat.S_ISDIR(os.lstat(t.path).st_mode):
                    return  # "k/" names no object when "k" is a file (whose xattr stays)
                os.removexattr(t.path, XATTR)
                start = t.path
            else:
                if stat.S_ISDIR(os.lstat(t.path).st_mode):
                    return  # a directory of other objects, not an object
                # the object's part-layout sidecar goes with it (.partlayout)
                sidecar = named_sidecar(t.path)
                os.unlink(t.path)
                drop_replaced(t.bucket_dir, sidecar, t.path)
                start = t.parent
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            if exc.errno == errno.ENODATA:
                return
            raise
        if self._layout.fsync:
            try:
                fsync_dir(os.path.dirname(t.path))
            except FileNotFoundError:
                return  # a concurrent delete already pruned the emptied directory
        _prune(t.bucket_dir, start)

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
        bucket_dir = self._layout.bucket_dir(bucket)
        return await self._pool.run(
            list_page, bucket, bucket_dir, prefix, delimiter, start_after, max_keys
        )

    # -- multipart ---------------------------------------------------------------------------
    async def create_multipart_upload(
        self, bucket: str, key: str, meta: WriteMeta, *, checksum: tuple[str, str] | None = None
    ) -> str:
        t = self._layout.target(bucket, key)
        return await self._pool.run(self._uploads.create, t, meta, checksum)

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        body: Body,
        *,
        checksum: KeepChecksum | None = None,
    ) -> str:
        t = self._layout.target(bucket, key)
        check_part_number(part_number)
        updir = self._layout.upload_dir(bucket, upload_id)
        if body.size is not None and body.size > MAX_PART_SIZE:
            raise S3Error(S3ErrorCode.EntityTooLarge)
        record = await self._pool.run(self._uploads.load, updir, t.key, upload_id)
        check_part_checksum(record, checksum)

        def finish(temp: TempFile, given: str | None) -> str:
            etag = temp.md5_hex(given)
            self._uploads.place_part(temp, updir, part_number, etag, upload_id, kept(checksum))
            return etag

        return await stream_into_temp(self._pool, self._layout, body, finish)

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
        t = self._layout.target(bucket, key)
        src = self._layout.target(src_bucket, src_key)
        check_part_number(part_number)
        updir = self._layout.upload_dir(bucket, upload_id)
        return await self._pool.run(
            self._uploads.copy_part, t, upload_id, updir, part_number, src, range_header, conditions
        )

    async def list_parts(
        self, bucket: str, key: str, upload_id: str, *, part_marker: int = 0, max_parts: int = 1000
    ) -> PartsPage:
        t = self._layout.target(bucket, key)
        updir = self._layout.upload_dir(bucket, upload_id)
        return await self._pool.run(
            self._uploads.list_parts, t, upload_id, updir, part_marker, max_parts
        )

    async def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[tuple[int, str]],
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        part_checksums: dict[int, tuple[str, str]] | None = None,
    ) -> str:
        t = self._layout.target(bucket, key)
        updir = self._layout.upload_dir(bucket, upload_id)
        if not parts:
            raise S3Error(
                S3ErrorCode.MalformedXML, "CompleteMultipartUpload needs at least one part."
            )
        numbers = [n for n, _ in parts]
        if any(b <= a for a, b in itertools.pairwise(numbers)):
            raise S3Error(S3ErrorCode.InvalidPartOrder)
        given = part_checksums or {}
        return await self._pool.run(
            self._uploads.complete, t, upload_id, updir, parts, given, if_none_match, if_match
        )

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        t = self._layout.target(bucket, key)
        updir = self._layout.upload_dir(bucket, upload_id)
        await self._pool.run(self._uploads.abort, t, upload_id, updir)

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
        bucket_dir = self._layout.bucket_dir(bucket)
        return await self._pool.run(
            self._uploads.list_uploads,
            bucket,
            bucket_dir,
            prefix,
            delimiter,
            key_marker,
            upload_id_marker,
            max_uploads,
        )


def _prune(bucket_dir: str, start: str) -> None:
    """Remove now-empty directories up to (never including) the bucket directory."""
    current = start
    while current != bucket_dir and current.startswith(bucket_dir + os.sep):
        if get_meta(current) is not None:
            return  # a folder marker is an object, even when empty
        try:
            os.rmdir(current)
        except OSError:
            return
        current = os.path.dirname(current)
