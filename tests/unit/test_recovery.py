"""gateway.usecases.recovery and gateway.instance without a gateway: who counts as dead, what a run
does
to each kind of leftover, and what it must never touch (a live writer's intents and temp files,
this process's own, the data behind an ``adopt-`` intent). The local backend and sqlite, in
process; the SIGKILL tests (tests/faults/test_kill_*.py) run the whole thing for real.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.backends.base import WriteMeta
from gateway.backends.local import LocalObjectStore
from gateway.instance import host_key, instance_id, owner_of, process_alive, process_token
from gateway.protocol.errors import S3Error
from gateway.usecases.recovery import (
    STOPPED,
    Liveness,
    Recovered,
    Recovery,
    RecoveryService,
    RecoverySettings,
    instance_dead,
)
from policy.enforce import SESSION_META
from policy.store import InstanceRecord, MetadataStore, open_metadata_store
from policy.store.base import MultipartRecord, ObjectRecord, WriteIntent
from tests.contract.helpers import Bytes

NOW = datetime.now(UTC)


def instance(iid: str, *, host: str = "elsewhere", process: str = "1:1", **kw: Any):
    """An instance record; by default one that heartbeat just now (so it is alive)."""
    now = datetime.now(UTC)
    return InstanceRecord(
        iid, host, process, kw.get("started", now), kw.get("heartbeat", now), kw.get("every", 10)
    )


# -- gateway.instance ----------------------------------------------------------------------------
def test_owner_of_intent_ids() -> None:
    me = instance_id()
    assert len(me) == 16 and owner_of(me + "0" * 16) == me
    assert owner_of("adopt-" + "a" * 32) is None
    assert owner_of("reconcile-" + "a" * 32) is None
    assert owner_of("short") is None


def test_process_alive() -> None:
    assert process_alive(process_token())
    pid, _, start = process_token().partition(":")
    assert not process_alive(f"{pid}:{int(start) + 1}")  # the PID, but another process
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    token = f"{child.pid}:{_start_of(child.pid)}"
    assert process_alive(token)
    child.kill()
    # killed but not yet reaped: a zombie is gone all the same
    deadline = time.monotonic() + 30
    while process_alive(token):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child.wait()
    assert not process_alive(token)


def _start_of(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    return stat[stat.rfind(")") + 2 :].split()[19]


def test_instance_dead() -> None:
    beat = timedelta(seconds=10)
    # another host: only the heartbeat tells (3 missed + 5 s slack = 35 s)
    assert not instance_dead(instance("a" * 16, heartbeat=NOW - beat), NOW)
    assert not instance_dead(instance("a" * 16, heartbeat=NOW - 3 * beat), NOW)
    assert instance_dead(instance("a" * 16, heartbeat=NOW - 4 * beat), NOW)
    # each instance's own heartbeat interval counts: 1 s -> dead after 3 + 5 s
    assert not instance_dead(instance("a" * 16, heartbeat=NOW - timedelta(seconds=7), every=1), NOW)
    assert instance_dead(instance("a" * 16, heartbeat=NOW - timedelta(seconds=9), every=1), NOW)
    assert instance_dead(instance("a" * 16, heartbeat=STOPPED), NOW)
    # this host: a process that is gone is dead at once, a fresh heartbeat notwithstanding
    assert instance_dead(instance("b" * 16, host=host_key(), process="999999999:1"), NOW)
    assert not instance_dead(instance("b" * 16, host=host_key(), process=process_token()), NOW)


def test_an_old_heartbeat_proves_death_only_to_a_judge_in_touch_long_enough() -> None:
    """After a metadata store outage every heartbeat is old: a gateway back in touch for less
    than the bound (35 s) must not take the others for dead; a stopped one or a gone process on
    this host are dead all the same."""
    stale = instance("a" * 16, heartbeat=NOW - timedelta(minutes=5))
    assert instance_dead(stale, NOW)  # the CLI's view: the store as it is
    assert not instance_dead(stale, NOW, watched_since=NOW - timedelta(seconds=20))
    assert instance_dead(stale, NOW, watched_since=NOW - timedelta(seconds=36))
    recent = NOW - timedelta(seconds=1)
    assert instance_dead(instance("a" * 16, heartbeat=STOPPED), NOW, watched_since=recent)
    gone = instance("b" * 16, host=host_key(), process="999999999:1")
    assert instance_dead(gone, NOW, watched_since=recent)
    live = Liveness([stale], NOW, timedelta(hours=1), None, watched_since=recent)
    assert not live.owner_dead("a" * 16, 10**6)


def test_service_out_of_touch_judges_nobody_by_heartbeat(tmp_path: Path) -> None:
    async def body(metadata: MetadataStore, objects: LocalObjectStore) -> None:
        dead = "d" * 16
        await metadata.heartbeat_instance(instance(dead, heartbeat=NOW - timedelta(minutes=5)))
        intent = await stored_write(metadata, objects, dead + "0" * 16, "k")
        service = RecoveryService(objects, metadata, RecoverySettings())
        await service._beat()  # in touch from now on, but not for 35 s yet
        await service.run_once()
        assert await metadata.get_intent(intent.id) is not None
        service.watched_since = datetime.now(UTC) - timedelta(minutes=1)
        await service.run_once()
        assert await metadata.get_intent(intent.id) is None

    run(tmp_path, body)


def test_liveness_rules() -> None:
    me = instance_id()
    live = Liveness(
        [
            instance("a" * 16),
            instance("b" * 16, heartbeat=NOW - timedelta(minutes=5)),
            instance(me, heartbeat=STOPPED),  # even a stale record of this process
        ],
        NOW,
        timedelta(hours=1),
        me,
    )
    assert not live.owner_dead(me, 10**9)
    assert not live.owner_dead("a" * 16, 10**9)
    assert live.owner_dead("b" * 16, 0)
    assert not live.owner_dead("c" * 16, 60)  # unknown: the grace period decides
    assert live.owner_dead("c" * 16, 3601)
    assert live.owner_dead(None, 3601) and not live.owner_dead(None, 60)

    def intent(iid: str, age: timedelta) -> WriteIntent:
        return WriteIntent(iid, "b", "k", None, "ada", NOW - age)

    assert live.why_dead(intent("a" * 32, timedelta(days=3))) is None
    assert "b" * 16 in (live.why_dead(intent("b" * 32, timedelta(0))) or "")
    assert live.why_dead(intent("adopt-x", timedelta(minutes=5))) is None
    assert "unknown" in (live.why_dead(intent("adopt-x", timedelta(hours=2))) or "")


# -- a recovery run on the local backend and sqlite ---------------------------------------------
Body = Callable[[MetadataStore, LocalObjectStore], Awaitable[None]]


def run(tmp_path: Path, body: Body) -> None:
    async def main() -> None:
        metadata = await open_metadata_store(tmp_path / "minimo.sqlite3")
        objects = LocalObjectStore(tmp_path / "objects", fsync=False)
        await objects.start()
        try:
            await objects.create_bucket("raw")
            await body(metadata, objects)
        finally:
            await objects.close()
            await metadata.close()

    asyncio.run(main())


async def stored_write(
    metadata: MetadataStore, objects: LocalObjectStore, iid: str, key: str, **kw: Any
) -> WriteIntent:
    """A write that died after its object landed: intent, claim and stamped object."""
    intent = WriteIntent(iid, "raw", key, "s1", "ada", kw.get("started", datetime.now(UTC)))
    assert await metadata.start_write(intent, claim=True)
    await objects.put_object("raw", key, Bytes(b"bytes of " + key.encode()), stamped("s1"))
    return intent


def stamped(session: str) -> WriteMeta:
    return WriteMeta(metadata={SESSION_META: session})


async def exists(objects: LocalObjectStore, key: str) -> bool:
    try:
        await objects.head_object("raw", key)
    except S3Error:
        return False
    return True


def test_run_rolls_back_only_dead_writers(tmp_path: Path) -> None:
    dead, live = "d" * 16, "a" * 16

    async def body(metadata: MetadataStore, objects: LocalObjectStore) -> None:
        await metadata.heartbeat_instance(instance(dead, heartbeat=NOW - timedelta(minutes=2)))
        await metadata.heartbeat_instance(instance(live))
        gone = await stored_write(metadata, objects, dead + "0" * 16, "dead.bin")
        kept = await stored_write(metadata, objects, live + "0" * 16, "live.bin")
        mine = await stored_write(metadata, objects, instance_id() + "0" * 16, "mine.bin")
        # an adoption that died two hours ago: its object is the owner's data and stays
        adopt = WriteIntent("adopt-x", "raw", "adopted.bin", "s1", "ada", NOW - timedelta(hours=2))
        assert await metadata.start_write(adopt, claim=True)
        await objects.put_object("raw", "adopted.bin", Bytes(b"owner's"), stamped("s1"))
        # a pre-upgrade gateway's write (unknown instance), young: left for now
        young = await stored_write(metadata, objects, "e" * 32, "young.bin")
        # a dead Complete whose upload the object store finished: its record goes too
        upload_id = await objects.create_multipart_upload("raw", "mpu.bin", WriteMeta())
        await metadata.create_multipart(
            MultipartRecord(upload_id, "raw", "mpu.bin", "s1", "ada", NOW)
        )
        await objects.upload_part("raw", "mpu.bin", upload_id, 1, Bytes(b"one part"))
        # (begun over the bound ago: an upstream may go on completing for a while after the
        # gateway died, so a younger dead Complete is left alone for now)
        begun = datetime.now(UTC) - timedelta(minutes=1)
        done = WriteIntent(dead + "1".zfill(16), "raw", "mpu.bin", None, "ada", begun, upload_id)
        assert await metadata.start_write(done, claim=True)
        settling = WriteIntent(
            dead + "2".zfill(16), "raw", "mpu2.bin", None, "ada", datetime.now(UTC), "u2"
        )
        assert await metadata.start_write(settling, claim=True)
        parts = (await objects.list_parts("raw", "mpu.bin", upload_id)).parts
        await objects.complete_multipart_upload("raw", "mpu.bin", upload_id, [(1, parts[0].etag)])

        found: list[Recovered] = []
        report = await Recovery(objects, metadata, me=instance_id(), on_found=found.append).run()
        assert sorted(f.key for f in found) == ["adopted.bin", "dead.bin", "mpu.bin"]
        assert all(f.kind == "dead_intent" and f.repaired for f in found)
        assert report.live_intents == 4
        for intent in (gone, adopt, done):
            assert await metadata.get_intent(intent.id) is None
            assert await metadata.get_claim("raw", intent.key) is None
        assert not await exists(objects, "dead.bin")
        assert not await exists(objects, "mpu.bin")
        assert await metadata.get_multipart(upload_id) is None
        assert await exists(objects, "adopted.bin")  # only the metadata side was undone
        assert await metadata.get_intent(settling.id) is not None
        for intent in (kept, mine, young):
            assert await metadata.get_intent(intent.id) is not None
            assert await metadata.get_claim("raw", intent.key) == intent.id
            assert await exists(objects, intent.key)

    run(tmp_path, body)


def test_run_keeps_a_committed_object_of_another_write(tmp_path: Path) -> None:
    """A dead intent on a key whose object another write committed (overwrites allowed): the
    recorded object is not the dead write's to remove."""
    dead = "d" * 16

    async def body(metadata: MetadataStore, objects: LocalObjectStore) -> None:
        await metadata.heartbeat_instance(instance(dead, heartbeat=STOPPED))
        etag = await objects.put_object("raw", "k", Bytes(b"committed"), stamped("s1"))
        committed = WriteIntent("c" * 32, "raw", "k", "s1", "ada", NOW)
        await metadata.begin_write(committed)
        record = ObjectRecord("raw", "k", 9, etag, "0" * 64, None, "s1", "ada", NOW)
        await metadata.commit_write(committed.id, record)
        stale = WriteIntent(dead + "0" * 16, "raw", "k", "s1", "ada", NOW - timedelta(hours=1))
        await metadata.begin_write(stale)
        await Recovery(objects, metadata, me=instance_id()).run()
        assert await metadata.get_intent(stale.id) is None
        assert await exists(objects, "k")
        assert await metadata.get_object_record("raw", "k") is not None

    run(tmp_path, body)


