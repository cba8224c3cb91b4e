"""Opening and reading a file on the event loop, only when the kernel can answer from memory.

A small GET's open, stat, xattr read and 4 KiB read cost a few microseconds each when the file
is in the kernel's caches, less than handing the work to a thread and back (the hand-off was
~60 µs of a 4 KiB GET's CPU). But the event loop must never wait for the disk, so both calls
here refuse instead of waiting:

* :func:`open_cached` opens with ``openat2(2)``'s ``RESOLVE_CACHED`` (Linux 5.12): the open
  fails with EAGAIN unless every component of the path is in the dentry cache;
* :func:`read_cached` reads with ``preadv2(2)``'s ``RWF_NOWAIT``: EAGAIN (or a short read)
  unless the bytes are in the page cache.

Either refusal sends the caller to the thread pool, which does the same work the blocking way;
so does any error, so that the pool's code alone decides what an error means. Where
``openat2`` is missing (an older kernel, another OS) :func:`open_cached` always refuses.

A cached path is not enough on a network or FUSE file system, whose ``open`` asks its server
even then: :func:`on_local_filesystem` tells whether a directory is on a local disk file
system, and the local store uses these calls only there.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import sys
from typing import Any

#: openat2's number is the same on every Linux architecture (it came after the numbers were
#: unified)
_SYS_OPENAT2 = 437
_RESOLVE_CACHED = 0x20
_AT_FDCWD = -100


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


def _load_syscall() -> Any:
    if not sys.platform.startswith("linux") or not hasattr(os, "RWF_NOWAIT"):
        return None
    try:
        # PyDLL keeps the GIL across the call: a cached open returns at once and an uncached
        # one fails at once, so there is nothing to release it for (releasing it costs a
        # wait to get it back when worker threads are busy)
        syscall = ctypes.PyDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    syscall.argtypes = (
        ctypes.c_long,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.POINTER(_OpenHow),
        ctypes.c_size_t,
    )
    return syscall


_syscall = _load_syscall()
_HOW_SIZE = ctypes.sizeof(_OpenHow)
#: the open_how argument per flags value, built once: building it and its pointer on every
#: call cost as much as the open itself
_HOWS: dict[int, Any] = {}


def open_cached(path: str, flags: int) -> int | None:
    """``os.open(path, flags)`` if the kernel can resolve ``path`` from its caches, else None
    (also for any error: the caller's blocking path reports it)."""
    global _syscall
    if _syscall is None:
        return None
    how = _HOWS.get(flags)
    if how is None:
        how = _HOWS[flags] = ctypes.pointer(_OpenHow(flags, 0, _RESOLVE_CACHED))
    fd = _syscall(_SYS_OPENAT2, _AT_FDCWD, os.fsencode(path), how, _HOW_SIZE)
    if fd >= 0:
        return fd
    if ctypes.get_errno() in (errno.ENOSYS, errno.EPERM):
        # no openat2 here (old kernel, or a seccomp filter that refuses it): stop trying
        _syscall = None
    return None


def read_cached(fd: int, length: int, offset: int) -> bytes | None:
    """``length`` bytes at ``offset`` if all are in the page cache, else None."""
    buffer = bytearray(length)
    try:
        got = os.preadv(fd, (buffer,), offset, os.RWF_NOWAIT)
    except OSError:
        return None
    return bytes(buffer) if got == length else None


#: file systems whose open, stat and xattr calls the local kernel answers alone (overlay: over
#: one of these, as in a container)
LOCAL_FILESYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "zfs", "bcachefs", "tmpfs", "overlay"}
)
_MOUNTS = "/proc/self/mounts"
_OCTAL = re.compile(r"\\([0-7]{3})")


def on_local_filesystem(path: str) -> bool:
    """Whether ``path`` lies on one of :data:`LOCAL_FILESYSTEMS` (the last mount of the longest
    mount point containing it, per /proc/self/mounts); False when that cannot be told."""
    try:
        real = os.path.realpath(path)
        with open(_MOUNTS, encoding="utf-8", errors="surrogateescape") as mounts:
            lines = mounts.read().splitlines()
    except OSError:
        return False
    best, fstype = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        # the mount table writes spaces, tabs, newlines and backslashes as octal escapes
        mount = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[1])
        inside = real == mount or real.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, fstype = mount, fields[2]
    return fstype in LOCAL_FILESYSTEMS
