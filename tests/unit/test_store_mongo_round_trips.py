"""The MongoDB store's write path: how many commands a PutObject sends (counted by PyMongo
command monitoring on the store's own client), and the history an earlier version wrote (in
``object_history``) still read after an upgrade.

Runs on FerretDB with each of its handlers, SQLite (the session's ``ferretdb`` server) and
PostgreSQL (which pushes queries down to SQL and refuses some strings SQLite takes), each test in
its own database.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pymongo import monitoring

from policy.store import AuditEvent, ObjectRecord, WriteIntent
from policy.store.mongo import OBJECT_HISTORY, OBJECTS, MongoMetadataStore, _object_doc
from tests.servers import run_ferretdb, run_postgres

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ferretdb_on_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("ferretdb-pg")
    with run_postgres(root) as postgres, run_ferretdb(root, postgres) as uri:
        yield uri


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest) -> str:
    """A FerretDB server's URI, on the handler the parameter names."""
    name = "ferretdb" if request.param == "sqlite" else "ferretdb_on_postgres"
    return request.getfixturevalue(name)


class CommandLog(monitoring.CommandListener):
    """The names of the commands the client sent, in order."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _intent(intent_id: str, key: str) -> WriteIntent:
    return WriteIntent(intent_id, "raw", key, "s1", "alice", datetime.now(UTC))


def _record(key: str, size: int) -> ObjectRecord:
    return ObjectRecord(
        bucket="raw",
        key=key,
        size=size,
        etag=f"etag-{size}",
        sha256=f"{size:064x}",
        content_type="application/octet-stream",
        session_id="s1",
        principal="alice",
        committed=datetime.now(UTC),
    )


def _event(key: str) -> AuditEvent:
    return AuditEvent(datetime.now(UTC), "alice", "PutObject", f"raw/{key}", "accepted", None, {})


async def _put(store: MongoMetadataStore, intent_id: str, key: str, *, claim: bool) -> bool:
    """What gateway/usecases/writes.py asks of the store for one accepted PutObject."""
    won = await store.start_write(_intent(intent_id, key), claim=claim)
    if won:
        await store.finish_write(intent_id, _record(key, 4096), _event(key))
    return won


def test_a_put_sends_five_commands_six_with_a_claim(server: str) -> None:
    """Start: the intent, (the claim,) the look for a delete of the key. Finish: the audit event
    holding the history entry, the record, the intent's removal."""
    log = CommandLog()

    async def main() -> None:
        store = MongoMetadataStore(server, f"t_{secrets.token_hex(6)}", event_listeners=[log])
        await store.open()
        try:
            finish = ["insert", "update", "delete"]
            for intent_id, key, claim, start in (
                ("w1", "new.bin", False, ["insert", "find"]),  # a fresh key, overwrites allowed
                ("w2", "new.bin", False, ["insert", "find"]),  # an overwrite
                ("w3", "once.bin", True, ["insert", "find", "insert"]),  # write-once: the claim
            ):
                log.names.clear()
                assert await _put(store, intent_id, key, claim=claim)
                assert log.names == start + finish, (intent_id, log.names)
            # what a user checks: the records, the history and the claim are all there
            assert (await store.get_object_record("raw", "new.bin")).intent_id == "w2"
            history = await store.list_object_history("raw", "new.bin")
            assert [r.intent_id for r in history] == ["w1", "w2"]
            events, _ = await store.list_audit()
            assert [e.target for e in events] == [
                "raw/new.bin",
                "raw/new.bin",
                "raw/once.bin",
            ]
            assert await store.get_claim("raw", "once.bin") == "w3"
            assert await store.list_intents() == []
        finally:
            await store.close()

    asyncio.run(main())


def test_history_written_by_an_earlier_version_is_still_read(server: str) -> None:
    async def main() -> None:
        store = MongoMetadataStore(server, f"t_{secrets.token_hex(6)}")
        await store.open()
        try:
            # what an earlier version left: a record and its entry in object_history
            old = replace(_record("old.bin", 7), committed=T0)
            await store.db[OBJECTS].insert_one(_object_doc(old, "old-1"))
            await store.db[OBJECT_HISTORY].insert_one(_object_doc(old, "old-1"))
            assert await _put(store, "new-1", "old.bin", claim=False)
            history = await store.list_object_history("raw", "old.bin")
            assert [(r.intent_id, r.size) for r in history] == [("old-1", 7), ("new-1", 4096)]
            # a rollback of the new write removes its entry, the old one stays
            await store.roll_back_write(_intent("new-1", "old.bin"))
            history = await store.list_object_history("raw", "old.bin")
            assert [r.intent_id for r in history] == ["old-1"]
        finally:
            await store.close()

    asyncio.run(main())
