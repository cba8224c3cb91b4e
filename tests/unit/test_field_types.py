"""The field-type registry: every type has every facet, and each facet works for its example.

A new type in ``policy/field_types.py`` is checked here without a line of test of its own: its
``example`` definition must parse, its ``example_value`` (typed as on the CLI) must validate
against its schema, be searchable with every operator it offers, and survive the web page's
round trip (stored value -> input -> posted form -> the same value).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
import pytest
from jsonschema import Draft202012Validator
from multidict import MultiDict, MultiDictProxy

from policy.field_types import (
    ALL_SEARCH_OPS,
    FIELD_TYPES_BY_NAME,
    TYPED_KEYS,
    FieldType,
    Widget,
)
from policy.forms import FIELD_TYPES, Form, make_validator, parse_form, validate_values
from policy.store.base import FieldFilter
from ui.pages.fields import display_values, html_pattern, input_value, values_from_post

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "ui" / "templates"
TYPES = sorted(FIELD_TYPES_BY_NAME.items())


def example_form(kind: FieldType) -> Form:
    return parse_form({"name": "f", "fields": [{"name": "x", "type": kind.name, **kind.example}]})


def stored_example(kind: FieldType) -> tuple[Form, Any]:
    form = example_form(kind)
    return form, validate_values(form, {"x": kind.example_value})["x"]


def test_registry_is_the_list_of_types() -> None:
    assert tuple(FIELD_TYPES_BY_NAME) == FIELD_TYPES


@pytest.mark.parametrize(("name", "kind"), TYPES)
def test_every_type_has_every_facet(name: str, kind: FieldType) -> None:
    assert isinstance(kind, FieldType)
    assert kind.name == name
    assert kind.constraints <= TYPED_KEYS
    assert kind.search_operators and kind.search_operators <= ALL_SEARCH_OPS
    assert isinstance(kind.widget, Widget)
    assert isinstance(kind.example_value, str) and kind.example_value
    # the example exercises every constraint the type has, so the checks below reach them
    assert set(kind.example) <= kind.constraints
    if "choices" in kind.constraints:
        assert kind.example.get("choices")
    if kind.constraints & {"min", "max"}:
        assert set(kind.example) & {"min", "max"}
    field = example_form(kind).fields[0]
    assert field.field_type is kind
    assert isinstance(kind.type_message(field), str) and kind.type_message(field)
    schema = kind.schema(field)
    Draft202012Validator.check_schema(schema)
    assert "type" in schema


@pytest.mark.parametrize(("name", "kind"), TYPES)
def test_example_value_validates_against_the_schema(name: str, kind: FieldType) -> None:
    form, value = stored_example(kind)
    assert value is not None
    assert not list(make_validator(form.json_schema()).iter_errors({"x": value}))
    # a value already stored (JSON) is accepted again unchanged
    assert validate_values(form, {"x": value}) == {"x": value}


@pytest.mark.parametrize(("name", "kind"), TYPES)
def test_a_value_of_the_wrong_type_gets_the_types_message(name: str, kind: FieldType) -> None:
    form = example_form(kind)
    field = form.fields[0]
    wrong = {"not": "a value of any field type"}
    with pytest.raises(ValueError) as info:
        validate_values(form, {"x": wrong})
    assert kind.type_message(field) in str(info.value)


@pytest.mark.parametrize(("name", "kind"), TYPES)
def test_example_value_is_searchable_with_every_operator(name: str, kind: FieldType) -> None:
    field = example_form(kind).fields[0]
    for op in kind.search_operators - {"contains"}:
        FieldFilter("x", op, kind.search_value(field, op, kind.example_value))


@pytest.mark.parametrize(("name", "kind"), TYPES)
def test_widget_macro_exists_and_renders(name: str, kind: FieldType) -> None:
    source = (TEMPLATES / "_fields.html").read_text()
    assert re.search(rf'"{kind.widget.macro}":\s*\w+_widget', source), "no macro for the widget"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals["html_pattern"] = html_pattern
    form, value = stored_example(kind)
    page = env.from_string('{% from "_fields.html" import field_block %}{{ field_block(f, v, e) }}')
    html = page.render(f=form.fields[0], v=input_value(form.fields[0], value), e=None)
    assert 'name="x"' in html


@pytest.mark.parametrize(("name", "kind"), TYPES)
def test_a_stored_value_survives_the_page_round_trip(name: str, kind: FieldType) -> None:
    """stored value -> the input's value -> what the browser posts -> the same stored value."""
    form, value = stored_example(kind)
    shown = input_value(form.fields[0], value)
    sent = [("x", str(v)) for v in shown] if isinstance(shown, list) else [("x", str(shown))]
    posted = values_from_post(form, MultiDictProxy(MultiDict([*sent, ("_tz", "+00:00")])))
    assert validate_values(form, posted) == {"x": value}
    assert set(display_values(form, posted)) == {"x"}


def test_no_switch_on_a_field_type_outside_the_registry() -> None:
    """Field types are looked up, not compared: ``f.type == "date"`` belongs in the registry."""
    names = "|".join(FIELD_TYPES)
    switch = re.compile(rf"""(\.type|\bftype)\s*(==|!=|in|not in)\s*[(\[{{]?\s*["']({names})["']""")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for top in ("policy", "ui", "gateway")
        for path in sorted((ROOT / top).rglob("*"))
        if path.suffix in (".py", ".html", ".js") and path.name != "field_types.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if switch.search(line)
    ]
    assert not offenders
