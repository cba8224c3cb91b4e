"""Where the local store keeps things: buckets and keys mapped onto paths under the root, the
store's scratch space under ``.minimo``, and which bucket names and keys the filesystem can
hold unambiguously (the layout itself is described in the package docstring)."""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from gateway.backends.base import MAX_KEY_BYTES, no_such_bucket
from gateway.instance import instance_id
from gateway.protocol.errors import S3Error, S3ErrorCode

#: longest file name ext4 and most Linux filesystems accept, in bytes
MAX_SEGMENT_BYTES = 255
UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,128}\Z")
#: the temp name tag of an upload claimed by CompleteMultipartUpload
COMPLETING = "complete"


@dataclass(slots=True, frozen=True)
class Target:
    """Where one key lives on disk."""

    bucket: str
    key: str
    bucket_dir: str
    path: str  # without the trailing '/' of a folder marker
    marker: bool

    @property
    def parent(self) -> str:
        return os.path.dirname(self.path)


class Layout:
    """One store root: the paths of its buckets, keys, temp files and uploads, and whether
    writes there are made durable (fsync) before they count."""

    def __init__(self, root: Path, *, fsync: bool) -> None:
        self.root = str(root)
        self.state = os.path.join(self.root, ".minimo")
        self.tmp = os.path.join(self.state, "tmp")
        self.multipart = os.path.join(self.state, "multipart")
        self.fsync = fsync
        #: temp names: the instance id (several gateways may share a root; recovery tells a dead
        #: process's leftovers by it), then a counter
        self._tmp_counter = itertools.count()

    def tmp_path(self, tag: str = "obj") -> str:
        # unique without a getrandom() call per write: that call gives up the GIL on the event
        # loop, and under load getting it back cost ~35 us a small PUT
        return os.path.join(self.tmp, f"{tag}-{instance_id()}-{next(self._tmp_counter):x}")

    def bucket_dir(self, bucket: str) -> str:
        check_bucket(bucket)
        return os.path.join(self.root, bucket)

    def target(self, bucket: str, key: str) -> Target:
        bucket_dir = self.bucket_dir(bucket)
        check_key(key)
        marker = key.endswith("/")
        path = os.path.join(bucket_dir, key[:-1] if marker else key)
        return Target(bucket, key, bucket_dir, path, marker)

    def uploads_dir(self, bucket: str) -> str:
        """Where the bucket's multipart uploads in flight live."""
        return os.path.join(self.multipart, bucket)

    def upload_dir(self, bucket: str, upload_id: str) -> str:
        if not UPLOAD_ID.match(upload_id or ""):
            raise S3Error(S3ErrorCode.NoSuchUpload, f"The upload id {upload_id!r} does not exist.")
        return os.path.join(self.multipart, bucket, upload_id)


def require_bucket(bucket_dir: str, bucket: str) -> None:
    if not os.path.isdir(bucket_dir):
        raise no_such_bucket(bucket)


def bad_key(key: str, why: str) -> S3Error:
    return S3Error(S3ErrorCode.InvalidObjectName, f"The key {key!r} is not valid: {why}.")


def check_key(key: str) -> None:
    """Refuse keys that would escape the bucket or map ambiguously onto the filesystem."""
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_key(key, "keys must be valid UTF-8") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise S3Error(S3ErrorCode.KeyTooLongError, resource=None)
    if not key:
        raise bad_key(key, "keys may not be empty")
    if "\x00" in key:
        raise bad_key(key, "keys may not contain NUL characters")
    if key.startswith("/"):
        raise bad_key(key, "keys may not start with '/'")
    segments = key.split("/")
    if key.endswith("/"):
        segments.pop()  # a folder marker: the trailing '/' names the directory itself
    for segment in segments:
        if segment in ("", ".", ".."):
            raise bad_key(key, "keys may not contain '.', '..' or empty ('//') path segments")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise S3Error(
                S3ErrorCode.KeyTooLongError,
                f"Each '/'-separated part of a key is at most {MAX_SEGMENT_BYTES} bytes "
                "on the local backend (a filesystem name limit).",
            )


def check_bucket(bucket: str) -> None:
    if not bucket or bucket.startswith(".") or "/" in bucket or "\x00" in bucket:
        raise S3Error(S3ErrorCode.InvalidBucketName, f"The bucket name {bucket!r} is not valid.")


def parent_is_file(key: str) -> S3Error:
    return S3Error(
        S3ErrorCode.ObjectParentIsFile,
        f"Cannot store {key!r}: a part of its path is an existing object. "
        "Delete that object or choose another key.",
    )


def is_directory(key: str) -> S3Error:
    return S3Error(
        S3ErrorCode.ExistingObjectIsDirectory,
        f"Cannot store {key!r}: other objects are stored under {key + '/'!r}.",
    )


def marker_with_data(key: str) -> S3Error:
    return S3Error(
        S3ErrorCode.InvalidRequest,
        f"{key!r} ends in '/', which makes it a folder marker; the local backend stores folder "
        "markers as directories, so they cannot hold data.",
    )
