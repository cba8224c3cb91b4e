"""The request body as backends consume it: decoded, measured and verified while it streams.

:func:`request_body` looks at the request's headers (and the
:class:`~gateway.s3api.auth.AuthContext`)
and refuses malformed ones at once; iterating the returned :class:`RequestBody` yields the
payload (aws-chunked framing removed) and checks, as the bytes go by:

* the length against Content-Length / x-amz-decoded-content-length (IncompleteBody);
* a hex ``x-amz-content-sha256`` (XAmzContentSHA256Mismatch);
* chunk and trailer signatures of ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]``
  (SignatureDoesNotMatch);
* ``x-amz-checksum-*`` from a header or the trailer, and ``Content-MD5`` (BadDigest).

The last piece is always held back until all of that has passed, so a backend that streams to
a destination with a fixed length never completes an object from a bad request. Digests are
updated on a worker thread (hashlib releases the GIL) while the event loop reads the next
piece; MD5 alone costs ~1.2 s/GiB here, which would otherwise stall the loop. Pieces go to the
thread in batches of about HASH_BATCH bytes, so a large body costs a few hundred thread hops
per GiB rather than one per socket read, and the body is read as the socket delivered it (no
joined copies).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections import deque
from collections.abc import AsyncIterator

from aiohttp import web
from multidict import CIMultiDictProxy

from gateway.protocol import sigv4
from gateway.protocol.checksums import (
    ALGORITHMS,
    HEADER_PREFIX,
    Checksum,
    decode_content_md5,
    decode_expected,
    header_checksums,
)
from gateway.protocol.chunked import AwsChunkedDecoder
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.protocol.uint import parse_uint
from gateway.s3api.auth import AuthContext
from gateway.s3api.expect import CONTINUE_SENT, expects_continue, send_continue

#: pieces smaller than this are hashed inline: a thread hop costs more than it saves
THREAD_MIN = 128 * 1024
#: hashlib lets go of the GIL while it hashes 2 KiB or more (and, once it did, for every later
#: update of that digest). On the event loop that costs more than it gives: a thread of the
#: disk pool or of the SQLite connection takes the GIL, and the loop waits to get it back (two
#: context switches per update). Pieces hashed on the loop go in slices below that size.
GIL_KEEPING_SLICE = 2047
#: bytes gathered before one hashing job goes to a worker thread
HASH_BATCH = 1 << 20

_STREAMING = (
    sigv4.STREAMING_SIGNED,
    sigv4.STREAMING_SIGNED_TRAILER,
    sigv4.STREAMING_UNSIGNED_TRAILER,
)
_TRAILER_VARIANTS = (sigv4.STREAMING_SIGNED_TRAILER, sigv4.STREAMING_UNSIGNED_TRAILER)


def _parse_length(value: str | None, header: str) -> int | None:
    if value is None:
        return None
    length = parse_uint(value.strip())
    if length is None:
        raise S3Error(
            S3ErrorCode.InvalidArgument, f"The {header} header must be a non-negative integer."
        )
    return length


class _Digests:
    """Every running digest of one body, updated together (on a worker thread when large)."""

    def __init__(self, *, md5: bool, sha256: bool, algorithms: set[str]) -> None:
        self.md5 = hashlib.md5() if md5 else None
        self.sha256 = hashlib.sha256() if sha256 else None
        self.checksums = {a: Checksum(a) for a in sorted(algorithms)}

    def update(self, piece: bytes) -> None:
        if self.md5 is not None:
            self.md5.update(piece)
        if self.sha256 is not None:
            self.sha256.update(piece)
        for c in self.checksums.values():
            c.update(piece)

    def update_all(self, pieces: list[bytes]) -> None:
        """One worker-thread job: every piece of a batch, in order."""
        for piece in pieces:
            self.update(piece)

    def update_on_loop(self, piece: bytes) -> None:
        """:meth:`update` for a small piece on the event loop, keeping the GIL throughout."""
        if len(piece) <= GIL_KEEPING_SLICE:
            self.update(piece)
            return
        view = memoryview(piece)
        for start in range(0, len(view), GIL_KEEPING_SLICE):
            self.update(view[start : start + GIL_KEEPING_SLICE])

    @property
    def active(self) -> bool:
        return self.md5 is not None or self.sha256 is not None or bool(self.checksums)


class _Pipeline:
    """Feed digests on worker threads, in order, while the event loop keeps reading.

    Pieces are gathered into batches of about HASH_BATCH bytes; one job per batch runs on the
    default executor, and each is submitted only when the previous one finished (a
    done-callback chains them), so order holds without a thread per request. At most
    MAX_BACKLOG batches wait, which bounds the memory held for hashing. The pieces are the
    same objects the backend receives, so batching copies nothing.
    """

    MAX_BACKLOG = 4

    def __init__(self, digests: _Digests) -> None:
        self._digests = digests
        self._loop = asyncio.get_running_loop()
        self._batch: list[bytes] = []
        self._batch_len = 0
        self._queue: deque[list[bytes]] = deque()
        self._running: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        # made by the first job: a small body, hashed on the loop, never needs them
        self._idle: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None

    async def feed(self, piece: bytes) -> None:
        if self._error is not None:
            raise self._error
        if len(piece) < THREAD_MIN and self._running is None and not self._batch:
            self._digests.update_on_loop(piece)  # small, nothing in flight: a hop costs more
            return
        self._batch.append(piece)
        self._batch_len += len(piece)
        if self._batch_len < HASH_BATCH:
            return
        progress = self._submit_batch()
        while len(self._queue) > self.MAX_BACKLOG and self._error is None:
            progress.clear()
            await progress.wait()
        if self._error is not None:
            raise self._error

    async def drain(self) -> None:
        if self._batch:
            if self._running is None and self._batch_len < THREAD_MIN:
                for piece in self._batch:
                    self._digests.update_on_loop(piece)
                self._batch, self._batch_len = [], 0
            else:
                self._submit_batch()
        if self._idle is not None:
            await self._idle.wait()
        if self._error is not None:
            raise self._error

    def _submit_batch(self) -> asyncio.Event:
        """Queue the batch gathered so far; returns the event set whenever a job ends."""
        if self._idle is None or self._progress is None:
            self._idle, self._progress = asyncio.Event(), asyncio.Event()
        self._queue.append(self._batch)
        self._batch, self._batch_len = [], 0
        self._idle.clear()
        if self._running is None:
            self._next()
        return self._progress

    def _next(self) -> None:
        """Start the next queued job (runs on the event loop, from a done-callback)."""
        assert self._idle is not None and self._progress is not None, "made by _submit_batch"
        self._progress.set()
        if not self._queue or self._error is not None:
            self._queue.clear()
            self._running = None
            self._idle.set()
            return
        batch = self._queue.popleft()
        self._running = self._loop.run_in_executor(None, self._digests.update_all, batch)
        self._running.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            self._error = asyncio.CancelledError()
        elif future.exception() is not None:
            self._error = future.exception()
        self._next()


class RequestBody:
    """A request body being streamed in (satisfies :class:`gateway.backends.base.Body`).

    After iteration ends without error, :attr:`md5_hex`, :attr:`sha256_hex` (when computed),
    :attr:`checksums` (base64 per algorithm, for each checksum sent or asked for) and
    :attr:`trailers` hold what was measured. It can be iterated once.
    """

    def __init__(
        self,
        request: web.Request,
        auth: AuthContext,
        *,
        md5: bool = True,
        sha256: bool = False,
        checksum_algorithms: tuple[str, ...] = (),
    ) -> None:
        self._request = request
        headers = request.headers
        #: the client holds the body back until told ``100 Continue`` (on the first read): a
        #: backend that can refuse the write should do so before reading
        self.awaits_continue = expects_continue(request) and not request.get(CONTINUE_SENT)
        payload_hash = auth.payload_hash or sigv4.UNSIGNED_PAYLOAD
        self.streaming = payload_hash in _STREAMING
        self._decoder: AwsChunkedDecoder | None = None
        if self.streaming:
            signer = None
            if payload_hash != sigv4.STREAMING_UNSIGNED_TRAILER:
                signer = auth.chunk_signer
                if signer is None:
                    raise S3Error(
                        S3ErrorCode.AccessDenied, f"{payload_hash} needs a SigV4-signed request."
                    )
            self._decoder = AwsChunkedDecoder(signer, trailer=payload_hash in _TRAILER_VARIANTS)
            self.size: int | None = _parse_length(
                headers.get("x-amz-decoded-content-length"), "x-amz-decoded-content-length"
            )
        else:
            self.size = _parse_length(headers.get("Content-Length"), "Content-Length")
        self._expected_sha256 = (
            None if payload_hash in (*_STREAMING, sigv4.UNSIGNED_PAYLOAD) else payload_hash
        )
        md5_header = headers.get("Content-MD5")
        self._expected_md5 = decode_content_md5(md5_header) if md5_header is not None else None
        self._expected_checksums = header_checksums(headers)
        self._trailer_checksum = self._declared_trailer(headers.get("x-amz-trailer"))
        self._asked = asked_algorithm(headers)
        algorithms = set(self._expected_checksums) | set(checksum_algorithms)
        if self._asked is not None and self._asked != "sha256":
            algorithms.add(self._asked)  # (a sha256 is taken from the payload digest)
        if self._trailer_checksum:
            algorithms.add(self._trailer_checksum)
        unknown = algorithms - set(ALGORITHMS)
        if unknown:
            raise S3Error(
                S3ErrorCode.InvalidRequest,
                f"Checksum algorithm {sorted(unknown)[0]} is not supported.",
            )
        self._digests = _Digests(
            md5=md5 or self._expected_md5 is not None,
            sha256=sha256 or self._expected_sha256 is not None or self._asked == "sha256",
            algorithms=algorithms,
        )
        self.received = 0
        self.md5_hex: str | None = None
        self.sha256_hex: str | None = None
        self.checksums: dict[str, str] = {}
        self.trailers: dict[str, str] = {}
        self._started = False

    @property
    def client_algorithm(self) -> str | None:
        """The checksum algorithm the client chose: the one whose value it sent (header or
        trailer), else the one it named in ``x-amz-checksum-algorithm``; None for neither."""
        for algorithm in self._expected_checksums:
            return algorithm
        return self._trailer_checksum or self._asked

    def checksum_b64(self, algorithm: str) -> str:
        """The base64 checksum of the whole body (after it was read to its end); sha256 also
        when it was computed only as the payload digest."""
        if algorithm in self.checksums:
            return self.checksums[algorithm]
        if algorithm == "sha256" and self.sha256_hex is not None:
            return base64.b64encode(bytes.fromhex(self.sha256_hex)).decode()
        raise RuntimeError(f"the {algorithm} checksum of this body was not computed")

    def _declared_trailer(self, value: str | None) -> str | None:
        """The algorithm whose checksum arrives in the trailer (``x-amz-trailer``), if any."""
        if value is None or not value.strip():
            return None
        if self._decoder is None or not self._decoder_allows_trailer():
            raise S3Error(
                S3ErrorCode.InvalidRequest,
                "x-amz-trailer needs x-amz-content-sha256 STREAMING-UNSIGNED-PAYLOAD-TRAILER "
                "or STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER.",
            )
        name = value.strip().lower()
        if not name.startswith(HEADER_PREFIX) or name[len(HEADER_PREFIX) :] not in ALGORITHMS:
            raise S3Error(
                S3ErrorCode.InvalidRequest, f"The trailer {value.strip()!r} is not supported."
            )
        return name[len(HEADER_PREFIX) :]

    def _decoder_allows_trailer(self) -> bool:
        return self._decoder is not None and self._decoder.trailer_allowed

    # -- streaming -----------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._started:
            raise RuntimeError("a request body can be read only once")
        self._started = True
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        digests = _Pipeline(self._digests) if self._digests.active else None
        pending: bytes | None = None
        async for piece in self._decoded():
            self.received += len(piece)
            if self.size is not None and self.received > self.size:
                raise S3Error(
                    S3ErrorCode.IncompleteBody,
                    f"The body is longer than the {self.size} bytes the request declared.",
                )
            if digests is not None:
                await digests.feed(piece)
            if pending is not None:
                yield pending
            pending = piece
        if digests is not None:
            await digests.drain()
        self._verify_end()
        if pending is not None:
            yield pending

    async def _decoded(self) -> AsyncIterator[bytes]:
        """Payload pieces, with transport failures turned into IncompleteBody."""
        content = self._request.content
        decoder = self._decoder
        await send_continue(self._request)  # a client sending Expect waits for this
        while True:
            try:
                # one piece as the socket delivered it: read(n) would join the buffered pieces
                # into a new bytes object, a copy of the whole body for nothing
                block, end_of_http_chunk = await content.readchunk()
            except S3Error:
                raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection reset, truncated HTTP chunking...
                raise S3Error(
                    S3ErrorCode.IncompleteBody,
                    "The request body ended before the length the request declared "
                    f"({type(exc).__name__}).",
                ) from None
            if not block:
                if end_of_http_chunk and not content.at_eof():
                    continue  # an HTTP chunk boundary, not the end of the body
                break  # (aiohttp's shared empty body answers (b"", True) once read before)
            if decoder is None:
                yield block
            else:
                for piece in decoder.feed(block):
                    yield piece
        if decoder is not None:
            decoder.finish()
            self.trailers = decoder.trailers

    def _verify_end(self) -> None:
        if self.size is not None and self.received != self.size:
            raise S3Error(
                S3ErrorCode.IncompleteBody,
                f"You did not provide the number of bytes the request declared: received "
                f"{self.received} of {self.size}.",
            )
        d = self._digests
        if d.sha256 is not None:
            self.sha256_hex = d.sha256.hexdigest()
            if self._expected_sha256 is not None and self.sha256_hex != self._expected_sha256:
                raise S3Error(S3ErrorCode.XAmzContentSHA256Mismatch)
        if d.md5 is not None:
            digest = d.md5.digest()
            self.md5_hex = digest.hex()
            if self._expected_md5 is not None and digest != self._expected_md5:
                raise S3Error(
                    S3ErrorCode.BadDigest,
                    "The Content-MD5 you specified did not match what we received.",
                )
        self.checksums = {a: c.b64() for a, c in d.checksums.items()}
        expected = dict(self._expected_checksums)
        if self._trailer_checksum is not None:
            value = self.trailers.get(HEADER_PREFIX + self._trailer_checksum)
            if value is None:
                raise S3Error(
                    S3ErrorCode.MalformedTrailerError,
                    f"The trailer {HEADER_PREFIX}{self._trailer_checksum} announced in "
                    "x-amz-trailer is missing.",
                )
            where = f"trailer {HEADER_PREFIX}{self._trailer_checksum}"
            expected[self._trailer_checksum] = decode_expected(
                self._trailer_checksum, value, where=where
            )
        for algorithm, digest in expected.items():
            if d.checksums[algorithm].digest() != digest:
                raise S3Error(
                    S3ErrorCode.BadDigest,
                    f"The {algorithm.upper()} you specified did not match the calculated checksum.",
                )


def asked_algorithm(headers: CIMultiDictProxy[str]) -> str | None:
    """The algorithm named by ``x-amz-checksum-algorithm`` (or the SDKs'
    ``x-amz-sdk-checksum-algorithm``); InvalidRequest for one S3 does not know."""
    value = headers.get("x-amz-checksum-algorithm") or headers.get("x-amz-sdk-checksum-algorithm")
    if value is None or not value.strip():
        return None
    algorithm = value.strip().lower()
    if algorithm not in ALGORITHMS:
        raise S3Error(
            S3ErrorCode.InvalidRequest,
            f"Checksum algorithm {value.strip()!r} is not supported: use CRC32, CRC32C, "
            "CRC64NVME, SHA1 or SHA256.",
        )
    return algorithm


def request_body(
    request: web.Request,
    auth: AuthContext,
    *,
    md5: bool = True,
    sha256: bool = False,
    checksum_algorithms: tuple[str, ...] = (),
) -> RequestBody:
    """Wrap the request's body; raises S3Error at once for malformed body headers.

    ``md5`` (default on) computes :attr:`RequestBody.md5_hex` for ETags, so a backend need not
    hash again; the ``s3`` backend may pass ``md5=False`` (upstream computes its ETag).
    ``sha256`` forces :attr:`RequestBody.sha256_hex` even when the client did not sign a hash.
    ``checksum_algorithms`` asks for extra checksums (e.g. ``("crc32",)``) to be computed.
    """
    return RequestBody(
        request, auth, md5=md5, sha256=sha256, checksum_algorithms=checksum_algorithms
    )


def require_length(body: RequestBody) -> int:
    """The decoded size of a body that must declare one (PutObject, UploadPart).

    Raises MissingContentLength when neither Content-Length nor x-amz-decoded-content-length
    was sent (e.g. plain ``Transfer-Encoding: chunked``).
    """
    if body.size is None:
        raise S3Error(
            S3ErrorCode.MissingContentLength,
            "You must provide the Content-Length HTTP header (or x-amz-decoded-content-length "
            "with an aws-chunked body).",
        )
    return body.size
