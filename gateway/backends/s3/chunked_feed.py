"""The aws-chunked feed: a client's body re-framed for the upstream as unsigned
``aws-chunked`` with a checksum trailer, so a cut stream can never be stored as a torn object
(why in :class:`ChunkedFeed`)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

from awscrt.checksums import crc32c

from gateway.backends.base import Body, KeepChecksum
from gateway.protocol.checksums import ALGORITHMS, HEADER_PREFIX
from gateway.protocol.errors import S3Error, S3ErrorCode

#: aws-chunked chunk size for uploads (what botocore uses; S3 wants >= 8 KiB but the last).
UPLOAD_CHUNK = 1 << 20
#: The checksum trailer sent with an upload that keeps no checksum of its own: CRC32C is
#: hardware-accelerated on both ends.
TRAILER = "x-amz-checksum-crc32c"


class ChunkedFeed:
    """The client's body re-framed as ``aws-chunked`` (unsigned, CRC32C trailer) for upstream.

    Why not a plain body: some upstreams (versitygw) store whatever arrived when a connection
    closes before Content-Length bytes, so a client that fails half-way would leave a torn
    object. With aws-chunked framing a cut stream lacks its final chunk and trailer, which every
    S3 server refuses; the CRC32C trailer also checks the bytes between gateway and store.

    Chunks have a fixed size (the last one is shorter), so the encoded length is known up front
    and the request keeps a plain Content-Length: nothing is buffered, pieces are only sliced
    where they straddle a chunk boundary. If the body raises, the exception is kept, aiohttp
    cuts the request, and the original exception is raised from ``reraise``.
    """

    __slots__ = ("body", "error", "keep", "size")

    def __init__(self, body: Body, size: int, keep: KeepChecksum | None = None) -> None:
        self.body = body
        self.size = size
        #: when set, the trailer carries this checksum (the body already computed and verified
        #: it), so the upstream keeps it with the object; else a CRC32C computed here
        self.keep = keep
        self.error: BaseException | None = None

    @property
    def trailer(self) -> str:
        return TRAILER if self.keep is None else HEADER_PREFIX + self.keep.algorithm

    def encoded_length(self) -> int:
        size = self.size
        full, rest = divmod(size, UPLOAD_CHUNK)
        length = full * (len(f"{UPLOAD_CHUNK:x}") + 4 + UPLOAD_CHUNK)
        if rest:
            length += len(f"{rest:x}") + 4 + rest
        # a checksum's base64 length depends only on its algorithm
        placeholder = bytes(ALGORITHMS[self.keep.algorithm]) if self.keep else bytes(4)
        return length + len(_chunked_end(self.trailer, base64.b64encode(placeholder)))

    async def __aiter__(self) -> AsyncIterator[bytes | memoryview]:
        try:
            async for piece in self._frames():
                yield piece
        except Exception as exc:
            # Only the body's own failures. aiohttp cancels the task feeding the upload when
            # the upstream connection breaks; that CancelledError is not the request's, and
            # raising it from reraise() made the gateway drop the client's connection without
            # an answer instead of the object store's 503.
            self.error = exc
            raise

    async def _frames(self) -> AsyncIterator[bytes | memoryview]:
        remaining = self.size  # bytes not yet framed
        left = 0  # bytes still due in the current chunk
        crc = 0
        async for piece in self.body:
            view = memoryview(piece)
            while view.nbytes:
                if left == 0:
                    if remaining == 0:
                        raise S3Error(
                            S3ErrorCode.IncompleteBody, "The body is longer than its length."
                        )
                    left = min(UPLOAD_CHUNK, remaining)
                    lead = b"\r\n" if remaining != self.size else b""
                    yield lead + f"{left:x}\r\n".encode()
                take = view if view.nbytes <= left else view[:left]
                view = view[take.nbytes :]
                if self.keep is None:
                    crc = crc32c(take, crc)
                left -= take.nbytes
                remaining -= take.nbytes
                yield take
        if remaining or left:
            raise S3Error(S3ErrorCode.IncompleteBody)
        if self.keep is None:
            digest = base64.b64encode(crc.to_bytes(4, "big"))
        else:
            digest = self.keep.value().encode()
        yield (b"\r\n" if self.size else b"") + _chunked_end(self.trailer, digest)

    def reraise(self) -> None:
        if self.error is not None:
            raise self.error


def _chunked_end(trailer: str, digest: bytes) -> bytes:
    """The last (empty) chunk and the checksum trailer."""
    return b"0\r\n" + trailer.encode() + b":" + digest + b"\r\n\r\n"
