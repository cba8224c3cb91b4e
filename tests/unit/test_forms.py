"""Forms: definition checks, JSON Schema compilation, value coercion and validation messages."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from policy.forms import (
    FIELD_TYPES,
    Field,
    Form,
    FormDefinitionError,
    FormValidationError,
    make_validator,
    parse_form,
    validate_values,
)

IMAGING = {
    "name": "imaging",
    "title": "Imaging run",
    "fields": [
        {"name": "operator", "type": "text", "required": True},
        {"name": "objective", "type": "choice", "choices": ["10x", "63x"]},
        {"name": "temp_c", "type": "number", "min": 0, "max": 50},
    ],
}


def one_field(version: int = 1, **field: Any) -> Form:
    return parse_form({"name": "f", "version": version, "fields": [{"name": "x", **field}]})


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(FormDefinitionError) as info:
        parse_form(data)
    return info.value.problems


def field_problems(**field: Any) -> list[str]:
    return problems_of({"name": "f", "fields": [{"name": "x", **field}]})


def errors_of(form: Form, values: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(FormValidationError) as info:
        validate_values(form, values)
    return info.value.errors


# --- definitions ------------------------------------------------------------------------------


def test_minimal_imaging_form_parses() -> None:
    form = parse_form(IMAGING)
    assert form.name == "imaging"
    assert form.title == "Imaging run"
    assert form.version == 1
    assert [f.name for f in form.fields] == ["operator", "objective", "temp_c"]
    assert form.field("operator") == Field(
        name="operator", type="text", label="Operator", required=True
    )
    assert form.field("temp_c").label == "Temp c"  # label defaults from the name
    assert form.field("objective").choices == ("10x", "63x")
    assert form.field("nope") is None


def every_type_form() -> dict[str, Any]:
    return {
        "name": "every-type",
        "title": "Every type",
        "description": "One field of each type",
        "version": 4,
        "fields": [
            {
                "name": "t",
                "type": "text",
                "label": "T",
                "help": "h",
                "pattern": "^[A-Z]+$",
                "max_length": 5,
                "default": "AB",
            },
            {"name": "ta", "type": "textarea", "max_length": 100},
            {"name": "c", "type": "choice", "choices": ["a", "b"], "default": "b"},
            {
                "name": "mc",
                "type": "multichoice",
                "choices": ["a", "b", "c"],
                "min": 1,
                "max": 2,
                "default": ["a"],
            },
            {"name": "i", "type": "integer", "min": -3, "max": 3, "default": 0},
            {"name": "n", "type": "number", "min": 0.5, "max": 2, "required": True},
            {"name": "b", "type": "boolean", "default": False},
            {"name": "d", "type": "date", "min": "2026-01-01", "max": "2026-12-31"},
            {"name": "dt", "type": "datetime", "min": "2026-01-01T00:00:00+01:00"},
        ],
    }


def test_round_trip_through_to_dict_and_json() -> None:
    for data in (IMAGING, every_type_form()):
        form = parse_form(data)
        again = parse_form(json.loads(json.dumps(form.to_dict())))
        assert again == form
        assert Form.from_dict(form.to_dict()) == form


def test_to_dict_normalizes() -> None:
    form = parse_form(every_type_form())
    out = form.to_dict()
    assert out["version"] == 4
    assert out["description"] == "One field of each type"
    by_name = {f["name"]: f for f in out["fields"]}
    assert by_name["mc"]["default"] == ["a"]
    assert by_name["dt"]["min"] == "2025-12-31T23:00:00Z"  # stored in UTC
    assert by_name["ta"] == {
        "name": "ta",
        "label": "Ta",
        "type": "textarea",
        "required": False,
        "max_length": 100,
    }


@pytest.mark.parametrize("ftype", FIELD_TYPES)
def test_each_type_parses_alone(ftype: str) -> None:
    extra = {"choices": ["a"]} if "choice" in ftype else {}
    assert one_field(type=ftype, **extra).fields[0].type == ftype


def test_every_problem_is_reported_with_its_path() -> None:
    problems = problems_of(
        {
            "name": "Imaging!",
            "colour": "red",
            "fields": [
                {"name": "a", "type": "choice"},
                {"name": "a", "type": "number", "min": 5, "max": 1},
                {"name": "b", "type": "paragraph"},
                {"type": "text"},
            ],
        }
    )
    assert problems == [
        "colour: unknown key",
        "name 'Imaging!' must start with a lowercase letter and use only a-z, 0-9, _ and -",
        "fields[0] (a): choices: a choice field needs a non-empty list of choices",
        "fields[1] (a): min: 5 is greater than max 1",
        "fields[1] (a): name: duplicate of fields[0]",
        "fields[2] (b): type: 'paragraph' is not one of text, textarea, choice, multichoice, "
        "integer, number, boolean, date, datetime",
        "fields[3]: name must be a non-empty string",
    ]
    with pytest.raises(FormDefinitionError, match="invalid form definition: colour: unknown key"):
        parse_form({**IMAGING, "colour": 1})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "a form definition must be a JSON object"),
        ({"name": "f"}, "fields: must be a non-empty list"),
        ({"name": "f", "fields": []}, "fields: must be a non-empty list"),
        ({"name": "f", "fields": ["x"]}, "fields[0]: must be an object"),
        (
            {"name": "f", "version": 0, "fields": [{"name": "x", "type": "text"}]},
            "version: must be a whole number of at least 1",
        ),
        (
            {"name": "f", "version": True, "fields": [{"name": "x", "type": "text"}]},
            "version: must be a whole number of at least 1",
        ),
        (
            {"name": "f", "title": "  ", "fields": [{"name": "x", "type": "text"}]},
            "title: must not be empty",
        ),
        (
            {"name": "f", "description": 3, "fields": [{"name": "x", "type": "text"}]},
            "description: must be a string",
        ),
        (
            {"name": "a" * 65, "fields": [{"name": "x", "type": "text"}]},
            "name must be at most 64 characters",
        ),
    ],
)
def test_form_level_problems(data: Any, expected: str) -> None:
    assert expected in problems_of(data)


def test_title_defaults_to_name_and_hyphenated_names_are_allowed() -> None:
    form = parse_form({"name": "cryo-em", "fields": [{"name": "x", "type": "text"}]})
    assert form.title == "cryo-em"


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (
            {"name": "Bad"},
            "name 'Bad' must start with a lowercase letter and use only a-z, 0-9 and _",
        ),
        ({"name": "1st"}, "name '1st' must start with a lowercase letter"),
        ({"name": "a-b"}, "name 'a-b' must start with a lowercase letter"),
        ({"name": "x" * 65}, "name must be at most 64 characters"),
        ({"name": "csrf_token"}, "name 'csrf_token' is reserved for the web pages"),
        ({"type": "text", "requried": True}, "(x): requried: unknown key"),
        ({"type": None}, "type: None is not one of"),
        ({"type": "text", "choices": ["a"]}, "choices: not allowed for type text"),
        ({"type": "integer", "pattern": "a"}, "pattern: not allowed for type integer"),
        ({"type": "boolean", "min": 0}, "min: not allowed for type boolean"),
        (
            {"type": "choice", "max_length": 3, "choices": ["a"]},
            "max_length: not allowed for type choice",
        ),
        ({"type": "text", "label": ""}, "label: must not be empty"),
        ({"type": "text", "label": "x" * 201}, "label: must be at most 200 characters"),
        ({"type": "text", "help": 5}, "help: must be a string"),
        ({"type": "text", "required": "yes"}, "required: must be true or false"),
        ({"type": "choice", "choices": []}, "choices: a choice field needs a non-empty list"),
        ({"type": "multichoice"}, "choices: a multichoice field needs a non-empty list"),
        ({"type": "choice", "choices": "a,b"}, "choices: a choice field needs a non-empty list"),
        ({"type": "choice", "choices": ["a", 1]}, "every choice must be a non-empty string"),
        ({"type": "choice", "choices": ["a", " "]}, "every choice must be a non-empty string"),
        ({"type": "choice", "choices": ["a", "b", "a"]}, "choices: duplicate choices: a"),
        ({"type": "multichoice", "choices": ["a,b"]}, "must not contain commas"),
        ({"type": "multichoice", "choices": ["a"], "min": 2}, "min: cannot choose 2 of 1"),
        ({"type": "multichoice", "choices": ["a"], "min": -1}, "min: must not be negative"),
        ({"type": "multichoice", "choices": ["a"], "max": 1.5}, "max: must be a whole number"),
        ({"type": "integer", "min": 1.5}, "min: must be a whole number"),
        ({"type": "integer", "max": True}, "max: must be a whole number"),
        ({"type": "integer", "min": 3, "max": 2}, "min: 3 is greater than max 2"),
        ({"type": "number", "min": "0"}, "min: must be a finite number"),
        ({"type": "number", "max": float("inf")}, "max: must be a finite number"),
        ({"type": "number", "min": 2.5, "max": 2}, "min: 2.5 is greater than max 2"),
        ({"type": "date", "min": "2026-02-30"}, "min: must be a date YYYY-MM-DD"),
        ({"type": "date", "min": "20260101"}, "min: must be a date YYYY-MM-DD"),
        (
            {"type": "date", "min": "2026-05-01", "max": "2026-04-30"},
            "min: 2026-05-01 is greater than max 2026-04-30",
        ),
        (
            {"type": "datetime", "max": "2026-01-01T00:00:00"},
            "max: must be an ISO 8601 date-time with a timezone",
        ),
        (
            {"type": "datetime", "min": "2026-01-01T02:00:00+01:00", "max": "2026-01-01T00:30Z"},
            "min: 2026-01-01T01:00:00Z is greater than max 2026-01-01T00:30:00Z",
        ),
        ({"type": "text", "pattern": "("}, "pattern: is not a valid regular expression"),
        ({"type": "text", "pattern": ""}, "pattern: must be a non-empty string"),
        ({"type": "text", "pattern": "(?P<year>\\d+)"}, "named groups are not portable"),
        ({"type": "text", "pattern": "(?i)abc"}, "inline flags such as (?i) are not portable"),
        ({"type": "text", "pattern": "\\Aabc\\Z"}, "\\A and \\Z are not portable"),
        ({"type": "text", "pattern": "a(?#comment)"}, "(?#...) comments are not portable"),
        ({"type": "textarea", "max_length": 0}, "max_length: must be a whole number of at least 1"),
        ({"type": "text", "max_length": "5"}, "max_length: must be a whole number of at least 1"),
        ({"type": "integer", "default": "x"}, "default: must be a whole number"),
        ({"type": "integer", "max": 3, "default": 5}, "default: must be at most 3"),
        ({"type": "choice", "choices": ["a"], "default": "b"}, "default: must be one of a"),
        (
            {"type": "multichoice", "choices": ["a"], "default": ["b"]},
            "default: 'b' is not one of a",
        ),
        ({"type": "text", "pattern": "^a", "default": "b"}, "default: must match the pattern ^a"),
        ({"type": "date", "default": "tomorrow"}, "default: must be a date in the form"),
        (
            {"type": "datetime", "default": "2026-01-01T10:00"},
            "default: must be an ISO 8601 date-time with a timezone",
        ),
        ({"type": "boolean", "default": "maybe"}, "default: must be true or false"),
    ],
)
def test_field_problems(field: dict[str, Any], expected: str) -> None:
    problems = field_problems(**field)
    assert any(expected in p for p in problems), problems


def test_ecma_compatible_patterns_are_accepted() -> None:
    for pattern in ("^[A-Z]{2}\\d{4}$", "(\\d{4})-(?:\\d{2})", "a(?=b)", "(?<!x)y"):
        assert one_field(type="text", pattern=pattern).fields[0].pattern == pattern


def test_defaults_are_normalized() -> None:
    assert one_field(type="integer", default="7").fields[0].default == 7
    assert one_field(type="boolean", default="on").fields[0].default is True
    assert one_field(type="boolean", default=False).fields[0].default is False
    assert one_field(type="multichoice", choices=["a", "b"], default="b, a").fields[0].default == (
        "b",
        "a",
    )
    assert (
        one_field(type="datetime", default="2026-03-01T12:00+02:00").fields[0].default
        == "2026-03-01T10:00:00Z"
    )
    assert one_field(type="text", default="").fields[0].default is None


# --- JSON Schema ------------------------------------------------------------------------------


def test_imaging_schema() -> None:
    schema = parse_form({**IMAGING, "version": 3}).json_schema()
    Draft202012Validator.check_schema(schema)
    assert schema == {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:minimo:form:imaging:v3",
        "title": "Imaging run",
        "type": "object",
        "properties": {
            "operator": {"type": "string", "title": "Operator"},
            "objective": {"type": "string", "enum": ["10x", "63x"], "title": "Objective"},
            "temp_c": {"type": "number", "minimum": 0, "maximum": 50, "title": "Temp c"},
        },
        "required": ["operator"],
        "additionalProperties": False,
    }


def test_every_type_schema() -> None:
    schema = parse_form(every_type_form()).json_schema()
    Draft202012Validator.check_schema(schema)
    props = schema["properties"]
    assert schema["description"] == "One field of each type"
    assert schema["required"] == ["n"]
    assert props["t"] == {
        "type": "string",
        "maxLength": 5,
        "pattern": "^[A-Z]+$",
        "title": "T",
        "description": "h",
        "default": "AB",
    }
    assert props["ta"] == {"type": "string", "maxLength": 100, "title": "Ta"}
    assert props["mc"] == {
        "type": "array",
        "items": {"type": "string", "enum": ["a", "b", "c"]},
        "uniqueItems": True,
        "minItems": 1,
        "maxItems": 2,
        "title": "Mc",
        "default": ["a"],
    }
    assert props["i"] == {
        "type": "integer",
        "minimum": -3,
        "maximum": 3,
        "title": "I",
        "default": 0,
    }
    assert props["b"] == {"type": "boolean", "title": "B", "default": False}
    assert props["d"] == {
        "type": "string",
        "format": "date",
        "formatMinimum": "2026-01-01",
        "formatMaximum": "2026-12-31",
        "title": "D",
    }
    assert props["dt"] == {
        "type": "string",
        "format": "date-time",
        "formatMinimum": "2025-12-31T23:00:00Z",
        "title": "Dt",
    }
    json.dumps(schema)  # plain JSON


def test_format_assertions_are_active() -> None:
    """jsonschema's own date-time check silently passes without rfc3339-validator; ours must
    reject for real."""
    validator = make_validator(
        {
            "type": "object",
            "properties": {
                "d": {"type": "string", "format": "date"},
                "dt": {"type": "string", "format": "date-time"},
            },
        }
    )
    assert validator.is_valid({"d": "2026-02-28", "dt": "2026-02-28T10:00:00Z"})
    assert validator.is_valid({"dt": "2026-02-28T10:00:00.5+05:30"})
    for bad in (
        {"d": "2026-02-30"},
        {"d": "2026-2-3"},
        {"d": "20260228"},
        {"dt": "2026-02-28T10:00:00"},
        {"dt": "2026-02-28"},
        {"dt": "yesterday"},
        {"dt": "2026-02-28T25:00:00Z"},
    ):
        assert not validator.is_valid(bad), bad


# --- values -----------------------------------------------------------------------------------


def test_imaging_values() -> None:
    form = parse_form(IMAGING)
    assert validate_values(form, {"operator": "Ada", "objective": "63x", "temp_c": "21.5"}) == {
        "operator": "Ada",
        "objective": "63x",
        "temp_c": 21.5,
    }
    assert validate_values(form, {"operator": "Ada"}) == {"operator": "Ada"}


def test_imaging_errors_name_field_and_rule() -> None:
    form = parse_form({**IMAGING, "version": 3})
    with pytest.raises(FormValidationError) as info:
        validate_values(form, {"objective": "5x", "temp_c": 51, "notes": "hi"})
    assert info.value.errors == {
        "operator": ["is required"],
        "objective": ["must be one of 10x, 63x"],
        "temp_c": ["must be at most 50"],
        "notes": ["is not a field of form imaging v3"],
    }
    text = str(info.value)
    for line in (
        "temp_c: must be at most 50",
        "operator: is required",
        "objective: must be one of 10x, 63x",
        "notes: is not a field of form imaging v3",
    ):
        assert line in text


@pytest.mark.parametrize("empty", [None, "", "   ", [], ()])
def test_empty_input_counts_as_missing(empty: Any) -> None:
    form = parse_form(IMAGING)
    assert errors_of(form, {"operator": empty}) == {"operator": ["is required"]}
    assert validate_values(form, {"operator": "x", "temp_c": empty}) == {"operator": "x"}


def test_defaults_fill_missing_values() -> None:
    form = parse_form(every_type_form())
    assert validate_values(form, {"n": "1"}) == {
        "n": 1,
        "t": "AB",
        "c": "b",
        "mc": ["a"],
        "i": 0,
        "b": False,
    }
    # Given values beat defaults; an explicit false is a value, not an absence.
    out = validate_values(form, {"n": 1, "b": "yes", "c": "a", "mc": "b,c"})
    assert (out["b"], out["c"], out["mc"]) == (True, "a", ["b", "c"])


def test_required_field_with_default_is_satisfied() -> None:
    form = one_field(type="integer", required=True, default=3)
    assert validate_values(form, {}) == {"x": 3}
    assert validate_values(form, {"x": ""}) == {"x": 3}


def test_not_a_mapping() -> None:
    with pytest.raises(TypeError):
        validate_values(parse_form(IMAGING), ["operator"])  # type: ignore[arg-type]


Case = tuple[dict[str, Any], Any, Any]


def check_case(field: dict[str, Any], given: Any, expected: Any) -> None:
    form = one_field(**field)
    if isinstance(expected, Exception):
        assert errors_of(form, {"x": given}) == {"x": [str(expected)]}
    else:
        out = validate_values(form, {"x": given})
        assert out == {"x": expected}
        assert type(out["x"]) is type(expected)
        json.dumps(out)


def err(message: str) -> ValueError:
    return ValueError(message)


TEXT = {"type": "text", "pattern": "^[A-Z]{2}\\d+$", "max_length": 6}
TEXT_CASES: list[Case] = [
    (TEXT, "AB12", "AB12"),
    (TEXT, "ab12", err("must match the pattern ^[A-Z]{2}\\d+$")),
    (TEXT, "AB12345", err("must be at most 6 characters long")),
    (TEXT, 12, err("must be text")),
    ({"type": "text"}, " kept as typed ", " kept as typed "),
    ({"type": "text", "pattern": "b"}, "abc", "abc"),  # searched, not anchored
    ({"type": "textarea", "max_length": 10}, "two\nlines", "two\nlines"),
    ({"type": "textarea", "max_length": 3}, "four", err("must be at most 3 characters long")),
]
CHOICE = {"type": "choice", "choices": ["10x", "63x"]}
MULTI = {"type": "multichoice", "choices": ["dapi", "gfp", "rfp"], "min": 2, "max": 2}
CHOICE_CASES: list[Case] = [
    (CHOICE, "10x", "10x"),
    (CHOICE, " 63x ", "63x"),
    (CHOICE, "10X", err("must be one of 10x, 63x")),
    (CHOICE, 10, err("must be one of 10x, 63x")),
    (MULTI, ["dapi", "gfp"], ["dapi", "gfp"]),
    (MULTI, ("gfp", "rfp"), ["gfp", "rfp"]),
    (MULTI, "dapi, rfp", ["dapi", "rfp"]),
    (MULTI, "dapi,,rfp,", ["dapi", "rfp"]),
    (MULTI, "dapi", err("choose at least 2")),
    (MULTI, "dapi,gfp,rfp", err("choose at most 2")),
    (MULTI, ["dapi", "dapi"], err("must not repeat a choice")),
    (MULTI, ["dapi", "cy5"], err("'cy5' is not one of dapi, gfp, rfp")),
    (MULTI, 5, err("must be a list of choices (or a comma-separated string)")),
    ({"type": "multichoice", "choices": ["a", "b"]}, "a", ["a"]),
]
INTEGER = {"type": "integer", "min": -5, "max": 100}
NUMBER = {"type": "number", "min": 0, "max": 50}
NUMBER_CASES: list[Case] = [
    (INTEGER, "12", 12),
    (INTEGER, " -5 ", -5),
    (INTEGER, "+7", 7),
    (INTEGER, 100, 100),
    (INTEGER, 12.0, 12),
    (INTEGER, "12.5", err("must be a whole number")),
    (INTEGER, 12.5, err("must be a whole number")),
    (INTEGER, "twelve", err("must be a whole number")),
    (INTEGER, True, err("must be a whole number")),
    (INTEGER, "101", err("must be at most 100")),
    (INTEGER, -6, err("must be at least -5")),
    (NUMBER, "21.5", 21.5),
    (NUMBER, "21", 21),
    (NUMBER, ".5", 0.5),
    (NUMBER, "1e1", 10.0),
    (NUMBER, 0, 0),
    (NUMBER, 49.99, 49.99),
    (NUMBER, "50.01", err("must be at most 50")),
    (NUMBER, "-0.1", err("must be at least 0")),
    (NUMBER, "nan", err("must be a number")),
    (NUMBER, float("nan"), err("must be a finite number")),
    (NUMBER, float("inf"), err("must be a finite number")),
    (NUMBER, "1_0", err("must be a number")),
    (NUMBER, False, err("must be a number")),
    ({"type": "number", "min": 0.5}, 0.25, err("must be at least 0.5")),
]
BOOLEAN = {"type": "boolean"}
BOOLEAN_CASES: list[Case] = [
    *[(BOOLEAN, word, True) for word in ("true", "TRUE", "yes", "on", "1", "Y")],
    *[(BOOLEAN, word, False) for word in ("false", "No", "off", "0", "n")],
    (BOOLEAN, True, True),
    (BOOLEAN, False, False),
    (BOOLEAN, 1, True),
    (BOOLEAN, 0, False),
    (BOOLEAN, 2, err("must be true or false (yes/no, on/off, 1/0)")),
    (BOOLEAN, "maybe", err("must be true or false (yes/no, on/off, 1/0)")),
]
DATE = {"type": "date", "min": "2026-01-01", "max": "2026-12-31"}
DATETIME = {"type": "datetime", "min": "2026-01-01T00:00:00Z", "max": "2026-12-31T23:59:59Z"}
NEED_ZONE = err(
    "must be an ISO 8601 date-time with a timezone, e.g. 2026-11-25T14:30:00Z or "
    "2026-11-25T14:30:00+01:00"
)
DATE_CASES: list[Case] = [
    (DATE, "2026-11-25", "2026-11-25"),
    (DATE, " 2026-01-01 ", "2026-01-01"),
    (DATE, date(2026, 6, 1), "2026-06-01"),
    (DATE, "2025-12-31", err("must be on or after 2026-01-01")),
    (DATE, "2027-01-01", err("must be on or before 2026-12-31")),
    (DATE, "2026-02-29", err("must be a date in the form YYYY-MM-DD")),
    (DATE, "25/11/2026", err("must be a date in the form YYYY-MM-DD")),
    (DATE, "2026-W48-3", err("must be a date in the form YYYY-MM-DD")),
    (DATE, datetime(2026, 6, 1, tzinfo=UTC), err("must be a date in the form YYYY-MM-DD")),
    (DATETIME, "2026-11-25T14:30:00Z", "2026-11-25T14:30:00Z"),
    (DATETIME, "2026-11-25T14:30+01:00", "2026-11-25T13:30:00Z"),
    (DATETIME, "2026-11-25 14:30:00.250-05:00", "2026-11-25T19:30:00.250000Z"),
    (DATETIME, "2026-11-25t14:30:00z", "2026-11-25T14:30:00Z"),
    (DATETIME, "2026-11-25T14:30:00+0100", "2026-11-25T13:30:00Z"),
    (DATETIME, datetime(2026, 5, 1, 8, tzinfo=UTC), "2026-05-01T08:00:00Z"),
    (DATETIME, "2026-11-25T14:30:00", NEED_ZONE),
    (DATETIME, datetime(2026, 5, 1, 8), NEED_ZONE),
    (DATETIME, "2026-11-25", NEED_ZONE),
    (DATETIME, "2026-11-25T25:00Z", NEED_ZONE),
    # valid ISO 8601, but no instant in UTC (before year 1 / after 9999): was an OverflowError
    (DATETIME, "0001-01-01T00:00:00+14:00", NEED_ZONE),
    (DATETIME, "9999-12-31T23:59:59-14:00", NEED_ZONE),
    (DATETIME, "2027-01-01T00:30:00+01:00", "2026-12-31T23:30:00Z"),
    (DATETIME, "2027-01-01T00:30:00Z", err("must be on or before 2026-12-31T23:59:59Z")),
    (DATETIME, "2026-01-01T00:30:00+01:00", err("must be on or after 2026-01-01T00:00:00Z")),
]


@pytest.mark.parametrize(("field", "given", "expected"), TEXT_CASES)
def test_text_values(field: dict[str, Any], given: Any, expected: Any) -> None:
    check_case(field, given, expected)


@pytest.mark.parametrize(("field", "given", "expected"), CHOICE_CASES)
def test_choice_values(field: dict[str, Any], given: Any, expected: Any) -> None:
    check_case(field, given, expected)


@pytest.mark.parametrize(("field", "given", "expected"), NUMBER_CASES)
def test_number_values(field: dict[str, Any], given: Any, expected: Any) -> None:
    check_case(field, given, expected)


@pytest.mark.parametrize(("field", "given", "expected"), BOOLEAN_CASES)
def test_boolean_values(field: dict[str, Any], given: Any, expected: Any) -> None:
    check_case(field, given, expected)


@pytest.mark.parametrize(("field", "given", "expected"), DATE_CASES)
def test_date_values(field: dict[str, Any], given: Any, expected: Any) -> None:
    check_case(field, given, expected)


def test_normalized_values_validate_against_the_published_schema() -> None:
    """What validate_values returns is valid for anyone holding the JSON Schema alone."""
    form = parse_form(every_type_form())
    out = validate_values(
        form,
        {
            "t": "XY",
            "ta": "notes",
            "c": "a",
            "mc": "a,b",
            "i": "-3",
            "n": "2",
            "b": "off",
            "d": "2026-07-04",
            "dt": "2026-07-04T12:00:00+09:00",
        },
    )
    assert out["dt"] == "2026-07-04T03:00:00Z"
    assert make_validator(form.json_schema()).is_valid(out)
    Draft202012Validator(form.json_schema()).validate(out)


def test_all_errors_reported_at_once() -> None:
    form = parse_form(every_type_form())
    errors = errors_of(
        form,
        {"t": "lowercase", "i": "9", "b": "perhaps", "d": "2026-13-01", "extra": 1, "other": 2},
    )
    assert errors == {
        "t": ["must be at most 5 characters long", "must match the pattern ^[A-Z]+$"],
        "i": ["must be at most 3"],
        "b": ["must be true or false (yes/no, on/off, 1/0)"],
        "d": ["must be a date in the form YYYY-MM-DD"],
        "n": ["is required"],
        "extra": ["is not a field of form every-type v4"],
        "other": ["is not a field of form every-type v4"],
    }


def test_session_title_names_fields_of_the_form() -> None:
    definition = {
        "name": "mouse",
        "session_title": ["mouse_id", "day"],
        "fields": [{"name": "mouse_id", "type": "text"}, {"name": "day", "type": "text"}],
    }
    form = parse_form(definition)
    assert form.session_title == ("mouse_id", "day")
    assert parse_form(form.to_dict()) == form
    assert "session_title" not in parse_form({**definition, "session_title": []}).to_dict()
    with pytest.raises(FormDefinitionError) as info:
        parse_form({**definition, "session_title": ["mouse_id", "cage", "mouse_id"]})
    assert info.value.problems == [
        "session_title[1]: 'cage' is not a field of this form",
        "session_title[2]: 'mouse_id' is named twice",
    ]
    with pytest.raises(FormDefinitionError, match="session_title: must be a list"):
        parse_form({**definition, "session_title": "mouse_id"})


def test_a_boolean_left_out_is_false_unless_it_has_a_default() -> None:
    form = parse_form(
        {
            "name": "f",
            "fields": [
                {"name": "done", "type": "boolean"},
                {"name": "checked", "type": "boolean", "default": True},
                {"name": "note", "type": "text"},
            ],
        }
    )
    assert validate_values(form, {}) == {"done": False, "checked": True}
    assert validate_values(form, {"done": "yes", "checked": ""}) == {"done": True, "checked": True}


def test_session_title_beside_a_broken_field_is_reported_not_raised() -> None:
    with pytest.raises(FormDefinitionError) as info:
        parse_form({"name": "f", "fields": [{"name": {}, "type": "text"}], "session_title": ["x"]})
    assert "session_title[0]: 'x' is not a field of this form" in info.value.problems
