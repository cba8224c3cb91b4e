"""Human durations for policy files: ``"7d"``, ``"12h"``, ``"30m"``, ``"90s"``, ``"1d12h"``.

Only whole numbers of days, hours, minutes and seconds, largest unit first, each unit at most
once. Anything looser ("1.5d", "7 days", "P7D") is refused rather than guessed, because a policy
typo silently turning into a different session lifetime is worse than a clear error.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS: dict[str, int] = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


class DurationError(ValueError):
    """A duration string that does not follow the ``<n>d<n>h<n>m<n>s`` form."""


def parse_duration(text: str) -> timedelta:
    """Parse ``"7d"``, ``"12h"``, ``"30m"``, ``"90s"`` or a combination such as ``"1d12h"``."""
    if not isinstance(text, str):
        raise DurationError(f"a duration must be a string like '7d', not {type(text).__name__}")
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise DurationError(
            f"bad duration {text!r}: use whole numbers with units d, h, m, s, e.g. '7d', '12h', "
            "'1d12h'"
        )
    try:
        seconds = sum(
            int(group) * factor
            for group, factor in zip(match.groups(), _UNITS.values(), strict=True)
            if group is not None
        )
    except ValueError:  # int() refuses more than 4300 digits
        raise DurationError(f"bad duration {text!r}: far too long") from None
    if seconds <= 0:
        raise DurationError(f"bad duration {text!r}: must be longer than zero")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:  # beyond timedelta's 999999999 days
        raise DurationError(f"bad duration {text!r}: far too long") from None


def format_duration(value: timedelta) -> str:
    """The shortest string :func:`parse_duration` reads back as ``value`` (whole seconds)."""
    seconds = int(value.total_seconds())
    if seconds <= 0 or seconds != value.total_seconds():
        raise DurationError(f"cannot format {value!r}: only positive whole seconds")
    parts = []
    for unit, factor in _UNITS.items():
        count, seconds = divmod(seconds, factor)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
