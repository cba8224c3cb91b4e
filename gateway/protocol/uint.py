"""Unsigned decimal numbers in headers and query strings, read strictly."""

from __future__ import annotations

#: more digits than any length, time or count an S3 request carries (2**64 has 20)
MAX_DIGITS = 20


def parse_uint(text: str) -> int | None:
    """``text`` as a non-negative integer of ASCII digits, or None.

    Stricter than ``int()``: ``str.isdigit()`` is also true for "²", which ``int()`` refuses
    (that was a 500), ``int()`` takes other scripts' digits, signs and spaces, and refuses more
    than 4300 digits with an error of its own.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_DIGITS:
        return None
    return int(text)
