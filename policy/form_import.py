"""Import forms written in the original minimo's text format (the lab tool minimo replaces).

The format::

    Imaging run                 <- line 1: the form's title (optional, see below)
                                <- blank line(s) between blocks
    Sample ID                   <- field name (free text in the old tool)
    Which sample was imaged?    <- prompt shown to the user
    text                        <- type: text | textbox | dropdown

    Objective
    Which objective?
    dropdown
    10x                         <- a dropdown's options, one per line, up to the next blank line
    63x oil

Mapping decisions:

* The title line is optional: a file whose first block is itself a field (its third line is a
  type word, as in ``comments / Comments? / text``) has none, and the form's title is its name.

* ``textbox`` -> ``textarea``, ``dropdown`` -> ``choice``; type words are case-insensitive.
* The old field name becomes an identifier with :func:`slugify` (``"Sample ID"`` ->
  ``sample_id``). Migration code maps old MongoDB document keys the same way.
* The prompt is what users saw next to the input, so it becomes the label. A prompt too long
  for a label becomes the help text and the old field name becomes the label.
* Every imported field is optional: the old format had no notion of required fields. Admins
  tighten the imported form afterwards (which makes a new version).
* Blocks are strict: a text block with extra lines is an error rather than a guess, because a
  missing blank line before the next field is the usual cause and guessing would misplace fields.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from policy.forms import MAX_LABEL_LENGTH, MAX_NAME_LENGTH, Form, FormDefinitionError, parse_form

_SPELLED = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "ø": "o",
        "Ø": "O",
        "œ": "oe",
        "Œ": "OE",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "þ": "th",
    }
)
OLD_TYPES = {"text": "text", "textbox": "textarea", "dropdown": "choice"}


class FormImportError(FormDefinitionError):
    """An old-format form file that cannot be imported; problems carry line numbers."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.args = ("cannot import form: " + "; ".join(self.problems),)


def slugify(name: str) -> str:
    """An identifier (``[a-z][a-z0-9_]*``, at most 64 characters) for an old field name.

    Returns "" when nothing usable is left (for example a name made only of punctuation).
    """
    # NFKD strips accents (é -> e); these letters have no decomposition but a usual spelling.
    name = name.translate(_SPELLED)
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    if slug and not slug[0].isalpha():
        slug = "f_" + slug  # identifiers must start with a letter: "2nd pass" -> f_2nd_pass
    return slug[:MAX_NAME_LENGTH].rstrip("_")


def _blocks(lines: list[str], first: int) -> list[tuple[int, list[str]]]:
    """Runs of non-blank lines from index ``first`` on, each with its 1-based start line."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    for number, line in enumerate(lines[first:], start=first + 1):
        if line:
            if not current:
                blocks.append((number, current))
            current.append(line)
        else:
            current = []
    return blocks


def _field(start: int, block: list[str], problems: list[str]) -> dict[str, Any] | None:
    if len(block) < 3:
        got = ", ".join(repr(line) for line in block)
        problems.append(
            f"line {start}: truncated field block ({got}): each field needs three lines: "
            "field name, prompt, type"
        )
        return None
    original, prompt, type_word = block[0], block[1], block[2].lower()
    name = slugify(original)
    if not name:
        problems.append(f"line {start}: field name {original!r} has no letters or digits")
        return None
    if type_word not in OLD_TYPES:
        problems.append(
            f"line {start + 2}: unknown type {block[2]!r} for field {original!r} "
            "(expected text, textbox or dropdown)"
        )
        return None
    field: dict[str, Any] = {"name": name, "type": OLD_TYPES[type_word]}
    if len(prompt) <= MAX_LABEL_LENGTH:
        field["label"] = prompt
    else:
        field.update(label=original[:MAX_LABEL_LENGTH], help=prompt)
    options = block[3:]
    if type_word != "dropdown":
        if options:
            problems.append(
                f"line {start + 3}: unexpected line {options[0]!r} after type {block[2]!r} of "
                f"field {original!r} (separate fields with a blank line)"
            )
            return None
        return field
    if not options:
        problems.append(
            f"line {start + 2}: dropdown field {original!r} has no options "
            "(list them one per line after 'dropdown')"
        )
        return None
    seen: dict[str, int] = {}
    for number, option in enumerate(options, start=start + 3):
        if option in seen:
            problems.append(
                f"line {number}: option {option!r} of field {original!r} repeats line "
                f"{seen[option]}"
            )
        seen.setdefault(option, number)
    field["choices"] = list(seen)
    return field


def _starts_with_a_field(lines: list[str], first: int) -> bool:
    """Whether the first block (from line index ``first``) is a field block rather than a
    title: its third line is one of the type words."""
    block = _blocks(lines, first)[0][1]
    return len(block) >= 3 and block[2].lower() in OLD_TYPES


def import_text(name: str, text: str) -> Form:
    """Build a :class:`Form` called ``name`` from an old minimo form file's text.

    Raises :class:`FormImportError` (a :class:`FormDefinitionError`) listing every problem
    with its line number.
    """
    # splitlines() handles CRLF and lone CR; trailing whitespace is invisible in editors.
    lines = [line.strip() for line in text.removeprefix("\ufeff").splitlines()]
    first = next((i for i, line in enumerate(lines) if line), None)
    if first is None:
        raise FormImportError(["line 1: the file is empty; line 1 must be the form's name"])
    problems: list[str] = []
    fields: list[dict[str, Any]] = []
    origin: dict[str, int] = {}
    titled = not _starts_with_a_field(lines, first)
    for start, block in _blocks(lines, first + 1 if titled else first):
        field = _field(start, block, problems)
        if field is None:
            continue
        if field["name"] in origin:
            problems.append(
                f"line {start}: field {block[0]!r} becomes {field['name']!r}, the same name as "
                f"the field on line {origin[field['name']]}"
            )
            continue
        origin[field["name"]] = start
        fields.append(field)
    if not fields and not problems:
        problems.append(f"line {first + 1}: no fields follow the form name")
    if problems:
        raise FormImportError(problems)
    definition: dict[str, Any] = {"name": name, "fields": fields}
    if titled:
        definition["title"] = lines[first]
    try:
        return parse_form(definition)
    except FormDefinitionError as exc:
        raise FormImportError(exc.problems) from exc
