"""Buckets of the local store: the directories at the top of the root, each carrying its
creation time in the ``user.minimo`` xattr (a directory's mtime moves with its content)."""

from __future__ import annotations

import json
import os
import shutil
import time

from gateway.backends.base import BucketInfo, no_such_bucket
from gateway.backends.local.layout import Layout, require_bucket
from gateway.backends.local.lister import holds_object
from gateway.backends.local.records import get_meta, set_meta, utc
from gateway.backends.local.writing import fsync_dir
from gateway.protocol.errors import S3Error, S3ErrorCode


def list_buckets(layout: Layout) -> list[BucketInfo]:
    buckets = []
    for entry in os.scandir(layout.root):
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        record = get_meta(entry.path) or {}
        created = record.get("created") or entry.stat(follow_symlinks=False).st_mtime
        buckets.append(BucketInfo(entry.name, utc(float(created))))
    buckets.sort(key=lambda b: b.name)
    return buckets


def create_bucket(layout: Layout, bucket_dir: str, bucket: str) -> None:
    try:
        os.mkdir(bucket_dir)
    except FileExistsError:
        raise S3Error(S3ErrorCode.BucketAlreadyOwnedByYou, resource=f"/{bucket}") from None
    except FileNotFoundError:
        os.makedirs(layout.root, exist_ok=True)
        return create_bucket(layout, bucket_dir, bucket)
    # a directory's mtime moves with its content, so the creation time is kept apart
    set_meta(bucket_dir, json.dumps({"created": time.time()}).encode())
    fsync_dir(layout.root)


def delete_bucket(layout: Layout, bucket_dir: str, bucket: str) -> None:
    """Remove an empty bucket; one holding an object or an upload in flight is not empty."""
    require_bucket(bucket_dir, bucket)
    uploads = layout.uploads_dir(bucket)
    if (os.path.isdir(uploads) and any(True for _ in os.scandir(uploads))) or holds_object(
        bucket_dir
    ):
        raise S3Error(S3ErrorCode.BucketNotEmpty, resource=f"/{bucket}")
    # only empty directories are left (pruned leftovers): remove them bottom-up
    for dirpath, _dirs, _files in os.walk(bucket_dir, topdown=False):
        if dirpath != bucket_dir:
            try:
                os.rmdir(dirpath)
            except OSError:
                raise S3Error(S3ErrorCode.BucketNotEmpty, resource=f"/{bucket}") from None
    try:
        os.rmdir(bucket_dir)
    except FileNotFoundError:
        raise no_such_bucket(bucket) from None
    except OSError:
        raise S3Error(S3ErrorCode.BucketNotEmpty, resource=f"/{bucket}") from None
    shutil.rmtree(uploads, ignore_errors=True)
