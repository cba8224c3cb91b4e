"""Responses whose header values may hold bytes that are not UTF-8.

S3 keeps an ``x-amz-meta-*`` value as the bytes the client sent (raw UTF-8, latin-1, RFC 2047
words...) and returns them unchanged. aiohttp reads header bytes as UTF-8 with
``surrogateescape`` (a stray ``0xE9`` becomes ``"\\udce9"``) but its writer drops surrogates,
so such a value would come back shortened. These responses serialise their head themselves
when a value holds a surrogate, turning each back into its byte; otherwise aiohttp's writer is
used as is. This touches aiohttp internals (the pinned version's ``_write_headers``);
tests/test_s3_listing_protocol.py checks the bytes on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiohttp import web

_SURROGATE = re.compile("[\udc80-\udcff]")
_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def has_raw_bytes(headers: Mapping[str, str]) -> bool:
    # every GET and HEAD asks: one join and an ASCII test (surrogates are not ASCII) cost a
    # sixth of a regex search per value
    text = "".join(headers.values())
    return not text.isascii() and _SURROGATE.search(text) is not None


def serialize(status_line: str, headers: Mapping[str, str]) -> bytes:
    lines = [status_line]
    for name, value in headers.items():
        if _FORBIDDEN.search(name) or _FORBIDDEN.search(value):
            # as aiohttp's writer: never let a stored value split the head (header injection)
            raise ValueError(f"control character in header {name!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


class _RawHeadersMixin(web.StreamResponse):
    async def _write_headers(self) -> None:
        if not has_raw_bytes(self._headers):
            await super()._write_headers()
            return
        request = self._req
        writer = self._payload_writer
        assert request is not None and writer is not None
        version = request.version
        status_line = f"HTTP/{version[0]}.{version[1]} {self._status} {self._reason}"
        # aiohttp's own call runs its hooks and buffers the head; ours replaces that buffer
        await writer.write_headers(status_line, self._headers)
        writer._headers_buf = serialize(status_line, self._headers)
        if self._send_headers_immediately:
            writer.send_headers()


class RawStreamResponse(_RawHeadersMixin, web.StreamResponse):
    """``web.StreamResponse`` that sends header values byte for byte."""


class RawResponse(_RawHeadersMixin, web.Response):
    """``web.Response`` that sends header values byte for byte."""
