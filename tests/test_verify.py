"""``minimo verify``: damage done to stored bytes behind minimo's back (a flipped byte, a
truncation, a deletion, an overwrite, an object nobody recorded) is found and reported by key,
with a non-zero exit; the result is kept on each record, so a rerun with --older-than skips it.

Runs on ``sqlite`` + ``local`` and ``mongo`` (FerretDB) + ``s3`` (versitygw), the stores opened
as reconcile's tests open them; the command runs as a subprocess, as an operator runs it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gateway.backends.base import ObjectStore
from policy.store import MetadataStore
from tests import test_reconcile
from tests.contract.helpers import pattern
from tests.servers import REPO
from tests.test_reconcile import Stores, commit, put, session_record

#: versitygw is shared by the whole test session: each test its own bucket
BUCKET = "fixity"
OTHER_BUCKET = "fixity-text"

stores = test_reconcile.stores


def run_verify(stores: Stores, *args: str) -> tuple[int, dict[str, dict[str, Any]], dict]:
    """``minimo verify --json ARGS``: (exit code, outcomes by key, summary)."""
    command = [sys.executable, "-m", "gateway.cli", "verify", "--json", *args]
    command += ["--data-dir", str(stores.data_dir)]
    if stores.mongo_uri:
        command += ["--mongo-uri", stores.mongo_uri]
    if stores.versitygw is not None:
        command += [
            "--s3-endpoint", stores.versitygw.endpoint,
            "--s3-access-key", stores.versitygw.access_key,
            "--s3-secret-key", stores.versitygw.secret_key,
        ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMO_")}
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    assert done.stderr == "", done.stderr  # --json: no progress bar
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    outcomes = {line["object"]["key"]: line["object"] for line in lines[:-1]}
    return done.returncode, outcomes, lines[-1]["summary"]


def object_path(stores: Stores, key: str, bucket: str = BUCKET) -> Path:
    """Where the bytes of bucket/key are on disk (both backends keep plain files)."""
    if stores.versitygw is not None:
        return stores.versitygw.root / bucket / key
    return stores.data_dir / "objects" / bucket / key


async def store_and_record(
    metadata: MetadataStore,
    objects: ObjectStore,
    key: str,
    data: bytes,
    sid: str | None,
    bucket: str = BUCKET,
) -> None:
    etag = await put(objects, bucket, key, data, sid)
    await commit(
        metadata,
        bucket,
        key,
        size=len(data),
        etag=etag,
        sha256=hashlib.sha256(data).hexdigest(),
        session_id=sid,
    )


def test_damage_found_by_key_and_kept_on_records(stores: Stores) -> None:
    session = session_record(BUCKET)
    data = {name: pattern(300_000 + i) for i, name in enumerate(
        ["good", "flipped", "truncated", "missing", "replaced", "other/good"]
    )}  # fmt: skip

    async def setup(metadata: MetadataStore, objects: ObjectStore) -> None:
        await objects.create_bucket(BUCKET)
        await metadata.create_session(session)
        for name, body in data.items():
            await store_and_record(metadata, objects, f"run/{name}", body, session.id)
        await put(objects, BUCKET, "run/unrecorded", b"nobody wrote this down", session.id)
        # behind minimo's back: an overwrite through the object store itself, and a delete
        await put(objects, BUCKET, "run/replaced", b"another body", None)
        await objects.delete_object(BUCKET, "run/missing")

    stores.run(setup)
    with object_path(stores, "run/flipped").open("r+b") as f:
        f.seek(123_456)
        byte = f.read(1)
        f.seek(123_456)
        f.write(bytes([byte[0] ^ 0x01]))
    os.truncate(object_path(stores, "run/truncated"), 1000)

    # every bucket on local (a fresh store); versitygw is shared with other tests' buckets
    everywhere = () if stores.versitygw is None else ("--bucket", BUCKET)
    code, outcomes, summary = run_verify(stores, *everywhere)
    assert code == 1
    results = {key: o["result"] for key, o in outcomes.items()}
    assert results == {
        "run/good": "ok",
        "run/other/good": "ok",
        "run/flipped": "changed",
        "run/truncated": "truncated",
        "run/missing": "missing",
        "run/replaced": "replaced",
        "run/unrecorded": "unrecorded",
    }
    good = data["good"]
    assert outcomes["run/good"]["sha256"] == hashlib.sha256(good).hexdigest()
    assert outcomes["run/good"]["size"] == len(good)
    assert outcomes["run/good"]["session_id"] == session.id
    assert outcomes["run/truncated"]["size"] == 1000
    assert summary["problems"] == 5 and summary["ok"] == 2
    assert summary["bytes_read"] >= 2 * len(good) + len(data["flipped"]) + 1000

    async def kept(metadata: MetadataStore, objects: ObjectStore) -> dict[str, Any]:
        found = {}
        for name in data:
            record = await metadata.get_object_record(BUCKET, f"run/{name}")
            assert record is not None and record.verified is not None
            found[f"run/{name}"] = record.verify_result
        return found

    assert stores.run(kept) == {k: v for k, v in results.items() if k != "run/unrecorded"}

    # scoped: a prefix, and one session (its objects only)
    code, outcomes, _ = run_verify(stores, "--bucket", BUCKET, "--prefix", "run/other/")
    assert code == 0 and {k: o["result"] for k, o in outcomes.items()} == {"run/other/good": "ok"}
    code, outcomes, _ = run_verify(stores, "--session", session.id, "--prefix", "run/g")
    assert code == 0 and list(outcomes) == ["run/good"]

    # resumable: what was just verified is skipped, only the unrecorded object is left
    code, outcomes, summary = run_verify(stores, "--older-than", "1h", *everywhere)
    assert code == 1
    assert list(outcomes) == ["run/unrecorded"]
    assert summary["skipped"] == len(data)
    assert summary["bytes_read"] == 0


def test_text_output_exit_codes_and_bad_options(stores: Stores) -> None:
    async def setup(metadata: MetadataStore, objects: ObjectStore) -> None:
        await objects.create_bucket(OTHER_BUCKET)
        await store_and_record(metadata, objects, "a", b"alpha", None, OTHER_BUCKET)

    stores.run(setup)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMO_")}
    base = [sys.executable, "-m", "gateway.cli", "verify", "--data-dir", str(stores.data_dir)]
    if stores.mongo_uri:
        base += ["--mongo-uri", stores.mongo_uri]
    if stores.versitygw is not None:
        gw = stores.versitygw
        base += ["--s3-endpoint", gw.endpoint]
        base += ["--s3-access-key", gw.access_key, "--s3-secret-key", gw.secret_key]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120
        )

    done = run("--bucket", OTHER_BUCKET, "--all", "--max-rate", "10M")
    assert done.returncode == 0, done.stderr
    assert "ok           s3://fixity-text/a" in done.stdout
    assert "verified 1 objects" in done.stdout and "all ok" in done.stdout

    os.truncate(object_path(stores, "a", OTHER_BUCKET), 2)
    done = run("--bucket", OTHER_BUCKET)
    assert done.returncode == 1
    assert "truncated    s3://fixity-text/a: 2 bytes stored, 5 recorded" in done.stdout
    assert "1 problem" in done.stdout

    assert run("--max-rate", "fast").returncode == 2
    assert run("--older-than", "soon").returncode == 2
    done = run("--session", "nosuchsession")
    assert done.returncode == 1 and "no session 'nosuchsession'" in done.stderr
    assert "exit status" in run("--help").stdout.lower()


def test_rate_limit_and_progress(tmp_path: Path) -> None:
    """--max-rate holds the read rate down; every byte read is reported for the progress bar."""
    from gateway.backends.local import LocalObjectStore
    from gateway.usecases.verify import Scope, Verifier
    from policy.store import open_metadata_store

    async def main() -> tuple[float, int, int]:
        metadata = await open_metadata_store(tmp_path / "minimo.sqlite3")
        objects = LocalObjectStore(tmp_path / "objects")
        await objects.start()
        try:
            await objects.create_bucket(BUCKET)
            for i in range(4):
                await store_and_record(metadata, objects, f"k{i}", pattern(256 * 1024), None)
            seen: list[int] = []
            verifier = Verifier(
                objects,
                metadata,
                Scope(bucket=BUCKET),
                max_rate=2 * 1024 * 1024,
                on_bytes=seen.append,
            )
            planned = await verifier.planned_bytes()
            started = time.monotonic()
            summary = await verifier.run()
            assert summary.all_ok and summary.counts["ok"] == 4
            return time.monotonic() - started, sum(seen), planned
        finally:
            await objects.close()
            await metadata.close()

    seconds, reported, planned = asyncio.run(main())
    assert reported == planned == 4 * 256 * 1024
    assert seconds >= 0.45  # 1 MiB at 2 MiB/s


def test_an_object_being_written_is_not_unrecorded(tmp_path: Path) -> None:
    """A write stores its object before it commits the record: while its claim holds the key,
    the object is counted as in flight, not reported; once the claim is gone it is unrecorded."""
    from gateway.backends.local import LocalObjectStore
    from gateway.usecases.verify import Scope, Verifier
    from policy.store import open_metadata_store

    async def main() -> None:
        metadata = await open_metadata_store(tmp_path / "minimo.sqlite3")
        objects = LocalObjectStore(tmp_path / "objects")
        await objects.start()
        try:
            await objects.create_bucket(BUCKET)
            await put(objects, BUCKET, "writing", b"half way", None)
            assert await metadata.claim_key(BUCKET, "writing", "intent-1")
            summary = await Verifier(objects, metadata, Scope(bucket=BUCKET)).run()
            assert summary.all_ok and summary.in_flight == 1
            assert await metadata.release_claim(BUCKET, "writing", "intent-1")
            summary = await Verifier(objects, metadata, Scope(bucket=BUCKET)).run()
            assert summary.counts["unrecorded"] == 1 and summary.in_flight == 0
        finally:
            await objects.close()
            await metadata.close()

    asyncio.run(main())
