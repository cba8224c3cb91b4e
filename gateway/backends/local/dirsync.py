"""Directory fsyncs shared by the writers of one directory (a group commit for renames).

A rename or link is durable once its directory is fsync'd. Concurrent writers into one
directory (small PUTs under one prefix) need not each pay for their own: a writer whose rename
is done needs *an* fsync of the directory that starts after its rename, and one fsync covers
every rename before it. So a writer that finds the directory's fsync idle starts one; a writer
that finds one running waits for the next, which the first of the waiters starts as soon as the
running one ends and which covers all of them. Nobody is acknowledged on an fsync that started
before its rename, so durability is exactly that of one fsync per writer.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass


def fsync_directory(path: str) -> None:
    """One fsync of the directory ``path`` (what makes the names in it durable)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class _Directory:
    """The fsyncs of one directory: numbered in the order they start."""

    started: int = 0
    running: bool = False
    #: the highest-numbered fsync that succeeded / failed (with its error)
    succeeded: int = 0
    failed: int = 0
    error: OSError | None = None
    #: writers between their call and their answer (the entry goes when none is left)
    waiting: int = 0


class DirectorySync:
    """Group fsyncs of directories; :meth:`sync` is called on the local store's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._dirs: dict[str, _Directory] = {}

    def sync(self, path: str) -> None:
        """Return once an fsync of ``path`` that started after this call succeeded; raise the
        error of one that failed."""
        with self._lock:
            d = self._dirs.get(path)
            if d is None:
                d = self._dirs[path] = _Directory()
            d.waiting += 1
            # a running fsync may have started before the caller's rename: it does not count
            needed = d.started + 1
            try:
                while d.succeeded < needed:
                    if d.failed >= needed and d.error is not None:
                        # (a copy: several threads may raise it at once)
                        raise OSError(d.error.errno, d.error.strerror, d.error.filename)
                    if d.running:
                        self._changed.wait()
                        continue
                    self._run(path, d)
            finally:
                d.waiting -= 1
                if not d.waiting and not d.running:
                    del self._dirs[path]

    def _run(self, path: str, d: _Directory) -> None:
        """Run the next fsync of ``path`` (called and returning with the lock held)."""
        d.running = True
        d.started += 1
        number = d.started
        error: OSError | None = None
        done = False
        self._lock.release()
        try:
            fsync_directory(path)
            done = True
        except OSError as exc:
            error = exc
        finally:
            self._lock.acquire()
            d.running = False
            if done:
                d.succeeded = number
            elif error is not None:
                d.failed, d.error = number, error
            # (anything else propagates to this caller; the waiters start the next fsync)
            self._changed.notify_all()


#: one per process: every writer of a directory shares its fsyncs
DIRECTORY_SYNC = DirectorySync()
