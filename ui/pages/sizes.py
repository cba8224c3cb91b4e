"""Byte counts for people: binary units (KiB, MiB, GiB, TiB), as ``ls -h`` and the MinIO console
show them. Pages show them (the ``human_size`` filter), with the exact count in a title beside
it; the JSON API keeps plain integers."""

from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(size: int | None) -> str:
    """``1536`` -> ``1.5 KiB``; under 1 KiB in bytes (``1 byte``, ``12 bytes``); one decimal
    below 10 units, none above; ``None`` (unknown) -> ``""``."""
    if size is None:
        return ""
    if size < 1024:
        return "1 byte" if size == 1 else f"{size} bytes"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")
