"""Policy rules: parsing, matching order and globs, who may open sessions, durations, TOML."""

from __future__ import annotations

import fnmatch
import tomllib
from datetime import timedelta
from typing import Any

import pytest

from policy.durations import DurationError, format_duration, parse_duration
from policy.rules import Policy, PolicyError, Rule, parse_policy

EXAMPLE = """
# Raw microscopy data: one imaging session per run.
[[rule]]
bucket = "raw"
prefix = "2026/*/"
forms = ["imaging"]
open_sessions = ["uploader", "alice"]
session_ttl = "12h"
max_session_ttl = "2d"

[[rule]]
bucket = "raw"
forms = ["imaging", "cryo-em"]
delete = "owner"

[[rule]]
bucket = "lab-*"
prefix = "shared/"
forms = ["generic"]
overwrite = "allow"
delete = "admin"

[[rule]]
bucket = "scratch"
require_session = false
overwrite = "allow"
"""


def problems_of(toml_text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(toml_text)
    return info.value.problems


def one_rule(**keys: Any) -> str:
    lines = ["[[rule]]"]
    keys = {"bucket": "raw", "forms": ["f"], **keys}
    lines += [
        f"{key} = {value!r}".replace("'", '"').replace("True", "true").replace("False", "false")
        for key, value in keys.items()
        if value is not None
    ]
    return "\n".join(lines) + "\n"


# --- parsing ----------------------------------------------------------------------------------


def test_example_parses_with_defaults() -> None:
    policy = parse_policy(EXAMPLE)
    assert len(policy.rules) == 4
    first, second, third, scratch = policy.rules
    assert first == Rule(
        bucket="raw",
        prefix="2026/*/",
        forms=("imaging",),
        open_sessions=("uploader", "alice"),
        overwrite="deny",
        delete="deny",
        session_ttl=timedelta(hours=12),
        max_session_ttl=timedelta(days=2),
        require_session=True,
    )
    assert second.prefix == ""
    assert second.open_sessions == ("admin", "uploader")
    assert second.delete == "owner"
    assert second.session_ttl == timedelta(days=7)
    assert second.max_session_ttl == timedelta(days=30)
    assert (third.overwrite, third.delete) == ("allow", "admin")
    assert scratch.require_session is False
    assert scratch.forms == ()


def test_empty_policy_refuses_everything() -> None:
    for text in ("", "# nothing yet\n"):
        policy = parse_policy(text)
        assert policy.rules == ()
        assert policy.match("raw", "x") is None


def test_all_problems_name_rule_and_key() -> None:
    text = (
        EXAMPLE
        + """
[[rule]]
bucket = "Raw_Data"
prefix = 3
forms = []
colour = "red"
overwrite = "sometimes"
delete = "owner"
session_ttl = "7 days"
require_session = "yes"

[[rule]]
bucket = "ok"
forms = ["imaging"]
session_ttl = "40d"
"""
    )
    assert problems_of(text) == [
        "rule 5: colour: unknown key (known: bucket, prefix, forms, open_sessions, overwrite, "
        "delete, session_ttl, max_session_ttl, require_session, ro_crate_on_close)",
        "rule 5: bucket: 'Raw_Data' can never match: bucket names use only a-z, 0-9, '.', '-'",
        "rule 5: prefix: must be a string (a glob such as 'raw/*/'; '' matches every key)",
        "rule 5: require_session: must be true or false",
        "rule 5: overwrite: must be one of deny, allow, not 'sometimes'",
        "rule 5: session_ttl: bad duration '7 days': use whole numbers with units d, h, m, s, "
        "e.g. '7d', '12h', '1d12h'",
        "rule 6: session_ttl: 40d is longer than max_session_ttl 30d",
    ]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"bucket": None}, "rule 1: bucket: required"),
        ({"bucket": ""}, "rule 1: bucket: required"),
        ({"bucket": 5}, "rule 1: bucket: required"),
        (
            {"forms": []},
            "rule 1: forms: at least one form is needed unless require_session = false",
        ),
        ({"forms": None}, "rule 1: forms: at least one form is needed"),
        ({"forms": "imaging"}, "rule 1: forms: must be a list of form names"),
        ({"forms": ["imaging", ""]}, "rule 1: forms: must be a list of form names"),
        ({"forms": ["Imaging"]}, "rule 1: forms: 'Imaging' is not a form name"),
        ({"forms": ["a", "a"]}, "rule 1: forms: lists a form twice"),
        ({"open_sessions": "uploader"}, "rule 1: open_sessions: must be a list of role and/or"),
        ({"open_sessions": [1]}, "rule 1: open_sessions: must be a list"),
        ({"overwrite": "yes"}, "rule 1: overwrite: must be one of deny, allow, not 'yes'"),
        ({"overwrite": True}, "rule 1: overwrite: must be one of deny, allow, not True"),
        ({"delete": "anyone"}, "rule 1: delete: must be one of deny, owner, admin, not 'anyone'"),
        (
            {"session_ttl": 3600},
            "rule 1: session_ttl: a duration must be a string like '7d', not int",
        ),
        ({"session_ttl": "0s"}, "rule 1: session_ttl: bad duration '0s': must be longer than zero"),
        ({"max_session_ttl": "1w"}, "rule 1: max_session_ttl: bad duration '1w'"),
        ({"session_ttl": "31d"}, "rule 1: session_ttl: 31d is longer than max_session_ttl 30d"),
        (
            {"session_ttl": "2h", "max_session_ttl": "1h59m"},
            "rule 1: session_ttl: 2h is longer than max_session_ttl 1h59m",
        ),
        ({"require_session": 0}, "rule 1: require_session: must be true or false"),
    ],
)
def test_rule_problems(keys: dict[str, Any], expected: str) -> None:
    problems = problems_of(one_rule(**keys))
    assert any(p.startswith(expected) for p in problems), problems


