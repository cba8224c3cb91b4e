"""The shared metadata store: a MongoDB database reached with PyMongo's async client.

Any number of gateway processes and CLI invocations use one database at once. Nothing here
relies on a multi-document transaction (DESIGN.md decision 1: FerretDB has none and MongoDB
needs a replica set for them); uniqueness comes from unique indexes (a duplicate insert fails
with code 11000).

FerretDB 1.x is weaker than MongoDB in one more way that shapes this module: it runs
``update`` and ``findAndModify`` as "query, change in memory, replace the whole document by
_id". A filter such as ``{"revoked": None}`` is therefore *not* a compare-and-set (two
concurrent revocations both match and both write), and two concurrent updates of different
fields of one document can lose one of them. The only atomic primitive both servers share is an
insert under a unique index, so every "first time wins" decision is made by inserting a fact
document (e.g. a key's revocation into ``key_revocations``) and letting the unique index pick
the winner; the main document only caches the winner's value for one-query reads.

Times: BSON dates are UTC milliseconds, so a stored time comes back truncated to the
millisecond; the client decodes them as timezone-aware UTC datetimes.

The Fernet key that encrypts S3 secrets (``DATA_DIR/secret.key``) is not kept here: every
gateway process that shares one database must be given the same key file.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pymongo
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from pymongo.uri_parser import parse_uri

from policy.principal import Role
from policy.store.base import (
    AlreadyExists,
    KeyRecord,
    MetadataStore,
    NotFound,
    UserRecord,
)

DEFAULT_DATABASE = "minimo"

#: Short timeouts so an unreachable server makes /_minimo/health answer 503 (its probe gives up
#: after 5 s) and the CLI fail within seconds, instead of PyMongo's 30 s default.
SERVER_SELECTION_TIMEOUT_MS = 5_000
CONNECT_TIMEOUT_MS = 5_000
#: ping() must answer before the health probe's own 5 s limit to report a clear error
PING_TIMEOUT_SECONDS = 2.0

USERS = "users"
ACCESS_KEYS = "access_keys"
#: one document per revoked key, never updated: its unique index decides who revoked first
KEY_REVOCATIONS = "key_revocations"

_PASSWORD_IN_URI = re.compile(r"(://[^:/@]*:)[^@/]*@")


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***``, fit for logs and error messages."""
    return _PASSWORD_IN_URI.sub(r"\1***@", uri)


def database_from_uri(uri: str, default: str = DEFAULT_DATABASE) -> str:
    """The database named in the URI's path (``mongodb://host/NAME``), else ``default``."""
    return parse_uri(uri, validate=False).get("database") or default


