"""Forms: admin-defined lists of typed fields, compiled to JSON Schema and enforced with it.

Two separate checks live here:

* ``parse_form`` checks a form DEFINITION (what an admin uploads) and reports every problem at
  once with its path, so a form file can be fixed in one round trip.
* ``validate_values`` checks VALUES for one form version. It first coerces the strings that the
  CLI (``--set FIELD=VALUE``) and HTML forms send into typed JSON values, then lets ``jsonschema``
  (Draft 2020-12 with format assertion switched on) judge the result, and finally translates each
  jsonschema error into a short message that names the field and the broken rule.

What each field type means (its allowed keys, schema, coercion, messages) is defined once in
:mod:`policy.field_types`; this module applies it to whole forms.

Decisions (also described in the README section on forms):

* Empty input counts as absent: ``None``, ``""``, whitespace-only strings and empty lists. HTML
  forms send empty strings for untouched inputs, and a required field filled with blanks is not
  filled. An absent field takes its default if it has one; otherwise it is left out of the result
  (never stored as ``null``).
* Date-times must carry a timezone; a naive one is refused with a message asking for one, because
  guessing UTC would silently shift instruments' local times. Accepted input is ISO 8601
  (``2026-11-25T14:30+01:00``, ``... 14:30:00Z``); stored values are RFC 3339 in UTC
  (``2026-11-25T13:30:00Z``) so that range searches on stored strings compare correctly.
* Dates are ``YYYY-MM-DD`` only (no week dates or ``20261125``).
* ``pattern`` follows JSON Schema: it is *searched*, not anchored — write ``^...$`` to anchor.
  Python-only regex syntax is refused at definition time so the schema means the same in a
  browser (ECMA 262) as in ``jsonschema`` (Python ``re``).
* Bounds on dates and date-times are emitted as ``formatMinimum`` / ``formatMaximum`` (the
  keywords of the JSON Schema "format assertion" proposal, also used by ajv-formats): plain
  2020-12 has no ordering keywords for strings. Our validator class implements them.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

from policy.field_types import (
    FIELD_TYPES_BY_NAME,
    TYPED_KEYS,
    BadValue,
    FieldType,
    parse_date,
    parse_datetime,
)

#: the names of the field types (see policy.field_types), in the order they are documented
FIELD_TYPES: tuple[str, ...] = tuple(FIELD_TYPES_BY_NAME)
MAX_NAME_LENGTH = 64
MAX_LABEL_LENGTH = 200

FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: field names the web pages need for themselves (a field so named would lose its value there)
RESERVED_FIELD_NAMES = frozenset({"csrf_token"})
# Form names appear in URLs, CLI arguments and policy files; hyphens are common there.
FORM_NAME = re.compile(r"[a-z][a-z0-9_-]*")
#: form names the JSON API uses as fixed paths (/forms/import, /forms/preview): a form so named
#: could never be read at /forms/{name}
RESERVED_FORM_NAMES = frozenset({"import", "preview"})

_FORM_KEYS = frozenset({"name", "title", "description", "fields", "version", "session_title"})
_FIELD_KEYS = frozenset({"name", "label", "help", "type", "required", "default"}) | TYPED_KEYS
# Python `re` syntax that ECMA 262 reads differently or not at all.
_PYTHON_ONLY_REGEX = (
    # Python 3.11 only knows (?P<name>...), ECMA only (?<name>...): no spelling works in both.
    (re.compile(r"\(\?P[<=>]"), "named groups are not portable: use (...) or (?:...)"),
    (re.compile(r"\(\?[aiLmsux-]+[:)]"), "inline flags such as (?i) are not portable"),
    (re.compile(r"\(\?#"), "(?#...) comments are not portable"),
    (re.compile(r"\\[AZ]"), r"\A and \Z are not portable: use ^ and $"),
)

# RFC 3339 date-time, which is what JSON Schema's "date-time" format means.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class FormDefinitionError(ValueError):
    """A form definition with problems; ``.problems`` lists each one with its path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid form definition: " + "; ".join(self.problems))


