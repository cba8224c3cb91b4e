"""The policy page's rule editor: every option of every rule as form fields, turned back into
the policy file it means, so saving goes through the same parsing and checks as the TOML text,
the API and ``minimo policy set``. Problems come back as "rule N: key: message" and are shown
beside that field of that rule.

Each rule is a group of fields named ``rule-I-KEY`` (I its row on the page); ``rule-I-position``
orders them (first match wins), ``rule-I-remove`` drops one, and the row with an empty bucket
after the last rule is a new one, ignored while its bucket is empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from multidict import MultiMapping

from policy.rules import (
    DEFAULT_MAX_SESSION_TTL,
    DEFAULT_OPEN_SESSIONS,
    DEFAULT_SESSION_TTL,
    Rule,
)

_PROBLEM = re.compile(r"rule (\d+): (\w+): (.*)", re.DOTALL)


@dataclass
class RuleRow:
    """One rule as the editor shows it: its options as entered, and problems by option."""

    bucket: str = ""
    prefix: str = ""
    forms: list[str] = field(default_factory=list)
    open_sessions: str = ", ".join(DEFAULT_OPEN_SESSIONS)
    overwrite: str = "deny"
    delete: str = "deny"
    session_ttl: str = DEFAULT_SESSION_TTL
    max_session_ttl: str = DEFAULT_MAX_SESSION_TTL
    require_session: bool = True
    ro_crate_on_close: bool = False
    errors: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, rule: Rule) -> RuleRow:
        data = rule.to_dict()
        return cls(
            bucket=rule.bucket,
            prefix=rule.prefix,
            forms=list(rule.forms),
            open_sessions=", ".join(rule.open_sessions),
            overwrite=rule.overwrite,
            delete=rule.delete,
            session_ttl=data["session_ttl"],
            max_session_ttl=data["max_session_ttl"],
            require_session=rule.require_session,
            ro_crate_on_close=rule.ro_crate_on_close,
        )

    def table(self) -> dict[str, Any]:
        """The rule's ``[[rule]]`` table, as a policy file spells it."""
        data: dict[str, Any] = {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "forms": self.forms,
            "open_sessions": [n.strip() for n in self.open_sessions.split(",") if n.strip()],
            "overwrite": self.overwrite,
            "delete": self.delete,
            "session_ttl": self.session_ttl,
            "max_session_ttl": self.max_session_ttl,
            "require_session": self.require_session,
        }
        if self.ro_crate_on_close:  # as Rule.to_dict: only when on
            data["ro_crate_on_close"] = True
        return data


def rows_from_post(data: MultiMapping[Any]) -> list[RuleRow]:
    """The rules a submitted editor holds, in their chosen order (removed and empty new rows
    left out)."""
    indexes = sorted({int(m[1]) for k in data if (m := re.fullmatch(r"rule-(\d+)-bucket", k))})
    ordered: list[tuple[float, int, RuleRow]] = []
    for i in indexes:

        def text(key: str, i: int = i) -> str:
            return str(data.get(f"rule-{i}-{key}", "")).strip()

        if text("remove") or (text("new") and not text("bucket")):
            continue
        row = RuleRow(
            bucket=text("bucket"),
            prefix=str(data.get(f"rule-{i}-prefix", "")),
            forms=[str(f) for f in data.getall(f"rule-{i}-forms", []) if str(f)],
            open_sessions=text("open_sessions"),
            overwrite=text("overwrite"),
            delete=text("delete"),
            session_ttl=text("session_ttl"),
            max_session_ttl=text("max_session_ttl"),
            require_session=bool(text("require_session")),
            ro_crate_on_close=bool(text("ro_crate_on_close")),
        )
        try:
            position = float(text("position"))
        except ValueError:
            position = float(i + 1)
        ordered.append((position, i, row))
    return [row for _, _, row in sorted(ordered, key=lambda entry: entry[:2])]


def place_problems(rows: list[RuleRow], problems: list[str]) -> list[str]:
    """Put each "rule N: key: message" beside its field; returns the problems that name no
    rule's field (shown above the rules)."""
    general = []
    for problem in problems:
        match = _PROBLEM.fullmatch(problem)
        if match is None or not 1 <= int(match[1]) <= len(rows):
            general.append(problem)
            continue
        rows[int(match[1]) - 1].errors.setdefault(match[2], []).append(match[3])
    return general
