"""Conditional request headers evaluated the way S3 evaluates them.

Order and precedence (RFC 7232 section 6, as S3 implements it):

1. ``If-Match`` fails -> 412. When present and true, ``If-Unmodified-Since`` is not consulted.
2. ``If-Unmodified-Since`` fails -> 412.
3. ``If-None-Match`` matches -> 304 for GET/HEAD (412 for a copy source).
   When present, ``If-Modified-Since`` is not consulted.
4. ``If-Modified-Since`` not modified -> 304 (412 for a copy source).

HTTP dates have one-second resolution, so the object's time is truncated to whole seconds
before comparing; otherwise an object would always look "modified since" its own Last-Modified.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gateway.protocol.errors import S3Error, S3ErrorCode


@dataclass(slots=True)
class Conditions:
    """Conditional request headers (RFC 7232 as S3 applies them)."""

    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: datetime | None = None
    if_unmodified_since: datetime | None = None

    def __bool__(self) -> bool:
        return any(
            v is not None
            for v in (
                self.if_match,
                self.if_none_match,
                self.if_modified_since,
                self.if_unmodified_since,
            )
        )


class Validators(Protocol):
    """What conditions are judged against: an object's key, ETag and time (a backend's
    ``ObjectInfo`` has them; the protocol does not need to know the backends)."""

    @property
    def key(self) -> str: ...

    @property
    def etag(self) -> str: ...

    @property
    def last_modified(self) -> datetime: ...


def _etags(header: str) -> list[str]:
    """The entity tags of an If-Match / If-None-Match list, without quotes or weak prefix."""
    tags = []
    for raw in header.split(","):
        tag = raw.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tags.append(tag.strip('"'))
    return [t for t in tags if t]


def etag_matches(header: str, etag: str) -> bool:
    """True when ``header`` (``*`` or a list of tags) names ``etag`` (given without quotes)."""
    tags = _etags(header)
    return "*" in tags or etag.strip('"') in tags


def _seconds(when: datetime) -> datetime:
    return when.replace(microsecond=0)


def check_conditions(
    info: Validators, conditions: Conditions | None, *, copy_source: bool = False
) -> None:
    """Raise PreconditionFailed or NotModified when ``conditions`` do not hold for ``info``.

    ``copy_source`` is for ``x-amz-copy-source-if-*``: there S3 answers 412 where a GET
    would answer 304.
    """
    if not conditions:
        return
    modified = _seconds(info.last_modified)
    if conditions.if_match is not None:
        if not etag_matches(conditions.if_match, info.etag):
            raise _failed(info, "If-Match")
    elif conditions.if_unmodified_since is not None and modified > _seconds(
        conditions.if_unmodified_since
    ):
        raise _failed(info, "If-Unmodified-Since")
    if conditions.if_none_match is not None:
        if etag_matches(conditions.if_none_match, info.etag):
            raise _not_modified(info, "If-None-Match", copy_source)
    elif conditions.if_modified_since is not None and modified <= _seconds(
        conditions.if_modified_since
    ):
        raise _not_modified(info, "If-Modified-Since", copy_source)


def _failed(info: Validators, header: str) -> S3Error:
    return S3Error(
        S3ErrorCode.PreconditionFailed,
        f'The {header} condition does not hold for {info.key!r} (ETag "{info.etag}").',
        extra={"Condition": header},
    )


def _not_modified(info: Validators, header: str, copy_source: bool) -> S3Error:
    if copy_source:
        return _failed(info, f"x-amz-copy-source-{header.lower()}")
    # a 304 carries the validators so caches can refresh their entry
    return S3Error(
        S3ErrorCode.NotModified,
        f"{info.key!r} was not modified ({header}).",
        headers={"ETag": f'"{info.etag}"'},
    )
