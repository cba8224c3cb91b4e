"""Policy rules: which bucket/prefix needs which forms, who may open sessions there, and what
overwrites, deletes and session lifetimes are allowed. First matching rule wins; no match means
writes are refused.

The policy file is TOML, one ``[[rule]]`` table per rule, in priority order::

    [[rule]]
    bucket = "raw"                 # glob on the bucket name
    prefix = "2026/*/"             # glob on a leading part of the key
    forms = ["imaging"]
    open_sessions = ["uploader", "alice"]   # role and/or user names
    overwrite = "deny"             # deny | allow
    delete = "deny"                # deny | owner | admin
    session_ttl = "7d"
    max_session_ttl = "30d"
    ro_crate_on_close = true       # closing writes <prefix>ro-crate-metadata.json by default

    [[rule]]
    bucket = "scratch"
    require_session = false        # explicit scratch area: writes need no session

Matching, precisely:

* ``bucket`` is a case-sensitive glob (``fnmatch.fnmatchcase``) on the whole bucket name.
* ``prefix`` is a case-sensitive glob that must match a *leading part* of the key (any prefix of
  it, including the whole key). ``*`` matches any run of characters, ``/`` included; ``?`` one
  character; ``[...]`` a class (``[!...]`` negated). So ``"raw/*/"`` matches ``raw/2026/x.tif``
  (leading part ``raw/2026/``) and also ``raw/a/b/c``, but not ``raw/x.tif``; a literal
  ``"2026/"`` matches every key that starts with ``2026/``; ``""`` and ``"*"`` match every key.
* To find the rule for a session's scope, match its bucket and its key prefix.

Errors name the rule by its 1-based position in the file ("rule 2" is the second table).
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from policy.durations import DurationError, format_duration, parse_duration
from policy.forms import FORM_NAME

OVERWRITE_CHOICES = ("deny", "allow")
DELETE_CHOICES = ("deny", "owner", "admin")
DEFAULT_OPEN_SESSIONS = ("admin", "uploader")
DEFAULT_SESSION_TTL = "7d"
DEFAULT_MAX_SESSION_TTL = "30d"

_RULE_KEYS = (
    "bucket",
    "prefix",
    "forms",
    "open_sessions",
    "overwrite",
    "delete",
    "session_ttl",
    "max_session_ttl",
    "require_session",
    "ro_crate_on_close",
)
# Bucket names are lowercase letters, digits, dots and hyphens; a glob may add * ? [ ] !.
_BUCKET_GLOB = re.compile(r"[a-z0-9.\-*?\[\]!]+")


class PolicyError(ValueError):
    """A policy that cannot be used; ``.problems`` names each rule (1-based) and key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid policy: " + "; ".join(self.problems))


@lru_cache(maxsize=1024)
def _prefix_regex(glob: str) -> re.Pattern[str]:
    # fnmatch.translate anchors the end with \Z; without it, re.match accepts exactly the keys
    # that have some leading part matching the glob.
    translated = fnmatch.translate(glob)
    for anchor in ("\\Z", "\\z"):
        if translated.endswith(anchor):
            return re.compile(translated.removesuffix(anchor))
    raise AssertionError(f"unexpected fnmatch.translate output {translated!r}")