def test_run_cleans_temp_files_of_dead_writers_only(tmp_path: Path) -> None:
    dead, live, me = "d" * 16, "a" * 16, instance_id()

    async def body(metadata: MetadataStore, objects: LocalObjectStore) -> None:
        await metadata.heartbeat_instance(instance(dead, heartbeat=STOPPED))
        await metadata.heartbeat_instance(instance(live))
        tmp = objects.root / ".minimo" / "tmp"
        names = {
            f"obj-{dead}-1": True,  # a dead writer's: removed
            f"copy-{dead}-2": True,
            f"obj-{live}-1": False,  # a live writer's: kept
            f"obj-{me}-1": False,  # this process's own: kept
            f"obj-{'e' * 16}-1": False,  # unknown writer, younger than the grace period: kept
            "stray": False,  # no owner at all, as young
        }
        for name in names:
            (tmp / name).write_bytes(b"x" * 100)
        (tmp / f"abort-{dead}-3").mkdir()
        (tmp / f"abort-{dead}-3" / "part-00001").write_bytes(b"part")
        found: list[Recovered] = []
        await Recovery(objects, metadata, me=me, on_found=found.append).run()
        removed = {n for n, gone in names.items() if gone} | {f"abort-{dead}-3"}
        assert {f.key.rsplit("/", 1)[-1] for f in found} == removed
        assert all(f.kind == "temp_file" and f.repaired for f in found)
        kept = sorted(n for n, gone in names.items() if not gone)
        assert sorted(os.listdir(tmp)) == kept
        # once older than the grace period, an unknown writer's leftovers go too (a file's
        # age is its last change: mtime or ctime, whichever is later, so here a grace of 0)
        await Recovery(
            objects, metadata, me=me, settings=RecoverySettings(unknown_grace=timedelta(0))
        ).run()
        assert sorted(os.listdir(tmp)) == sorted([f"obj-{live}-1", f"obj-{me}-1"])

    run(tmp_path, body)


