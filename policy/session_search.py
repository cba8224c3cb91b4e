"""What the metadata browser adds to a session search: free text over the values, and facets
(how many of the matching sessions have each value of a choice or boolean field).

Both are built from plain :class:`SessionQuery` conditions, so every metadata store answers
them with the search it already has: free text is ``any_of`` a ``contains`` on each field the
forms have, a facet count is the query's total with one more ``eq`` condition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, replace

from policy.forms import Field, Form
from policy.store.base import FieldFilter, FieldValue, MetadataStore, SessionQuery

#: the most fields a free-text search looks in: each is one more test per candidate session
MAX_TEXT_FIELDS = 50
#: the most values one facet counts (one count query each); a longer choice list shows these
MAX_FACET_VALUES = 25


def free_text(text: str, forms: Iterable[Form]) -> tuple[FieldFilter, ...]:
    """The ``any_of`` conditions of a free-text search: ``text`` within any field's value (case
    insensitive; a list value matches when an element does). Empty text searches nothing."""
    text = text.strip()
    if not text:
        return ()
    names = sorted({f.name for form in forms for f in form.fields})[:MAX_TEXT_FIELDS]
    return tuple(FieldFilter(name, "contains", text) for name in names)


@dataclass(frozen=True, slots=True)
class FacetValue:
    value: FieldValue
    count: int


@dataclass(frozen=True, slots=True)
class Facet:
    """One choice or boolean field, with how many matching sessions have each of its values."""

    field: Field
    values: tuple[FacetValue, ...]


async def facets(store: MetadataStore, query: SessionQuery, form: Form) -> list[Facet]:
    """The facets of ``form`` over the sessions ``query`` matches: one per field whose type has
    facet values, each value counted with the query's other conditions in force."""
    wanted = [
        (f, f.field_type.facet_values(f)[:MAX_FACET_VALUES])
        for f in form.fields
        if f.field_type.facet_values(f)
    ]

    async def count(f: Field, value: FieldValue) -> int:
        narrowed = replace(
            query,
            fields=(*query.fields, FieldFilter(f.name, "eq", value)),
            limit=1,
            offset=0,
            cursor=None,
            count=True,
        )
        return (await store.search_sessions(narrowed)).total

    counted = await asyncio.gather(*(count(f, v) for f, values in wanted for v in values))
    result, at = [], 0
    for f, values in wanted:
        numbers = counted[at : at + len(values)]
        at += len(values)
        result.append(
            Facet(f, tuple(FacetValue(v, n) for v, n in zip(values, numbers, strict=True)))
        )
    return result
