"""The metadata store contract: every backend must pass every test here.

Only ``sqlite`` exists so far; issue 3 adds ``mongo`` (against FerretDB) to ``BACKENDS``.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from policy.principal import Role
from policy.store import (
    AlreadyExists,
    KeyRecord,
    MetadataStore,
    NotFound,
    UserRecord,
    open_metadata_store,
)
from policy.store.sqlite import MIGRATIONS, SqliteStore

BACKENDS = ["sqlite"]
REPO = Path(__file__).resolve().parents[2]

StoreTest = Callable[[MetadataStore], Awaitable[None]]


@pytest.fixture(params=BACKENDS)
def with_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[StoreTest], None]:
    """Run an async test body against a freshly opened store of each backend."""

    def run(body: StoreTest) -> None:
        async def main() -> None:
            store = await open_metadata_store(tmp_path / "minimo.sqlite3")
            try:
                await body(store)
            finally:
                await store.close()

        asyncio.run(main())

    return run


def user(name: str, role: Role = Role.UPLOADER) -> UserRecord:
    return UserRecord(name, role, "$argon2id$fake", datetime.now(UTC))


def key(access_key: str, owner: str, created: datetime | None = None) -> KeyRecord:
    return KeyRecord(access_key, "gAAAAencrypted", owner, created or datetime.now(UTC))


# -- contract ------------------------------------------------------------------------------------
def test_ping_and_empty(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        await store.ping()
        assert await store.count_users() == 0
        assert await store.list_users() == []
        assert await store.list_keys() == []
        assert await store.get_user("nobody") is None
        assert await store.get_key("MKNOPE") is None

    with_store(body)


def test_users_round_trip(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        alice = user("alice", Role.ADMIN)
        await store.create_user(alice)
        await store.create_user(user("bob", Role.READER))
        got = await store.get_user("alice")
        assert got == alice
        assert got is not None and got.active and got.created.tzinfo is not None
        assert [u.name for u in await store.list_users()] == ["alice", "bob"]
        assert await store.count_users() == 2

    with_store(body)


def test_user_names_are_unique(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        await store.create_user(user("alice"))
        with pytest.raises(AlreadyExists):
            await store.create_user(user("alice", Role.ADMIN))
        assert (await store.get_user("alice")).role is Role.UPLOADER  # type: ignore[union-attr]
        assert await store.count_users() == 1

    with_store(body)


def test_update_user(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        await store.create_user(user("alice"))
        updated = await store.update_user("alice", role=Role.READER)
        assert updated.role is Role.READER
        updated = await store.update_user("alice", password_hash="$argon2id$other")
        assert (updated.role, updated.password_hash) == (Role.READER, "$argon2id$other")
        when = datetime.now(UTC)
        updated = await store.update_user("alice", deleted=when)
        assert updated.deleted == when and not updated.active
        assert await store.get_user("alice") == updated
        assert await store.update_user("alice") == updated  # no change requested
        with pytest.raises(NotFound):
            await store.update_user("nobody", role=Role.ADMIN)
        with pytest.raises(NotFound):
            await store.update_user("nobody")

    with_store(body)


def test_keys_round_trip(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        await store.create_user(user("alice"))
        await store.create_user(user("bob"))
        t0 = datetime.now(UTC)
        k1 = key("MKAAAAAAAAAAAAAAAAA1", "alice", t0)
        k2 = key("MKAAAAAAAAAAAAAAAAA2", "bob", t0 + timedelta(seconds=1))
        k3 = key("MKAAAAAAAAAAAAAAAAA3", "alice", t0 + timedelta(seconds=2))
        for k in (k3, k1, k2):
            await store.create_key(k)
        assert await store.get_key(k1.access_key) == k1
        assert await store.list_keys() == [k1, k2, k3]
        assert await store.list_keys("alice") == [k1, k3]
        assert await store.list_keys("nobody") == []

    with_store(body)


def test_key_ids_are_unique_and_owned(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        await store.create_user(user("alice"))
        await store.create_key(key("MKAAAAAAAAAAAAAAAAA1", "alice"))
        with pytest.raises(AlreadyExists):
            await store.create_key(key("MKAAAAAAAAAAAAAAAAA1", "alice"))
        with pytest.raises(NotFound):
            await store.create_key(key("MKAAAAAAAAAAAAAAAAA2", "ghost"))
        assert len(await store.list_keys()) == 1

    with_store(body)


def test_revoke_key_first_time_wins(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        await store.create_user(user("alice"))
        await store.create_key(key("MKAAAAAAAAAAAAAAAAA1", "alice"))
        first = datetime.now(UTC)
        revoked = await store.revoke_key("MKAAAAAAAAAAAAAAAAA1", first)
        assert revoked.revoked == first and not revoked.active
        again = await store.revoke_key("MKAAAAAAAAAAAAAAAAA1", first + timedelta(hours=1))
        assert again.revoked == first
        assert (await store.get_key("MKAAAAAAAAAAAAAAAAA1")) == again
        with pytest.raises(NotFound):
            await store.revoke_key("MKNOPE", first)

    with_store(body)


def test_concurrent_creates_of_one_name(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        results = await asyncio.gather(
            *(store.create_user(user("same")) for _ in range(10)), return_exceptions=True
        )
        assert sum(r is None for r in results) == 1
        assert all(isinstance(r, AlreadyExists) for r in results if r is not None)

    with_store(body)


# -- sqlite specifics ----------------------------------------------------------------------------
def _pragma(path: Path, name: str) -> object:
    async def main() -> object:
        store = SqliteStore(path)
        await store.open()
        try:
            async with store.db.execute(f"PRAGMA {name}") as cur:
                row = await cur.fetchone()
            return row[0] if row else None
        finally:
            await store.close()

    return asyncio.run(main())


def test_sqlite_wal_busy_timeout_and_private_file(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    assert _pragma(path, "journal_mode") == "wal"
    assert int(_pragma(path, "busy_timeout")) >= 1000  # type: ignore[arg-type]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_sqlite_migrations_are_recorded_once(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"

    async def main() -> None:
        # Several openers on a fresh file at once: each migration must be applied exactly once.
        stores = [SqliteStore(path) for _ in range(4)]
        await asyncio.gather(*(s.open() for s in stores))
        try:
            for s in stores:
                assert await s.schema_version() == len(MIGRATIONS)
            async with stores[0].db.execute("SELECT version FROM schema_version") as cur:
                versions = [row[0] for row in await cur.fetchall()]
            assert versions == list(range(1, len(MIGRATIONS) + 1))
        finally:
            for s in stores:
                await s.close()

    asyncio.run(main())
    asyncio.run(main())  # reopening an up-to-date file changes nothing


WRITER = """
import asyncio, sys
from datetime import UTC, datetime
from policy.principal import Role
from policy.store import UserRecord, KeyRecord, open_metadata_store

async def main(path, tag):
    store = await open_metadata_store(path)
    for i in range(25):
        name = f"{tag}-{i}"
        await store.create_user(UserRecord(name, Role.READER, "h", datetime.now(UTC)))
        await store.create_key(KeyRecord(f"MK{tag.upper()}{i:016d}", "x", name, datetime.now(UTC)))
    await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_sqlite_concurrent_processes(tmp_path: Path) -> None:
    """Writers in separate processes share one file without 'database is locked' failures."""
    path = tmp_path / "m.sqlite3"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag], cwd=REPO)
        for tag in ("a", "b", "c")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]

    async def check() -> None:
        store = await open_metadata_store(path)
        try:
            assert await store.count_users() == 75
            assert len(await store.list_keys()) == 75
        finally:
            await store.close()

    asyncio.run(check())
