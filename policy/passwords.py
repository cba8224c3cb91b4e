"""Password hashing with argon2id (docs/design.md, decision 9).

Hashing is deliberately slow (tens of milliseconds, 64 MiB), so the async helpers run it in a
worker thread and the event loop keeps serving S3 requests meanwhile.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

# argon2-cffi's defaults follow RFC 9106's second recommended option; Type.ID spelled out so the
# choice is visible here rather than implied.
_HASHER = PasswordHasher(type=Type.ID)

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password_hash: str, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


def generate_password() -> str:
    """A random password for users created without one (24 url-safe chars, 144 bits)."""
    return secrets.token_urlsafe(18)
