"""What authentication produces (gateway.s3api.auth.AuthContext): a typed method, a principal
exactly when the request was signed, a chunk signer only for SigV4."""

from __future__ import annotations

import pytest

from gateway.protocol.chunked import ChunkSigner
from gateway.s3api.auth import AuthContext, AuthMethod
from policy.principal import Credential, Principal, Role

CREDENTIAL = Credential("AKID", "secret", Principal("alice", Role.ADMIN, "AKID"))


def test_anonymous() -> None:
    auth = AuthContext.anonymous(None)
    assert auth.is_anonymous and auth.method is AuthMethod.ANONYMOUS
    assert auth.principal is None and auth.chunk_signer is None and auth.access_key is None


def test_signed() -> None:
    signer = ChunkSigner(b"k" * 32, "20260101T000000Z", "20260101/us-east-1/s3/aws4_request", "s")
    auth = AuthContext.signed(AuthMethod.SIGV4_HEADER, CREDENTIAL, "UNSIGNED-PAYLOAD", signer)
    assert not auth.is_anonymous and auth.principal == CREDENTIAL.principal
    assert (auth.access_key, auth.chunk_signer) == ("AKID", signer)
    v2 = AuthContext.signed(AuthMethod.SIGV2_PRESIGNED, CREDENTIAL, "UNSIGNED-PAYLOAD")
    assert v2.chunk_signer is None and v2.method == "v2-query"


def test_a_principal_exactly_when_signed() -> None:
    with pytest.raises(ValueError):
        AuthContext(AuthMethod.ANONYMOUS, CREDENTIAL.principal, None)
    with pytest.raises(ValueError):
        AuthContext(AuthMethod.SIGV4_PRESIGNED, None, "UNSIGNED-PAYLOAD")
