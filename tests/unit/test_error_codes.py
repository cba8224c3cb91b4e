"""The S3 error table (gateway.protocol.errors.S3ErrorCode): a code missing from it cannot be
raised, the code names cannot drift from the codes, and policy's refusals map onto it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gateway.protocol.errors import (
    ErrorTable,
    S3Error,
    S3ErrorCode,
    UnknownS3ErrorCode,
    check_error_table,
)
from gateway.usecases.writes import REFUSAL_CODES, refused
from policy.enforce import Refusal, RefusalCode

ROOT = Path(__file__).resolve().parents[2]
#: where S3 errors are raised: everywhere a code is a member of the table, never a string
SOURCES = ("gateway", "ui", "policy")


def test_a_code_missing_from_the_table_cannot_be_raised() -> None:
    with pytest.raises(UnknownS3ErrorCode, match="NoSuchThing"):
        S3Error("NoSuchThing")
    with pytest.raises(UnknownS3ErrorCode):
        S3Error("nosuchkey")  # codes are case-sensitive, as in S3


def test_a_member_is_its_code() -> None:
    err = S3Error(S3ErrorCode.NoSuchKey)
    assert err.code == "NoSuchKey" and f"{err.code}" == "NoSuchKey"
    assert (err.status, err.message) == (404, "The specified key does not exist.")
    # the exact string is accepted too (and checked): the backends still pass some
    assert S3Error("NoSuchKey").code is S3ErrorCode.NoSuchKey


def test_no_such_version_is_404() -> None:
    assert S3Error(S3ErrorCode.NoSuchVersion).status == 404


def test_a_misspelt_table_fails_its_check() -> None:
    class Misspelt(ErrorTable):
        NoSuchKey = "NoSuchKye", 404, "The specified key does not exist."

    with pytest.raises(TypeError, match="NoSuchKye"):
        check_error_table(Misspelt)

    class NotAnError(ErrorTable):
        Fine = "Fine", 200, "All is well."

    with pytest.raises(TypeError, match="200"):
        check_error_table(NotAnError)
    check_error_table(S3ErrorCode)


def test_an_upstream_code_is_relayed_as_it_came() -> None:
    unknown = S3Error.relayed("InvalidBucketState", None, status=409, resource="/b")
    assert (unknown.code, unknown.status, unknown.message) == (
        "InvalidBucketState",
        409,
        "InvalidBucketState",
    )
    assert S3Error.relayed("Whatever", "m", status=None, resource=None).status == 400
    known = S3Error.relayed("NoSuchKey", "gone", status=None, resource="/b/k")
    assert (known.code, known.status, known.message) == (S3ErrorCode.NoSuchKey, 404, "gone")


def test_every_refusal_code_becomes_the_s3_error_of_its_name() -> None:
    assert set(REFUSAL_CODES) == set(RefusalCode)
    for code in RefusalCode:
        assert REFUSAL_CODES[code] == code.value
        err = refused(Refusal("no", code), "/b/k")
        assert (err.code, err.message, err.resource) == (code.value, "no", "/b/k")


def _string_codes(path: Path) -> list[tuple[int, str]]:
    """``S3Error("Code", ...)`` calls that spell their code as a string literal."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        first = node.args[0]
        if name == "S3Error" and isinstance(first, ast.Constant) and isinstance(first.value, str):
            found.append((node.lineno, first.value))
    return found


def test_every_code_raised_in_the_source_is_in_the_table() -> None:
    unknown, spelt = [], []
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            for line, code in _string_codes(path):
                if code not in S3ErrorCode.__members__:
                    unknown.append(f"{relative}:{line}: {code}")
                spelt.append(f"{relative}:{line}: {code}")
    assert not unknown, f"S3 error codes missing from S3ErrorCode: {unknown}"
    assert not spelt, f"use S3ErrorCode.<code>, not a string: {spelt}"
