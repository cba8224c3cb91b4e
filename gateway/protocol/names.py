"""Bucket and key validation, shared by every operation on every backend.

The rules are S3's, plus one of ours: keys with ``.`` or ``..`` path segments are refused,
because on a filesystem backend they would name something outside the bucket.
"""

from __future__ import annotations

import re

from gateway.protocol.errors import S3Error, S3ErrorCode

#: S3's limit on a key: 1024 bytes of UTF-8
MAX_KEY_BYTES = 1024

_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_IP_LIKE = re.compile(r"\d{1,3}(\.\d{1,3}){3}\Z")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3")


def _bad_bucket(name: str, why: str) -> S3Error:
    return S3Error(
        S3ErrorCode.InvalidBucketName,
        f"The bucket name {name!r} is not valid: {why}.",
        resource=f"/{name}",
        extra={"BucketName": name},
    )


def validate_bucket(name: str) -> None:
    """Raise InvalidBucketName unless ``name`` follows S3's bucket naming rules."""
    if _BUCKET_CHARS.match(name) is None:
        if not 3 <= len(name) <= 63:
            raise _bad_bucket(name, "bucket names are 3 to 63 characters long")
        if name[0] in "._-" or name[-1] in ".-":
            raise _bad_bucket(name, "bucket names start and end with a lowercase letter or digit")
        raise _bad_bucket(
            name, "bucket names use only lowercase letters, digits, dots (.) and hyphens (-)"
        )
    if ".." in name or ".-" in name or "-." in name:
        raise _bad_bucket(name, "dots may not be adjacent to another dot or a hyphen")
    if _IP_LIKE.match(name):
        raise _bad_bucket(name, "bucket names must not look like an IP address")
    if name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        raise _bad_bucket(name, "this prefix or suffix is reserved by S3")


def validate_key(bucket: str, key: str) -> None:
    """Raise KeyTooLongError or InvalidObjectName for keys no backend may store."""
    if not key:
        raise S3Error(
            S3ErrorCode.InvalidObjectName, "Object keys must not be empty.", resource=f"/{bucket}/"
        )
    # Fast path: short ASCII keys cannot exceed the byte limit.
    if len(key) > MAX_KEY_BYTES // 4 and len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise S3Error(
            S3ErrorCode.KeyTooLongError,
            f"Your key is too long: keys are at most {MAX_KEY_BYTES} bytes of UTF-8.",
            resource=f"/{bucket}",
        )
    if "\x00" in key:
        raise S3Error(
            S3ErrorCode.InvalidObjectName,
            "Object keys must not contain the NUL character.",
            resource=f"/{bucket}",
        )
    if "." in key and _has_dot_segment(key):
        raise S3Error(
            S3ErrorCode.InvalidObjectName,
            "Keys with '.' or '..' path segments are refused because they would escape the "
            "bucket on a filesystem. Rename the object without such segments.",
            resource=f"/{bucket}/{key}",
        )


def _has_dot_segment(key: str) -> bool:
    return any(part in (".", "..") for part in key.split("/"))
