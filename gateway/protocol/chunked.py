"""aws-chunked request bodies: the framing behind every ``STREAMING-*`` payload hash.

Reference: AWS "Signature Calculations for the Authorization Header: Transferring Payload in
Multiple Chunks" and "... Including Trailing Headers". A body looks like::

    <hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n   (repeated)
    0[;chunk-signature=<sig>]\\r\\n
    [<trailer name>:<value>\\r\\n ...][x-amz-trailer-signature:<sig>\\r\\n]
    \\r\\n

:class:`AwsChunkedDecoder` is a push parser: ``feed`` takes whatever the socket delivered and
returns the payload pieces it contained, verifying each chunk signature as the chunk completes.
It never rescans buffered data (framing lines are short and bounded; data is sliced straight
out of the incoming block), so the cost is linear in the body size.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.protocol.sigv4 import EMPTY_SHA256, sign, signatures_equal

#: framing lines longer than this are refused (a chunk header is ~90 bytes)
MAX_LINE = 4096
#: all trailer lines together
MAX_TRAILER = 16 * 1024

_SIZE_RE = re.compile(rb"[0-9a-fA-F]{1,16}")
_SIG_RE = re.compile(r"[0-9a-f]{64}")
TRAILER_SIGNATURE = "x-amz-trailer-signature"

# parser states
_HEADER, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


@dataclass(frozen=True, slots=True)
class ChunkSigner:
    """What verifying chunk signatures needs, all known once the seed request is verified."""

    key: bytes
    amz_date: str
    scope: str
    seed_signature: str

    def chunk_signature(self, previous: str, chunk_sha256: str) -> str:
        return sign(
            self.key,
            f"AWS4-HMAC-SHA256-PAYLOAD\n{self.amz_date}\n{self.scope}\n{previous}\n"
            f"{EMPTY_SHA256}\n{chunk_sha256}",
        )

    def trailer_signature(self, previous: str, canonical_trailer: bytes) -> str:
        digest = hashlib.sha256(canonical_trailer).hexdigest()
        return sign(
            self.key,
            f"AWS4-HMAC-SHA256-TRAILER\n{self.amz_date}\n{self.scope}\n{previous}\n{digest}",
        )


def malformed(why: str) -> S3Error:
    return S3Error(S3ErrorCode.InvalidRequest, f"The aws-chunked request body is malformed: {why}.")


class AwsChunkedDecoder:
    """Decode (and, with a signer, verify) one aws-chunked body.

    ``trailer`` says whether trailing headers may follow the final chunk (the ``...-TRAILER``
    payload variants). After the final ``\\r\\n`` :attr:`done` is true and :attr:`trailers`
    holds the trailing headers (lower-case names), their signature already verified.
    """

    def __init__(self, signer: ChunkSigner | None, *, trailer: bool) -> None:
        self._signer = signer
        self.trailer_allowed = trailer
        self._previous = signer.seed_signature if signer else ""
        self._state = _HEADER
        self._line = bytearray()
        self._left = 0  # data bytes still to come in the current chunk
        self._end_seen = 0  # bytes of the "\r\n" after the data seen so far
        self._chunk_sig = ""
        self._chunk_hash = hashlib.sha256() if signer else None
        self._trailer_bytes = 0
        self._trailer_lines: list[tuple[str, str]] = []
        self._trailer_sig: str | None = None
        self.trailers: dict[str, str] = {}

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes) -> list[bytes]:
        """Consume one block of the encoded body; return the payload bytes it carried."""
        out: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._left, end - pos)
                # slicing the whole block would copy it for nothing
                piece = data if take == end and pos == 0 else data[pos : pos + take]
                if self._chunk_hash is not None:
                    self._chunk_hash.update(piece)
                out.append(piece)
                pos += take
                self._left -= take
                if self._left == 0:
                    self._state = _DATA_END
            elif state == _DATA_END:
                pos = self._data_end(data, pos)
            elif state in (_HEADER, _TRAILER):
                pos = self._take_line(data, pos)
            else:  # _DONE: tolerate stray line breaks some clients append, nothing else
                if data[pos:].strip(b"\r\n"):
                    raise malformed("data after the final chunk")
                pos = end
        return out

    def finish(self) -> None:
        """The encoded body ended: it must have ended at the right place."""
        if self._state != _DONE:
            raise S3Error(
                S3ErrorCode.IncompleteBody,
                "The aws-chunked request body ended before its final chunk.",
            )

    # -- framing -------------------------------------------------------------------------------
    def _data_end(self, data: bytes, pos: int) -> int:
        expected = b"\r\n"
        while pos < len(data) and self._end_seen < 2:
            if data[pos] != expected[self._end_seen]:
                raise malformed("chunk data is not followed by CRLF")
            self._end_seen += 1
            pos += 1
        if self._end_seen == 2:
            self._end_seen = 0
            self._verify_chunk()
            self._state = _HEADER
        return pos

    def _take_line(self, data: bytes, pos: int) -> int:
        nl = data.find(b"\n", pos)
        stop = len(data) if nl < 0 else nl
        if len(self._line) + (stop - pos) > MAX_LINE:
            raise malformed("a framing line is too long")
        self._line += data[pos:stop]
        if nl < 0:
            return len(data)
        line = bytes(self._line).rstrip(b"\r")
        self._line.clear()
        if self._state == _HEADER:
            self._chunk_header(line)
        else:
            self._trailer_line(line)
        return nl + 1

    def _chunk_header(self, line: bytes) -> None:
        size_part, _, ext = line.partition(b";")
        size_part = size_part.strip()
        if not _SIZE_RE.fullmatch(size_part):
            raise malformed(f"bad chunk size {size_part[:20]!r}")
        size = int(size_part, 16)
        if self._signer is not None:
            self._chunk_sig = self._signature_of(ext)
        if size == 0:
            self._verify_chunk()
            self._state = _TRAILER
        else:
            self._left = size
            self._state = _DATA

    def _signature_of(self, ext: bytes) -> str:
        for part in ext.split(b";"):
            name, _, value = part.partition(b"=")
            if name.strip() == b"chunk-signature":
                sig = value.strip().decode("ascii", "replace")
                if _SIG_RE.fullmatch(sig):
                    return sig
        raise malformed("a chunk has no valid chunk-signature")

    def _verify_chunk(self) -> None:
        if self._signer is None or self._chunk_hash is None:
            return
        expected = self._signer.chunk_signature(self._previous, self._chunk_hash.hexdigest())
        if not signatures_equal(expected, self._chunk_sig):
            raise S3Error(
                S3ErrorCode.SignatureDoesNotMatch,
                "A chunk signature of the aws-chunked body does not match. "
                "Check your key and signing method.",
            )
        self._previous = expected
        self._chunk_hash = hashlib.sha256()

    def _trailer_line(self, line: bytes) -> None:
        self._trailer_bytes += len(line) + 2
        if self._trailer_bytes > MAX_TRAILER:
            raise S3Error(
                S3ErrorCode.MalformedTrailerError, "The request's trailing headers are too large."
            )
        if not line.strip():
            self._end_trailers()
            return
        if self._trailer_sig is not None:
            raise S3Error(
                S3ErrorCode.MalformedTrailerError, "Trailing headers follow the trailer signature."
            )
        name, sep, value = line.decode("utf-8", "replace").partition(":")
        name = name.strip().lower()
        if not sep or not name:
            raise S3Error(
                S3ErrorCode.MalformedTrailerError, f"Malformed trailing header {line[:60]!r}."
            )
        if name == TRAILER_SIGNATURE:
            self._trailer_sig = value.strip()
        else:
            self._trailer_lines.append((name, value.strip()))

    def _end_trailers(self) -> None:
        if self._trailer_lines and not self.trailer_allowed:
            raise malformed("trailing headers sent without a -TRAILER payload type")
        if self._signer is not None and self.trailer_allowed:
            self._verify_trailer()
        self.trailers = dict(self._trailer_lines)
        self._state = _DONE

    def _verify_trailer(self) -> None:
        assert self._signer is not None
        if self._trailer_sig is None:
            raise S3Error(S3ErrorCode.MalformedTrailerError, "The trailer signature is missing.")
        canonical = "".join(f"{n}:{v}\n" for n, v in self._trailer_lines).encode()
        expected = self._signer.trailer_signature(self._previous, canonical)
        if not signatures_equal(expected, self._trailer_sig):
            raise S3Error(
                S3ErrorCode.SignatureDoesNotMatch,
                "The trailer signature of the aws-chunked body does not match. "
                "Check your key and signing method.",
            )
