"""Encryption at rest for S3 secrets (docs/design.md, decision 9).

SigV4 needs each key's plaintext secret, so secrets cannot be hashed; they are encrypted with
Fernet under a key kept outside the metadata store, in a file created 0600 when absent. Losing
that file makes every stored secret unreadable (keys must then be re-created), which is why it
is never generated anew while encrypted secrets exist elsewhere: callers point every process
at the same file.
"""

from __future__ import annotations

import contextlib
import os
import secrets as _random
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class SecretKeyError(Exception):
    """The secret key file is unreadable or malformed, or a secret does not decrypt."""


class SecretBox:
    """Encrypts and decrypts short secrets with one Fernet key."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise SecretKeyError("the secret key is not a valid Fernet key") from exc

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, ValueError) as exc:
            raise SecretKeyError(
                "a stored secret does not decrypt with this secret key file "
                "(was the file replaced?)"
            ) from exc

    @classmethod
    def from_file(cls, path: Path) -> SecretBox:
        """Load the key file, creating it (mode 0600) when absent."""
        return cls(load_or_create_key(path))


def load_or_create_key(path: Path) -> bytes:
    path = Path(path)
    if not path.exists():
        _create_key_file(path)
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise SecretKeyError(f"cannot read the secret key file {path}: {exc}") from exc
    if not key:
        raise SecretKeyError(f"the secret key file {path} is empty")
    return key


def _create_key_file(path: Path) -> None:
    """Write a fresh key without ever exposing a partial or world-readable file.

    The key goes to a private temporary file first and is hard-linked into place: the link
    fails when another process won the race, and then its key is the one everyone uses.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{_random.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
