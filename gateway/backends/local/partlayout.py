"""A completed multipart object's part layout: each part's size and, when its upload kept a
checksum, each part's checksum. GET/HEAD ``?partNumber=N`` and GetObjectAttributes
``ObjectParts`` read it.

Where it lives: in the object's ``user.minimo`` xattr when it is small (``"psz"``: the sizes
as runs, gateway.protocol.parts; ``"pck"``: ``[algorithm, [checksum, ...]]``), else in a
*sidecar* file the xattr names (``"pl": NAME``), because one xattr holds ~4 KiB with the
user's metadata and an upload has up to 10,000 parts.

A sidecar lives and dies with its object:

* CompleteMultipartUpload writes it (fsynced) as ``.minimo/tmp/NAME`` before the object is
  placed, and moves it to ``.minimo/layouts/NAME`` right after; readers look in both places.
  A crash before the placing leaves it in the temp directory of a dead process, where no
  object names it: crash recovery removes it. A crash after leaves an object that names it:
  recovery moves it into ``layouts/`` (:func:`recover_temp_sidecar`).
* An overwrite or a delete removes the sidecar of the object it replaced or removed, right
  after the rename or unlink (:func:`drop_replaced`).
* Two writers replacing one key at the same moment can leave one unnamed; ``minimo
  reconcile`` checks every sidecar against the object that should name it
  (:func:`orphan_sidecars`).

``NAME`` is a temp name (``layout-<instance id>-<n>``), unique per write, so an object never
picks up the sidecar of an object it replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from gateway.backends.base import Leftover, ObjectChecksum, ObjectPart, ObjectPartsPage
from gateway.backends.local import quickcalls
from gateway.backends.local.records import XATTR, get_meta
from gateway.protocol.parts import size_runs

#: the temp-name tag of a sidecar
TAG = "layout"
#: a layout up to this many bytes of JSON stays in the xattr (room for the user's metadata)
INLINE_BYTES = 1024


def layout_fields(sizes: list[int], checksums: list[ObjectChecksum | None]) -> dict[str, Any]:
    """The layout as the xattr (or a sidecar) keeps it; part checksums only when every part
    has one of the same algorithm (an upload that keeps a checksum has)."""
    fields: dict[str, Any] = {"psz": size_runs(sizes)}
    algorithms = {c.algorithm if c else None for c in checksums}
    if checksums and len(algorithms) == 1 and None not in algorithms:
        fields["pck"] = [checksums[0].algorithm, [c.value for c in checksums if c]]
    return fields


def fits_inline(fields: dict[str, Any]) -> bool:
    return len(json.dumps(fields, separators=(",", ":"))) <= INLINE_BYTES


def state_dir(bucket_dir: str) -> str:
    """The store's ``.minimo`` directory, beside the bucket directories."""
    return os.path.join(os.path.dirname(bucket_dir), ".minimo")


def _places(bucket_dir: str, name: str) -> tuple[str, str]:
    """Where a sidecar lives once its object is placed, and before."""
    state = state_dir(bucket_dir)
    return os.path.join(state, "layouts", name), os.path.join(state, "tmp", name)


def write_sidecar(
    path: str, fields: dict[str, Any], bucket: str, key: str, etag: str, *, fsync: bool
) -> None:
    """Write a sidecar into the temp directory (``path``), durable before its object is."""
    record = {"bucket": bucket, "key": key, "etag": etag, **fields}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(json.dumps(record, separators=(",", ":")).encode())
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def settle_sidecar(bucket_dir: str, name: str, sync_dir: Callable[[str], None] | None) -> None:
    """Move a placed object's sidecar from the temp directory into ``layouts/`` (made durable
    with ``sync_dir``; passed in because .writing imports the reader, which imports this)."""
    final, temp = _places(bucket_dir, name)
    try:
        try:
            os.rename(temp, final)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.rename(temp, final)
        if sync_dir is not None:
            sync_dir(os.path.dirname(final))
    except OSError:
        # the object is placed and its write counts: readers find the sidecar in the temp
        # directory too, and crash recovery moves it once this process is gone
        return


def sidecar_name(record: dict[str, Any] | None) -> str | None:
    name = (record or {}).get("pl")
    # a bare file name: never a path out of the store's own directories
    if isinstance(name, str) and name.startswith(f"{TAG}-") and "/" not in name:
        return name
    return None


