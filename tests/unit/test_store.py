"""The metadata store contract: every backend must pass every test here.

Each contract test runs against ``sqlite`` (a file in tmp_path) and ``mongo`` (a fresh database
on the session's FerretDB server, see the ``ferretdb`` fixture).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from policy.principal import Role
from policy.store import (
    AlreadyExists,
    KeyRecord,
    MetadataStore,
    NotFound,
    StoreUnavailable,
    UserRecord,
    open_metadata_store,
)
from policy.store.mongo import MongoMetadataStore, database_from_uri, redact_uri
from policy.store.sqlite import MIGRATIONS, SqliteStore
from tests.servers import free_port, mongo_uri

BACKENDS = ["sqlite", "mongo"]
REPO = Path(__file__).resolve().parents[2]

StoreTest = Callable[[MetadataStore], Awaitable[None]]
Opener = Callable[[], Awaitable[MetadataStore]]


@pytest.fixture(params=BACKENDS)
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where one test's store lives: a SQLite path, or a fresh database on FerretDB."""
    if request.param == "mongo":
        server: str = request.getfixturevalue("ferretdb")
        return mongo_uri(server, f"t_{secrets.token_hex(6)}")
    return str(tmp_path / "minimo.sqlite3")


@pytest.fixture
def open_store(store_location: str) -> Opener:
    """Open another store instance on the test's location (as another process would)."""

    async def opener() -> MetadataStore:
        location: str | Path = store_location
        if not store_location.startswith("mongodb://"):
            location = Path(store_location)
        return await open_metadata_store(location)

    return opener


@pytest.fixture
def with_store(open_store: Opener) -> Callable[[StoreTest], None]:
    """Run an async test body against a freshly opened store of each backend."""

    def run(body: StoreTest) -> None:
        async def main() -> None:
            store = await open_store()
            try:
                await body(store)
            finally:
                await store.close()

        asyncio.run(main())

    return run


def now() -> datetime:
    """The current time at millisecond precision: BSON dates (mongo) keep no more than that."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def user(name: str, role: Role = Role.UPLOADER) -> UserRecord:
    return UserRecord(name, role, "$argon2id$fake", now())


def key(access_key: str, owner: str, created: datetime | None = None) -> KeyRecord:
    return KeyRecord(access_key, "gAAAAencrypted", owner, created or now())


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
        when = now()
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
        t0 = now()
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


def test_key_label_and_read_only_round_trip(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        await store.create_user(user("alice"))
        labelled = replace(
            key("MKAAAAAAAAAAAAAAAAA1", "alice"), label="laptop \u00e9", read_only=True
        )
        plain = key("MKAAAAAAAAAAAAAAAAA2", "alice", now() + timedelta(seconds=1))
        await store.create_key(labelled)
        await store.create_key(plain)
        assert await store.get_key(labelled.access_key) == labelled
        assert await store.list_keys("alice") == [labelled, plain]
        got = await store.get_key(plain.access_key)
        assert got is not None and got.label is None and got.read_only is False

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
        first = now()
        revoked = await store.revoke_key("MKAAAAAAAAAAAAAAAAA1", first)
        assert revoked.revoked == first and not revoked.active
        again = await store.revoke_key("MKAAAAAAAAAAAAAAAAA1", first + timedelta(hours=1))
        assert again.revoked == first
        assert (await store.get_key("MKAAAAAAAAAAAAAAAAA1")) == again
        with pytest.raises(NotFound):
            await store.revoke_key("MKNOPE", first)

    with_store(body)


def test_revoke_answer_is_what_is_stored(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        await store.create_user(user("alice"))
        await store.create_key(key("MKAAAAAAAAAAAAAAAAA1", "alice"))
        # microseconds on purpose: a backend that rounds must round its answer too
        answer = await store.revoke_key("MKAAAAAAAAAAAAAAAAA1", datetime.now(UTC))
        assert answer == await store.get_key("MKAAAAAAAAAAAAAAAAA1")
        assert await store.list_keys() == [answer]

    with_store(body)


def test_concurrent_creates_of_one_name(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        results = await asyncio.gather(
            *(store.create_user(user("same")) for _ in range(10)), return_exceptions=True
        )
        assert sum(r is None for r in results) == 1
        assert all(isinstance(r, AlreadyExists) for r in results if r is not None)

    with_store(body)


def test_times_come_back_as_utc(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        created = now().astimezone(timezone(timedelta(hours=2)))
        await store.create_user(UserRecord("tz", Role.READER, "h", created))
        got = await store.get_user("tz")
        assert got is not None and got.created == created
        assert got.created.utcoffset() == timedelta(0)

    with_store(body)


def test_two_instances_share_state(open_store: Opener) -> None:
    """Two store instances (two gateway processes) on one location see each other's writes,
    and concurrent revocations of one key through both agree on a single winner."""

    async def main() -> None:
        a, b = await open_store(), await open_store()
        try:
            await a.create_user(user("alice"))
            assert (await b.get_user("alice")) == (await a.get_user("alice"))
            with pytest.raises(AlreadyExists):
                await b.create_user(user("alice"))
            await b.update_user("alice", role=Role.ADMIN)
            assert (await a.get_user("alice")).role is Role.ADMIN  # type: ignore[union-attr]

            ids = [f"MKRACE{i:014d}" for i in range(8)]
            for access_key in ids:
                await a.create_key(key(access_key, "alice"))
            assert [k.access_key for k in await b.list_keys("alice")] == ids

            t_a, t_b = now(), now() + timedelta(seconds=1)
            for access_key in ids:
                from_a, from_b = await asyncio.gather(
                    a.revoke_key(access_key, t_a), b.revoke_key(access_key, t_b)
                )
                # one winner: both callers are told the same, stored revocation time
                assert from_a.revoked == from_b.revoked
                assert from_a.revoked in (t_a, t_b)
                assert await a.get_key(access_key) == await b.get_key(access_key) == from_a
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


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


def test_sqlite_open_that_fails_leaves_no_thread_behind(tmp_path: Path) -> None:
    # A file that is not a database: open() fails. The connection it made must be closed, or
    # its worker thread keeps the process from exiting (a CLI would hang after its error).
    path = tmp_path / "not-a-db.sqlite3"
    path.write_bytes(b"this is not an SQLite file" * 100)
    before = set(threading.enumerate())

    async def main() -> None:
        with pytest.raises(Exception, match="not a database"):
            await SqliteStore(path).open()

    asyncio.run(main())
    # a closed connection's thread ends just after close() returns: give it that moment
    started = [t for t in threading.enumerate() if t not in before]
    for thread in started:
        thread.join(timeout=10)
    assert [t for t in started if t.is_alive()] == []


WRITER = """
import asyncio, sys
from datetime import UTC, datetime
from policy.principal import Role
from policy.store import UserRecord, KeyRecord, open_metadata_store

