"""``Expect: 100-continue``: the interim answer is sent only when a handler starts reading the
body, after authentication, the policy and the handler's own checks have passed.

aiohttp's default sends ``100 Continue`` as soon as the route matches, so a client would upload
a whole body only to be told AccessDenied or NoSuchBucket. Deferred, a refused write gets its
error at once and the body is never sent; the connection is then closed, since the client may
still send the body it held back and it must not be read as the next request.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.http import HttpVersion11

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: set once ``100 Continue`` went out (or was never owed)
CONTINUE_SENT = web.RequestKey("minimo_continue_sent", bool)


def expects_continue(request: web.BaseRequest) -> bool:
    return (
        request.version == HttpVersion11
        and request.headers.get("Expect", "").strip().lower() == "100-continue"
    )


async def defer_continue(request: web.Request) -> None:
    """The route's expect handler: owe the client its ``100 Continue``, send nothing yet.

    Other Expect values are ignored rather than refused with 417, as S3 does."""


async def send_continue(request: web.Request) -> None:
    """Before the first read of the body: the ``100 Continue`` the client waits for."""
    if expects_continue(request) and not request.get(CONTINUE_SENT):
        request[CONTINUE_SENT] = True
        await request.writer.write(_CONTINUE)
        # what went out so far is not part of the response proper
        request.writer.output_size = 0


def close_if_body_unsent(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """An answer given while the client still holds its body back ends the connection."""
    if expects_continue(request) and not request.get(CONTINUE_SENT):
        response.force_close()
        # aiohttp wrote its Connection header before this hook ran: say it ourselves
        response.headers["Connection"] = "close"
        # No body is coming: without this aiohttp would wait (10 s) for it before closing.
        request.content.feed_eof()
