"""Form field types, each defined once: everything the code needs to know about one ``type``.

A form field's ``type`` (``"text"``, ``"integer"``, ``"datetime"``...) is a key of
:data:`FIELD_TYPES_BY_NAME`. Its :class:`FieldType` answers every question that depends on it:

* **definition**: which optional keys a field of the type may have (``constraints``), and how
  its ``min``/``max`` and ``choices`` are checked (:mod:`policy.forms` reads these);
* **schema**: the JSON Schema fragment a field compiles to;
* **values**: how a value sent as text (the CLI's ``--set``, an HTML form) or as JSON is coerced
  before jsonschema judges it, and the words used when it is not of the type;
* **search**: which metadata-search operators apply and how a search value is parsed (a stored
  7 is a number, so a condition ``n=7`` must compare with the number 7, not the text "7");
* **pages**: the :class:`Widget` that renders it (a macro of ``ui/templates/_fields.html`` and
  its input attributes), how a posted HTML form is read back and how a value fills the input.

Adding a type: a subclass here added to :data:`FIELD_TYPES_BY_NAME`, a case in
``tests/unit/test_field_types.py``, and a macro in ``ui/templates/_fields.html`` only when no
existing widget fits. Everything else (definition checks, schemas, messages, search, pages, the
API's list of types) follows from the registry.

This module imports nothing above it: it is plain data and functions on values, so that
:mod:`policy.forms` (which judges whole forms) and the web pages can both read it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from policy.timestamps import utc_text

if TYPE_CHECKING:
    from policy.forms import Field

#: the metadata-search operators (``=``, ``>=``, ``<=``, ``~`` as people type them)
SearchOp = Literal["eq", "min", "max", "contains"]
ALL_SEARCH_OPS: frozenset[SearchOp] = frozenset({"eq", "min", "max", "contains"})
#: the definition keys whose meaning depends on the type (anything else is common to all)
TYPED_KEYS = frozenset({"choices", "min", "max", "pattern", "max_length"})

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# ISO 8601 extended format, as accepted on input (seconds optional, space or T, any offset form).
_DATETIME_IN = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE = frozenset({"true", "yes", "on", "1", "y", "t"})
_FALSE = frozenset({"false", "no", "off", "0", "n", "f"})
# what a search condition takes for a boolean (narrower than a value's words: no y/n/t/f)
_SEARCH_TRUE = ("true", "yes", "1", "on")
_SEARCH_BOOLEAN = (*_SEARCH_TRUE, "false", "no", "0", "off")
# a datetime-local input's value: no offset (browsers send "2026-11-25T14:30" or with seconds)
_NAIVE_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
_OFFSET = re.compile(r"[+-]\d{2}:\d{2}")

DATETIME_MESSAGE = (
    "must be an ISO 8601 date-time with a timezone, e.g. 2026-11-25T14:30:00Z or "
    "2026-11-25T14:30:00+01:00"
)


class BadValue(Exception):
    """A value that coercion can name the problem of better than jsonschema could."""


class BadSearchValue(ValueError):
    """A search value that cannot be of its field's type; the message omits the field's name."""


class PostedForm(Protocol):
    """What the pages read a submitted HTML form from (aiohttp's ``MultiDictProxy``)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def getall(self, key: str, default: Any = None) -> list[Any]: ...


# --- values as text ---------------------------------------------------------------------------


def parse_date(value: object) -> date | None:
    """A date from ``YYYY-MM-DD`` only (no week dates or ``20261125``), or None."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def parse_datetime(value: object) -> datetime | None:
    """An aware datetime from ISO 8601 input, or None (naive values are not acceptable)."""
    if not isinstance(value, str) or not _DATETIME_IN.fullmatch(value.strip()):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().upper())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    try:
        # values are compared and stored in UTC: 0001-01-01T00:00+14:00 has no UTC instant
        parsed.astimezone(UTC)
    except OverflowError:
        return None
    return parsed


def finite_number(text: str) -> int | float | None:
    """``text`` as an int (or else a finite float), or None: how a search reads a number."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def _stripped(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) else None


def _with_bounds(schema: dict[str, Any], low: str, high: str, f: Field) -> dict[str, Any]:
    """``schema`` with the field's min/max under the keywords ``low``/``high`` (when set)."""
    schema.update({key: value for key, value in ((low, f.min), (high, f.max)) if value is not None})
    return schema


# --- the widgets ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Widget:
    """How the pages render a field: a macro of ``ui/templates/_fields.html`` (which holds the
    HTML) and, for the ``input`` macro, the ``<input>``'s type and which attributes it gets."""

    macro: Literal["input", "textarea", "select", "checkboxes", "checkbox"]
    input_type: str = "text"
    step: str | None = None
    #: min/max attributes from the field's bounds (those the browser compares the same way)
    html_bounds: bool = False
    #: maxlength and pattern attributes from the field's max_length and pattern
    text_limits: bool = False
    #: a datetime-local input: its label says which zone the time is read in
    local_time: bool = False


# --- the types --------------------------------------------------------------------------------


class FieldType:
    """One field type; subclasses override what differs from these defaults.

    ``example`` and ``example_value`` are a valid definition's type-specific keys and a value
    as the CLI would type it: the registry's test builds a field of every type from them.
    """

    name: str = ""
    #: the optional definition keys (of TYPED_KEYS) a field of this type may have
    constraints: frozenset[str] = frozenset()
    search_operators: frozenset[SearchOp] = ALL_SEARCH_OPS
    widget: Widget = Widget("input")
    example: Mapping[str, Any] = {}
    example_value: str = ""
    #: the value a field of this type takes when none is given and it has no default (None:
    #: it stays absent). Booleans are false then, so the CLI, the API and the web form (where
    #: an unticked checkbox sends nothing) store the same thing.
    absent_value: Any = None

    # -- schema and values
    def schema(self, f: Field) -> dict[str, Any]:
        """The JSON Schema fragment of a field (without title, description and default)."""
        raise NotImplementedError

    def coerce(self, value: Any) -> Any:
        """Best-effort conversion of CLI/HTML strings; anything unconvertible is left for
        jsonschema to reject with :meth:`type_message`. Raises BadValue for a better message."""
        return value

    def type_message(self, f: Field) -> str:
        """What to say when a value is not of the type (jsonschema's ``type``/``format``)."""
        raise NotImplementedError

    def enum_message(self, f: Field, instance: Any) -> str:
        """What to say when a value is not one of the field's choices."""
        return f"must be one of {', '.join(f.choices)}"

    # -- definition checks (only called for the keys in ``constraints``)
    def parse_bound(self, value: object) -> tuple[Any, str | None]:
        """One min/max normalized, and the problem with it (or None)."""
        raise NotImplementedError(f"{self.name} fields have no bounds")

    def bound_order(self, value: Any) -> Any:
        """A normalized bound as something that compares in the type's order."""
        return value

    def choices_problem(self, choices: list[str]) -> str | None:
        """A type's own rule on a list of distinct, non-empty choices, or None."""
        return None

    def bounds_problem(self, bounds: Mapping[str, Any], choices: tuple[str, ...]) -> str | None:
        """What is wrong with a valid ``min`` given the choices, or None."""
        return None

    # -- search
    def search_value(self, f: Field, op: SearchOp, raw: str) -> Any:
        """The value a condition ``op`` on field ``f`` compares with (not called for
        ``contains``, always text). Raises BadSearchValue."""
        return raw

    # -- pages
    def posted_value(self, data: PostedForm, name: str, utc_offset: str) -> Any:
        """The raw value of a submitted HTML form (validate_values coerces it)."""
        return str(data.get(name, ""))

    def input_value(self, value: Any) -> Any:
        """A stored or default value (not None) as the HTML input wants it."""
        return value

    def shown_value(self, value: Any) -> Any:
        """A submitted value as it goes back into the input (the page shown again)."""
        return value

    def facet_values(self, f: Field) -> tuple[Any, ...]:
        """The values the metadata browser counts sessions by (its facets), or () for none:
        only types with a short, fixed set of values have facets."""
        return ()


class TextType(FieldType):
    """A string kept exactly as typed (one line)."""

    name = "text"
    constraints = frozenset({"pattern", "max_length"})
    widget = Widget("input", text_limits=True)
    example = {"max_length": 20, "pattern": "^[a-z]"}
    example_value = "abc"

    def schema(self, f: Field) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if f.max_length is not None:
            schema["maxLength"] = f.max_length
        if f.pattern is not None:
            schema["pattern"] = f.pattern
        return schema

    def type_message(self, f: Field) -> str:
        return "must be text"


class TextareaType(TextType):
    """A string of several lines (a ``<textarea>``, which has no pattern attribute)."""

    name = "textarea"
    widget = Widget("textarea")
    example_value = "two\nlines"


class ChoiceType(FieldType):
    """One of the field's choices."""

    name = "choice"
    constraints = frozenset({"choices"})
    widget = Widget("select")
    example = {"choices": ["a", "b"]}
    example_value = "b"

    def schema(self, f: Field) -> dict[str, Any]:
        return {"type": "string", "enum": list(f.choices)}

    def coerce(self, value: Any) -> Any:
        text = _stripped(value)
        return text if text is not None else value

    def facet_values(self, f: Field) -> tuple[Any, ...]:
        return f.choices

    def type_message(self, f: Field) -> str:
        return self.enum_message(f, None)


class MultichoiceType(FieldType):
    """A list of distinct choices; ``min``/``max`` count them. A comma-separated string is one
    of the accepted ways to send several (the CLI's ``a,b``)."""

    name = "multichoice"
    constraints = frozenset({"choices", "min", "max"})
    widget = Widget("checkboxes")
    example = {"choices": ["a", "b", "c"], "min": 1, "max": 2}
    example_value = "a,c"

    def schema(self, f: Field) -> dict[str, Any]:
        schema = {
            "type": "array",
            "items": {"type": "string", "enum": list(f.choices)},
            "uniqueItems": True,
        }
        return _with_bounds(schema, "minItems", "maxItems", f)

    def coerce(self, value: Any) -> Any:
        text = _stripped(value)
        if text is not None:
            return [part.strip() for part in text.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return [v.strip() if isinstance(v, str) else v for v in value]
        return value

    def facet_values(self, f: Field) -> tuple[Any, ...]:
        return f.choices

    def type_message(self, f: Field) -> str:
        return "must be a list of choices (or a comma-separated string)"

    def enum_message(self, f: Field, instance: Any) -> str:
        return f"{instance!r} is not one of {', '.join(f.choices)}"

    def parse_bound(self, value: object) -> tuple[Any, str | None]:
        if type(value) is not int:
            return None, "must be a whole number"
        if value < 0:
            return None, "must not be negative"
        return value, None

    def choices_problem(self, choices: list[str]) -> str | None:
        if any("," in c for c in choices):
            return "multichoice choices must not contain commas"
        return None

    def bounds_problem(self, bounds: Mapping[str, Any], choices: tuple[str, ...]) -> str | None:
        if choices and bounds.get("min", 0) > len(choices):
            return f"cannot choose {bounds['min']} of {len(choices)} choices"
        return None

    def posted_value(self, data: PostedForm, name: str, utc_offset: str) -> Any:
        return [str(v) for v in data.getall(name, [])]


class _NumericType(FieldType):
    """What integer and number share: JSON Schema's own type, bounds, numeric search."""

    constraints = frozenset({"min", "max"})

    def schema(self, f: Field) -> dict[str, Any]:
        return _with_bounds({"type": self.name}, "minimum", "maximum", f)

    def search_value(self, f: Field, op: SearchOp, raw: str) -> Any:
        number = finite_number(raw)
        if number is None:
            raise BadSearchValue(f"{raw!r} is not a number")
        return number


class IntegerType(_NumericType):
    """A whole number."""

    name = "integer"
    widget = Widget("input", input_type="number", step="1", html_bounds=True)
    example = {"min": -3, "max": 30}
    example_value = "+7"

    def coerce(self, value: Any) -> Any:
        text = _stripped(value)
        if text is not None and _INTEGER.fullmatch(text):
            return int(text)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def type_message(self, f: Field) -> str:
        return "must be a whole number"

    def parse_bound(self, value: object) -> tuple[Any, str | None]:
        if type(value) is not int:
            return None, "must be a whole number"
        return value, None


class NumberType(_NumericType):
    """A finite number (an int stays an int)."""

    name = "number"
    widget = Widget("input", input_type="number", step="any", html_bounds=True)
    example = {"min": 0, "max": 50.5}
    example_value = "2.5e1"

    def coerce(self, value: Any) -> Any:
        text = _stripped(value)
        if text is not None and _NUMBER.fullmatch(text):
            value = float(text) if any(c in text for c in ".eE") else int(text)
        if isinstance(value, float) and not math.isfinite(value):
            raise BadValue("must be a finite number")
        return value

    def type_message(self, f: Field) -> str:
        return "must be a number"

    def parse_bound(self, value: object) -> tuple[Any, str | None]:
        if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
            return None, "must be a finite number"
        return value, None


class BooleanType(FieldType):
    """True or false; also yes/no, on/off, 1/0 (and y/n, t/f) as text."""

    name = "boolean"
    widget = Widget("checkbox")
    example_value = "yes"
    absent_value = False

    def schema(self, f: Field) -> dict[str, Any]:
        return {"type": "boolean"}

    def coerce(self, value: Any) -> Any:
        text = _stripped(value)
        if text is not None and text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        if type(value) is int and value in (0, 1):
            return bool(value)
        return value

    def type_message(self, f: Field) -> str:
        return "must be true or false (yes/no, on/off, 1/0)"

    def facet_values(self, f: Field) -> tuple[Any, ...]:
        return (True, False)

    def search_value(self, f: Field, op: SearchOp, raw: str) -> Any:
        if op != "eq":
            return raw  # a bound on a boolean: text, which matches no stored true/false
        lowered = raw.lower()
        if lowered not in _SEARCH_BOOLEAN:
            raise BadSearchValue(f"{raw!r} is not true or false")
        return lowered in _SEARCH_TRUE

    def posted_value(self, data: PostedForm, name: str, utc_offset: str) -> Any:
        # An unticked checkbox sends nothing: that is "false", not "absent".
        return "true" if data.get(name) else "false"


class DateType(FieldType):
    """A calendar date, ``YYYY-MM-DD``; kept as that text, which sorts in date order."""

    name = "date"
    constraints = frozenset({"min", "max"})
    widget = Widget("input", input_type="date", html_bounds=True)
    example = {"min": "2026-01-01", "max": "2026-12-31"}
    example_value = "2026-11-25"

    def schema(self, f: Field) -> dict[str, Any]:
        return _with_bounds(
            {"type": "string", "format": "date"}, "formatMinimum", "formatMaximum", f
        )

    def coerce(self, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value.isoformat()
        text = _stripped(value)
        return text if text is not None else value

    def type_message(self, f: Field) -> str:
        return "must be a date in the form YYYY-MM-DD"

    def parse_bound(self, value: object) -> tuple[Any, str | None]:
        parsed = parse_date(value)
        return (parsed.isoformat(), None) if parsed else (None, "must be a date YYYY-MM-DD")

    def bound_order(self, value: Any) -> Any:
        return date.fromisoformat(value)


class DatetimeType(FieldType):
    """An instant: ISO 8601 with a timezone on input, stored as RFC 3339 text in UTC (so that
    stored values compare in time order). A naive time is refused: guessing UTC would shift an
    instrument's local time."""

    name = "datetime"
    constraints = frozenset({"min", "max"})
    # no min/max attributes: datetime-local compares local times, the bounds are UTC instants
    widget = Widget("input", input_type="datetime-local", step="1", local_time=True)
    example = {"min": "2026-01-01T00:00+01:00"}
    example_value = "2026-11-25T14:30+01:00"

    def schema(self, f: Field) -> dict[str, Any]:
        return _with_bounds(
            {"type": "string", "format": "date-time"}, "formatMinimum", "formatMaximum", f
        )

    def coerce(self, value: Any) -> Any:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise BadValue(DATETIME_MESSAGE)
            return utc_text(value)
        text = _stripped(value)
        parsed = parse_datetime(text)
        return utc_text(parsed) if parsed is not None else (text if text is not None else value)

    def type_message(self, f: Field) -> str:
        return DATETIME_MESSAGE

    def parse_bound(self, value: object) -> tuple[Any, str | None]:
        parsed = parse_datetime(value)
        if parsed is None:
            return None, "must be an ISO 8601 date-time with a timezone"
        return utc_text(parsed), None

    def bound_order(self, value: Any) -> Any:
        return parse_datetime(value)

    def search_value(self, f: Field, op: SearchOp, raw: str) -> Any:
        # The instant as stored when it is a value the field accepts; anything else (e.g. a
        # bare date as a bound) as typed, which still compares correctly as text.
        parsed = parse_datetime(raw)
        if parsed is None:
            return raw
        low, high = parse_datetime(f.min), parse_datetime(f.max)
        if (low is not None and parsed < low) or (high is not None and parsed > high):
            return raw
        return utc_text(parsed)

    def posted_value(self, data: PostedForm, name: str, utc_offset: str) -> Any:
        raw = str(data.get(name, ""))
        if _NAIVE_LOCAL.fullmatch(raw.strip()):
            # datetime-local has no zone; static/minimo.js sends the browser's offset, and
            # without JavaScript the label says the time is UTC.
            raw = raw.strip() + (utc_offset if _OFFSET.fullmatch(utc_offset) else "Z")
        return raw

    def input_value(self, value: Any) -> Any:
        # stored as RFC 3339 UTC; datetime-local takes "YYYY-MM-DDTHH:MM[:SS]" with no zone
        return value.removesuffix("Z")[:19] if isinstance(value, str) else value

    def shown_value(self, value: Any) -> Any:
        if isinstance(value, str) and not _NAIVE_LOCAL.fullmatch(value):
            # what the user typed (with the offset the page added) back into the input
            return value[:19]
        return value


#: every field type by its name, in the order the documentation and the API list them
FIELD_TYPES_BY_NAME: dict[str, FieldType] = {
    kind.name: kind
    for kind in (
        TextType(),
        TextareaType(),
        ChoiceType(),
        MultichoiceType(),
        IntegerType(),
        NumberType(),
        BooleanType(),
        DateType(),
        DatetimeType(),
    )
}