def test_interrupted_complete_is_put_back_or_removed(tmp_path: Path) -> None:
    dead = "d" * 16

    async def body(metadata: MetadataStore, objects: LocalObjectStore) -> None:
        await metadata.heartbeat_instance(instance(dead, heartbeat=STOPPED))
        root = objects.root / ".minimo"
        upload_id = await objects.create_multipart_upload("raw", "big.bin", WriteMeta())
        etag = await objects.upload_part("raw", "big.bin", upload_id, 1, Bytes(b"part one"))
        # killed while completing: the upload was taken out of the list, not yet assembled
        os.rename(root / "multipart" / "raw" / upload_id, root / "tmp" / f"complete-{dead}-1")
        # killed after completing, while cleaning up (upload.json already gone)
        (root / "tmp" / f"complete-{dead}-2").mkdir()
        (root / "tmp" / f"complete-{dead}-2" / "part-00001").write_bytes(b"leftover")

        report = Recovery(objects, metadata, repair=False, me=instance_id())
        await report.run()
        assert report.report.found["interrupted_complete"] == 2
        assert (await objects.list_multipart_uploads("raw")).uploads == []  # nothing changed

        await Recovery(objects, metadata, me=instance_id()).run()
        assert os.listdir(root / "tmp") == []
        uploads = (await objects.list_multipart_uploads("raw")).uploads
        assert [u.upload_id for u in uploads] == [upload_id]
        await objects.complete_multipart_upload("raw", "big.bin", upload_id, [(1, etag)])
        reader = await objects.open_object("raw", "big.bin")
        assert b"".join([piece async for piece in reader]) == b"part one"
        await reader.aclose()

    run(tmp_path, body)


