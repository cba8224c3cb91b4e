"""Relaying an upstream GET to the client: pieces as the upstream socket delivers them, or,
where the socket allows, spliced from the upstream socket to the client's inside the kernel
(:meth:`UpstreamReader.send_file`)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp

from gateway.backends.base import ByteRange, ObjectInfo, ObjectReader
from gateway.backends.s3.upstream import Upstream

#: Downloads are handed on as the upstream socket delivers them (up to 256 KiB with uvloop):
#: joining them into bigger pieces costs more CPU than it saves (measured). Pieces smaller than
#: MIN_PIECE are topped up from the buffer to at most READ_PIECE.
MIN_PIECE = 64 << 10
READ_PIECE = 1 << 20


#: pipe size for relaying GET bodies with splice (the kernel may grant less)
SPLICE_PIPE = 1 << 20
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)


class UpstreamReader(ObjectReader):
    """An upstream GET being relayed: yields the body in large pieces, then frees the socket."""

    def __init__(
        self,
        upstream: Upstream,
        resp: aiohttp.ClientResponse,
        info: ObjectInfo,
        byte_range: ByteRange | None,
    ) -> None:
        self._upstream = upstream
        self._resp = resp
        self.info = info
        self.byte_range = byte_range

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._resp.content
        try:
            while True:
                # Pieces as the socket delivered them (no copy); only small ones are topped up
                # from what is already buffered, so the client side gets few, large writes.
                piece, _ = await content.readchunk()
                if not piece:
                    if content.at_eof():
                        break
                    continue
                if len(piece) < MIN_PIECE:
                    more = content.read_nowait(READ_PIECE - len(piece))
                    if more:
                        piece += more
                yield piece
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._resp.close()
            raise self._upstream.unreachable(exc) from None

    async def send_file(self, sock: int, writable: Callable[[], Awaitable[None]]) -> bool:
        """Relay the body with splice(2): upstream socket -> pipe -> client socket ``sock``.

        Reading the upstream socket into Python and writing the client's costs two copies and
        a pass through the event loop per piece; splice moves the pages inside the kernel.
        Declines (False, nothing sent) unless upstream is plain TCP and answered with exactly
        the Content-Length the client was promised. Upstream reading is paused first, and what
        aiohttp had already buffered goes out before the spliced rest. The connection cannot
        be reused afterwards (its parser never saw the body end): aclose() closes it.
        """
        resp = self._resp
        conn = resp.connection
        transport = conn.transport if conn is not None else None
        protocol = conn.protocol if conn is not None else None
        expected = self.byte_range.length if self.byte_range is not None else self.info.size
        if (
            not hasattr(os, "splice")
            or transport is None
            or protocol is None
            or transport.is_closing()
            or transport.get_extra_info("sslcontext") is not None
            or transport.get_extra_info("socket") is None
            or resp.content_length != expected
            or resp.content.exception() is not None
        ):
            return False
        content = resp.content
        # Take everything aiohttp holds, then pause. Draining the buffer resumes a parser that
        # paused with bytes of its own, which it hands over at once, so drain until nothing
        # comes; pausing right after (no loop iteration in between) means no further byte
        # reaches aiohttp. The protocol's pause also stops its read timeout.
        pieces: list[bytes] = []
        while piece := content.read_nowait(-1):
            pieces.append(piece)
        buffered = b"".join(pieces)
        # A busy loop may get here only after the whole answer arrived: aiohttp's parser is
        # done (and gone, so pausing it fails) and there is nothing left to splice.
        whole = content.is_eof() or len(buffered) >= expected
        if not whole:
            protocol.pause_reading()
        upstream = os.dup(transport.get_extra_info("socket").fileno())
        pipe_r, pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            with contextlib.suppress(OSError):  # a bigger pipe means fewer calls; optional
                fcntl.fcntl(pipe_w, fcntl.F_SETPIPE_SZ, SPLICE_PIPE)
            view = memoryview(buffered)
            while view:
                try:
                    view = view[os.write(sock, view) :]
                except (BlockingIOError, InterruptedError):
                    await writable()
            remaining = 0 if whole else expected - len(buffered)
            in_pipe = 0
            while remaining or in_pipe:
                moved = False
                if remaining and in_pipe < SPLICE_PIPE:
                    try:
                        n = _splice(upstream, pipe_w, min(remaining, SPLICE_PIPE - in_pipe))
                    except OSError as exc:
                        raise self._upstream.unreachable(exc) from None
                    if n == 0:
                        raise self._upstream.unreachable(
                            ConnectionResetError("upstream closed the connection mid-body")
                        )
                    if n is not None:
                        remaining -= n
                        in_pipe += n
                        moved = True
                if in_pipe:
                    m = _splice(pipe_r, sock, in_pipe)  # client errors propagate as they are
                    if m:
                        in_pipe -= m
                        moved = True
                if not moved:
                    if in_pipe:
                        await writable()  # the client is full; upstream can wait
                    else:
                        await self._readable(upstream)
        finally:
            for fd in (pipe_r, pipe_w, upstream):
                os.close(fd)
        return True

    async def _readable(self, fd: int) -> None:
        """Wait until upstream has bytes, within the read timeout aiohttp would apply."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def ready() -> None:
            if not done.done():
                done.set_result(None)

        loop.add_reader(fd, ready)
        try:
            async with asyncio.timeout(self._upstream.read_timeout_seconds):
                await done
        except TimeoutError as exc:
            raise self._upstream.unreachable(exc) from None
        finally:
            loop.remove_reader(fd)

    async def aclose(self) -> None:
        resp = self._resp
        if resp.content.is_eof():
            resp.release()
        else:
            # part of the body is unread: the connection cannot be reused
            resp.close()


def _splice(src: int, dst: int, count: int) -> int | None:
    """One non-blocking splice(2): bytes moved, or None when it would block."""
    try:
        return os.splice(src, dst, count, flags=_SPLICE_FLAGS)
    except (BlockingIOError, InterruptedError):
        return None
