"""The ``Range`` request header as S3 applies it.

S3 serves a single byte range only. A header it cannot parse (wrong unit, several ranges, a
reversed range, garbage) is ignored and the whole object is served; a well-formed range that
starts at or past the end of the object is refused with ``416 InvalidRange``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.protocol.errors import S3Error, S3ErrorCode


@dataclass(slots=True)
class ByteRange:
    """A resolved, satisfiable byte range: ``start``..``end`` (inclusive) of ``total`` bytes."""

    start: int
    end: int
    total: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def invalid_range(header: str, size: int) -> S3Error:
    """The 416 answer S3 gives for an unsatisfiable range (with the object's real size)."""
    return S3Error(
        S3ErrorCode.InvalidRange,
        f"The requested range {header!r} is not satisfiable: the object is {size} bytes long.",
        extra={"RangeRequested": header, "ActualObjectSize": str(size)},
        headers={"Content-Range": f"bytes */{size}"},
    )


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """Resolve ``header`` against an object of ``size`` bytes.

    Returns None when the whole object should be served (no header, or one S3 ignores),
    a :class:`ByteRange` otherwise; raises InvalidRange when the range is unsatisfiable.
    """
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None  # multi-range, other units, garbage: S3 serves the whole object
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:
        # suffix range: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise invalid_range(header, size)
        return ByteRange(max(0, size - suffix), size - 1, size)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # syntactically invalid per RFC 9110: ignored, like S3 does
    if start >= size:
        raise invalid_range(header, size)
    return ByteRange(start, min(end, size - 1), size)


_COPY_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")


def parse_copy_range(header: str) -> tuple[int, int]:
    """``x-amz-copy-source-range`` as (first, last), inclusive. Unlike ``Range`` nothing is
    ignored: S3 takes only ``bytes=FIRST-LAST`` with FIRST <= LAST (no open or suffix ranges,
    no lists), and anything else is 400 InvalidArgument, so a typo never copies the whole
    source."""
    match = _COPY_RANGE.match(header.strip())
    if match is None or int(match.group(1)) > int(match.group(2)):
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            f"Invalid x-amz-copy-source-range {header!r}: it must be bytes=FIRST-LAST, the "
            "zero-based offsets of the first and last bytes to copy, with FIRST <= LAST.",
            extra={"ArgumentName": "x-amz-copy-source-range", "ArgumentValue": header},
        )
    return int(match.group(1)), int(match.group(2))


def copy_range(header: str, size: int) -> ByteRange:
    """``header`` (see :func:`parse_copy_range`) within a source of ``size`` bytes; a range
    reaching past its end is 416 InvalidRange, never a shorter copy."""
    first, last = parse_copy_range(header)
    if last >= size:
        raise invalid_range(header, size)
    return ByteRange(first, last, size)
