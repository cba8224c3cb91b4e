"""How sessions are searched and listings are paged: :class:`SessionQuery` with its field
conditions (:class:`FieldFilter`), the :class:`SessionPage` it answers, the page limit and the
opaque cursors a backend hands out."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from policy.store.records import SessionRecord

#: what a search may ask for: "open" excludes expired sessions, "expired" = open but past expiry
SessionStateFilter = Literal["open", "closed", "expired"]

#: the largest page any listing returns at once
MAX_PAGE = 1000

FieldOp = Literal["eq", "min", "max", "contains"]
#: the fixed columns a session search may sort by (``sort_field`` sorts by a field of values)
SortColumn = Literal["created", "owner", "bucket", "form_name"]
SORT_COLUMNS: tuple[SortColumn, ...] = ("created", "owner", "bucket", "form_name")
FieldValue = str | int | float | bool

#: field names a query may name (forms allow ``[a-z][a-z0-9_]*``); anything else could escape
#: the JSON path (sqlite) or the dotted path (mongo) it is spliced into
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def check_field_name(name: str) -> str:
    if not _FIELD_NAME.fullmatch(name):
        raise ValueError(f"invalid field name {name!r}")
    return name


@dataclass(frozen=True, slots=True)
class FieldFilter:
    """One condition on a session's ``values``.

    - ``eq``: equal (str, number or bool; numbers compare numerically, 5 == 5.0);
    - ``min`` / ``max``: inclusive bound on a number, or on text (ISO dates and datetimes
      compare as text, which is time order for the forms' normalised UTC form);
    - ``contains``: case-insensitive substring of a text value.

    A list value (multichoice) matches when any of its elements does. Type-mismatched values
    never match (a text "7" is not >= 5).
    """

    field: str
    op: FieldOp
    value: FieldValue

    def __post_init__(self) -> None:
        check_field_name(self.field)
        if self.op not in ("eq", "min", "max", "contains"):
            raise ValueError(f"unknown field operator {self.op!r}")
        if self.op == "contains" and not isinstance(self.value, str):
            raise ValueError("'contains' needs a text value")
        if self.op in ("min", "max") and isinstance(self.value, bool):
            raise ValueError(f"{self.op!r} needs a number or text value")
        if not isinstance(self.value, str | int | float):
            raise ValueError(f"unsupported filter value {self.value!r}")


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """A session search. All given conditions must hold; bounds are inclusive."""

    form_name: str | None = None
    owner: str | None = None
    bucket: str | None = None
    state: SessionStateFilter | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    fields: tuple[FieldFilter, ...] = ()
    #: at least one of these must hold (when any are given): a free-text search is a
    #: ``contains`` on each text field a form has
    any_of: tuple[FieldFilter, ...] = ()
    #: a field of ``values`` to sort by (ties: newest first); None sorts by ``sort_column``
    sort_field: str | None = None
    #: the column to sort by when ``sort_field`` is None; ties of owner, bucket or form are
    #: broken newest first (created, then id, descending) whichever way the column runs
    sort_column: SortColumn = "created"
    descending: bool = True
    limit: int = 50
    #: skip this many matches (for "page N" links); ignored when ``cursor`` is given
    offset: int = 0
    #: the ``next_cursor`` of the previous page, for "more" (stable while sessions are added)
    cursor: str | None = None
    #: the time "open"/"expired" are judged at (default: the time of the search)
    now: datetime | None = None
    #: False skips counting all matches (``SessionPage.total`` is then -1): for the later pages
    #: of a walk that already knows the total, since counting reads every match each time
    count: bool = True

    def __post_init__(self) -> None:
        if self.sort_field is not None:
            check_field_name(self.sort_field)
        if self.sort_column not in SORT_COLUMNS:
            raise ValueError(f"cannot sort sessions by {self.sort_column!r}")
        if self.state not in (None, "open", "closed", "expired"):
            raise ValueError(f"unknown session state {self.state!r}")
        if not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
        if self.offset < 0:
            raise ValueError("offset must not be negative")


@dataclass(frozen=True, slots=True)
class SessionPage:
    sessions: list[SessionRecord]
    #: how many sessions match the query in all (not just this page); -1 when not counted
    total: int
    #: pass as ``SessionQuery.cursor`` for the next page; None on the last page
    next_cursor: str | None = None


def encode_cursor(data: object) -> str:
    """An opaque, URL-safe page cursor carrying ``data`` (JSON-able)."""
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    """The data of a cursor from :func:`encode_cursor`; ValueError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise ValueError("invalid page cursor") from exc
