"""Send a response body to the client's socket from the kernel side: ``sendfile(2)`` from a
local file, ``splice(2)`` from an upstream socket.

A GET through aiohttp costs two copies per byte (``pread`` or ``recv`` into a Python buffer,
then ``send`` out of it) and a pass through the event loop per piece; versitygw answers from
the page cache with ``sendfile``, at about half the CPU per GiB. uvloop has no
``loop.sendfile``, so this hands the client's socket to the reader (``send_file``), only where
that is simple and safe:

* plain TCP (or Unix) transports: TLS needs the bytes in user space to encrypt them;
* only once the response headers have left the transport's buffer, so nothing the transport
  still holds can be overtaken by bytes written underneath it;
* on a duplicate of the socket's descriptor, so the transport closing it meanwhile can never
  make the descriptor number name something else.

Everything else falls back to the ordinary write path.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

from aiohttp import web

#: what the reader offers: send the remaining bytes to a socket descriptor, awaiting the given
#: coroutine function whenever the socket is full; returning False (having sent nothing)
#: declines, and the body goes the ordinary way
SendFile = Callable[[int, Callable[[], Awaitable[None]]], Awaitable[bool | None]]


async def send_body(request: web.Request, resp: web.StreamResponse, send_file: SendFile) -> bool:
    """Send the body of a prepared ``resp`` with ``send_file``; False when it cannot be used.

    When False is returned nothing of the body has been sent (the headers may have been), so
    the caller writes the body the ordinary way.
    """
    transport = request.transport
    if transport is None or transport.is_closing():
        return False
    if transport.get_extra_info("sslcontext") is not None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    writer = await resp.prepare(request)  # already prepared: returns the same writer
    if writer is None:
        return False
    writer.send_headers()
    if transport.get_write_buffer_size():
        return False  # the headers are still queued: let the transport write what follows
    fd = os.dup(sock.fileno())
    loop = asyncio.get_running_loop()

    async def writable() -> None:
        done = loop.create_future()

        def ready() -> None:
            if not done.done():
                done.set_result(None)

        loop.add_writer(fd, ready)
        try:
            await done
        finally:
            loop.remove_writer(fd)

    try:
        return await send_file(fd, writable) is not False
    finally:
        os.close(fd)
