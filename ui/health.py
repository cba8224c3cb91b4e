"""``GET /_minimo/health``: 200 when both stores answer, 503 naming the part that does not.

Load balancers and ``tests/servers.py`` poll it, so it is unauthenticated and cheap; it says
which store failed and the error's type, never credentials or paths beyond the message.

A store kept on this machine's disk (the ``local`` object backend's data directory, the
``sqlite`` metadata file) is also "full" when its file system has less than
``min(64 MiB, 1 % of its size)`` available or no free inodes: health answers 503 with
``full: ...`` for that store (writes there answer 507 InsufficientStorage). The free space is
read with one statvfs per file system, at most once a second.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from gateway.usecases.appkeys import METADATA_STORE, OBJECT_STORE
from gateway.usecases.outages import log_outage
from policy.store.base import StoreFull, StoreUnavailable

#: how long one probe may take before the store counts as unreachable
PROBE_TIMEOUT_SECONDS = 5.0
_MAX_DETAIL = 300
#: a file system with less than min(this, 1 % of its size) available counts as full
FULL_BELOW_BYTES = 64 << 20
FULL_BELOW_FRACTION = 0.01
#: how long one free-space reading is reused
SPACE_CACHE_SECONDS = 1.0
_space_cache: dict[str, tuple[float, str | None]] = {}


def disk_full(path: Path) -> str | None:
    """Why the file system holding ``path`` counts as full, or None (also when unknown)."""
    key = str(path)
    now = time.monotonic()
    cached = _space_cache.get(key)
    if cached is not None and now - cached[0] < SPACE_CACHE_SECONDS:
        return cached[1]
    verdict: str | None = None
    try:
        st = os.statvfs(path)
    except OSError:
        verdict = None  # not there (yet): the store's own probe says what is wrong
    else:
        available = st.f_bavail * st.f_frsize
        floor = min(FULL_BELOW_BYTES, st.f_blocks * st.f_frsize * FULL_BELOW_FRACTION)
        if available < floor:
            verdict = f"full: {available >> 20} MiB available on its file system"
        elif st.f_files and not st.f_favail:
            verdict = "full: no free inodes on its file system"
    if len(_space_cache) > 64:
        _space_cache.clear()
    _space_cache[key] = (now, verdict)
    return verdict


async def _probe(check: Callable[[], Awaitable[None]] | None) -> str:
    if check is None:
        return "unavailable: not configured"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            await check()
    except TimeoutError:
        return f"unavailable: no answer within {PROBE_TIMEOUT_SECONDS:g} s"
    except StoreUnavailable as exc:
        # the driver's text names addresses: it goes to the log, not to this public page
        log_outage("metadata", "unavailable", f"{exc} ({exc.__cause__!r})")
        return "unavailable: the metadata store does not answer (the server log says why)"
    except StoreFull as exc:
        log_outage("metadata", "full", f"{exc} ({exc.__cause__!r})")
        return "full: the metadata store has no space left"
    except Exception as exc:  # any failure means "not healthy"; the type helps the operator
        detail = f"unavailable: {type(exc).__name__}: {exc}"
        return detail[:_MAX_DETAIL]
    return "ok"


async def health(request: web.Request) -> web.Response:
    object_store = request.app.get(OBJECT_STORE)
    metadata_store = request.app.get(METADATA_STORE)
    object_status, metadata_status = await asyncio.gather(
        _probe(object_store.check if object_store is not None else None),
        _probe(metadata_store.ping if metadata_store is not None else None),
    )
    # a disk that is full answers probes fine but refuses every write: say so
    object_dir = object_store.local_dir if object_store is not None else None
    if object_status == "ok" and object_dir is not None:
        object_status = disk_full(object_dir) or object_status
    if metadata_status == "ok" and getattr(metadata_store, "kind", None) == "sqlite":
        path = metadata_store.path  # type: ignore[union-attr]
        metadata_status = disk_full(path.parent) or metadata_status
    healthy = object_status == metadata_status == "ok"
    body = {
        "status": "ok" if healthy else "unavailable",
        "object_store": object_status,
        "metadata_store": metadata_status,
    }
    return web.json_response(
        body, status=200 if healthy else 503, headers={"Cache-Control": "no-store"}
    )


def setup_health(app: web.Application) -> None:
    app.router.add_get("/_minimo/health", health)
