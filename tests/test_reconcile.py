"""``minimo reconcile``: every kind of disagreement between the object store and the metadata
store, made by hand behind minimo's back, reported, repaired, and reported consistent after.

Runs on two combinations that between them cover both object stores and both metadata stores:
``sqlite`` + ``local`` and ``mongo`` (FerretDB) + ``s3`` (versitygw). The command runs as a
subprocess (``python -m gateway.cli reconcile``), as an operator would run it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.backends.base import ObjectStore, WriteMeta
from gateway.backends.local import LocalObjectStore
from gateway.protocol.errors import S3Error
from gateway.usecases.reconcile import RECONCILE_PRINCIPAL, Finding, Reconciler
from policy.enforce import SESSION_META
from policy.store import MetadataStore, open_metadata_store
from policy.store.base import (
    InstanceRecord,
    MultipartRecord,
    ObjectRecord,
    SessionRecord,
    WriteIntent,
)
from tests.contract.helpers import Bytes, pattern
from tests.helpers import s3_client
from tests.servers import REPO, Versitygw, mongo_uri, run_gateway

COMBOS = ["sqlite-local", "mongo-s3"]


@dataclass
class Stores:
    """Where one test's stores live, and how to open them (in the test's own event loop)."""

    data_dir: Path
    mongo_uri: str | None
    versitygw: Versitygw | None

    async def open(self) -> tuple[MetadataStore, ObjectStore]:
        metadata = await open_metadata_store(
            self.data_dir / "minimo.sqlite3", mongo_uri=self.mongo_uri
        )
        objects: ObjectStore
        if self.versitygw is not None:
            from gateway.backends.s3 import S3ObjectStore

            gw = self.versitygw
            objects = S3ObjectStore(gw.endpoint, gw.access_key, gw.secret_key, "us-east-1")
        else:
            objects = LocalObjectStore(self.data_dir / "objects")
        await objects.start()
        return metadata, objects

    def run(self, body: Callable[[MetadataStore, ObjectStore], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            metadata, objects = await self.open()
            try:
                return await body(metadata, objects)
            finally:
                await objects.close()
                await metadata.close()

        return asyncio.run(main())

    def reconcile(self, *args: str) -> tuple[int, list[Finding], dict[str, Any]]:
        """Run ``minimo reconcile --json ARGS``; (exit code, findings, summary)."""
        command = [sys.executable, "-m", "gateway.cli", "reconcile", "--json", *args]
        command += ["--data-dir", str(self.data_dir)]
        if self.mongo_uri:
            command += ["--mongo-uri", self.mongo_uri]
        if self.versitygw is not None:
            command += [
                "--s3-endpoint", self.versitygw.endpoint,
                "--s3-access-key", self.versitygw.access_key,
                "--s3-secret-key", self.versitygw.secret_key,
            ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMO_")}
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=REPO, env=env, timeout=120
        )
        assert done.returncode in (0, 1), done.stderr
        # --json never draws a progress bar: stderr stays empty
        assert done.stderr == "", done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        findings = [Finding(**line["finding"]) for line in lines[:-1]]
        return done.returncode, findings, lines[-1]["summary"]


@pytest.fixture(params=COMBOS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    metadata_kind, object_kind = request.param.split("-")
    uri = None
    if metadata_kind == "mongo":
        uri = mongo_uri(request.getfixturevalue("ferretdb"), f"rc_{secrets.token_hex(6)}")
    upstream = request.getfixturevalue("versitygw") if object_kind == "s3" else None
    yield Stores(tmp_path / "data", uri, upstream)


# -- building inconsistencies by hand ----------------------------------------------------------
def session_record(bucket: str, *, state: str = "open") -> SessionRecord:
    now = datetime.now(UTC)
    return SessionRecord(
        id=secrets.token_hex(16),
        form_name="imaging",
        form_version=1,
        values={"operator": "ada"},
        bucket=bucket,
        prefix="run/",
        owner="admin",
        state=state,  # type: ignore[arg-type]
        created=now,
        expires=now + timedelta(days=1),
    )


async def put(
    objects: ObjectStore, bucket: str, key: str, data: bytes, session_id: str | None = None
) -> str:
    """Store an object straight through the backend, stamped like the gateway stamps."""
    meta = WriteMeta(content_type="application/x-run")
    if session_id is not None:
        meta.metadata[SESSION_META] = session_id
    return await objects.put_object(bucket, key, Bytes(data), meta)


async def commit(
    metadata: MetadataStore,
    bucket: str,
    key: str,
    *,
    size: int,
    etag: str,
    sha256: str,
    session_id: str | None,
) -> None:
    """Commit a record the way a write does (intent, claim, commit)."""
    intent_id = secrets.token_hex(16)
    now = datetime.now(UTC)
    await metadata.begin_write(WriteIntent(intent_id, bucket, key, session_id, "ada", now))
    assert await metadata.claim_key(bucket, key, intent_id)
    record = ObjectRecord(
        bucket, key, size, etag, sha256, "application/x-run", session_id, "ada", now
    )
    await metadata.commit_write(intent_id, record)


def by_key(findings: list[Finding]) -> dict[str, Finding]:
    return {f.key: f for f in findings}


# -- the test ----------------------------------------------------------------------------------
def test_report_repair_and_consistent_after(stores: Stores) -> None:
    bucket = f"rc-{secrets.token_hex(4)}"
    rebuild_data = pattern(300 * 1024, seed=1)
    changed_data = pattern(2048, seed=2)
    ok_data = pattern(1000, seed=3)
    stale_started = datetime.now(UTC) - timedelta(hours=2)

    async def setup(metadata: MetadataStore, objects: ObjectStore) -> dict[str, str]:
        await objects.create_bucket(bucket)
        session = await metadata.create_session(session_record(bucket))
        sid = session.id
        # (a) stamped, no record: rebuildable; unstamped and unknown stamp: unlinked
        await put(objects, bucket, "run/rebuild.bin", rebuild_data, sid)
        await put(objects, bucket, "run/unlinked.bin", b"nobody's", None)
        await put(objects, bucket, "run/unknown-stamp.bin", b"whose?", "f" * 32)
        # (b) a record whose object was deleted behind its back
        await commit(
            metadata, bucket, "run/gone.bin", size=3, etag="e" * 32, sha256="0" * 64,
            session_id=sid,
        )  # fmt: skip
        # (c) a write that started two hours ago and never committed, holding its claim
        stale = WriteIntent("stale-" + secrets.token_hex(8), bucket, "run/stale.bin", sid,
                            "ada", stale_started)  # fmt: skip
        await metadata.begin_write(stale)
        assert await metadata.claim_key(bucket, "run/stale.bin", stale.id)
        # (d) a record that no longer describes its (overwritten, stamped) object
        await commit(
            metadata, bucket, "run/changed.bin", size=5, etag="d" * 32, sha256="1" * 64,
            session_id=sid,
        )  # fmt: skip
        await put(objects, bucket, "run/changed.bin", changed_data, sid)
        # consistent: object and a matching record
        etag = await put(objects, bucket, "run/ok.bin", ok_data, sid)
        await commit(
            metadata, bucket, "run/ok.bin", size=len(ok_data), etag=f'"{etag}"',
            sha256=hashlib.sha256(ok_data).hexdigest(), session_id=sid,
        )  # fmt: skip
        return {"sid": sid, "stale": stale.id}

    ids = stores.run(setup)
    sid = ids["sid"]

    # -- report only: everything found, nothing changed, exit 1
    code, findings, summary = stores.reconcile("--bucket", bucket)
    assert code == 1
    found = by_key(findings)
    assert {k: f.kind for k, f in found.items()} == {
        "run/rebuild.bin": "rebuildable",
        "run/unlinked.bin": "unlinked",
        "run/unknown-stamp.bin": "unlinked",
        "run/gone.bin": "missing_object",
        "run/stale.bin": "dead_intent",
        "run/changed.bin": "mismatch",
    }
    assert not any(f.repaired for f in findings)
    assert found["run/rebuild.bin"].session_id == sid
    assert found["run/stale.bin"].intent_id == ids["stale"]
    assert "size 5 in the record, 2048 stored" in found["run/changed.bin"].detail
    assert summary["found"] == {
        "rebuildable": 1, "unlinked": 2, "missing_object": 1, "dead_intent": 1, "mismatch": 1,
        "temp_file": 0, "interrupted_complete": 0, "expired_upload": 0, "orphan_claim": 0,
    }  # fmt: skip
    assert summary["objects_checked"] == 5
    assert summary["consistent"] is False
    assert stores.run(lambda m, o: m.get_object_record(bucket, "run/rebuild.bin")) is None

    # -- repair: all but the unlinked objects fixed (those need a human), still exit 1
    code, findings, summary = stores.reconcile("--bucket", bucket, "--repair")
    assert code == 1
    found = by_key(findings)
    assert {k for k, f in found.items() if not f.repaired} == {
        "run/unlinked.bin",
        "run/unknown-stamp.bin",
    }
    assert summary["remaining"] == 2
    assert found["run/rebuild.bin"].sha256 == hashlib.sha256(rebuild_data).hexdigest()

    async def check_repaired(metadata: MetadataStore, objects: ObjectStore) -> None:
        rebuilt = await metadata.get_object_record(bucket, "run/rebuild.bin")
        assert rebuilt is not None
        assert rebuilt.sha256 == hashlib.sha256(rebuild_data).hexdigest()
        assert rebuilt.size == len(rebuild_data)
        assert rebuilt.etag == hashlib.md5(rebuild_data).hexdigest()
        assert rebuilt.session_id == sid
        assert rebuilt.principal == RECONCILE_PRINCIPAL
        assert rebuilt.content_type == "application/x-run"
        # the rebuilt object is write-once protected again
        assert await metadata.get_claim(bucket, "run/rebuild.bin") is not None

        refreshed = await metadata.get_object_record(bucket, "run/changed.bin")
        assert refreshed is not None
        assert refreshed.size == len(changed_data)
        assert refreshed.sha256 == hashlib.sha256(changed_data).hexdigest()
        assert refreshed.principal == RECONCILE_PRINCIPAL
        history = await metadata.list_object_history(bucket, "run/changed.bin")
        assert [r.size for r in history] == [5, len(changed_data)]

        # the missing object's record is gone, its history kept, its key free again
        assert await metadata.get_object_record(bucket, "run/gone.bin") is None
        assert [r.sha256 for r in await metadata.list_object_history(bucket, "run/gone.bin")] == [
            "0" * 64
        ]
        assert await metadata.get_claim(bucket, "run/gone.bin") is None

        # the dead intent is rolled back and its claim released
        assert await metadata.get_intent(ids["stale"]) is None
        assert await metadata.get_claim(bucket, "run/stale.bin") is None

        # unlinked objects are only reported: no record invented for them
        assert await metadata.get_object_record(bucket, "run/unlinked.bin") is None
        # the operator (or the UI) deals with them; then the stores agree
        await objects.delete_object(bucket, "run/unlinked.bin")
        await objects.delete_object(bucket, "run/unknown-stamp.bin")

    stores.run(check_repaired)

    code, findings, summary = stores.reconcile("--bucket", bucket)
    assert (code, findings) == (0, [])
    assert summary["consistent"] is True
    assert summary["objects_checked"] == 3
    assert summary["records_checked"] == 3


def test_paging_and_fresh_intents(stores: Stores) -> None:
    """Small pages on both sides (objects and records), many sessions; a young intent is not
    stale, and a stamped object of a live claimed write is left to its writer."""
    bucket = f"rc-{secrets.token_hex(4)}"

    async def body(metadata: MetadataStore, objects: ObjectStore) -> None:
        await objects.create_bucket(bucket)
        sessions = [await metadata.create_session(session_record(bucket)) for _ in range(3)]
        expected: dict[str, str] = {}
        for i in range(7):
            data = pattern(100 + i, seed=10 + i)
            sid = sessions[i % 3].id
            await put(objects, bucket, f"run/{i:02d}", data, sid)
            expected[f"run/{i:02d}"] = hashlib.sha256(data).hexdigest()
        for i in range(5):
            await commit(
                metadata, bucket, f"run/gone-{i}", size=1, etag="a" * 32, sha256="2" * 64,
                session_id=sessions[i % 3].id,
            )  # fmt: skip
        # a write in progress right now: claimed, intent young, object already stored
        live = WriteIntent("live-" + secrets.token_hex(8), bucket, "run/live", sessions[0].id,
                           "ada", datetime.now(UTC))  # fmt: skip
        await metadata.begin_write(live)
        assert await metadata.claim_key(bucket, "run/live", live.id)
        await put(objects, bucket, "run/live", b"in flight", sessions[0].id)

        # five writes that died two hours ago: more than one page of stale intents
        old = datetime.now(UTC) - timedelta(hours=2)
        for i in range(5):
            await metadata.begin_write(
                WriteIntent(f"dead-{i}-{secrets.token_hex(4)}", bucket, f"run/dead-{i}",
                            sessions[0].id, "ada", old)
            )  # fmt: skip

        seen: list[Finding] = []
        summary = await Reconciler(
            objects, metadata, repair=True, bucket=bucket, page_size=2, on_finding=seen.append
        ).run()
        kinds = sorted((f.kind, f.key) for f in seen)
        assert kinds == sorted(
            [("rebuildable", k) for k in expected]
            + [("missing_object", f"run/gone-{i}") for i in range(5)]
            + [("dead_intent", f"run/dead-{i}") for i in range(5)]
        )
        assert all(f.repaired for f in seen)
        assert summary.in_flight == 1
        for key, sha in expected.items():
            record = await metadata.get_object_record(bucket, key)
            assert record is not None and record.sha256 == sha
        assert await metadata.get_object_record(bucket, "run/live") is None
        assert await metadata.get_intent(live.id) is not None

        again = await Reconciler(objects, metadata, bucket=bucket, page_size=2).run()
        assert again.consistent
        assert again.records_checked == 7

        # a bucket that no longer exists has no objects to walk, which is not an error
        gone = await Reconciler(objects, metadata, bucket=f"{bucket}-deleted").run()
        assert gone.consistent and gone.objects_checked == 0

    stores.run(body)


def test_scratch_record_without_object(stores: Stores) -> None:
    """Records written into a scratch area belong to no session; one whose object was deleted
    behind the gateway's back is found (with --bucket and without) and repaired all the same."""
    bucket = f"rc-{secrets.token_hex(4)}"
    kept, lost = pattern(1500, seed=20), pattern(700, seed=21)

    # Real writes through a running gateway under the default scratch policy (no sessions).
    with run_gateway(
        stores.data_dir, upstream=stores.versitygw, mongo_uri=stores.mongo_uri
    ) as gateway:
        s3 = s3_client(gateway)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="tmp/kept.bin", Body=kept)
        s3.put_object(Bucket=bucket, Key="tmp/lost.bin", Body=lost)

    async def delete_behind_its_back(metadata: MetadataStore, objects: ObjectStore) -> None:
        for key in ("tmp/kept.bin", "tmp/lost.bin"):
            record = await metadata.get_object_record(bucket, key)
            assert record is not None and record.session_id is None  # a scratch write
        await objects.delete_object(bucket, "tmp/lost.bin")

    stores.run(delete_behind_its_back)

    code, findings, summary = stores.reconcile("--bucket", bucket)
    assert code == 1
    assert [(f.kind, f.key, f.session_id, f.repaired) for f in findings] == [
        ("missing_object", "tmp/lost.bin", None, False)
    ]
    assert summary["records_checked"] == 2 and summary["objects_checked"] == 1
    # A whole-store run walks this bucket's records too (other tests' buckets on the shared
    # upstream may add findings of their own, so only ours is looked for).
    code, findings, _ = stores.reconcile()
    assert code == 1
    assert [(f.kind, f.key) for f in findings if f.bucket == bucket] == [
        ("missing_object", "tmp/lost.bin")
    ]

    code, findings, summary = stores.reconcile("--bucket", bucket, "--repair")
    assert [(f.kind, f.key, f.repaired) for f in findings] == [
        ("missing_object", "tmp/lost.bin", True)
    ]
    assert summary["remaining"] == 0

    async def check_repaired(metadata: MetadataStore, objects: ObjectStore) -> None:
        assert await metadata.get_object_record(bucket, "tmp/lost.bin") is None
        assert len(await metadata.list_object_history(bucket, "tmp/lost.bin")) == 1
        record = await metadata.get_object_record(bucket, "tmp/kept.bin")
        assert record is not None and record.sha256 == hashlib.sha256(kept).hexdigest()

    stores.run(check_repaired)
    code, findings, summary = stores.reconcile("--bucket", bucket)
    assert (code, findings) == (0, [])
    assert summary["consistent"] is True and summary["records_checked"] == 1


