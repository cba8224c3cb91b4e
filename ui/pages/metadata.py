"""The metadata browser: sessions filtered, sorted and paged on the server, with export links.

Field conditions come as repeatable rows (field, operator, value). Every link the page makes
(pages, sorts, exports) carries them as repeated ``where=FIELD<op>VALUE``, as the JSON API takes
them, and so does the filter form with JavaScript (metadata.js); without it the form sends each
row as ``where_field`` / ``where_op`` / ``where_value``, and the page takes both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiMapping

from policy.forms import Form
from policy.sessions import WHERE_CONDITION, SessionError, parse_where
from policy.store.base import FieldFilter, SessionPage, SessionQuery
from ui.api.common import services
from ui.api.sessions import MAX_CONDITIONS, parse_sort, sort_name
from ui.pages.common import Page, render

PAGE_SIZE = 25
_STATES = ("open", "closed", "expired")
#: the operators a condition row offers, with what the chooser shows
OPERATORS = (("=", "is"), ("~", "contains"), (">=", "at least"), ("<=", "at most"))
#: empty rows offered below the conditions in use, so the page works without JavaScript
SPARE_ROWS = 2


@dataclass
class ConditionRow:
    """One field condition as the page shows it, and what is wrong with it (if anything)."""

    field: str = ""
    op: str = "="
    value: str = ""
    error: str = ""

    @property
    def where(self) -> str:
        return f"{self.field}{self.op}{self.value}"


def _rows_from_query(q: MultiMapping[str]) -> list[ConditionRow]:
    """The conditions asked for: ``where=`` texts (links, API style) then submitted rows."""
    rows: list[ConditionRow] = []
    for text in q.getall("where", []):
        if not text.strip():
            continue
        match = WHERE_CONDITION.fullmatch(text)
        if match is None:
            rows.append(ConditionRow(field=text.strip(), error="use FIELD=VALUE, >=, <= or ~"))
        else:
            rows.append(ConditionRow(match[1], match[2], match[3].strip()))
    fields, ops, values = (q.getall(f"where_{part}", []) for part in ("field", "op", "value"))
    for index, name in enumerate(fields):
        op = ops[index] if index < len(ops) else "="
        value = values[index] if index < len(values) else ""
        row = ConditionRow(name.strip(), op, value.strip())
        if not row.field and not row.value:
            continue  # an unused row
        if op not in dict(OPERATORS):
            row.op, row.error = "=", f"unknown operator {op!r}"
        elif not row.field:
            row.error = "choose a field"
        elif not row.value:
            row.error = "enter a value"
        rows.append(row)
    return rows


def _field_filters(rows: list[ConditionRow], form: Form | None) -> tuple[FieldFilter, ...]:
    """The search conditions of the rows; a row that does not parse gets its error instead."""
    filters: list[FieldFilter] = []
    for row in rows:
        if row.error:
            continue
        try:
            filters.append(parse_where(row.where, form))
        except SessionError as exc:
            # the message names the whole condition; beside its row the field is implied
            row.error = str(exc).removeprefix(f"form {form.name} " if form else "")
    for row in rows[MAX_CONDITIONS:]:
        row.error = row.error or f"at most {MAX_CONDITIONS} conditions"
    return tuple(filters)


def _sort_problem(sort: str, form: Form | None) -> str | None:
    """Why the page cannot sort by ``sort`` (a field of no chosen form), or None."""
    field = parse_sort(sort).get("sort_field")
    if field is None:
        return None
    if form is None:
        return f"Choose a form to sort by its field {field!r}."
    if form.field(field) is None:
        return f"Form {form.name} has no field {field!r} to sort by."
    return None


async def browse_sessions(request: web.Request) -> web.StreamResponse:
    q = request.query
    svc = services(request)
    names = ("form", "owner", "bucket", "state", "created_from", "created_to", "sort")
    filters = {name: q.get(name, "").strip() for name in names}
    if filters["state"] not in ("", *_STATES):
        filters["state"] = ""
    try:
        page_no = max(1, int(q.get("page", "1")))
    except ValueError:
        page_no = 1
    forms = await svc.forms.list()
    form = next((f for f in forms if f.name == filters["form"]), None)
    problems: list[str] = []
    if filters["form"] and form is None:
        problems.append(f"There is no form {filters['form']}.")
    rows = _rows_from_query(q)
    fields = _field_filters(rows, form)
    bad_rows = sum(1 for row in rows if row.error)
    if bad_rows:
        problems.append(
            "Fix the condition marked below." if bad_rows == 1 else
            f"Fix the {bad_rows} conditions marked below."
        )  # fmt: skip
    sort = filters["sort"] or "-created"
    # not a reason to show nothing (e.g. the form was changed under a field sort): say so and
    # sort newest first instead
    sort_problem = _sort_problem(sort, form)
    if sort_problem is not None:
        sort = filters["sort"] = "-created"
    result = SessionPage([], 0)
    if not problems:
        try:
            query = SessionQuery(
                form_name=filters["form"] or None,
                owner=filters["owner"] or None,
                bucket=filters["bucket"] or None,
                state=filters["state"] or None,  # type: ignore[arg-type]  # checked above
                created_from=_day(filters["created_from"], end=False),
                created_to=_day(filters["created_to"], end=True),
                fields=fields,
                **parse_sort(sort),
                limit=PAGE_SIZE,
                offset=(page_no - 1) * PAGE_SIZE,
            )
            result = await svc.sessions.search(query)
        except (ValueError, SessionError) as exc:
            problems.append(str(exc))
    if sort_problem is not None:
        problems.append(sort_problem)
    pages = max(1, math.ceil(result.total / PAGE_SIZE))
    active: dict[str, Any] = {k: v for k, v in filters.items() if v}
    wheres = [row.where for row in rows if not row.error]
    if wheres:
        active["where"] = wheres

    def link(params: dict[str, Any]) -> str:
        return "?" + urlencode(params, doseq=True)

    def page_url(n: int) -> str:
        return link({**active, "page": n})

    def sort_url(name: str) -> str:
        # a second click on the sorted column flips the order; a new column starts descending
        flipped = name if sort == f"-{name}" else f"-{name}"
        return link({**active, "sort": flipped})

    def export_url(fmt: str) -> str:
        wanted = {k: v for k, v in active.items() if k not in ("created_from", "created_to")}
        for bound in ("created_from", "created_to"):
            if (day := _day(filters[bound], end=bound == "created_to")) is not None:
                wanted[bound] = day.isoformat().replace("+00:00", "Z")
        return "/_minimo/api/v1/sessions/export?" + urlencode({**wanted, "format": fmt}, doseq=True)

    spare = max(SPARE_ROWS, 3 - len(rows))
    return await render(
        request,
        "sessions.html",
        {
            "filters": filters,
            "states": _STATES,
            "forms": forms,
            "form": form,
            "form_fields": {f.name: [[x.name, x.label or x.name] for x in f.fields] for f in forms},
            "all_fields": sorted({x.name for f in forms for x in f.fields}),
            "rows": [*rows, *(ConditionRow() for _ in range(spare))],
            "operators": OPERATORS,
            "problems": problems,
            "sessions": result.sessions,
            "total": result.total,
            "page": page_no,
            "pages": pages,
            "sort": sort,
            "sort_name": sort_name,
            "page_url": page_url,
            "sort_url": sort_url,
            "export_url": export_url,
            "now": datetime.now(UTC),
            "shown": _shown,
        },
    )


def _day(text: str, *, end: bool) -> datetime | None:
    """A YYYY-MM-DD bound as an instant (UTC): the day's start, or its last moment when ``end``."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return day + timedelta(days=1, microseconds=-1) if end else day


def _shown(value: Any) -> str:
    """A stored value as text for a table cell (lists joined, booleans as yes/no)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


ROUTES = [Page("GET", "/sessions", browse_sessions, "reader", "sessions")]