def _utc(value: datetime | None) -> datetime | None:
    """``value`` as BSON will store it: UTC, whole milliseconds (so returned == read back)."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _user_doc(user: UserRecord) -> dict[str, Any]:
    return {
        "name": user.name,
        "role": user.role.value,
        "password_hash": user.password_hash,
        "created": _utc(user.created),
        "deleted": _utc(user.deleted),
    }


def _user(doc: dict[str, Any]) -> UserRecord:
    return UserRecord(
        name=doc["name"],
        role=Role(doc["role"]),
        password_hash=doc["password_hash"],
        created=doc["created"],
        deleted=doc.get("deleted"),
    )


def _key_doc(key: KeyRecord) -> dict[str, Any]:
    return {
        "access_key": key.access_key,
        "secret_encrypted": key.secret_encrypted,
        "owner": key.owner,
        "created": _utc(key.created),
        "revoked": _utc(key.revoked),
    }


def _key(doc: dict[str, Any]) -> KeyRecord:
    return KeyRecord(
        access_key=doc["access_key"],
        secret_encrypted=doc["secret_encrypted"],
        owner=doc["owner"],
        created=doc["created"],
        revoked=doc.get("revoked"),
    )


# Documents are read without ``_id``: it is an internal ObjectId no record carries. (Not on
# find_one_and_update: FerretDB 1.x rejects a projection there; the converters ignore ``_id``.)
_NO_ID = {"_id": False}


class MongoMetadataStore(MetadataStore):
    kind = "mongo"

    def __init__(self, uri: str, database: str = DEFAULT_DATABASE) -> None:
        self.uri = uri
        self.database_name = database
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._db: AsyncDatabase[dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"MongoMetadataStore({redact_uri(self.uri)!r}, database={self.database_name!r})"

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        if self._db is None:
            raise RuntimeError("the metadata store is not open")
        return self._db

    @property
    def users(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[USERS]

    @property
    def keys(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[ACCESS_KEYS]

    @property
    def key_revocations(self) -> AsyncCollection[dict[str, Any]]:
        return self.db[KEY_REVOCATIONS]

    async def open(self) -> None:
        self._client = AsyncMongoClient(
            self.uri,
            tz_aware=True,
            tzinfo=UTC,
            serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
            connectTimeoutMS=CONNECT_TIMEOUT_MS,
            appname="minimo",
        )
        self._db = self._client[self.database_name]
        await self._ensure_indexes()

    async def _ensure_indexes(self) -> None:
        # create_index is idempotent, so every process may run this at every start; the unique
        # indexes are what make concurrent creates of one name safe across processes.
        await self.users.create_index([("name", ASCENDING)], unique=True, name="name_unique")
        await self.keys.create_index(
            [("access_key", ASCENDING)], unique=True, name="access_key_unique"
        )
        await self.keys.create_index(
            [("owner", ASCENDING), ("created", ASCENDING)], name="owner_created"
        )
        await self.keys.create_index([("created", ASCENDING)], name="created")
        await self.key_revocations.create_index(
            [("access_key", ASCENDING)], unique=True, name="access_key_unique"
        )

    async def close(self) -> None:
        if self._client is not None:
            client, self._client, self._db = self._client, None, None
            await client.close()

    async def ping(self) -> None:
        # CSOT: one deadline for server selection, connecting and the command together.
        with pymongo.timeout(PING_TIMEOUT_SECONDS):
            await self.db.command("ping")

    # -- users ---------------------------------------------------------------------------------
    async def create_user(self, user: UserRecord) -> None:
        try:
            await self.users.insert_one(_user_doc(user))
        except DuplicateKeyError as exc:
            raise AlreadyExists(f"user {user.name!r} already exists") from exc

    async def get_user(self, name: str) -> UserRecord | None:
        doc = await self.users.find_one({"name": name}, _NO_ID)
        return _user(doc) if doc else None

    async def list_users(self) -> list[UserRecord]:
        cursor = self.users.find({}, _NO_ID).sort("name", ASCENDING)
        return [_user(doc) async for doc in cursor]

    async def update_user(
        self,
        name: str,
        *,
        role: Role | None = None,
        password_hash: str | None = None,
        deleted: datetime | None = None,
    ) -> UserRecord:
        changes: dict[str, Any] = {}
        if role is not None:
            changes["role"] = Role(role).value
        if password_hash is not None:
            changes["password_hash"] = password_hash
        if deleted is not None:
            changes["deleted"] = _utc(deleted)
        if not changes:
            user = await self.get_user(name)
            if user is None:
                raise NotFound(f"no user {name!r}")
            return user
        # Last write wins. On FerretDB two concurrent updates of one user (say set-role and
        # delete, from two admins within milliseconds) can lose one of them; see the module
        # docstring. Admin edits of a single user are rare enough to accept that for now.
        doc = await self.users.find_one_and_update(
            {"name": name},
            {"$set": changes},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise NotFound(f"no user {name!r}")
        return _user(doc)

    async def count_users(self) -> int:
        return await self.users.count_documents({})

    # -- access keys ---------------------------------------------------------------------------
    async def create_key(self, key: KeyRecord) -> None:
        # No foreign keys here: check the owner first. Users are only ever soft-deleted, so a
        # user seen here cannot vanish before the insert (no race to close with a transaction).
        if await self.users.count_documents({"name": key.owner}, limit=1) == 0:
            raise NotFound(f"no user {key.owner!r}")
        try:
            await self.keys.insert_one(_key_doc(key))
        except DuplicateKeyError as exc:
            raise AlreadyExists(f"access key {key.access_key!r} already exists") from exc

    async def get_key(self, access_key: str) -> KeyRecord | None:
        doc = await self.keys.find_one({"access_key": access_key}, _NO_ID)
        return _key(doc) if doc else None

    async def list_keys(self, owner: str | None = None) -> list[KeyRecord]:
        query = {} if owner is None else {"owner": owner}
        cursor = self.keys.find(query, _NO_ID).sort(
            [("created", ASCENDING), ("access_key", ASCENDING)]
        )
        return [_key(doc) async for doc in cursor]

    async def revoke_key(self, access_key: str, when: datetime) -> KeyRecord:
        key = await self.get_key(access_key)
        if key is None:
            raise NotFound(f"no access key {access_key!r}")
        if key.revoked is not None:
            return key
        # The unique index on key_revocations.access_key admits one insert: that revoker's time
        # wins, every later or concurrent one reads it back (see the module docstring for why
        # a filtered update cannot decide this on FerretDB).
        revoked = _utc(when)
        try:
            await self.key_revocations.insert_one({"access_key": access_key, "revoked": revoked})
        except DuplicateKeyError:
            winner = await self.key_revocations.find_one({"access_key": access_key}, _NO_ID)
            if winner is None:  # cannot happen: revocations are never removed
                raise
            revoked = winner["revoked"]
        # Copy the winner's time onto the key so reads stay one query. Concurrent revokers all
        # write the same value, so FerretDB's whole-document replace cannot store a wrong one.
        # Should this process die before the copy, revoking again completes it.
        await self.keys.update_one({"access_key": access_key}, {"$set": {"revoked": revoked}})
        return replace(key, revoked=revoked)