@dataclass(frozen=True, slots=True)
class Rule:
    bucket: str
    prefix: str = ""
    forms: tuple[str, ...] = ()
    open_sessions: tuple[str, ...] = DEFAULT_OPEN_SESSIONS
    overwrite: str = "deny"
    delete: str = "deny"
    session_ttl: timedelta = timedelta(days=7)
    max_session_ttl: timedelta = timedelta(days=30)
    require_session: bool = True
    #: the default of "write the session's RO-Crate into its prefix" when a session is closed
    ro_crate_on_close: bool = False

    def matches(self, bucket: str, key: str) -> bool:
        return fnmatch.fnmatchcase(bucket, self.bucket) and bool(
            _prefix_regex(self.prefix).match(key)
        )

    def may_open(self, user: str, role: str) -> bool:
        """Whether ``user`` with ``role`` may open sessions under this rule.

        Admins always may (the admin role can do everything) and readers never may (read-only,
        even when named); anyone else must be named in ``open_sessions`` by user or role name.
        """
        if role == "admin":
            return True
        if role == "reader":
            return False
        return user in self.open_sessions or role in self.open_sessions

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "forms": list(self.forms),
            "open_sessions": list(self.open_sessions),
            "overwrite": self.overwrite,
            "delete": self.delete,
            "session_ttl": format_duration(self.session_ttl),
            "max_session_ttl": format_duration(self.max_session_ttl),
            "require_session": self.require_session,
        }
        # Only when on: policies without the option keep their stored form (and version).
        if self.ro_crate_on_close:
            data["ro_crate_on_close"] = True
        return data


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...] = ()

    def match(self, bucket: str, key: str) -> Rule | None:
        """The first rule matching ``bucket``/``key``; None means writes there are refused."""
        return next((rule for rule in self.rules if rule.matches(bucket, key)), None)

    def to_dict(self) -> dict[str, Any]:
        return {"rules": [rule.to_dict() for rule in self.rules]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        if not isinstance(data, Mapping) or set(data) - {"rules"}:
            raise PolicyError(["a stored policy must be an object with only the key 'rules'"])
        return _build(data.get("rules", []), "rules")

    def to_toml(self) -> str:
        """The policy as a file :func:`parse_policy` reads back to an equal policy."""
        return rules_toml([rule.to_dict() for rule in self.rules])


def rules_toml(tables: Sequence[Mapping[str, Any]]) -> str:
    """A policy file of ``[[rule]]`` tables, checked by nothing: the web UI's rule editor
    writes what was entered, and :func:`parse_policy` judges it like any file."""
    if not tables:
        return "# No rules: every write is refused.\n"
    out = []
    for table in tables:
        lines = ["[[rule]]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def _toml_value(value: Any) -> str:
    """TOML for the value types this schema uses: strings, booleans, lists of strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _toml_string(text: str) -> str:
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        # TOML basic strings forbid other control characters and DEL unescaped.
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def parse_policy(toml_text: str) -> Policy:
    """Read a policy file (TOML with ``[[rule]]`` tables); raise :class:`PolicyError`."""
    try:
        data = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([f"not valid TOML: {exc}"]) from exc
    problems = [
        f"{key}: unknown top-level key (rules are [[rule]] tables)" for key in data if key != "rule"
    ]
    if problems:
        raise PolicyError(problems)
    return _build(data.get("rule", []), "rule")


def _build(raw_rules: object, key: str) -> Policy:
    if not isinstance(raw_rules, list):
        raise PolicyError([f"{key}: must be a list of rule tables"])
    problems: list[str] = []
    rules = []
    for number, raw in enumerate(raw_rules, start=1):
        rule = _parse_rule(raw, f"rule {number}", problems)
        if rule is not None:
            rules.append(rule)
    if problems:
        raise PolicyError(problems)
    return Policy(tuple(rules))


def _string_list(value: object) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return None
    return tuple(value)


def _parse_rule(raw: object, where: str, problems: list[str]) -> Rule | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a table")
        return None
    start = len(problems)

    def problem(key: str, message: str) -> None:
        problems.append(f"{where}: {key}: {message}")

    for key in raw:
        if key not in _RULE_KEYS:
            problem(key, f"unknown key (known: {', '.join(_RULE_KEYS)})")

    bucket = raw.get("bucket")
    if not isinstance(bucket, str) or not bucket:
        problem("bucket", "required: a bucket name or glob such as 'raw' or 'lab-*'")
    elif not _BUCKET_GLOB.fullmatch(bucket):
        problem("bucket", f"{bucket!r} can never match: bucket names use only a-z, 0-9, '.', '-'")

    prefix = raw.get("prefix", "")
    if not isinstance(prefix, str):
        problem("prefix", "must be a string (a glob such as 'raw/*/'; '' matches every key)")

    require_session = raw.get("require_session", True)
    if not isinstance(require_session, bool):
        problem("require_session", "must be true or false")

    forms = _string_list(raw.get("forms", []))
    if forms is None:
        problem("forms", "must be a list of form names")
    else:
        for name in forms:
            if not FORM_NAME.fullmatch(name):
                problem("forms", f"{name!r} is not a form name")
        if len(set(forms)) != len(forms):
            problem("forms", "lists a form twice")
        if not forms and require_session is True:
            problem("forms", "at least one form is needed unless require_session = false")

    open_sessions = _string_list(raw.get("open_sessions", list(DEFAULT_OPEN_SESSIONS)))
    if open_sessions is None:
        problem("open_sessions", "must be a list of role and/or user names")

    ro_crate_on_close = raw.get("ro_crate_on_close", False)
    if not isinstance(ro_crate_on_close, bool):
        problem("ro_crate_on_close", "must be true or false")

    choices = {"overwrite": OVERWRITE_CHOICES, "delete": DELETE_CHOICES}
    for key, allowed in choices.items():
        if raw.get(key, "deny") not in allowed:
            problem(key, f"must be one of {', '.join(allowed)}, not {raw.get(key)!r}")

    ttls: dict[str, timedelta] = {}
    for key, default in (
        ("session_ttl", DEFAULT_SESSION_TTL),
        ("max_session_ttl", DEFAULT_MAX_SESSION_TTL),
    ):
        try:
            ttls[key] = parse_duration(raw.get(key, default))
        except DurationError as exc:
            problem(key, str(exc))
    if len(ttls) == 2 and ttls["session_ttl"] > ttls["max_session_ttl"]:
        problem(
            "session_ttl",
            f"{format_duration(ttls['session_ttl'])} is longer than "
            f"max_session_ttl {format_duration(ttls['max_session_ttl'])}",
        )

    if len(problems) > start:
        return None
    return Rule(
        bucket=bucket,
        prefix=prefix,
        forms=forms or (),
        open_sessions=open_sessions or (),
        overwrite=raw.get("overwrite", "deny"),
        delete=raw.get("delete", "deny"),
        session_ttl=ttls["session_ttl"],
        max_session_ttl=ttls["max_session_ttl"],
        require_session=require_session,
        ro_crate_on_close=ro_crate_on_close,
    )