def read_layout(bucket_dir: str, record: dict[str, Any]) -> dict[str, Any] | None:
    """The object's layout fields (``psz``, maybe ``pck``), None when it is not known."""
    if isinstance(record.get("psz"), list):
        return record
    name = sidecar_name(record)
    if name is None:
        return None
    for path in _places(bucket_dir, name):
        try:
            with open(path, "rb") as f:
                fields = json.load(f)
        except FileNotFoundError:
            continue
        except ValueError:
            return None
        return fields if isinstance(fields, dict) and isinstance(fields.get("psz"), list) else None
    return None


def drop_sidecar(bucket_dir: str, name: str | None) -> None:
    if name is None:
        return
    for path in _places(bucket_dir, name):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def named_sidecar(path: str) -> str | None:
    """The sidecar the object at ``path`` names, if any: what an overwrite or delete must
    remove with it. On every overwriting PUT, so the xattr is parsed only when it names one."""
    try:
        raw = quickcalls.get_xattr(path, XATTR)
    except OSError:
        return None
    return sidecar_name(get_meta_quiet(path)) if b'"pl":' in raw else None


def drop_replaced(bucket_dir: str, replaced: str | None, now_at: str) -> None:
    """After a rename or unlink at ``now_at``: remove the sidecar ``replaced`` named, unless
    the object now there names it (a retry that placed the same file)."""
    if replaced is None or named_sidecar(now_at) == replaced:
        return
    drop_sidecar(bucket_dir, replaced)


def get_meta_quiet(path: str) -> dict[str, Any] | None:
    try:
        return get_meta(path)
    except OSError:
        return None


def iter_sizes(runs: list[list[int]]) -> Iterator[int]:
    for size, count in runs:
        for _ in range(count):
            yield size


def parts_page(fields: dict[str, Any], count: int, marker: int, max_parts: int) -> ObjectPartsPage:
    """The parts after ``marker``, at most ``max_parts`` of them."""
    kept = fields.get("pck")
    algorithm, sums = (kept[0], kept[1]) if isinstance(kept, list) and len(kept) == 2 else ("", [])
    parts: list[ObjectPart] = []
    for index, size in enumerate(iter_sizes(fields["psz"])):
        number = index + 1
        if number <= marker:
            continue
        if len(parts) >= max_parts:
            break
        checksum = ObjectChecksum(algorithm, sums[index]) if index < len(sums) else None
        parts.append(ObjectPart(number, size, checksum))
    last = parts[-1].number if parts else marker
    truncated = last < count
    return ObjectPartsPage(count, parts, truncated, last if truncated else None)


# -- what crashes and races leave -------------------------------------------------------------
def _object_of(state: str, sidecar_path: str) -> str | None:
    """The path of the object a sidecar says it belongs to (None: unreadable)."""
    try:
        with open(sidecar_path, "rb") as f:
            record = json.load(f)
        bucket, key = record["bucket"], record["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(bucket, str) or not isinstance(key, str) or "/" in bucket:
        return None
    path = os.path.normpath(os.path.join(os.path.dirname(state), bucket, key.rstrip("/")))
    return path if path.startswith(os.path.dirname(state) + os.sep) else None


def _named_by_its_object(state: str, sidecar_path: str, name: str) -> bool:
    target = _object_of(state, sidecar_path)
    return target is not None and sidecar_name(get_meta_quiet(target)) == name


def recover_temp_sidecar(
    state: str, path: str, name: str, owner: str | None, size: int, repair: bool
) -> Leftover:
    """A sidecar a dead process left in the temp directory: moved into ``layouts/`` when its
    object names it (the crash came between placing and moving), else removed."""
    if _named_by_its_object(state, path, name):
        leftover = Leftover(
            "temp_file",
            f".minimo/tmp/{name}",
            owner,
            size,
            "part layout of a placed multipart object (moved into .minimo/layouts)",
        )
        if repair:
            final = os.path.join(state, "layouts", name)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.rename(path, final)
            leftover.repaired = True
        return leftover
    leftover = Leftover(
        "temp_file",
        f".minimo/tmp/{name}",
        owner,
        size,
        "part layout of a multipart completion whose process is gone",
    )
    if repair:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        leftover.repaired = True
    return leftover


def orphan_sidecars(state: str, repair: bool) -> list[Leftover]:
    """Sidecars in ``layouts/`` that no object names (what racing overwrites left)."""
    found: list[Leftover] = []
    try:
        entries = list(os.scandir(os.path.join(state, "layouts")))
    except FileNotFoundError:
        return found
    for entry in entries:
        if _named_by_its_object(state, entry.path, entry.name):
            continue
        try:
            size = entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue
        leftover = Leftover(
            "temp_file",
            f".minimo/layouts/{entry.name}",
            None,
            size,
            "part layout of an object that was replaced or deleted",
        )
        if repair:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
            leftover.repaired = True
        found.append(leftover)
    return found
