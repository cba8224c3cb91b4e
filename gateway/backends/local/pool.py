"""The private thread pool all of the local store's file I/O runs on, and what a full disk
becomes on the way back (507 InsufficientStorage), so the event loop never waits on the disk."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import queue
import threading
from collections.abc import Callable
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
    """Threads for blocking file work; started on first use, again after :meth:`close`.

    Not a ``concurrent.futures`` executor: ``run_in_executor`` makes a second future (with its
    own lock and condition) per job and chains the two with callbacks, which on a small PUT's
    one hop cost the event loop more than the hop itself. Here a job is a tuple on a queue and
    its answer one ``call_soon_threadsafe``."""

    def __init__(self, threads: int) -> None:
        # threads mostly wait in fsync; more of them let the filesystem journal commit many
        # small writes together (threads are only started when needed)
        self._threads = threads
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        #: workers waiting for a job that no submitted job has counted on yet
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            jobs = self._jobs
            jobs.put((loop, future, fn, args))
            if self._idle:
                self._idle -= 1  # that worker takes this job (or an earlier one)
                return future
            if len(self._workers) < self._threads:
                worker = threading.Thread(
                    target=self._work,
                    args=(jobs,),
                    name=f"minimo-local_{len(self._workers)}",
                    daemon=True,  # (close() ends them; a process that exits does not wait)
                )
                self._workers.append(worker)
                worker.start()
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.submit(fn, *args)

    def _work(self, jobs: queue.SimpleQueue[_Job | None]) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            loop, future, fn, args = job
            try:
                result, error = disk_errors(fn, *args), None
            except BaseException as exc:  # (handed to the waiting request, whatever it is)
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for it
                loop.call_soon_threadsafe(_settle, future, result, error)
            # no reference kept while waiting for the next job: an idle thread holding its last
            # job's arguments would keep a large PUT's buffers alive, one set per thread
            del job, loop, future, fn, args, result, error
            with self._lock:
                # a worker of a closed generation (see close) is no longer counted on
                if jobs is self._jobs:
                    self._idle += 1

    async def close(self) -> None:
        # A new generation at once (queue, workers, idle count): a job submitted while the old
        # workers drain starts a worker of its own, and an old worker that finishes its last
        # job late cannot count itself idle in the new generation (a job counted on such a
        # worker would never run).
        with self._lock:
            workers, jobs = self._workers, self._jobs
            self._workers, self._jobs, self._idle = [], queue.SimpleQueue(), 0
        for _ in workers:
            jobs.put(None)  # after every job queued before: those still run
        if workers:
            await asyncio.to_thread(_join, workers)


#: a job on the queue: the loop and future to answer, the function and its arguments
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Answer a job's future on its loop (unless its waiter was cancelled meanwhile)."""
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _join(workers: list[threading.Thread]) -> None:
    for worker in workers:
        worker.join()