def test_records_of_a_bucket_deleted_behind_its_back(stores: Stores) -> None:
    """A scratch bucket (no session names it) deleted straight in the object store: a
    whole-store reconcile still walks its records and reports every one as missing."""
    bucket = f"rc-gone-{secrets.token_hex(4)}"
    with run_gateway(
        stores.data_dir, upstream=stores.versitygw, mongo_uri=stores.mongo_uri
    ) as gateway:
        s3 = s3_client(gateway)
        s3.create_bucket(Bucket=bucket)
        for name in ("a.bin", "b.bin"):
            s3.put_object(Bucket=bucket, Key=f"tmp/{name}", Body=pattern(300, seed=len(name)))

    async def delete_bucket_behind_its_back(metadata: MetadataStore, objects: ObjectStore) -> None:
        for name in ("a.bin", "b.bin"):
            await objects.delete_object(bucket, f"tmp/{name}")
        await objects.delete_bucket(bucket)
        assert bucket not in [b.name for b in await objects.list_buckets()]
        assert bucket in await metadata.list_record_buckets()

    stores.run(delete_bucket_behind_its_back)
    code, findings, _ = stores.reconcile()
    assert code == 1
    assert sorted((f.kind, f.key) for f in findings if f.bucket == bucket) == [
        ("missing_object", "tmp/a.bin"),
        ("missing_object", "tmp/b.bin"),
    ]