def test_ttl_may_equal_max() -> None:
    rule = parse_policy(one_rule(session_ttl="30d")).rules[0]
    assert rule.session_ttl == rule.max_session_ttl == timedelta(days=30)


def test_scratch_rule_may_still_name_forms() -> None:
    # Sessions stay possible (and useful) in a scratch area; they are just not required.
    rule = parse_policy(one_rule(require_session=False)).rules[0]
    assert (rule.forms, rule.require_session) == (("f",), False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[rule]\nbucket = 'x'", "not valid TOML: "),
        ("bucket = 'raw'\n", "bucket: unknown top-level key (rules are [[rule]] tables)"),
        ("[rules]\nbucket = 'raw'\n", "rules: unknown top-level key"),
        ("rule = 1\n", "rule: must be a list of rule tables"),
        ("rule = [1]\n", "rule 1: must be a table"),
    ],
)
def test_file_level_problems(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert problems[0].startswith(expected), problems


def test_error_message_lists_problems() -> None:
    with pytest.raises(PolicyError, match=r"invalid policy: rule 1: delete: must be one of"):
        parse_policy(one_rule(delete="x"))


# --- matching ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bucket", "key", "expected"),
    [
        ("raw", "2026/run7/img.tif", 0),  # first rule: prefix 2026/*/
        ("raw", "2026/run7/deep/a.tif", 0),  # * spans slashes
        ("raw", "2026/x.tif", 1),  # no second slash after 2026/: falls to rule 2
        ("raw", "2025/run1/a", 1),
        ("raw", "", 1),
        ("lab-a", "shared/x", 2),
        ("lab-", "shared/", 2),  # * may match nothing
        ("lab-a", "private/x", None),
        ("lab-a", "Shared/x", None),  # prefix globs are case-sensitive
        ("labs", "shared/x", None),
        ("scratch", "anything/at/all", 3),
        ("scratch2", "x", None),  # bucket globs match the whole name
        ("Raw", "2026/a/b", None),  # bucket globs are case-sensitive
        ("other", "x", None),
    ],
)
def test_first_matching_rule_wins(bucket: str, key: str, expected: int | None) -> None:
    policy = parse_policy(EXAMPLE)
    rule = policy.match(bucket, key)
    assert rule is (None if expected is None else policy.rules[expected])


