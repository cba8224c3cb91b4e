"""What crashed writes left in the local store's temp directory: temp files of writes whose
process is gone, and uploads whose completion was interrupted (gateway.usecases.recovery asks
for them; old ones are also swept when the store starts)."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import time

from gateway.backends.base import DeadOwner, Leftover
from gateway.backends.local.layout import COMPLETING, Layout
from gateway.backends.local.multipart import Uploads, remove_tree
from gateway.backends.local.partlayout import TAG as SIDECAR_TAG
from gateway.backends.local.partlayout import orphan_sidecars, recover_temp_sidecar
from gateway.instance import instance_id, owner_of

#: temp files older than this are leftovers of a crash (live writes finish much sooner)
STALE_TMP_SECONDS = 24 * 3600


def sweep_stale_temp(layout: Layout) -> None:
    """Remove the temp files of crashed writes; young ones may belong to another live process."""
    cutoff = time.time() - STALE_TMP_SECONDS
    for entry in os.scandir(layout.tmp):
        if entry.name.startswith((f"{COMPLETING}-", f"{SIDECAR_TAG}-")):
            # an upload whose completion was interrupted, or a placed object's part layout
            # not yet moved: recovery puts them back
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass


def find_leftovers(
    layout: Layout, uploads: Uploads, dead: DeadOwner, repair: bool, thorough: bool = False
) -> list[Leftover]:
    """The temp directory's entries whose process is dead (``dead`` decides), removed or put
    back when ``repair`` (the ObjectStore.leftovers contract); when ``thorough``, also the
    part-layout sidecars no object names."""
    found: list[Leftover] = orphan_sidecars(layout.state, repair) if thorough else []
    try:
        entries = list(os.scandir(layout.tmp))
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
        if tag == COMPLETING and is_dir:
            found.append(uploads.restore_interrupted(entry.path, name, owner, size, repair))
            continue
        if tag == SIDECAR_TAG and not is_dir:
            found.append(
                recover_temp_sidecar(layout.state, entry.path, entry.name, owner, size, repair)
            )
            continue
        leftover = Leftover(
            "temp_file", name, owner, size, "temp file of a write whose process is gone"
        )
        if repair:
            remove_tree(entry.path, is_dir)
            leftover.repaired = True
        found.append(leftover)
    return found


def _tree_size(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
