"""The short per-process caches behind minimo's staleness bounds (keys, sessions, logins).

Each entry is trusted until its deadline (a monotonic time); the whole cache is dropped once it
holds ``max_entries`` (bounded memory without LRU bookkeeping: a refill costs one store read per
busy id). Everything else lives in the metadata store (docs/design.md, decision 2).
"""

from __future__ import annotations

import math
import time
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: entries past which a cache starts again empty
MAX_ENTRIES = 10_000
#: a lifetime for answers that can never change (e.g. "this login was ended")
FOREVER = math.inf


class ExpiringCache(Generic[K, V]):
    """Values trusted for ``seconds`` after they were put."""

    def __init__(self, seconds: float, *, max_entries: int = MAX_ENTRIES) -> None:
        self.seconds = seconds
        self._max_entries = max_entries
        #: key -> (monotonic deadline, value)
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> tuple[bool, V | None]:
        """(True, value) while the entry is fresh, else (False, None)."""
        hit = self._entries.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def put(
        self, key: K, value: V, *, seconds: float | None = None, read_at: float | None = None
    ) -> None:
        """Trust ``value`` for ``seconds`` (default: the cache's own) from ``read_at``, the
        ``time.monotonic()`` before it was looked up (default: now). Counting from before the
        lookup keeps a slow store read from stretching the staleness bound."""
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        lifetime = self.seconds if seconds is None else seconds
        start = time.monotonic() if read_at is None else read_at
        self._entries[key] = (start + lifetime, value)

    def forget(self, key: K | None = None) -> None:
        """Drop one entry, or every entry when ``key`` is None."""
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)
