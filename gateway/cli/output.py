"""How the commands print: instants and sizes in tables, and problems one per line.

Problems (``temp_c: must be at most 50``) go to stderr without click's ``Error:`` prefix, so a
form's validation messages read as the form states them; the exit status is 1.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import IO, Any

import click

from policy.forms import FormDefinitionError, FormValidationError
from policy.rules import PolicyError


def when(value: datetime | None) -> str:
    """An instant in a table: ``2026-11-25 14:30:00 UTC``, ``-`` for never."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def human_size(size: int) -> str:
    """``1.5 MiB``; below 1 KiB the exact ``812 B``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def validation_lines(exc: FormValidationError) -> list[str]:
    """One ``field: message`` line per problem (a message about the whole form has no field)."""
    return [
        f"{name}: {message}" if name else message
        for name, messages in exc.errors.items()
        for message in messages
    ]


class Problems(click.ClickException):
    """One or more problems, printed one per line (no "Error:" prefix on field messages)."""

    def __init__(self, lines: list[str], heading: str | None = None) -> None:
        self.lines = [line for line in lines if line]
        self.heading = heading
        super().__init__("; ".join(self.lines))

    def show(self, file: IO[Any] | None = None) -> None:
        out = file or sys.stderr
        if self.heading:
            click.echo(self.heading, file=out)
        for line in self.lines:
            click.echo(line, file=out)


def problems(exc: Exception) -> click.ClickException:
    """The exit-1 error ``exc`` is shown as: its problems one per line when it has several."""
    if isinstance(exc, FormValidationError):
        return Problems(validation_lines(exc))
    if isinstance(exc, FormDefinitionError):
        return Problems(exc.problems, "invalid form definition:")
    if isinstance(exc, PolicyError):
        return Problems(exc.problems, "invalid policy:")
    return click.ClickException(str(exc))