def test_order_matters() -> None:
    specific = '[[rule]]\nbucket = "raw"\nprefix = "tmp/"\nrequire_session = false\n'
    general = '[[rule]]\nbucket = "*"\nforms = ["f"]\n'
    assert parse_policy(specific + general).match("raw", "tmp/x").require_session is False
    assert parse_policy(general + specific).match("raw", "tmp/x").require_session is True


@pytest.mark.parametrize(
    ("glob", "key", "matches"),
    [
        ("", "", True),
        ("", "a/b", True),
        ("*", "", True),
        ("*", "a/b/c", True),
        ("raw/", "raw/x", True),
        ("raw/", "raw/", True),
        ("raw/", "raw", False),
        ("raw/", "rawdata/x", False),
        ("raw", "rawdata/x", True),  # a literal prefix is a plain string prefix
        ("raw/*/", "raw/2026/x.tif", True),
        ("raw/*/", "raw/x.tif", False),
        ("raw/*/", "raw//x", True),
        ("run?/", "run7/a", True),
        ("run?/", "run10/a", False),
        ("run[0-9]/", "run3/a", True),
        ("run[!0-9]/", "run3/a", False),
        ("run[!0-9]/", "runx/a", True),
        ("*.tif", "a/b.tif", True),
        ("*.tif", "a/b.tiff", True),  # a leading part (a/b.tif) matches
        ("*.tif", "a/b.png", False),
        ("a.b", "a.b/x", True),  # . is literal
        ("a.b", "axb/x", False),
        ("(x)+", "(x)+y", True),  # regex characters are literal
        ("(x)+", "xx", False),
        ("Raw/", "raw/x", False),
    ],
)
def test_prefix_globs(glob: str, key: str, matches: bool) -> None:
    rule = Rule(bucket="b", prefix=glob, forms=("f",))
    assert rule.matches("b", key) is matches
    # The definition: some leading part of the key matches the glob, fnmatchcase-style.
    assert any(fnmatch.fnmatchcase(key[:i], glob) for i in range(len(key) + 1)) is matches


@pytest.mark.parametrize(
    ("glob", "bucket", "matches"),
    [
        ("raw", "raw", True),
        ("raw", "raw2", False),
        ("raw*", "raw2", True),
        ("*", "anything", True),
        ("lab-?", "lab-a", True),
        ("lab-?", "lab-ab", False),
        ("lab-[ab]", "lab-b", True),
        ("lab-[ab]", "lab-c", False),
        ("a.b", "axb", False),
    ],
)
def test_bucket_globs(glob: str, bucket: str, matches: bool) -> None:
    assert Rule(bucket=glob, forms=("f",)).matches(bucket, "k") is matches


# --- who may open -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("open_sessions", "user", "role", "allowed"),
    [
        (("admin", "uploader"), "bob", "uploader", True),
        (("admin", "uploader"), "bob", "admin", True),
        (("admin", "uploader"), "bob", "reader", False),
        (("alice",), "alice", "uploader", True),
        (("alice",), "bob", "uploader", False),
        (("alice",), "root", "admin", True),  # admins may do everything
        (("alice",), "alice", "reader", False),  # readers never write, even when named
        (("reader",), "carol", "reader", False),
        ((), "bob", "uploader", False),  # only admins
        ((), "root", "admin", True),
        (("uploader", "dave"), "dave", "uploader", True),
    ],
)
def test_may_open(open_sessions: tuple[str, ...], user: str, role: str, allowed: bool) -> None:
    rule = Rule(bucket="raw", forms=("f",), open_sessions=open_sessions)
    assert rule.may_open(user, role) is allowed


