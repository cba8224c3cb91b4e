"""The pure helpers every backend and handler shares: Range parsing and conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.backends.base import ByteRange, Conditions, ObjectInfo
from gateway.protocol.conditions import check_conditions, etag_matches
from gateway.protocol.errors import S3Error
from gateway.protocol.ranges import parse_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("", 10, None),
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=0-9", 10, (0, 9)),
        ("bytes=3-", 10, (3, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-30", 10, (0, 9)),
        ("bytes=5-500", 10, (5, 9)),
        ("Bytes = 1 - 2", 10, (1, 2)),
        ("bytes=0-1,4-5", 10, None),  # several ranges: S3 serves the whole object
        ("bytes=5-2", 10, None),  # reversed: invalid, ignored
        ("bytes=-", 10, None),
        ("bytes=a-b", 10, None),
        ("items=0-1", 10, None),
        ("bytes=0x1-2", 10, None),
    ],
)
def test_parse_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    got = parse_range(header, size)
    if expected is None:
        assert got is None
    else:
        assert got == ByteRange(expected[0], expected[1], size)
        assert got.length == expected[1] - expected[0] + 1


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=10-", 10), ("bytes=10-20", 10), ("bytes=-0", 10), ("bytes=0-", 0), ("bytes=-5", 0)],
)
def test_unsatisfiable_range(header: str, size: int) -> None:
    with pytest.raises(S3Error) as caught:
        parse_range(header, size)
    err = caught.value
    assert (err.code, err.status) == ("InvalidRange", 416)
    assert err.extra["ActualObjectSize"] == str(size)
    assert err.extra["RangeRequested"] == header
    assert err.headers["Content-Range"] == f"bytes */{size}"


NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
INFO = ObjectInfo(key="k", size=1, etag="abc", last_modified=NOW)


def test_etag_matching() -> None:
    assert etag_matches('"abc"', "abc")
    assert etag_matches("abc", "abc")
    assert etag_matches('W/"abc"', "abc")
    assert etag_matches('"x", "abc"', "abc")
    assert etag_matches("*", "abc")
    assert not etag_matches('"abcd"', "abc")


def test_no_conditions_pass() -> None:
    check_conditions(INFO, None)
    check_conditions(INFO, Conditions())


def test_http_dates_compare_by_whole_seconds() -> None:
    # Last-Modified is sent without fractions; echoing it back must count as "not modified"
    same_second = NOW.replace(microsecond=0)
    with pytest.raises(S3Error) as caught:
        check_conditions(INFO, Conditions(if_modified_since=same_second))
    assert caught.value.code == "NotModified" and caught.value.status == 304
    assert caught.value.headers["ETag"] == '"abc"'
    check_conditions(INFO, Conditions(if_unmodified_since=same_second))


def test_copy_source_answers_412_not_304() -> None:
    for cond in (
        Conditions(if_none_match='"abc"'),
        Conditions(if_modified_since=NOW + timedelta(hours=1)),
    ):
        with pytest.raises(S3Error) as caught:
            check_conditions(INFO, cond, copy_source=True)
        assert caught.value.code == "PreconditionFailed"


def test_precedence() -> None:
    past = NOW - timedelta(days=1)
    # If-Match true makes If-Unmodified-Since irrelevant
    check_conditions(INFO, Conditions(if_match='"abc"', if_unmodified_since=past))
    # If-None-Match false (no match) makes If-Modified-Since irrelevant
    check_conditions(INFO, Conditions(if_none_match='"zzz"', if_modified_since=NOW))
    # a failed If-Match is reported before a matching If-None-Match
    with pytest.raises(S3Error) as caught:
        check_conditions(INFO, Conditions(if_match='"zzz"', if_none_match='"abc"'))
    assert caught.value.code == "PreconditionFailed"
