"""The embedded metadata store: one SQLite file, shared by the server and the CLI.

Several processes (any number of ``minimo serve`` plus CLI invocations) open the same file at
once. WAL lets readers run beside a writer, ``busy_timeout`` makes a writer wait for the lock
instead of failing, and every operation is one statement in autocommit mode, so no correctness
rests on a transaction spanning processes. The only multi-statement transaction is a schema
migration, taken with ``BEGIN IMMEDIATE`` so concurrent openers apply each migration once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from policy.principal import Role
from policy.store.base import (
    AlreadyExists,
    KeyRecord,
    MetadataStore,
    NotFound,
    UserRecord,
)

#: how long a statement waits for another process's write lock before failing
BUSY_TIMEOUT_MS = 10_000

#: Migrations in order; a migration's version is its index + 1. Append, never edit.
MIGRATIONS: list[Sequence[str]] = [
    (
        """CREATE TABLE users (
            name TEXT NOT NULL PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('admin', 'uploader', 'reader')),
            password_hash TEXT NOT NULL,
            created TEXT NOT NULL,
            deleted TEXT
        )""",
        """CREATE TABLE access_keys (
            access_key TEXT NOT NULL PRIMARY KEY,
            secret_encrypted TEXT NOT NULL,
            owner TEXT NOT NULL REFERENCES users (name),
            created TEXT NOT NULL,
            revoked TEXT
        )""",
        "CREATE INDEX access_keys_by_owner ON access_keys (owner, created)",
    ),
]

_USER_COLUMNS = "name, role, password_hash, created, deleted"
_KEY_COLUMNS = "access_key, secret_encrypted, owner, created, revoked"


def _ts(value: datetime | None) -> str | None:
    # One fixed format (UTC, microseconds) so text order is time order.
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _user(row: Any) -> UserRecord:
    return UserRecord(
        name=row[0],
        role=Role(row[1]),
        password_hash=row[2],
        created=datetime.fromisoformat(row[3]),
        deleted=_dt(row[4]),
    )


def _key(row: Any) -> KeyRecord:
    return KeyRecord(
        access_key=row[0],
        secret_encrypted=row[1],
        owner=row[2],
        created=datetime.fromisoformat(row[3]),
        revoked=_dt(row[4]),
    )


class SqliteStore(MetadataStore):
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the metadata store is not open")
        return self._db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(self.path)
        # isolation_level=None: autocommit; each statement is its own atomic transaction.
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await self._db.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable across application crashes in WAL mode and much cheaper than FULL.
        await self._db.execute("PRAGMA synchronous = NORMAL")
        await self._db.execute("PRAGMA foreign_keys = ON")
        await self._migrate()

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def ping(self) -> None:
        async with self.db.execute("SELECT 1") as cur:
            await cur.fetchone()

    async def schema_version(self) -> int:
        async with self.db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        db = self.db
        await db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER NOT NULL PRIMARY KEY, applied TEXT NOT NULL)"
        )
        if await self.schema_version() >= len(MIGRATIONS):
            return  # the common case: no write lock needed
        # IMMEDIATE takes the write lock first, so two processes opening a fresh file at once
        # cannot both apply the same migration; the loser re-reads the version under the lock.
        await db.execute("BEGIN IMMEDIATE")
        try:
            current = await self.schema_version()
            for version in range(current + 1, len(MIGRATIONS) + 1):
                for statement in MIGRATIONS[version - 1]:
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_version (version, applied) VALUES (?, ?)",
                    (version, _ts(datetime.now(UTC))),
                )
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    # -- users ---------------------------------------------------------------------------------
    async def create_user(self, user: UserRecord) -> None:
        try:
            await self.db.execute(
                f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (
                    user.name,
                    user.role.value,
                    user.password_hash,
                    _ts(user.created),
                    _ts(user.deleted),
                ),
            )
        except aiosqlite.IntegrityError as exc:
            raise AlreadyExists(f"user {user.name!r} already exists") from exc

    async def get_user(self, name: str) -> UserRecord | None:
        async with self.db.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", (name,)
        ) as cur:
            row = await cur.fetchone()
        return _user(row) if row else None

    async def list_users(self) -> list[UserRecord]:
        async with self.db.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name") as cur:
            return [_user(row) for row in await cur.fetchall()]

    async def update_user(
        self,
        name: str,
        *,
        role: Role | None = None,
        password_hash: str | None = None,
        deleted: datetime | None = None,
    ) -> UserRecord:
        changes: dict[str, str] = {}
        if role is not None:
            changes["role"] = Role(role).value
        if password_hash is not None:
            changes["password_hash"] = password_hash
        if deleted is not None:
            changes["deleted"] = _ts(deleted) or ""
        if not changes:
            user = await self.get_user(name)
            if user is None:
                raise NotFound(f"no user {name!r}")
            return user
        # Column names come from the fixed set above, never from input.
        assignments = ", ".join(f"{column} = ?" for column in changes)
        async with self.db.execute(
            f"UPDATE users SET {assignments} WHERE name = ? RETURNING {_USER_COLUMNS}",
            (*changes.values(), name),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no user {name!r}")
        return _user(row)

    async def count_users(self) -> int:
        async with self.db.execute("SELECT COUNT(*) FROM users") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # -- access keys ---------------------------------------------------------------------------
    async def create_key(self, key: KeyRecord) -> None:
        try:
            await self.db.execute(
                f"INSERT INTO access_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (
                    key.access_key,
                    key.secret_encrypted,
                    key.owner,
                    _ts(key.created),
                    _ts(key.revoked),
                ),
            )
        except aiosqlite.IntegrityError as exc:
            # The foreign key also lands here; say which one failed.
            if await self.get_user(key.owner) is None:
                raise NotFound(f"no user {key.owner!r}") from exc
            raise AlreadyExists(f"access key {key.access_key!r} already exists") from exc

    async def get_key(self, access_key: str) -> KeyRecord | None:
        async with self.db.execute(
            f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE access_key = ?", (access_key,)
        ) as cur:
            row = await cur.fetchone()
        return _key(row) if row else None

    async def list_keys(self, owner: str | None = None) -> list[KeyRecord]:
        sql = f"SELECT {_KEY_COLUMNS} FROM access_keys"
        params: tuple[str, ...] = ()
        if owner is not None:
            sql += " WHERE owner = ?"
            params = (owner,)
        async with self.db.execute(sql + " ORDER BY created, access_key", params) as cur:
            return [_key(row) for row in await cur.fetchall()]

    async def revoke_key(self, access_key: str, when: datetime) -> KeyRecord:
        # COALESCE keeps the first revocation time when two processes revoke at once.
        async with self.db.execute(
            "UPDATE access_keys SET revoked = COALESCE(revoked, ?) WHERE access_key = ?"
            f" RETURNING {_KEY_COLUMNS}",
            (_ts(when), access_key),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no access key {access_key!r}")
        return _key(row)


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only (it holds password hashes)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)
