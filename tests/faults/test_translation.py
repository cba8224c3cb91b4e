"""The pieces behind the outage answers, without servers (docs/failures.md): each metadata
store's one translation point, and the read-only credential grace while the store is down."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
    WTimeoutError,
)

import policy.store.sqlite as sqlite_store
from policy.crypto import SecretBox
from policy.identity import IdentityService
from policy.principal import Role
from policy.store.base import StoreFull, StoreUnavailable
from policy.store.mongo import translate_mongo_error
from policy.store.sqlite import SqliteStore, translate_sqlite_error


@pytest.mark.parametrize(
    "exc",
    [
        AutoReconnect("connection reset"),
        NetworkTimeout("timed out"),
        ServerSelectionTimeoutError("127.0.0.1:1: connection refused"),
        NotPrimaryError("not primary"),
        WaitQueueTimeoutError("pool full"),
        ExecutionTimeout("operation exceeded time limit", 50),
        WTimeoutError("waiting for replication timed out", 64),
        OperationFailure("not writable primary", 10107),
        OperationFailure("interrupted due to repl state change", 11602),
        OperationFailure("shutdown in progress", 91),
        # FerretDB stopping (SIGTERM) while a write runs: Go's context error, code 1
        OperationFailure(
            "[msg_insert.go:168 handler.(*Handler).MsgInsert] "
            "[db.go:134 fsql.(*DB).InTransaction] context canceled",
            1,
        ),
        # FerretDB's SQLite handler under write load: its own database lock not had in time
        OperationFailure(
            "[msg_delete.go:95 handler.(*Handler).MsgDelete] "
            "[msg_delete.go:169 handler.(*Handler).execDelete] "
            "[collection.go:241 sqlite.(*collection).DeleteAll] "
            "database is locked (5) (SQLITE_BUSY)",
            1,
        ),
    ],
    ids=lambda e: f"{type(e).__name__}-{getattr(e, 'code', None)}",
)
def test_mongo_outages_are_unavailable(exc: Exception) -> None:
    assert isinstance(translate_mongo_error(exc), StoreUnavailable)


def test_mongo_full_and_other_errors() -> None:
    assert isinstance(translate_mongo_error(OperationFailure("out of disk", 14031)), StoreFull)
    ferret = OperationFailure("sqlite: database or disk is full (13)", 1)
    assert isinstance(translate_mongo_error(ferret), StoreFull)
    # not outages: they pass unchanged (a duplicate is handled by the store, a bug stays a 500)
    assert translate_mongo_error(DuplicateKeyError("E11000 duplicate key", 11000)) is None
    assert translate_mongo_error(OperationFailure("bad query", 2)) is None
    assert translate_mongo_error(OperationFailure("some other internal error", 1)) is None
    assert translate_mongo_error(ValueError("bug")) is None


def test_sqlite_translation() -> None:
    assert isinstance(
        translate_sqlite_error(sqlite3.OperationalError("database or disk is full")), StoreFull
    )
    assert isinstance(
        translate_sqlite_error(sqlite3.OperationalError("disk I/O error")), StoreUnavailable
    )
    assert isinstance(translate_sqlite_error(OSError(28, "No space left on device")), StoreFull)
    # a statement-ordering bug is not an outage
    bug = sqlite3.OperationalError("cannot open savepoint - SQL statements in progress")
    assert translate_sqlite_error(bug) is None
    assert translate_sqlite_error(sqlite3.IntegrityError("UNIQUE constraint failed")) is None


def test_sqlite_locked_past_its_busy_timeout_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding the write lock past busy_timeout: StoreUnavailable, with the
    driver's error attached for the log; the store works again once the lock is gone."""
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "m.sqlite3"

    async def main() -> None:
        store = SqliteStore(path)
        await store.open()
        try:
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailable) as caught:
                await store.end_login("l1", "someone", _now())
            assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
            other.execute("ROLLBACK")
            other.close()
            await store.end_login("l1", "someone", _now())
            assert await store.login_ended("l1")
        finally:
            await store.close()

    asyncio.run(main())


def _now() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


class _Switch:
    """Makes a store's key and user lookups fail as an outage while ``down`` is set."""

    def __init__(self, store: SqliteStore) -> None:
        self.down = False
        for name in ("get_key", "get_user"):
            real = getattr(store, name)

            async def lookup(*args, _real=real):
                if self.down:
                    raise StoreUnavailable("down for the test")
                return await _real(*args)

            setattr(store, name, lookup)


def test_credential_grace_reads_only_what_was_confirmed(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(tmp_path / "m.sqlite3")
        await store.open()
        try:
            switch = _Switch(store)
            box = SecretBox.from_file(tmp_path / "secret.key")
            # no cache: every call asks the store, so the grace is what answers in an outage
            identity = IdentityService(store, box, cache_seconds=0, grace_seconds=300)
            await identity.add_user("ann", Role.UPLOADER)
            seen = await identity.create_key("ann")
            unseen = await identity.create_key("ann")
            revoked = await identity.create_key("ann")
            for key in (seen, revoked):
                fresh = await identity.credential(key.access_key)
                assert fresh is not None and not fresh.principal.stale

            await identity.revoke_key(revoked.access_key)  # seen by this process
            switch.down = True
            stale = await identity.credential(seen.access_key)
            assert stale is not None and stale.principal.stale
            assert stale.secret_key == seen.secret_key
            assert stale.principal == seen.principal  # same user and role, only marked stale
            # never confirmed, or revoked here: the outage shows (a 503), not a guess
            for key in (unseen, revoked):
                with pytest.raises(StoreUnavailable):
                    await identity.credential(key.access_key)

            # back up: a lookup finding the key revoked elsewhere ends its grace at once
            switch.down = False
            await store.revoke_key(seen.access_key, _now())
            assert await identity.credential(seen.access_key) is None
            switch.down = True
            with pytest.raises(StoreUnavailable):
                await identity.credential(seen.access_key)
        finally:
            await store.close()

    asyncio.run(main())


def test_credential_grace_expires(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(tmp_path / "m.sqlite3")
        await store.open()
        try:
            switch = _Switch(store)
            box = SecretBox.from_file(tmp_path / "secret.key")
            identity = IdentityService(store, box, cache_seconds=0, grace_seconds=0)
            await identity.add_user("ann", Role.UPLOADER)
            key = await identity.create_key("ann")
            assert await identity.credential(key.access_key) is not None
            switch.down = True
            with pytest.raises(StoreUnavailable):
                await identity.credential(key.access_key)
        finally:
            await store.close()

    asyncio.run(main())
