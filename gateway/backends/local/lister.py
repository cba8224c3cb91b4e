"""Listing the local store: keys in UTF-8 byte order, found by walking the bucket's
directories lazily and skipping every subtree a page cannot contain, so a page reads little
beyond what it returns however large the bucket is."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import Any

from gateway.backends.base import ListPage
from gateway.backends.local.layout import require_bucket
from gateway.backends.local.records import get_meta, object_info


def list_page(
    bucket: str,
    bucket_dir: str,
    prefix: str,
    delimiter: str,
    start_after: str,
    max_keys: int,
) -> ListPage:
    """One page of ``list_objects`` (the contract is in gateway.backends.base), on the pool."""
    require_bucket(bucket_dir, bucket)
    page = ListPage([], [], False)
    if max_keys <= 0:
        return page
    walk = Walk(bucket_dir, prefix, delimiter, start_after)
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
                record = get_meta(path)
        except (FileNotFoundError, NotADirectoryError):
            continue  # deleted while we listed
        page.objects.append(object_info(key, st, record))
        page.next_marker = key
        count += 1
    return page


def holds_object(path: str) -> bool:
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
                get_meta(entry.path) is not None or holds_object(entry.path)
            ):
                return True
    return False


class Walk:
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
                record = get_meta(path)
                if record is not None:
                    yield rel, path, record
        else:
            path = self.bucket_dir
        yield from self._walk(path, rel)

    def _names(self, dirpath: str, rel: str) -> list[str]:
        """The entries of ``dirpath`` that can still yield a key, sorted; directories end in "/".

        S3 lists in key order and a directory comes in no order, so a directory is read whole
        before its first key is answered. Only the names that can matter are kept, and only
        names: a listing of a folder of many objects holds them all at once, once per listing
        in flight, and (name, path, flag) tuples took three times the memory; the names
        before ``start_after`` or outside the prefix are dropped as they are read, so later
        pages of a large folder hold less."""
        prefix, start_after = self.prefix, self.start_after
        names: list[str] = []
        with os.scandir(dirpath) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    key = rel + entry.name + "/"
                    if not (key.startswith(prefix) or prefix.startswith(key)):
                        continue
                    if key < start_after and not start_after.startswith(key):
                        continue  # the whole subtree sorts before start_after
                    names.append(entry.name + "/")
                elif entry.is_file(follow_symlinks=False):
                    key = rel + entry.name
                    if key > start_after and key.startswith(prefix):
                        names.append(entry.name)
        names.sort()
        return names

    def _walk(self, dirpath: str, rel: str) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
        try:
            names = self._names(dirpath, rel)
        except (FileNotFoundError, NotADirectoryError):
            return
        prefix, start_after = self.prefix, self.start_after
        for name in names:
            key = rel + name
            if not name.endswith("/"):
                yield key, os.path.join(dirpath, name), None
                continue
            # key is "dir/": every key inside starts with it
            path = os.path.join(dirpath, name[:-1])
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
                if key != start_after and (get_meta(path) is not None or holds_object(path)):
                    yield key, path, None
                continue
            if key.startswith(prefix) and key > start_after:
                record = get_meta(path)
                if record is not None:
                    yield key, path, record
            yield from self._walk(path, key)