def test_may_open_accepts_role_enum() -> None:
    from policy.principal import Role

    rule = Rule(bucket="raw", forms=("f",), open_sessions=("uploader",))
    assert rule.may_open("bob", Role.UPLOADER) is True
    assert rule.may_open("bob", Role.READER) is False


# --- storage and TOML round trips -------------------------------------------------------------


def test_to_dict_from_dict_round_trip() -> None:
    policy = parse_policy(EXAMPLE)
    data = policy.to_dict()
    assert data["rules"][0] == {
        "bucket": "raw",
        "prefix": "2026/*/",
        "forms": ["imaging"],
        "open_sessions": ["uploader", "alice"],
        "overwrite": "deny",
        "delete": "deny",
        "session_ttl": "12h",
        "max_session_ttl": "2d",
        "require_session": True,
    }
    assert Policy.from_dict(data) == policy
    assert Policy.from_dict({"rules": []}) == Policy()


def test_from_dict_validates() -> None:
    with pytest.raises(PolicyError, match="rule 1: bucket: required"):
        Policy.from_dict({"rules": [{"forms": ["f"]}]})
    with pytest.raises(PolicyError, match="only the key 'rules'"):
        Policy.from_dict({"rule": []})
    with pytest.raises(PolicyError, match="rules: must be a list"):
        Policy.from_dict({"rules": "x"})


def test_to_toml_round_trip() -> None:
    policy = parse_policy(EXAMPLE)
    text = policy.to_toml()
    assert parse_policy(text) == policy
    assert text.startswith('[[rule]]\nbucket = "raw"\nprefix = "2026/*/"\n')
    assert 'session_ttl = "12h"\n' in text
    assert "require_session = false\n" in text


def test_to_toml_of_empty_policy() -> None:
    text = Policy().to_toml()
    assert text.startswith("#")
    assert parse_policy(text) == Policy()


@pytest.mark.parametrize(
    "prefix",
    [
        'say "hi"/',
        "back\\slash/",
        "tab\there/",
        "new\nline/",
        "bell\x07/",
        "del\x7f/",
        "ünïcødé/日本/",
        "'single'/",
        "#not-a-comment/",
        "a = b/",
    ],
)
def test_to_toml_escapes_strings(prefix: str) -> None:
    policy = Policy(
        (Rule(bucket="raw", prefix=prefix, forms=("f",), open_sessions=("o'brien", 'x"y')),)
    )
    text = policy.to_toml()
    assert tomllib.loads(text)["rule"][0]["prefix"] == prefix
    assert parse_policy(text) == policy


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1h30m15s", timedelta(hours=1, minutes=30, seconds=15)),
        ("36h", timedelta(hours=36)),
        (" 5m ", timedelta(minutes=5)),
        ("0d1s", timedelta(seconds=1)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "7",
        "d",
        "7D",
        "1.5d",
        "-1d",
        "7 d",
        "7days",
        "1w",
        "12h1d",
        "1h1h",
        "P7D",
        "0s",
        "0d0h",
        "1d 2h",
        "99999999999d",  # beyond timedelta: was an OverflowError
        "1" * 5000 + "s",  # beyond int()'s 4300 digits: was a ValueError of another kind
    ],
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize("value", [7, 1.5, None, ["7d"]])
def test_parse_duration_refuses_non_strings(value: Any) -> None:
    with pytest.raises(DurationError, match="must be a string"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=7), "7d"),
        (timedelta(hours=36), "1d12h"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(days=30), "30d"),
        (timedelta(hours=1, seconds=5), "1h5s"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


@pytest.mark.parametrize("value", [timedelta(0), timedelta(seconds=-5), timedelta(seconds=1.5)])
def test_format_duration_refuses(value: timedelta) -> None:
    with pytest.raises(DurationError):
        format_duration(value)