class FormValidationError(ValueError):
    """Values that do not satisfy a form; ``.errors`` maps field name -> list of messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = {name: list(messages) for name, messages in errors.items()}
        lines = [f"{name}: {msg}" for name, messages in self.errors.items() for msg in messages]
        super().__init__("; ".join(lines))


@dataclass(frozen=True, slots=True)
class Field:
    """One typed field. Values of ``default``/``min``/``max`` are already normalized."""

    name: str
    type: str
    label: str = ""
    help: str = ""
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    min: int | float | str | None = None
    max: int | float | str | None = None
    pattern: str | None = None
    max_length: int | None = None

    @property
    def field_type(self) -> FieldType:
        """What the field's ``type`` means: its schema, coercion, search and widget."""
        return FIELD_TYPES_BY_NAME[self.type]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "required": self.required,
        }
        if self.help:
            out["help"] = self.help
        if self.default is not None:
            out["default"] = _jsonable(self.default)
        if self.choices:
            out["choices"] = list(self.choices)
        for key in ("min", "max", "pattern", "max_length"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def json_schema(self) -> dict[str, Any]:
        schema = self.field_type.schema(self)
        schema["title"] = self.label
        if self.help:
            schema["description"] = self.help
        if self.default is not None:
            schema["default"] = _jsonable(self.default)
        return schema


@dataclass(frozen=True, slots=True)
class Form:
    """One version of a form. Editing a form makes a new ``Form`` with ``version + 1``."""

    name: str
    title: str
    fields: tuple[Field, ...]
    description: str = ""
    version: int = 1
    #: the fields whose values name a session of this form ("M0042 · day1" from mouse_id and
    #: day); empty: the form's name and the session's prefix (policy.sessions.make_title)
    session_title: tuple[str, ...] = ()

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "version": self.version,
            "fields": [f.to_dict() for f in self.fields],
        }
        # only when set: forms without it keep their stored definition
        if self.session_title:
            out["session_title"] = list(self.session_title)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Form:
        return parse_form(data)

    def json_schema(self) -> dict[str, Any]:
        return _object_schema(
            self.fields,
            {
                "$schema": JSON_SCHEMA_DIALECT,
                "$id": f"urn:minimo:form:{self.name}:v{self.version}",
                "title": self.title,
                **({"description": self.description} if self.description else {}),
            },
        )


# --- JSON Schema compilation ------------------------------------------------------------------


def _object_schema(fields: tuple[Field, ...], head: dict[str, Any]) -> dict[str, Any]:
    schema = {
        **head,
        "type": "object",
        "properties": {f.name: f.json_schema() for f in fields},
        "additionalProperties": False,
    }
    required = [f.name for f in fields if f.required]
    if required:
        schema["required"] = required
    return schema


# --- the validator: 2020-12 + real date/date-time checks + formatMinimum/formatMaximum ---------


# jsonschema's own "date-time" checker needs the optional rfc3339-validator package and silently
# passes everything without it, so both formats get checkers written here.
FORMAT_CHECKER = FormatChecker(formats=())


@FORMAT_CHECKER.checks("date")
def _is_date(value: object) -> bool:
    return not isinstance(value, str) or parse_date(value) is not None


@FORMAT_CHECKER.checks("date-time")
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return _RFC3339.fullmatch(value) is not None and parse_datetime(value) is not None


def _format_bound(
    compare: Callable[[Any, Any], bool], words: str
) -> Callable[..., Iterator[ValidationError]]:
    def check(validator: Any, bound: Any, instance: Any, schema: Mapping[str, Any]):
        parse = parse_date if schema.get("format") == "date" else parse_datetime
        value, limit = parse(instance), parse(bound)
        # Unparsable values are the "format" keyword's business, not ours.
        if value is not None and limit is not None and not compare(value, limit):
            yield ValidationError(f"{instance!r} is not {words} {bound}")

    return check


FormValidator = validators.extend(
    Draft202012Validator,
    {
        "formatMinimum": _format_bound(operator.ge, "on or after"),
        "formatMaximum": _format_bound(operator.le, "on or before"),
    },
)


