"""Import of the original minimo's text form format."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from policy.form_import import FormImportError, import_text, slugify
from policy.forms import FormDefinitionError, parse_form, validate_values

SAMPLE = Path(__file__).parent / "data" / "old_minimo_form.txt"


def problems_of(text: str, name: str = "f") -> list[str]:
    with pytest.raises(FormImportError) as info:
        import_text(name, text)
    return info.value.problems


def test_sample_file() -> None:
    form = import_text("confocal", SAMPLE.read_text())
    assert form.name == "confocal"
    assert form.title == "Confocal imaging session"
    assert form.version == 1
    summary = [(f.name, f.type, f.label, f.choices) for f in form.fields]
    assert summary == [
        ("sample_id", "text", "Which sample (tube label) was imaged?", ()),
        ("operator", "text", "Your name", ()),
        (
            "microscope",
            "choice",
            "Which microscope did you use?",
            ("Zeiss LSM 980", "Leica SP8", "Nikon Ti2 spinning disk"),
        ),
        ("objective", "choice", "Objective lens", ("10x air", "20x air", "63x oil")),
        ("stain_dye", "text", "Stains or dyes used (comma separated)", ()),
        ("f_2nd_pass", "choice", "Is this a re-imaging of an earlier run?", ("yes", "no")),
        (
            "notes",
            "textarea",
            "Anything unusual about this run (drift, bleaching, focus problems)",
            (),
        ),
    ]
    assert not any(f.required for f in form.fields)
    Draft202012Validator.check_schema(form.json_schema())
    assert parse_form(form.to_dict()) == form
    assert validate_values(form, {"sample_id": "T-17", "microscope": "Leica SP8"}) == {
        "sample_id": "T-17",
        "microscope": "Leica SP8",
    }


def test_sample_file_uses_crlf_and_trailing_whitespace() -> None:
    # The fixture stands for a file saved on Windows; keep it that way.
    raw = SAMPLE.read_bytes()
    assert b"\r\n" in raw
    assert b"  \r\n" in raw


def test_line_endings_and_blank_lines_do_not_matter() -> None:
    lf = "Run\n\nSample\nWhich?\ntext\n\nLens\nPick\ndropdown\n10x\n63x\n"
    crlf = lf.replace("\n", "\r\n")
    cr = lf.replace("\n", "\r")
    spaced = (
        "\ufeff\n\n  Run  \n \n\n\nSample \nWhich?\t\nTEXT\n\n\n\n"
        "Lens\nPick\ndropdown\n10x  \n63x\n\n"
    )
    forms = [import_text("f", text) for text in (lf, crlf, cr, spaced)]
    assert all(form == forms[0] for form in forms)
    assert forms[0].title == "Run"
    assert [(f.name, f.type, f.choices) for f in forms[0].fields] == [
        ("sample", "text", ()),
        ("lens", "choice", ("10x", "63x")),
    ]


def test_textbox_becomes_textarea() -> None:
    form = import_text("f", "T\n\nComments\nAny comments?\ntextbox")
    assert form.fields[0].type == "textarea"


def test_long_prompt_becomes_help() -> None:
    prompt = "Describe " + "very " * 60 + "carefully"
    form = import_text("f", f"T\n\nSample Prep\n{prompt}\ntext\n")
    assert form.fields[0].label == "Sample Prep"
    assert form.fields[0].help == prompt


@pytest.mark.parametrize(
    ("old", "slug"),
    [
        ("Sample ID", "sample_id"),
        ("sample-id", "sample_id"),
        ("  Temp (°C) ", "temp_c"),
        ("Größe", "grosse"),
        ("Bølge Æ", "bolge_ae"),
        ("温度", ""),  # nothing ASCII is left: the importer reports it
        ("Café au lait", "cafe_au_lait"),
        ("2nd pass", "f_2nd_pass"),
        ("__x__", "x"),
        ("CamelCase", "camelcase"),
        ("???", ""),
        ("a" * 80, "a" * 64),
        ("a" * 63 + " b", "a" * 63),
    ],
)
def test_slugify(old: str, slug: str) -> None:
    assert slugify(old) == slug


def test_empty_file() -> None:
    assert problems_of("") == ["line 1: the file is empty; line 1 must be the form's name"]
    assert problems_of("\n  \r\n") == ["line 1: the file is empty; line 1 must be the form's name"]


def test_untitled_blocks_import_and_the_title_is_the_name() -> None:
    # the seed's own example: one field, no title line
    form = import_text("comments", "comments\nComments?\ntext\n")
    assert form.title == "comments"
    assert [(f.name, f.type, f.label) for f in form.fields] == [("comments", "text", "Comments?")]
    two = import_text("f", "Sample\nWhich sample?\ndropdown\nA\nB\n\nNotes\nAnything?\ntextbox")
    assert [(f.name, f.type, f.choices) for f in two.fields] == [
        ("sample", "choice", ("A", "B")),
        ("notes", "textarea", ()),
    ]


def test_a_title_followed_by_a_field_without_a_blank_line_stays_a_title() -> None:
    form = import_text("f", "Imaging run\nSample\nWhich sample?\ntext")
    assert form.title == "Imaging run" and [f.name for f in form.fields] == ["sample"]


def test_no_fields() -> None:
    assert problems_of("Just a title\n\n") == ["line 1: no fields follow the form name"]


def test_errors_carry_line_numbers_and_all_are_reported() -> None:
    text = "\n".join(
        [
            "Broken form",  # 1
            "",  # 2
            "Sample",  # 3
            "Which sample?",  # 4
            "number",  # 5 unknown type
            "",  # 6
            "Lens",  # 7
            "Which lens?",  # 8
            "dropdown",  # 9 no options
            "",  # 10
            "Notes",  # 11
            "Anything else?",  # 12
            "text",  # 13
            "Operator",  # 14 missing blank line
            "",  # 15
            "Stage",  # 16
            "Pick",  # 17
            "dropdown",  # 18
            "x",  # 19
            "y",  # 20
            "x",  # 21 duplicate option
            "",  # 22
            "sample",  # 23 same slug as line 3 would be, but line 3 failed
            "again",  # 24
            "text",  # 25
            "",  # 26
            "SAMPLE",  # 27 same slug as line 23
            "again",  # 28
            "text",  # 29
            "",  # 30
            "!!!",  # 31
            "prompt",  # 32
            "text",  # 33
            "",  # 34
            "Truncated",  # 35
            "only a prompt",  # 36
        ]
    )
    assert problems_of(text) == [
        "line 5: unknown type 'number' for field 'Sample' (expected text, textbox or dropdown)",
        "line 9: dropdown field 'Lens' has no options (list them one per line after 'dropdown')",
        "line 14: unexpected line 'Operator' after type 'text' of field 'Notes' (separate fields "
        "with a blank line)",
        "line 21: option 'x' of field 'Stage' repeats line 19",
        "line 27: field 'SAMPLE' becomes 'sample', the same name as the field on line 23",
        "line 31: field name '!!!' has no letters or digits",
        "line 35: truncated field block ('Truncated', 'only a prompt'): each field needs three "
        "lines: field name, prompt, type",
    ]


def test_bad_form_name_is_reported() -> None:
    with pytest.raises(FormDefinitionError, match="must start with a lowercase letter"):
        import_text("Bad Name", "T\n\nA\nB\ntext\n")


def test_import_error_is_a_definition_error() -> None:
    with pytest.raises(FormDefinitionError, match=r"cannot import form: line 1"):
        import_text("f", "")
