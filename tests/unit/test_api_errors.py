"""The API's status for a refused session request comes from the refusal's type, not its words."""

from __future__ import annotations

import pytest

from gateway.usecases.session_crate import CrateConflict
from policy.sessions import SessionError, SessionInvalid, SessionNotAllowed, SessionNotFound
from ui.api.errors import session_refusal


@pytest.mark.parametrize(
    ("refusal", "status", "code"),
    [
        (SessionNotFound("whatever the words"), 404, "not_found"),
        (SessionNotAllowed("no session named here"), 403, "forbidden"),
        (SessionInvalid("only words that once meant 403"), 400, "bad_request"),
        # a bare SessionError (say, from a caller outside policy) is a bad request
        (SessionError("no session x"), 400, "bad_request"),
    ],
)
def test_the_type_picks_the_status(refusal: SessionError, status: int, code: str) -> None:
    answer = session_refusal(refusal)
    assert (answer.status, answer.code, answer.message) == (status, code, str(refusal))


def test_every_kind_is_still_caught_as_a_session_error() -> None:
    for kind in (SessionNotFound, SessionNotAllowed, SessionInvalid, CrateConflict):
        assert issubclass(kind, SessionError)
