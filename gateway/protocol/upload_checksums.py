"""The checksum of a multipart upload as S3 defines it.

CreateMultipartUpload names an algorithm (``x-amz-checksum-algorithm``) and a type
(``x-amz-checksum-type``): every part then carries that checksum, the complete request repeats
each part's, and the object's checksum is

* COMPOSITE: the algorithm over the concatenated part digests, base64, then ``-N`` (N parts);
  for crc32, crc32c, sha1 and sha256 (the default for them);
* FULL_OBJECT: the CRC of the whole object, combined from the part CRCs and sizes without
  reading the bytes again; for crc32, crc32c and crc64nvme (the only type crc64nvme has).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping

from awscrt import checksums as crt

from gateway.protocol.checksums import ALGORITHMS, Checksum
from gateway.protocol.errors import S3Error, S3ErrorCode

COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"

_COMBINE: dict[str, Callable[[int, int, int], int]] = {
    "crc32": crt.combine_crc32,
    "crc32c": crt.combine_crc32c,
    "crc64nvme": crt.combine_crc64nvme,
}


def upload_checksum(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """``(algorithm, type)`` a CreateMultipartUpload asks for; None when it names none."""
    value = headers.get("x-amz-checksum-algorithm", "").strip()
    kind = headers.get("x-amz-checksum-type", "").strip().upper()
    if not value:
        if kind:
            raise S3Error(
                S3ErrorCode.InvalidRequest,
                "x-amz-checksum-type needs x-amz-checksum-algorithm.",
            )
        return None
    algorithm = value.lower()
    if algorithm not in ALGORITHMS:
        raise S3Error(
            S3ErrorCode.InvalidRequest,
            f"Checksum algorithm {value!r} is not supported: use CRC32, CRC32C, CRC64NVME, "
            "SHA1 or SHA256.",
        )
    if not kind:
        kind = FULL_OBJECT if algorithm == "crc64nvme" else COMPOSITE
    if kind not in (COMPOSITE, FULL_OBJECT):
        raise S3Error(
            S3ErrorCode.InvalidRequest, f"Value for x-amz-checksum-type is invalid: {kind!r}."
        )
    if (kind == FULL_OBJECT and algorithm not in _COMBINE) or (
        kind == COMPOSITE and algorithm == "crc64nvme"
    ):
        raise S3Error(
            S3ErrorCode.InvalidRequest,
            f"The {kind} checksum type cannot be used with the {algorithm} checksum algorithm.",
        )
    return algorithm, kind


def object_checksum(algorithm: str, kind: str, parts: list[tuple[str, int]]) -> str:
    """The completed object's checksum from each part's ``(base64 checksum, size)``."""
    digests = [base64.b64decode(value) for value, _ in parts]
    if kind == COMPOSITE:
        whole = Checksum(algorithm)
        for digest in digests:
            whole.update(digest)
        return f"{whole.b64()}-{len(parts)}"
    combine = _COMBINE[algorithm]
    crc = 0
    for digest, (_, size) in zip(digests, parts, strict=True):
        crc = combine(crc, int.from_bytes(digest, "big"), size)
    return base64.b64encode(crc.to_bytes(ALGORITHMS[algorithm], "big")).decode()