def make_validator(schema: Mapping[str, Any]) -> Any:
    """A validator for a compiled form schema, with format assertions switched on."""
    return FormValidator(schema, format_checker=FORMAT_CHECKER)


# --- values: coercion, validation, messages ---------------------------------------------------


def _is_empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | tuple) and not value


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _fmt(value: Any) -> str:
    return str(value)


def _message(f: Field, error: ValidationError) -> str:
    """Translate one jsonschema error on field ``f`` into words naming the broken rule."""
    keyword, limit = error.validator, error.validator_value
    if keyword == "enum":
        return f.field_type.enum_message(f, error.instance)
    simple = {
        "minimum": f"must be at least {_fmt(limit)}",
        "maximum": f"must be at most {_fmt(limit)}",
        "maxLength": f"must be at most {limit} characters long",
        "pattern": f"must match the pattern {limit}",
        "minItems": f"choose at least {limit}",
        "maxItems": f"choose at most {limit}",
        "uniqueItems": "must not repeat a choice",
        "formatMinimum": f"must be on or after {limit}",
        "formatMaximum": f"must be on or before {limit}",
    }
    if keyword in simple:
        return simple[keyword]
    if keyword in ("type", "format"):
        return f.field_type.type_message(f)
    return error.message  # a keyword this module does not emit; keep jsonschema's words