async def main(location, tag):
    # a mongodb:// URI selects mongo; anything else is a SQLite path
    store = await open_metadata_store(location)
    for i in range(25):
        name = f"{tag}-{i}"
        await store.create_user(UserRecord(name, Role.READER, "h", datetime.now(UTC)))
        await store.create_key(KeyRecord(f"MK{tag.upper()}{i:016d}", "x", name, datetime.now(UTC)))
    await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_concurrent_processes(store_location: str, open_store: Opener) -> None:
    """Writers in separate processes share one store (for sqlite: one file, without
    'database is locked' failures; for mongo: one database, each opening its indexes)."""
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, store_location, tag], cwd=REPO)
        for tag in ("a", "b", "c")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]

    async def check() -> None:
        store = await open_store()
        try:
            assert await store.count_users() == 75
            assert len(await store.list_keys()) == 75
        finally:
            await store.close()

    asyncio.run(check())


# -- mongo specifics -----------------------------------------------------------------------------
def test_mongo_unique_indexes(ferretdb: str) -> None:
    async def main() -> None:
        store = MongoMetadataStore(ferretdb, f"t_{secrets.token_hex(6)}")
        await asyncio.gather(store.open(), store.open())  # concurrent index creation is harmless
        await store.close()
        await store.open()
        try:
            users = await store.users.index_information()
            keys = await store.keys.index_information()
            assert users["name_unique"]["unique"] and users["name_unique"]["key"] == [("name", 1)]
            assert keys["access_key_unique"]["unique"]
            assert keys["access_key_unique"]["key"] == [("access_key", 1)]
        finally:
            await store.close()
            await store.close()  # twice is fine

    asyncio.run(main())


def test_mongo_unreachable_fails_fast() -> None:
    """No server: open() gives up after the short selection timeout, not PyMongo's 30 s."""

    async def main() -> None:
        store = MongoMetadataStore(f"mongodb://127.0.0.1:{free_port()}/", "minimo")
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            await store.open()
        # the driver's error stays attached for the server log
        assert isinstance(caught.value.__cause__, ServerSelectionTimeoutError)
        assert time.monotonic() - started < 15
        await store.close()

    asyncio.run(main())


def test_mongo_uri_helpers() -> None:
    assert database_from_uri("mongodb://h:1/") == "minimo"
    assert database_from_uri("mongodb://h:1") == "minimo"
    assert database_from_uri("mongodb://h:1/labmeta?tls=true") == "labmeta"
    assert redact_uri("mongodb://u:p%40ss@h1:1,h2:2/db") == "mongodb://u:***@h1:1,h2:2/db"
    assert redact_uri("mongodb://h:1/db") == "mongodb://h:1/db"
    assert "s3cret" not in repr(MongoMetadataStore("mongodb://u:s3cret@h:1/"))
