"""The private thread pool all of the local store's file I/O runs on, and what a full disk
becomes on the way back (507 InsufficientStorage), so the event loop never waits on the disk."""

from __future__ import annotations

import asyncio
import errno
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from gateway.protocol.errors import log_outage, storage_full

T = TypeVar("T")

#: errors that mean the file system (or the user's quota) is full
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: below this much free space, an ENOSPC from setxattr means a full disk, not a big xattr
_NEARLY_FULL_BYTES = 1 << 20


def nearly_full(path_or_fd: str | int) -> bool:
    try:
        st = os.fstatvfs(path_or_fd) if isinstance(path_or_fd, int) else os.statvfs(path_or_fd)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _NEARLY_FULL_BYTES or bool(st.f_files and not st.f_favail)


def disk_errors(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` (on the thread pool), turning a full disk or quota into the S3 error
    (507 InsufficientStorage). The callers' cleanup (temp files removed, nothing placed) runs
    as for any other failure: a write that did not fit leaves nothing behind."""
    try:
        return fn(*args)
    except OSError as exc:
        if exc.errno in FULL_ERRNOS:
            log_outage("object", "full", f"{exc.strerror}: {exc.filename or ''}")
            raise storage_full("object") from None
        raise


class DiskPool:
    """Threads for blocking file work; started on first use, again after :meth:`close`."""

    def __init__(self, threads: int) -> None:
        # threads mostly wait in fsync; more of them let the filesystem journal commit many
        # small writes together (threads are only started when needed)
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="minimo-local")
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, functools.partial(disk_errors, fn, *args))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.submit(fn, *args)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
