"""``GET /_minimo/health``: 200 when both stores answer, 503 naming the part that does not.

Load balancers and ``tests/servers.py`` poll it, so it is unauthenticated and cheap; it says
which store failed and the error's type, never credentials or paths beyond the message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.appkeys import METADATA_STORE, OBJECT_STORE

#: how long one probe may take before the store counts as unreachable
PROBE_TIMEOUT_SECONDS = 5.0
_MAX_DETAIL = 300


async def _probe(check: Callable[[], Awaitable[None]] | None) -> str:
    if check is None:
        return "unavailable: not configured"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            await check()
    except TimeoutError:
        return f"unavailable: no answer within {PROBE_TIMEOUT_SECONDS:g} s"
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
