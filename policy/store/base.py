"""The metadata store interface: what every backend (``sqlite``, later ``mongo``) must do.

Backends keep records and nothing else: they never hash passwords, encrypt secrets or decide
who may do what (that is :mod:`policy.identity`). Every method is a single atomic operation on
one record, so correctness never needs a transaction spanning records or processes
(DESIGN.md decision 1); uniqueness is enforced by the backend's unique indexes.

Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from policy.principal import Role


class StoreError(Exception):
    """Base of the errors a metadata store raises on purpose."""


class AlreadyExists(StoreError):
    """A record with the same unique name or id exists."""


class NotFound(StoreError):
    """The record to update does not exist."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    role: Role
    #: argon2id hash in PHC string form (``$argon2id$...``)
    password_hash: str
    created: datetime
    #: set when the user was deleted; a deleted user's keys stop working
    deleted: datetime | None = None

    @property
    def active(self) -> bool:
        return self.deleted is None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    access_key: str
    #: the secret, encrypted (Fernet token); the store never sees the plaintext
    secret_encrypted: str
    owner: str
    created: datetime
    revoked: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


class MetadataStore(ABC):
    """One metadata store backend, shared by all requests of a process."""

    #: "sqlite" or "mongo"
    kind: str

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date. Safe while other processes use the store."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; safe to call more than once."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the store cannot answer (used by /_minimo/health)."""

    # -- users ---------------------------------------------------------------------------------
    @abstractmethod
    async def create_user(self, user: UserRecord) -> None:
        """Raise AlreadyExists when a user of that name exists (deleted ones included)."""

    @abstractmethod
    async def get_user(self, name: str) -> UserRecord | None: ...

    @abstractmethod
    async def list_users(self) -> list[UserRecord]:
        """All users, deleted ones included, ordered by name."""

    @abstractmethod
    async def update_user(
        self,
        name: str,
        *,
        role: Role | None = None,
        password_hash: str | None = None,
        deleted: datetime | None = None,
    ) -> UserRecord:
        """Change the given fields (None = leave as is); raise NotFound for unknown users."""

    @abstractmethod
    async def count_users(self) -> int:
        """How many users exist, deleted ones included."""

    # -- access keys ---------------------------------------------------------------------------
    @abstractmethod
    async def create_key(self, key: KeyRecord) -> None:
        """Raise AlreadyExists when the access key id is taken."""

    @abstractmethod
    async def get_key(self, access_key: str) -> KeyRecord | None: ...

    @abstractmethod
    async def list_keys(self, owner: str | None = None) -> list[KeyRecord]:
        """All keys (revoked included), of one owner when given, ordered by creation time."""

    @abstractmethod
    async def revoke_key(self, access_key: str, when: datetime) -> KeyRecord:
        """Mark the key revoked at ``when`` unless it already is (the first time wins).

        Raise NotFound for unknown keys. Returns the record as stored afterwards.
        """
