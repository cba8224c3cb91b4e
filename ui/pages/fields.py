"""Form fields as HTML inputs and back: values for inputs, values from a POSTed form.

Shared by every page that renders a form's fields with ``_fields.html`` (new session, the admin's
form preview, linking existing data).
"""

from __future__ import annotations

import re
from typing import Any

from multidict import MultiDictProxy

from policy.forms import Field, Form, FormValidationError

# a datetime-local value: no offset (browsers send "2026-11-25T14:30" or with seconds)
_NAIVE_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
_OFFSET = re.compile(r"[+-]\d{2}:\d{2}")


def input_value(field: Field, value: Any) -> Any:
    """A stored or default value as the HTML input wants it."""
    if value is None:
        return ""
    if field.type == "datetime" and isinstance(value, str):
        # stored as RFC 3339 UTC; datetime-local takes "YYYY-MM-DDTHH:MM[:SS]" with no zone
        return value.removesuffix("Z")[:19]
    return value


def html_pattern(pattern: str | None) -> str | None:
    # JSON Schema *searches* a pattern; HTML anchors it to the whole value. Wrapping keeps both
    # meaning the same (^ and $ inside still assert the ends of the input in ECMA 262).
    return None if pattern is None else f"[\\s\\S]*(?:{pattern})[\\s\\S]*"


def values_from_post(form: Form, data: MultiDictProxy[Any]) -> dict[str, Any]:
    """The raw values (strings, as validate_values coerces them) and, for the page, lists."""
    offset = str(data.get("_tz", ""))
    values: dict[str, Any] = {}
    for field in form.fields:
        if field.type == "multichoice":
            values[field.name] = [str(v) for v in data.getall(field.name, [])]
        elif field.type == "boolean":
            # An unticked checkbox sends nothing: that is "false", not "absent".
            values[field.name] = "true" if data.get(field.name) else "false"
        else:
            raw = str(data.get(field.name, ""))
            if field.type == "datetime" and _NAIVE_LOCAL.fullmatch(raw.strip()):
                # datetime-local has no zone; static/forms.js sends the browser's offset, and
                # without JavaScript the label says the time is UTC.
                raw = raw.strip() + (offset if _OFFSET.fullmatch(offset) else "Z")
            values[field.name] = raw
    return values


def display_values(form: Form, values: dict[str, Any]) -> dict[str, Any]:
    shown = {}
    for field in form.fields:
        value = values.get(field.name)
        if (
            field.type == "datetime"
            and isinstance(value, str)
            and not _NAIVE_LOCAL.fullmatch(value)
        ):
            # what the user typed (with the offset we added) back into the datetime-local input
            value = value[:19]
        shown[field.name] = value
    return shown


def split_errors(form: Form, exc: FormValidationError) -> tuple[dict[str, list[str]], list[str]]:
    """A validation failure as (errors shown beside each field, messages for the whole form)."""
    names = {f.name for f in form.fields}
    beside = {k: v for k, v in exc.errors.items() if k in names}
    general = [m for k, v in exc.errors.items() if k not in names for m in v]
    return beside, general
