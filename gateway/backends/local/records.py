"""The ``user.minimo`` xattr that travels with every object file (or marker directory): the
ETag, content type, user metadata, stored headers, part count and part layout (or the name
of its sidecar, :mod:`.partlayout`), and the ObjectInfo a file
and its record describe together."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import time
from datetime import UTC, datetime
from typing import Any

from gateway.backends.base import ObjectChecksum, ObjectInfo, WriteMeta
from gateway.backends.local import quickcalls
from gateway.backends.local.pool import FULL_ERRNOS, nearly_full
from gateway.protocol.errors import S3Error, S3ErrorCode

XATTR = "user.minimo"
EMPTY_MD5 = hashlib.md5(b"").hexdigest()


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def get_meta(path_or_fd: str | int) -> dict[str, Any] | None:
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


def encode_meta(
    etag: str,
    meta: WriteMeta,
    parts: int | None = None,
    checksum: ObjectChecksum | None = None,
    layout: dict[str, Any] | None = None,
) -> bytes:
    """The xattr's bytes; ``layout`` is a multipart object's part layout, inline (``psz``,
    ``pck``) or the name of its sidecar (``pl``; see :mod:`.partlayout`)."""
    record: dict[str, Any] = {"etag": etag, "mtime": time.time()}
    if layout:
        record.update(layout)
    if checksum is not None:
        record["ck"] = [checksum.algorithm, checksum.value, checksum.type]
    if meta.content_type:
        record["type"] = meta.content_type
    if meta.metadata:
        record["meta"] = meta.metadata
    if meta.headers:
        record["headers"] = meta.headers
    if parts:
        record["parts"] = parts
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        # metadata bytes that are not UTF-8 (kept as surrogate escapes): JSON \u escapes
        return json.dumps(record, separators=(",", ":")).encode()


def meta_of(record: dict[str, Any] | None) -> WriteMeta:
    record = record or {}
    return WriteMeta(
        content_type=record.get("type"),
        metadata=dict(record.get("meta") or {}),
        headers=dict(record.get("headers") or {}),
    )


def checksum_of(record: dict[str, Any] | None) -> ObjectChecksum | None:
    """The kept checksum of a record (``"ck": [algorithm, value, type]``), None when absent."""
    kept = (record or {}).get("ck")
    if not isinstance(kept, list) or len(kept) != 3 or not all(isinstance(x, str) for x in kept):
        return None
    kind = "COMPOSITE" if kept[2] == "COMPOSITE" else "FULL_OBJECT"
    return ObjectChecksum(kept[0], kept[1], kind)


def set_meta(path_or_fd: str | int, data: bytes, flags: int = 0) -> None:
    try:
        if isinstance(path_or_fd, int):
            quickcalls.set_xattr(path_or_fd, XATTR, data, flags)
        else:
            os.setxattr(path_or_fd, XATTR, data, flags)
    except OSError as exc:
        if exc.errno in FULL_ERRNOS and nearly_full(path_or_fd):
            raise  # a full disk (see pool.disk_errors), not metadata too large
        if exc.errno in (errno.E2BIG, errno.ENOSPC, errno.ERANGE):
            raise S3Error(
                S3ErrorCode.MetadataTooLarge,
                "The object's metadata and headers are too large to store beside it "
                "(the local backend keeps them in one extended attribute of at most ~4 KiB).",
            ) from exc
        raise


def foreign_etag(st: os.stat_result) -> str:
    """A stable stand-in ETag for a file put on disk by hand (no xattr): not an MD5."""
    return hashlib.md5(f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}".encode()).hexdigest()


def object_info(key: str, st: os.stat_result, record: dict[str, Any] | None) -> ObjectInfo:
    is_dir = stat.S_ISDIR(st.st_mode)
    rec = record or {}
    when = rec.get("mtime") if is_dir else None
    meta = meta_of(rec)
    return ObjectInfo(
        key=key,
        size=0 if is_dir else st.st_size,
        etag=rec.get("etag") or (EMPTY_MD5 if is_dir else foreign_etag(st)),
        last_modified=utc(float(when) if when is not None else st.st_mtime),
        content_type=meta.content_type,
        metadata=meta.metadata,
        headers=meta.headers,
        checksum=checksum_of(rec),
        parts_count=rec.get("parts") if isinstance(rec.get("parts"), int) else None,
    )