def test_expired_uploads(tmp_path: Path) -> None:
    async def body(metadata: MetadataStore, objects: LocalObjectStore) -> None:
        old = NOW - timedelta(days=8)
        recorded = await objects.create_multipart_upload("raw", "old.bin", WriteMeta())
        await metadata.create_multipart(MultipartRecord(recorded, "raw", "old.bin", None, "a", old))
        fresh = await objects.create_multipart_upload("raw", "fresh.bin", WriteMeta())
        await metadata.create_multipart(MultipartRecord(fresh, "raw", "fresh.bin", None, "a", NOW))
        # an upload nobody recorded (begun behind minimo's back), as old
        unrecorded = await objects.create_multipart_upload("raw", "stray.bin", WriteMeta())
        meta_file = objects.root / ".minimo" / "multipart" / "raw" / unrecorded / "upload.json"
        data = json.loads(meta_file.read_text())
        data["initiated"] = old.timestamp()
        meta_file.write_text(json.dumps(data))
        # an upload record whose upload the object store no longer has
        await metadata.create_multipart(MultipartRecord("gone", "raw", "gone.bin", None, "a", old))

        found: list[Recovered] = []
        await Recovery(objects, metadata, on_found=found.append).run()
        assert sorted(f.upload_id or "" for f in found) == sorted([recorded, unrecorded, "gone"])
        assert all(f.kind == "expired_upload" and f.repaired for f in found)
        assert [u.upload_id for u in (await objects.list_multipart_uploads("raw")).uploads] == [
            fresh
        ]
        assert await metadata.get_multipart(recorded) is None
        assert await metadata.get_multipart("gone") is None
        assert await metadata.get_multipart(fresh) is not None
        # a shorter expiry takes the fresh one too
        short = RecoverySettings(multipart_expiry=timedelta(seconds=0))
        await Recovery(objects, metadata, settings=short).run()
        assert (await objects.list_multipart_uploads("raw")).uploads == []

    run(tmp_path, body)


