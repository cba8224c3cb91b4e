"""Payload checksums clients send: ``x-amz-checksum-*`` (header or trailer) and ``Content-MD5``.

Every algorithm is fed incrementally while the body streams in; the expected value is compared
once the stream ends. CRCs come from ``awscrt.checksums`` (hardware accelerated), digests from
hashlib. S3 transmits every checksum as the base64 of its big-endian bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping

from awscrt import checksums as crt

from gateway.protocol.errors import S3Error, S3ErrorCode

#: algorithm name (as in ``x-amz-checksum-<name>``) -> digest length in bytes
ALGORITHMS: dict[str, int] = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}
HEADER_PREFIX = "x-amz-checksum-"

_CRCS: dict[str, Callable[[bytes, int], int]] = {
    "crc32": crt.crc32,
    "crc32c": crt.crc32c,
    "crc64nvme": crt.crc64nvme,
}


class Checksum:
    """One running checksum; ``update`` with each piece, ``b64`` at the end."""

    def __init__(self, algorithm: str) -> None:
        if algorithm not in ALGORITHMS:
            raise S3Error(
                S3ErrorCode.InvalidRequest, f"Checksum algorithm {algorithm!r} is not supported."
            )
        self.algorithm = algorithm
        self._crc_fn = _CRCS.get(algorithm)
        self._crc = 0
        self._hash = None if self._crc_fn else hashlib.new(algorithm)

    def update(self, data: bytes) -> None:
        if self._crc_fn is not None:
            self._crc = self._crc_fn(data, self._crc)
        else:
            self._hash.update(data)  # type: ignore[union-attr]

    def digest(self) -> bytes:
        if self._hash is not None:
            return self._hash.digest()
        return self._crc.to_bytes(ALGORITHMS[self.algorithm], "big")

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode()


def checksum_b64(algorithm: str, data: bytes) -> str:
    """The base64 checksum of ``data`` in one go (tests and small bodies)."""
    c = Checksum(algorithm)
    c.update(data)
    return c.b64()


def algorithm_of_header(name: str) -> str | None:
    """``x-amz-checksum-crc32`` -> ``crc32``; None for any other header name."""
    name = name.lower()
    if not name.startswith(HEADER_PREFIX):
        return None
    algorithm = name[len(HEADER_PREFIX) :]
    # x-amz-checksum-type / -algorithm are not values; unknown names are refused by the caller
    return algorithm if algorithm not in ("type", "algorithm", "mode") else None


def decode_expected(algorithm: str, value: str, *, where: str) -> bytes:
    """Decode a client's base64 checksum, refusing values of the wrong shape."""
    if algorithm not in ALGORITHMS:
        raise S3Error(
            S3ErrorCode.InvalidRequest, f"Checksum algorithm in {where} is not supported."
        )
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != ALGORITHMS[algorithm]:
        raise S3Error(S3ErrorCode.InvalidRequest, f"Value for {where} is invalid: {value!r}.")
    return raw


def decode_content_md5(value: str) -> bytes:
    """The 16 bytes a ``Content-MD5`` header stands for; InvalidDigest when malformed."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise S3Error(
            S3ErrorCode.InvalidDigest,
            "The Content-MD5 you specified is not a base64-encoded 128-bit MD5.",
        )
    return raw


def header_checksums(headers: Mapping[str, str]) -> dict[str, bytes]:
    """Expected checksums sent as headers: ``{algorithm: digest bytes}`` (at most one)."""
    found: dict[str, bytes] = {}
    for name, value in headers.items():
        algorithm = algorithm_of_header(name)
        if algorithm is None:
            continue
        found[algorithm] = decode_expected(algorithm, value, where=f"header {name.lower()}")
    if len(found) > 1:
        raise S3Error(S3ErrorCode.InvalidRequest, "Expecting a single x-amz-checksum- header.")
    return found
