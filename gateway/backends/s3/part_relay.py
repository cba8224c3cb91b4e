"""UploadPartCopy relayed through the gateway, for upstreams that keep the wrong checksum for a
copied *range*: versitygw answers (and keeps) the source's whole-object checksum when the
source has one of the upload's algorithm, so the completion could never name the part's true
checksum. The part is then sent again as an UploadPart whose bytes are a ranged GET of the
source, hashed on the way (streamed: decision 3, bounded memory)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from gateway.backends.base import ObjectChecksum, ObjectReader
from gateway.protocol.checksums import Checksum


def kept_whole_checksum(
    copied: ObjectChecksum | None, source: ObjectChecksum | None, whole: bool
) -> bool:
    """Whether the checksum an upstream answered for a copied range is the source's own
    (wrong unless the range is the whole source)."""
    return (
        not whole
        and copied is not None
        and source is not None
        and (copied.algorithm, copied.value) == (source.algorithm, source.value)
    )


class HashedRange:
    """A ranged read of the source as a request body, its checksum computed as it streams."""

    def __init__(self, reader: ObjectReader, size: int, algorithm: str) -> None:
        self.size: int | None = size
        self._reader = reader
        self.checksum = Checksum(algorithm)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        try:
            async for piece in self._reader:
                self.checksum.update(piece)
                yield piece
        finally:
            await self._reader.aclose()