def _check(
    fields: tuple[Field, ...], values: Mapping[str, Any], unknown: str
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Coerce, default and validate ``values``; return (normalized values, errors)."""
    by_name = {f.name: f for f in fields}
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        if message not in errors.setdefault(name, []):
            errors[name].append(message)

    instance: dict[str, Any] = {}
    for name, raw in values.items():
        field = by_name.get(name)
        if field is None:
            instance[name] = raw  # so that jsonschema's additionalProperties sees it too
        elif not _is_empty(raw):
            try:
                instance[name] = field.field_type.coerce(raw)
            except BadValue as bad:
                add(name, str(bad))
    for field in fields:
        if field.name in instance or field.name in errors:
            continue
        if field.default is not None:
            instance[field.name] = _jsonable(field.default)
        elif field.field_type.absent_value is not None:
            instance[field.name] = field.field_type.absent_value

    for error in make_validator(_object_schema(fields, {})).iter_errors(instance):
        path = list(error.absolute_path)
        if path:
            add(str(path[0]), _message(by_name[str(path[0])], error))
        elif error.validator == "required":
            for name in error.validator_value:
                if name not in instance and name not in errors:
                    add(name, "is required")
        elif error.validator == "additionalProperties":
            for name in instance:
                if name not in by_name:
                    add(name, unknown)
        else:
            add("", error.message)
    return instance, errors


def validate_values(form: Form, values: Mapping[str, Any]) -> dict[str, Any]:
    """Coerce, default and validate ``values`` for ``form``; return JSON-ready values.

    Raises :class:`FormValidationError` with every problem, keyed by field name.
    """
    if not isinstance(values, Mapping):
        raise TypeError(f"values must be a mapping, not {type(values).__name__}")
    normalized, errors = _check(
        form.fields, values, f"is not a field of form {form.name} v{form.version}"
    )
    if errors:
        raise FormValidationError(errors)
    return normalized


# --- definitions ------------------------------------------------------------------------------


def _check_name(value: object, pattern: re.Pattern[str], what: str) -> str | None:
    """The problem with a name, or None."""
    if not isinstance(value, str) or not value:
        return f"{what} must be a non-empty string"
    if len(value) > MAX_NAME_LENGTH:
        return f"{what} must be at most {MAX_NAME_LENGTH} characters"
    if not pattern.fullmatch(value):
        allowed = "a-z, 0-9, _ and -" if pattern is FORM_NAME else "a-z, 0-9 and _"
        return f"{what} {value!r} must start with a lowercase letter and use only {allowed}"
    if pattern is FIELD_NAME and value in RESERVED_FIELD_NAMES:
        return f"{what} {value!r} is reserved for the web pages; choose another"
    if pattern is FORM_NAME and value in RESERVED_FORM_NAMES:
        return f"{what} {value!r} is reserved for the API's /forms/{value}; choose another"
    return None


def _check_text(value: object, *, required: bool, limit: int | None = None) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if required and not value.strip():
        return "must not be empty"
    if limit is not None and len(value) > limit:
        return f"must be at most {limit} characters"
    return None


def _check_pattern(pattern: object) -> str | None:
    if not isinstance(pattern, str) or not pattern:
        return "must be a non-empty string"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"is not a valid regular expression: {exc}"
    for construct, why in _PYTHON_ONLY_REGEX:
        if construct.search(pattern):
            return why
    return None


def _parse_choices(
    kind: FieldType, raw: Mapping[str, Any], problem: Callable[[str, str], None]
) -> tuple[str, ...]:
    """The field's checked ``choices`` (empty after reporting a problem)."""
    raw_choices = raw.get("choices")
    if not isinstance(raw_choices, list) or not raw_choices:
        problem("choices", f"a {kind.name} field needs a non-empty list of choices")
    elif not all(isinstance(c, str) and c.strip() for c in raw_choices):
        problem("choices", "every choice must be a non-empty string")
    elif len(set(raw_choices)) != len(raw_choices):
        dupes = sorted({c for c in raw_choices if raw_choices.count(c) > 1})
        problem("choices", f"duplicate choices: {', '.join(dupes)}")
    elif (type_problem := kind.choices_problem(raw_choices)) is not None:
        problem("choices", type_problem)
    else:
        return tuple(raw_choices)
    return ()


def _parse_bounds(
    kind: FieldType,
    raw: Mapping[str, Any],
    choices: tuple[str, ...],
    problem: Callable[[str, str], None],
) -> dict[str, Any]:
    """The field's normalized ``min``/``max`` that are valid (the others reported)."""
    bounds: dict[str, Any] = {}
    for key in ("min", "max"):
        if key in raw and key in kind.constraints:
            value, bound_problem = kind.parse_bound(raw[key])
            if bound_problem:
                problem(key, bound_problem)
            else:
                bounds[key] = value
    if (
        "min" in bounds
        and "max" in bounds
        and kind.bound_order(bounds["min"]) > kind.bound_order(bounds["max"])
    ):
        problem("min", f"{bounds['min']} is greater than max {bounds['max']}")
    if "min" in kind.constraints and (count_problem := kind.bounds_problem(bounds, choices)):
        problem("min", count_problem)
    return bounds


def _parse_field(raw: object, where: str, problems: list[str]) -> Field | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be an object")
        return None
    name = raw.get("name")
    name_problem = _check_name(name, FIELD_NAME, "name")
    if name_problem:
        problems.append(f"{where}: {name_problem}")
    else:
        where = f"{where} ({name})"
    start = len(problems)

    def problem(key: str, message: str) -> None:
        problems.append(f"{where}: {key}: {message}")

    for key in sorted(set(raw) - _FIELD_KEYS):
        problem(key, "unknown key")
    ftype = raw.get("type")
    if ftype not in FIELD_TYPES:
        problem("type", f"{ftype!r} is not one of {', '.join(FIELD_TYPES)}")
        return None
    kind = FIELD_TYPES_BY_NAME[ftype]
    for key in sorted((set(raw) & TYPED_KEYS) - kind.constraints):
        problem(key, f"not allowed for type {ftype}")

    # Without a valid name there is no default label to derive; the name problem says enough.
    label = raw.get("label", name.replace("_", " ").capitalize() if not name_problem else "x")
    for key, value, required, limit in (
        ("label", label, True, MAX_LABEL_LENGTH),
        ("help", raw.get("help", ""), False, None),
    ):
        if (text_problem := _check_text(value, required=required, limit=limit)) is not None:
            problem(key, text_problem)
    if not isinstance(raw.get("required", False), bool):
        problem("required", "must be true or false")

    choices = _parse_choices(kind, raw, problem) if "choices" in kind.constraints else ()
    bounds = _parse_bounds(kind, raw, choices, problem)
    pattern = raw.get("pattern") if "pattern" in kind.constraints else None
    if pattern is not None and (pattern_problem := _check_pattern(pattern)):
        problem("pattern", pattern_problem)
    max_length = raw.get("max_length") if "max_length" in kind.constraints else None
    if max_length is not None and (type(max_length) is not int or max_length < 1):
        problem("max_length", "must be a whole number of at least 1")

    if len(problems) > start or name_problem:
        return None
    field = Field(
        name=name,
        type=ftype,
        label=label,
        help=raw.get("help", ""),
        required=raw.get("required", False),
        choices=choices,
        min=bounds.get("min"),
        max=bounds.get("max"),
        pattern=pattern,
        max_length=max_length,
    )
    return _with_default(field, raw.get("default"), lambda msg: problem("default", msg))


def _with_default(field: Field, default: Any, problem: Callable[[str], None]) -> Field | None:
    """The field with its default normalized, or None after reporting why it is not valid."""
    if _is_empty(default):
        return field
    normalized, errors = _check((field,), {field.name: default}, "")
    if errors:
        for message in errors[field.name]:
            problem(message)
        return None
    value = normalized[field.name]
    # Tuples keep Field hashable and immutable; to_dict turns them back into lists.
    return replace(field, default=tuple(value) if isinstance(value, list) else value)


def parse_form(data: Mapping[str, Any]) -> Form:
    """Check a form definition and build the :class:`Form`.

    Raises :class:`FormDefinitionError` listing every problem, each with its path.
    """
    if not isinstance(data, Mapping):
        raise FormDefinitionError(["a form definition must be a JSON object"])
    problems: list[str] = [f"{key}: unknown key" for key in sorted(set(data) - _FORM_KEYS)]
    name = data.get("name")
    if name_problem := _check_name(name, FORM_NAME, "name"):
        problems.append(name_problem)
    title = data.get("title", name if isinstance(name, str) else "")
    title_problem = _check_text(title, required=True, limit=MAX_LABEL_LENGTH)
    if title_problem is not None and ("title" in data or not name_problem):
        problems.append(f"title: {title_problem}")
    description = data.get("description", "")
    if (desc_problem := _check_text(description, required=False)) is not None:
        problems.append(f"description: {desc_problem}")
    version = data.get("version", 1)
    if type(version) is not int or version < 1:
        problems.append("version: must be a whole number of at least 1")

    raw_fields = data.get("fields")
    fields: list[Field] = []
    if not isinstance(raw_fields, list) or not raw_fields:
        problems.append("fields: must be a non-empty list")
    else:
        seen: dict[str, int] = {}
        for index, raw in enumerate(raw_fields):
            field = _parse_field(raw, f"fields[{index}]", problems)
            raw_name = raw.get("name") if isinstance(raw, Mapping) else None
            if isinstance(raw_name, str) and raw_name in seen:
                problems.append(
                    f"fields[{index}] ({raw_name}): name: duplicate of fields[{seen[raw_name]}]"
                )
            elif isinstance(raw_name, str):
                seen[raw_name] = index
            if field is not None:
                fields.append(field)
    session_title = _parse_session_title(data.get("session_title", []), raw_fields, problems)
    if problems:
        raise FormDefinitionError(problems)
    return Form(
        name=name,
        title=title,
        fields=tuple(fields),
        description=description,
        version=version,
        session_title=session_title,
    )


def _parse_session_title(value: object, raw_fields: object, problems: list[str]) -> tuple[str, ...]:
    """The checked ``session_title``: a list of the form's field names, each at most once."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append("session_title: must be a list of field names")
        return ()
    names = {
        name
        for raw in (raw_fields if isinstance(raw_fields, list) else [])
        if isinstance(raw, Mapping) and isinstance(name := raw.get("name"), str)
    }
    for index, name in enumerate(value):
        if name not in names:
            problems.append(f"session_title[{index}]: {name!r} is not a field of this form")
        elif name in value[:index]:
            problems.append(f"session_title[{index}]: {name!r} is named twice")
    return tuple(value)
