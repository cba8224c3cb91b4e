"""What a server process costs while something streams through it: memory and CPU (Linux /proc).

Sampling VmRSS can miss a short spike, so the kernel's own high-water mark (VmHWM) of the
watched process is read too; VmHWM covers the process's whole life, start-up included, so it is
an upper bound on the peak during the transfer. Children (worker processes) are summed in the
samples so a gateway that forks cannot hide memory from the figure.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

SAMPLE_SECONDS = 0.01


def _status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/PID/status, 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree_rss_kib(pid: int) -> int:
    return sum(_status_kib(p, "VmRSS") for p in _descendants(pid))


def hwm_kib(pid: int) -> int:
    return _status_kib(pid, "VmHWM")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live descendants."""
    ticks = 0
    for p in _descendants(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        fields = stat.rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class PeakRss:
    """``with PeakRss(pid) as m: ...`` then ``m.peak_kib`` (sampled) and ``m.before_kib``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before_kib = 0
        self.peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> PeakRss:
        self.before_kib = tree_rss_kib(self.pid)
        self.peak_kib = self.before_kib
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # the state right at the end counts too

    def _sample(self) -> None:
        self.peak_kib = max(self.peak_kib, tree_rss_kib(self.pid))
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()
