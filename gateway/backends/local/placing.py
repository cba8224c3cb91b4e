"""The write path's second half: a sealed temp file (or a folder marker's directory) made
visible under its key in one atomic step, with the directories above it created on the way.

``rename`` replaces an existing object; ``If-None-Match: *`` uses ``link`` (or ``XATTR_CREATE``
for a marker) instead, which refuses an existing name, so exactly one of several concurrent
writers wins. ``If-Match: ETAG`` is checked on the object in place immediately before the
rename (the filesystem has no compare-and-swap): only a writer landing in between those two
system calls escapes it. Every step runs on the thread pool.
"""

from __future__ import annotations

import contextlib
import os
import stat

from gateway.backends.base import no_such_bucket, no_such_key
from gateway.backends.local.layout import (
    Target,
    is_directory,
    parent_is_file,
    require_bucket,
)
from gateway.backends.local.lister import holds_object
from gateway.backends.local.partlayout import drop_replaced, named_sidecar
from gateway.backends.local.records import foreign_etag, get_meta, set_meta
from gateway.backends.local.writing import fsync_dir
from gateway.protocol.conditions import etag_matches
from gateway.protocol.errors import S3Error, S3ErrorCode

#: tries before a key that concurrent writers and deletes keep changing gives up (SlowDown)
_ATTEMPTS = 8


def already_exists(key: str) -> S3Error:
    return S3Error(
        S3ErrorCode.PreconditionFailed,
        f"{key!r} already exists (If-None-Match: *).",
        extra={"Condition": "If-None-Match"},
    )


def _changing(key: str) -> S3Error:
    return S3Error(S3ErrorCode.SlowDown, f"{key!r} is being changed concurrently; try again.")


def current_etag(t: Target) -> str | None:
    """The ETag of the object now at ``t``, None when there is none."""
    try:
        st = os.stat(t.path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    record = get_meta(t.path)
    if stat.S_ISDIR(st.st_mode):
        return str(record["etag"]) if t.marker and record and record.get("etag") else None
    if t.marker:
        return None
    return str(record["etag"]) if record and record.get("etag") else foreign_etag(st)


def check_match(t: Target, if_match: str | None) -> None:
    """``If-Match`` on a write: NoSuchKey without an object, PreconditionFailed when its ETag
    is another one (as S3 answers)."""
    if if_match is None:
        return
    etag = current_etag(t)
    if etag is None:
        raise no_such_key(t.bucket, t.key)
    if not etag_matches(if_match, etag):
        raise S3Error(
            S3ErrorCode.PreconditionFailed,
            f'{t.key!r} is no longer the object named by If-Match (its ETag is now "{etag}").',
            extra={"Condition": "If-Match"},
        )


def precheck(t: Target, if_none_match: bool, if_match: str | None = None) -> None:
    """Fail before reading a body that could never be stored (checked again at the end)."""
    require_bucket(t.bucket_dir, t.bucket)
    check_match(t, if_match)
    try:
        st = os.stat(t.path)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise parent_is_file(t.key) from None
    if t.marker:
        if not stat.S_ISDIR(st.st_mode):
            raise parent_is_file(t.key)
        exists = get_meta(t.path) is not None
    else:
        if stat.S_ISDIR(st.st_mode):
            if get_meta(t.path) is not None or holds_object(t.path):
                raise is_directory(t.key)
            return
        exists = True
    if exists and if_none_match:
        raise already_exists(t.key)


def ensure_parents(t: Target) -> None:
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
                raise parent_is_file(t.key) from None
        except NotADirectoryError:
            raise parent_is_file(t.key) from None
        except FileNotFoundError:
            # the bucket or a parent vanished; a concurrent delete pruned it: caller retries
            if not os.path.isdir(t.bucket_dir):
                raise no_such_bucket(t.bucket) from None
            raise


def _clear_empty_dir(t: Target) -> None:
    """``t.path`` is a directory where a file should go: remove it if it holds no object
    (leftover empty directories, e.g. after a crash), else refuse."""
    if get_meta(t.path) is None and not holds_object(t.path):
        for dirpath, _dirs, _files in os.walk(t.path, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
        if not os.path.isdir(t.path):
            return
    raise is_directory(t.key)


def place_file(
    src: str, t: Target, exclusive: bool, *, fsync: bool, if_match: str | None = None
) -> None:
    """Move the sealed temp file ``src`` to ``t`` atomically (link for If-None-Match;
    ``if_match`` checked just before)."""
    for attempt in range(_ATTEMPTS):
        try:
            if attempt:
                # (the first try assumes the directories exist, as they mostly do: a missing
                # one fails the link or rename with FileNotFoundError, and they are made here)
                ensure_parents(t)
            check_match(t, if_match)
            if exclusive:
                os.link(src, t.path)
                os.unlink(src)
            else:
                # the sidecar of the object this rename replaces goes with it (.partlayout)
                replaced = named_sidecar(t.path)
                os.rename(src, t.path)
                drop_replaced(t.bucket_dir, replaced, t.path)
        except FileExistsError:
            if os.path.isdir(t.path):
                _clear_empty_dir(t)
                continue
            raise already_exists(t.key) from None
        except IsADirectoryError:
            _clear_empty_dir(t)
            continue
        except NotADirectoryError:
            raise parent_is_file(t.key) from None
        except FileNotFoundError:
            continue  # a concurrent delete removed an empty parent: create it again
        if fsync:
            fsync_dir(t.parent)
        return
    raise _changing(t.key)


def place_marker(
    t: Target, meta: bytes, exclusive: bool, *, fsync: bool, if_match: str | None = None
) -> None:
    """A folder marker is its directory carrying the metadata xattr."""
    for _attempt in range(_ATTEMPTS):
        try:
            ensure_parents(t)
            check_match(t, if_match)
            try:
                os.mkdir(t.path)
            except FileExistsError:
                if not os.path.isdir(t.path):
                    raise parent_is_file(t.key) from None
            set_meta(t.path, meta, os.XATTR_CREATE if exclusive else 0)
        except FileExistsError:
            raise already_exists(t.key) from None
        except NotADirectoryError:
            raise parent_is_file(t.key) from None
        except FileNotFoundError:
            continue
        if fsync:
            fsync_dir(t.parent)
        return
    raise _changing(t.key)
