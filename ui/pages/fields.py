"""Form fields as HTML inputs and back: values for inputs, values from a POSTed form.

Shared by every page that renders a form's fields with ``_fields.html`` (new session, the admin's
form preview, linking existing data). What differs by field type (which input, how its value is
posted and shown) is each type's business in :mod:`policy.field_types`.
"""

from __future__ import annotations

from typing import Any

from multidict import MultiDictProxy

from policy.forms import Field, Form, FormValidationError


def input_value(field: Field, value: Any) -> Any:
    """A stored or default value as the HTML input wants it."""
    return "" if value is None else field.field_type.input_value(value)


def html_pattern(pattern: str | None) -> str | None:
    # JSON Schema *searches* a pattern; HTML anchors it to the whole value. Wrapping keeps both
    # meaning the same (^ and $ inside still assert the ends of the input in ECMA 262).
    return None if pattern is None else f"[\\s\\S]*(?:{pattern})[\\s\\S]*"


def values_from_post(form: Form, data: MultiDictProxy[Any]) -> dict[str, Any]:
    """The raw values (strings, as validate_values coerces them) and, for the page, lists."""
    # the browser's UTC offset (static/minimo.js), for inputs that carry no zone
    offset = str(data.get("_tz", ""))
    return {f.name: f.field_type.posted_value(data, f.name, offset) for f in form.fields}


def display_values(form: Form, values: dict[str, Any]) -> dict[str, Any]:
    """Submitted values as they go back into the inputs when the page is shown again."""
    return {f.name: f.field_type.shown_value(values.get(f.name)) for f in form.fields}


def split_errors(form: Form, exc: FormValidationError) -> tuple[dict[str, list[str]], list[str]]:
    """A validation failure as (errors shown beside each field, messages for the whole form)."""
    names = {f.name for f in form.fields}
    beside = {k: v for k, v in exc.errors.items() if k in names}
    general = [m for k, v in exc.errors.items() if k not in names for m in v]
    return beside, general