def test_orphan_claims_and_old_instances(tmp_path: Path) -> None:
    async def body(metadata: MetadataStore, objects: LocalObjectStore) -> None:
        assert await metadata.claim_key("raw", "orphan", "nobody")
        await stored_write(metadata, objects, "a" * 32, "claimed")  # intent holds it
        await metadata.heartbeat_instance(instance("a" * 16))
        await metadata.heartbeat_instance(instance("b" * 16, heartbeat=NOW - timedelta(days=2)))
        await metadata.heartbeat_instance(instance("c" * 16, heartbeat=NOW - timedelta(hours=2)))
        recovery = Recovery(objects, metadata)
        await recovery.orphan_claims()
        assert recovery.report.found["orphan_claim"] == 1
        assert await metadata.get_claim("raw", "orphan") is None
        assert await metadata.get_claim("raw", "claimed") == "a" * 32
        await recovery.run()
        # instance records dead for over a day are forgotten; younger dead ones kept
        assert [i.id for i in await metadata.list_instances()] == ["a" * 16, "c" * 16]

    run(tmp_path, body)


def test_service_registers_heartbeats_runs_and_stops(tmp_path: Path) -> None:
    async def body(metadata: MetadataStore, objects: LocalObjectStore) -> None:
        service = RecoveryService(objects, metadata, RecoverySettings(heartbeat=1.0, interval=1.0))
        await service.start()
        try:
            [me] = await metadata.list_instances()
            assert (me.id, me.host, me.process) == (instance_id(), host_key(), process_token())
            first = me.heartbeat
            deadline = time.monotonic() + 60
            while service.runs < 2 or (await metadata.list_instances())[0].heartbeat == first:
                assert time.monotonic() < deadline, "no heartbeat or no second run"
                await asyncio.sleep(0.05)
        finally:
            await service.stop()
        [me] = await metadata.list_instances()
        assert me.heartbeat == STOPPED  # dead at once for the others

    run(tmp_path, body)


@pytest.mark.parametrize("interval", [60.0])
def test_lease_lets_one_gateway_run_per_period(tmp_path: Path, interval: float) -> None:
    async def body(metadata: MetadataStore, objects: LocalObjectStore) -> None:
        settings = RecoverySettings(interval=interval)
        a = RecoveryService(objects, metadata, settings)
        b = RecoveryService(objects, metadata, settings)
        results = await asyncio.gather(a._take_lease(), b._take_lease())
        assert sorted(results) == [False, True]

    run(tmp_path, body)


# -- the options ---------------------------------------------------------------------------------
def test_serve_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--heartbeat-interval, --recovery-interval and --multipart-expiry (or MINIMO_* variables)
    reach the gateway's Config; the defaults are 10 s, 60 s and 7 days; bad values are usage
    errors."""
    from click.testing import CliRunner

    import gateway.server
    from gateway.cli import main
    from gateway.config import Config

    seen: list[Config] = []
    monkeypatch.setattr(gateway.server, "run", lambda config, **kw: seen.append(config))
    for name in (
        "MINIMO_HEARTBEAT_INTERVAL",
        "MINIMO_RECOVERY_INTERVAL",
        "MINIMO_MULTIPART_EXPIRY",
    ):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    base = ["serve", "--data-dir", str(tmp_path)]
    assert runner.invoke(main, base).exit_code == 0
    assert (seen[-1].heartbeat_interval, seen[-1].recovery_interval) == (10.0, 60.0)
    assert seen[-1].multipart_expiry == timedelta(days=7)
    result = runner.invoke(
        main,
        [*base, "--heartbeat-interval", "2s", "--recovery-interval", "5m"],
        env={"MINIMO_MULTIPART_EXPIRY": "36h"},
    )
    assert result.exit_code == 0, result.output
    assert (seen[-1].heartbeat_interval, seen[-1].recovery_interval) == (2.0, 300.0)
    assert seen[-1].multipart_expiry == timedelta(hours=36)
    result = runner.invoke(main, [*base, "--multipart-expiry", "soon"])
    assert result.exit_code == 2 and "bad duration" in result.output