def test_text_output_and_errors(tmp_path: Path) -> None:
    """Without --json: a line per finding and a summary; a wrong data dir is a clear error."""
    data_dir = tmp_path / "data"
    bucket = "plain"

    async def setup() -> None:
        metadata = await open_metadata_store(data_dir / "minimo.sqlite3")
        objects = LocalObjectStore(data_dir / "objects")
        await objects.start()
        try:
            await objects.create_bucket(bucket)
            await put(objects, bucket, "loose.txt", b"loose", None)
        finally:
            await objects.close()
            await metadata.close()

    asyncio.run(setup())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMO_")}
    base = [sys.executable, "-m", "gateway.cli", "reconcile"]
    done = subprocess.run(
        [*base, "--data-dir", str(data_dir)], capture_output=True, text=True, cwd=REPO, env=env
    )
    assert done.returncode == 1, done.stderr
    assert "unlinked" in done.stdout and "s3://plain/loose.txt" in done.stdout
    assert "1 problem; run with --repair" in done.stdout

    done = subprocess.run(
        [*base, "--data-dir", str(tmp_path / "nowhere")],
        capture_output=True, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    assert done.returncode == 1
    assert "no metadata store at" in done.stderr
    assert not (tmp_path / "nowhere").exists()

    done = subprocess.run(
        [*base, "--data-dir", str(data_dir), "--stale-after", "soon"],
        capture_output=True, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    assert done.returncode == 2
    assert "bad duration" in done.stderr


def test_crash_leftovers_reported_and_recovered(stores: Stores) -> None:
    """What a killed gateway leaves (its intents at any age, temp files, an upload whose
    completion it ran), an expired upload and an orphaned claim: never "consistent" while they
    exist; --repair recovers them as a gateway would, and leaves a live gateway's write alone."""
    bucket = f"rc-crash-{secrets.token_hex(4)}"
    local = stores.versitygw is None
    now = datetime.now(UTC)
    dead_id, live_id = secrets.token_hex(8), secrets.token_hex(8)
    data = pattern(4096, seed=30)

    async def setup(metadata: MetadataStore, objects: ObjectStore) -> dict[str, str]:
        await objects.create_bucket(bucket)
        sid = (await metadata.create_session(session_record(bucket))).id
        # a gateway on another host that stopped heartbeating a minute ago, and a live one
        await metadata.heartbeat_instance(
            InstanceRecord(dead_id, "elsewhere", "1:1", now - timedelta(hours=1),
                           now - timedelta(minutes=1), 10.0)
        )  # fmt: skip
        await metadata.heartbeat_instance(
            InstanceRecord(live_id, "elsewhere", "2:2", now, now, 10.0)
        )
        # the dead gateway's write, seconds old: intent, claim, stamped object stored
        dead = WriteIntent(f"{dead_id}{1:016x}", bucket, "run/dead.bin", sid, "ada", now)
        assert await metadata.start_write(dead, claim=True)
        await put(objects, bucket, "run/dead.bin", data, sid)
        # the live gateway's write in the same state: its own business
        live = WriteIntent(f"{live_id}{1:016x}", bucket, "run/live.bin", sid, "ada", now)
        assert await metadata.start_write(live, claim=True)
        await put(objects, bucket, "run/live.bin", data, sid)
        # an upload begun eight days ago and never finished
        upload_id = await objects.create_multipart_upload(bucket, "run/old.bin", WriteMeta())
        await metadata.create_multipart(
            MultipartRecord(upload_id, bucket, "run/old.bin", sid, "ada", now - timedelta(days=8))
        )
        # a claim whose intent and record are both gone
        assert await metadata.claim_key(bucket, "run/orphan.bin", "gone-" + secrets.token_hex(8))
        ids = {"dead": dead.id, "live": live.id, "old": upload_id}
        if local:
            assert isinstance(objects, LocalObjectStore)
            tmp = objects.root / ".minimo" / "tmp"
            (tmp / f"obj-{dead_id}-7").write_bytes(b"half a write")
            (tmp / f"obj-{live_id}-7").write_bytes(b"a write in progress")
            # the part layout of a multipart object a racing overwrite replaced: no object
            # names it any more
            layouts = objects.root / ".minimo" / "layouts"
            layouts.mkdir(exist_ok=True)
            (layouts / f"layout-{dead_id}-9").write_text(
                json.dumps({"bucket": bucket, "key": "run/replaced.bin", "psz": [[5, 2]]})
            )
            # an upload whose completion the dead gateway was running (moved out of the list)
            mpu = await objects.create_multipart_upload(bucket, "run/mpu.bin", WriteMeta())
            await objects.upload_part(bucket, "run/mpu.bin", mpu, 1, Bytes(b"part one"))
            os.rename(
                objects.root / ".minimo" / "multipart" / bucket / mpu,
                tmp / f"complete-{dead_id}-8",
            )
            ids["mpu"] = mpu
        return ids

    ids = stores.run(setup)
    args = () if local else ("--bucket", bucket)  # the shared upstream holds other tests' data

    code, findings, summary = stores.reconcile(*args)
    assert code == 1 and summary["consistent"] is False
    ours = sorted((f.kind, f.key) for f in findings if f.bucket in (bucket, ""))
    expected = [
        ("dead_intent", "run/dead.bin"),
        ("expired_upload", "run/old.bin"),
        ("orphan_claim", "run/orphan.bin"),
    ]
    if local:
        expected += [
            ("interrupted_complete", f".minimo/tmp/complete-{dead_id}-8"),
            ("temp_file", f".minimo/tmp/obj-{dead_id}-7"),
            ("temp_file", f".minimo/layouts/layout-{dead_id}-9"),
        ]
    assert ours == sorted(expected)
    assert summary["in_flight"] == 1  # the live gateway's object
    dead_finding = next(f for f in findings if f.kind == "dead_intent")
    assert dead_finding.intent_id == ids["dead"] and dead_id in dead_finding.detail

    code, findings, summary = stores.reconcile(*args, "--repair")
    assert sorted((f.kind, f.key) for f in findings if f.bucket in (bucket, "")) == sorted(expected)
    assert all(f.repaired for f in findings if f.bucket in (bucket, ""))

    async def check(metadata: MetadataStore, objects: ObjectStore) -> None:
        # the dead write is rolled back: no object, no intent, the key writable again
        with pytest.raises(S3Error):
            await objects.head_object(bucket, "run/dead.bin")
        assert await metadata.get_intent(ids["dead"]) is None
        assert await metadata.get_claim(bucket, "run/dead.bin") is None
        assert await metadata.get_claim(bucket, "run/orphan.bin") is None
        # the live one is untouched
        assert await metadata.get_intent(ids["live"]) is not None
        assert await metadata.get_claim(bucket, "run/live.bin") == ids["live"]
        await objects.head_object(bucket, "run/live.bin")
        # the expired upload is gone from both stores
        assert await metadata.get_multipart(ids["old"]) is None
        with pytest.raises(S3Error):
            await objects.list_parts(bucket, "run/old.bin", ids["old"])
        if local:
            assert isinstance(objects, LocalObjectStore)
            tmp = objects.root / ".minimo" / "tmp"
            assert sorted(os.listdir(tmp)) == [f"obj-{live_id}-7"]
            assert os.listdir(objects.root / ".minimo" / "layouts") == []
            # the interrupted upload is back: listed, and it can be completed
            listed = await objects.list_multipart_uploads(bucket)
            assert [u.upload_id for u in listed.uploads] == [ids["mpu"]]
            parts = await objects.list_parts(bucket, "run/mpu.bin", ids["mpu"])
            assert [p.number for p in parts.parts] == [1]
        # the live write finishes: then the stores agree
        await metadata.roll_back_write(
            WriteIntent(ids["live"], bucket, "run/live.bin", None, "ada", now)
        )
        await objects.delete_object(bucket, "run/live.bin")
        if local:
            await objects.abort_multipart_upload(bucket, "run/mpu.bin", ids["mpu"])
            os.unlink(objects.root / ".minimo" / "tmp" / f"obj-{live_id}-7")

    stores.run(check)
    code, findings, summary = stores.reconcile(*args)
    assert [f for f in findings if f.bucket in (bucket, "")] == []
    if local:
        assert (code, summary["consistent"]) == (0, True)
