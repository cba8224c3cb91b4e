"""FerretDB on SQLite refuses a command that does not get SQLite's write lock in time
("database is locked (5) (SQLITE_BUSY)"); the Mongo store sends it again
(policy.store.mongo_lock_retry). Here the lock is held by a second SQLite connection to
FerretDB's own database file, and FerretDB waits only 100 ms for it, so each refusal is quick
and certain."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from policy.store.base import AuditEvent, StoreUnavailable
from policy.store.mongo import MongoMetadataStore
from tests.servers import run_ferretdb

DATABASE = "locked"


def _event(n: int) -> AuditEvent:
    return AuditEvent(datetime.now(UTC), "alice", "PutObject", f"s3://raw/{n}", "allowed", None, {})


def test_a_write_refused_for_the_sqlite_lock_is_sent_again(tmp_path: Path) -> None:
    """Locked for 0.5 s: the write waits it out and lands once. Locked for longer than the
    tries last: the store is unavailable (a 503 to the client), never a 500, and nothing was
    stored."""
    root = tmp_path / "ferretdb"
    with run_ferretdb(root, sqlite_query="_pragma=busy_timeout(100)") as uri:

        async def main() -> None:
            store = MongoMetadataStore(uri, DATABASE)
            await store.open()
            try:
                await store.append_audit(_event(0))  # the database file exists from here
                lock = sqlite3.connect(root / "data" / f"{DATABASE}.sqlite", isolation_level=None)
                try:
                    lock.execute("BEGIN IMMEDIATE")  # SQLite's write lock, as a writer holds it
                    asyncio.get_running_loop().call_later(0.5, lock.rollback)
                    await store.append_audit(_event(1))
                    events, _ = await store.list_audit(limit=10)
                    assert sorted(e.target for e in events) == ["s3://raw/0", "s3://raw/1"]

                    lock.execute("BEGIN IMMEDIATE")
                    with pytest.raises(StoreUnavailable):
                        await store.append_audit(_event(2))
                    lock.rollback()
                finally:
                    lock.close()
                events, _ = await store.list_audit(limit=10)
                assert sorted(e.target for e in events) == ["s3://raw/0", "s3://raw/1"]
            finally:
                await store.close()

        asyncio.run(main())
