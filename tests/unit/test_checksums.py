"""Checksums: the published check values, incremental updates, and malformed client values."""

from __future__ import annotations

import base64
import hashlib

import pytest

from gateway.protocol.checksums import (
    Checksum,
    algorithm_of_header,
    checksum_b64,
    decode_content_md5,
    decode_expected,
    header_checksums,
)
from gateway.protocol.errors import S3Error

CHECK = b"123456789"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        # the standard "check" values of each CRC over b"123456789"
        ("crc32", 0xCBF43926.to_bytes(4, "big")),
        ("crc32c", 0xE3069283.to_bytes(4, "big")),
        ("crc64nvme", 0xAE8B14860A799888.to_bytes(8, "big")),
        ("sha1", hashlib.sha1(CHECK).digest()),
        ("sha256", hashlib.sha256(CHECK).digest()),
    ],
)
def test_check_values(algorithm: str, expected: bytes) -> None:
    assert checksum_b64(algorithm, CHECK) == base64.b64encode(expected).decode()


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"])
def test_incremental_equals_one_shot(algorithm: str) -> None:
    data = bytes(range(256)) * 1000
    c = Checksum(algorithm)
    for i in range(0, len(data), 4093):
        c.update(data[i : i + 4093])
    assert c.b64() == checksum_b64(algorithm, data)


def test_empty_crc_is_zero() -> None:
    assert checksum_b64("crc32", b"") == "AAAAAA=="


def test_unknown_algorithm() -> None:
    with pytest.raises(S3Error) as exc:
        Checksum("md4")
    assert exc.value.code == "InvalidRequest"


def test_algorithm_of_header() -> None:
    assert algorithm_of_header("X-Amz-Checksum-CRC32C") == "crc32c"
    assert algorithm_of_header("x-amz-checksum-type") is None
    assert algorithm_of_header("x-amz-checksum-algorithm") is None
    assert algorithm_of_header("content-md5") is None


@pytest.mark.parametrize("value", ["", "AAAA", "not base64!", "AAAAAAAA", "AAAAAA=="[:-1]])
def test_malformed_expected_value(value: str) -> None:
    with pytest.raises(S3Error) as exc:
        decode_expected("crc32", value, where="header x-amz-checksum-crc32")
    assert exc.value.code == "InvalidRequest"
    assert "x-amz-checksum-crc32" in exc.value.message


def test_header_checksums() -> None:
    good = checksum_b64("sha256", b"x")
    assert header_checksums({"X-Amz-Checksum-Sha256": good, "Content-Type": "a"}) == {
        "sha256": base64.b64decode(good)
    }
    with pytest.raises(S3Error) as exc:
        header_checksums({"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-crc32c": "AAAAAA=="})
    assert exc.value.code == "InvalidRequest"
    with pytest.raises(S3Error):
        header_checksums({"x-amz-checksum-md5": "AAAAAA=="})


@pytest.mark.parametrize("value", ["", "nope", base64.b64encode(b"short").decode(), "====" * 6])
def test_malformed_content_md5_is_invalid_digest(value: str) -> None:
    with pytest.raises(S3Error) as exc:
        decode_content_md5(value)
    assert exc.value.code == "InvalidDigest"


def test_content_md5_decodes() -> None:
    digest = hashlib.md5(b"abc").digest()
    assert decode_content_md5(base64.b64encode(digest).decode()) == digest
