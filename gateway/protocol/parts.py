"""Parts of a completed object as S3 addresses them: ``partNumber=N`` on GET/HEAD and the
``ObjectParts`` of GetObjectAttributes.

An object not made by CompleteMultipartUpload has one part, the whole object. Part sizes are
kept as runs, ``[[size, count], ...]``: parts are almost always of one size but the last, so a
10,000-part object needs two runs where a plain list would need 10,000 numbers.
"""

from __future__ import annotations

from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.protocol.ranges import ByteRange

MAX_PART_NUMBER = 10000


def parse_part_number(raw: str) -> int:
    """The ``partNumber`` query parameter: an integer 1..10000, else InvalidArgument."""
    number = int(raw) if raw.isdigit() else 0
    if not 1 <= number <= MAX_PART_NUMBER:
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive.",
            extra={"ArgumentName": "partNumber", "ArgumentValue": raw},
        )
    return number


def parts_of_etag(etag: str) -> int | None:
    """A multipart ETag ends in ``-N``, N its parts (an upstream's HEAD may say no more)."""
    _, dash, count = etag.strip('"').rpartition("-")
    return int(count) if dash and count.isdigit() else None


def size_runs(sizes: list[int]) -> list[list[int]]:
    """``[5, 5, 5, 2]`` -> ``[[5, 3], [2, 1]]``."""
    runs: list[list[int]] = []
    for size in sizes:
        if runs and runs[-1][0] == size:
            runs[-1][1] += 1
        else:
            runs.append([size, 1])
    return runs


def no_such_part(number: int) -> S3Error:
    return S3Error(
        S3ErrorCode.InvalidPartNumber,
        f"The requested partnumber is not satisfiable: the object has no part {number}.",
        extra={"PartNumberRequested": str(number)},
    )


def part_span(runs: list[list[int]] | None, number: int, total: int) -> ByteRange | None:
    """The bytes of part ``number`` (None: an empty part, which no byte range can name).

    ``runs`` None means a single-part object: part 1 is the whole of it."""
    if runs is None:
        if number != 1:
            raise no_such_part(number)
        return ByteRange(0, total - 1, total) if total else None
    start, left = 0, number
    for size, count in runs:
        if left <= count:
            start += (left - 1) * size
            return ByteRange(start, start + size - 1, total) if size else None
        start += size * count
        left -= count
    raise no_such_part(number)
