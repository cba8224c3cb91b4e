"""The local store's shared directory fsyncs (gateway.backends.local.dirsync): every writer is
answered only after an fsync that started after its call, concurrent writers share fsyncs, and
a failed fsync fails the writers it was for."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gateway.backends.local import dirsync
from gateway.backends.local.dirsync import DirectorySync


class _Recorded:
    """The real directory fsync, recording when each one started and ended; the first one
    waits until released, so callers can arrive while it runs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.first_running = threading.Event()
        self.release_first = threading.Event()
        self._lock = threading.Lock()
        self._count = 0
        self._real = dirsync.fsync_directory

    def __call__(self, path: str) -> None:
        with self._lock:
            self._count += 1
            number = self._count
            self.events.append(("start", number))
        if number == 1:
            self.first_running.set()
            self.release_first.wait(10)
        self._real(path)
        with self._lock:
            self.events.append(("end", number))


def test_writers_arriving_during_an_fsync_wait_for_one_that_starts_after_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = _Recorded()
    monkeypatch.setattr(dirsync, "fsync_directory", recorded)
    sync = DirectorySync()
    answered: list[tuple[str, int]] = []
    with ThreadPoolExecutor(12) as pool:
        first = pool.submit(sync.sync, str(tmp_path))
        assert recorded.first_running.wait(10)
        arrived = len(recorded.events)  # what had started before the others' renames

        def later_writer(i: int) -> None:
            sync.sync(str(tmp_path))
            answered.append(("answered", i))  # (list.append is atomic)

        later = [pool.submit(later_writer, i) for i in range(10)]
        # all ten are waiting (their renames done) before the first fsync may end
        while sync._dirs[str(tmp_path)].waiting < 11:
            threading.Event().wait(0.01)
        recorded.release_first.set()
        first.result(10)
        for f in later:
            f.result(10)
    starts = [n for kind, n in recorded.events if kind == "start"]
    # the ten writers that came while fsync 1 ran were all covered by fsync 2 (one fsync for
    # ten renames), never by fsync 1, which started before them
    assert arrived == 1
    assert starts == [1, 2]
    assert len(answered) == 10
    assert sync._dirs == {}  # nothing kept once nobody waits


def test_a_failed_fsync_fails_its_writers_and_the_next_one_runs_again(tmp_path: Path) -> None:
    sync = DirectorySync()
    missing = str(tmp_path / "gone")
    with ThreadPoolExecutor(4) as pool:
        results = [pool.submit(sync.sync, missing) for _ in range(4)]
        for f in results:
            with pytest.raises(FileNotFoundError):
                f.result(10)
    os.mkdir(missing)
    sync.sync(missing)  # the directory exists now: a new fsync, not the old error
    assert sync._dirs == {}
