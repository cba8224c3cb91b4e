"""File system calls that return at once (they touch the page cache, never wait on the disk),
made without letting go of the GIL.

Every ``os`` call lets go of the GIL and takes it back. On the disk pool's threads that is a
hand-off to the event loop and back each time: the loop holds the GIL nearly all the time under
load, so the thread waits for it, and a small PUT's dozen calls cost the process dozens of
context switches (40 to 45 per 4 KiB PUT, measured from /proc, against 2.5 on the s3 backend,
whose writes never touch a thread). These calls take microseconds, less than the hand-off, so
they go through libc directly and keep the GIL; fsync, which waits on the disk, stays an ``os``
call. Where libc cannot be loaded this way, the ``os`` functions are used instead.

Errors are raised as ``os`` raises them: an OSError (its subclass for the errno) with the file
name.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Callable
from typing import Any


def _load() -> Any | None:
    try:
        # PyDLL: the call keeps the GIL (CDLL would let go of it)
        libc = ctypes.PyDLL(ctypes.util.find_library("c") or None, use_errno=True)
        signatures = {
            "open": ([ctypes.c_char_p, ctypes.c_int, ctypes.c_uint], ctypes.c_int),
            "write": ([ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_ssize_t),
            "close": ([ctypes.c_int], ctypes.c_int),
            "fsetxattr": (
                [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int],
                ctypes.c_int,
            ),
            "rename": ([ctypes.c_char_p, ctypes.c_char_p], ctypes.c_int),
            "link": ([ctypes.c_char_p, ctypes.c_char_p], ctypes.c_int),
            "unlink": ([ctypes.c_char_p], ctypes.c_int),
            "getxattr": (
                [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t],
                ctypes.c_ssize_t,
            ),
        }
        for name, (argtypes, restype) in signatures.items():
            fn = getattr(libc, name)
            fn.argtypes, fn.restype = argtypes, restype
    except (OSError, AttributeError):
        return None
    return libc


_libc = _load()


def _error(filename: str | None = None, filename2: str | None = None) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, os.strerror(code), filename, None, filename2)


def _checked(result: int, filename: str | None = None, filename2: str | None = None) -> int:
    if result < 0:
        raise _error(filename, filename2)
    return result


def open_new(path: str, mode: int = 0o644) -> int:
    """``os.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode)``."""
    return open_fd(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)


def open_fd(path: str, flags: int, mode: int = 0o644) -> int:
    """``os.open(path, flags, mode)``."""
    if _libc is None:
        return os.open(path, flags, mode)
    return _checked(_libc.open(os.fsencode(path), flags, mode), path)


#: xattr values up to this size are read in one call; a larger one is read by ``os``
_XATTR_BUFFER = 8192


def get_xattr(path: str, name: str) -> bytes:
    """``os.getxattr(path, name)``."""
    if _libc is None:
        return os.getxattr(path, name)
    buffer = ctypes.create_string_buffer(_XATTR_BUFFER)
    size = _libc.getxattr(os.fsencode(path), name.encode(), buffer, _XATTR_BUFFER)
    if size < 0:
        if ctypes.get_errno() == errno.ERANGE:
            return os.getxattr(path, name)
        raise _error(path)
    return buffer.raw[:size]


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (a short write is continued, as for a regular file it rarely is)."""
    if _libc is None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        return
    done = 0
    while done < len(data):
        chunk = data[done:] if done else data
        done += _checked(_libc.write(fd, chunk, len(chunk)))


def close(fd: int) -> None:
    if _libc is None:
        os.close(fd)
        return
    _checked(_libc.close(fd))


def set_xattr(fd: int, name: str, value: bytes, flags: int = 0) -> None:
    """``os.setxattr(fd, name, value, flags)``."""
    if _libc is None:
        os.setxattr(fd, name, value, flags)
        return
    _checked(_libc.fsetxattr(fd, name.encode(), value, len(value), flags))


def _two_paths(name: str, fallback: Callable[[str, str], None]) -> Callable[[str, str], None]:
    def call(src: str, dst: str) -> None:
        if _libc is None:
            fallback(src, dst)
            return
        _checked(getattr(_libc, name)(os.fsencode(src), os.fsencode(dst)), src, dst)

    call.__name__ = name
    call.__doc__ = f"``os.{name}(src, dst)``."
    return call


rename = _two_paths("rename", os.rename)
link = _two_paths("link", os.link)


def unlink(path: str) -> None:
    if _libc is None:
        os.unlink(path)
        return
    _checked(_libc.unlink(os.fsencode(path)), path)
