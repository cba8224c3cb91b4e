"""What the fault tests share: restartable servers, a write load that records every answer,
and the integrity checks run after each fault (issue 8, docs/failures.md).

The servers are the real ones (FerretDB, versitygw, ``minimo serve``) as subprocesses on
127.0.0.1; a server that cannot start fails the test (never a skip).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from policy.store import open_metadata_store
from tests.servers import (
    REPO,
    VERSITYGW_ACCESS,
    VERSITYGW_SECRET,
    Gateway,
    Versitygw,
    ferretdb_command,
    free_port,
    go_binary,
    wait_for_port,
)

#: a request that takes longer than this has hung (a guard, not a performance bound)
ANSWER_WITHIN = 30.0
#: how long the gateway may take to finish rollbacks a store outage deferred (a guard)
ROLLBACK_WITHIN = 60.0


# -- servers that can be stopped and started again on the same port and data --------------------
class Restartable:
    """A server process started, stopped (with a chosen signal) and started again with the
    same command line: the same port and the same data directory."""

    def __init__(self, name: str, argv: list[str], port: int, log: Path, cwd: Path) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.log_path = log
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd
            )
        try:
            wait_for_port(self.port, self.proc, self.name)
        except RuntimeError as exc:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{exc}\n{tail}") from None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ferretdb_process(root: Path) -> Restartable:
    """FerretDB on SQLite files under ``root`` (not started yet)."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = ferretdb_command(root, data, port)
    return Restartable("ferretdb", argv, port, root / "ferretdb.log", root)


def versitygw_process(root: Path) -> tuple[Restartable, Versitygw]:
    """versitygw's posix backend on ``root`` (not started yet), and how to reach it."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        go_binary("versitygw"),
        "--access", VERSITYGW_ACCESS,
        "--secret", VERSITYGW_SECRET,
        "--port", f"127.0.0.1:{port}",
        "posix", str(root),
    ]  # fmt: skip
    server = Restartable("versitygw", argv, port, root.parent / "versitygw.log", root.parent)
    return server, Versitygw(f"http://127.0.0.1:{port}", VERSITYGW_ACCESS, VERSITYGW_SECRET, root)


# -- talking to the gateway -----------------------------------------------------------------------
def client(gw: Gateway, access_key: str | None = None, secret_key: str | None = None):
    """boto3 without retries (every answer is seen as it is) and with a hang guard."""
    return boto3.client(
        "s3",
        endpoint_url=gw.endpoint,
        aws_access_key_id=access_key or gw.access_key,
        aws_secret_access_key=secret_key or gw.secret_key,
        region_name="us-east-1",
        config=BotoConfig(
            retries={"total_max_attempts": 1},
            connect_timeout=5,
            read_timeout=ANSWER_WITHIN,
        ),
    )


def health(gw: Gateway) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{gw.endpoint}/_minimo/health", timeout=ANSWER_WITHIN) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_for_health(gw: Gateway, status: int, within: float = 60.0) -> dict[str, Any]:
    """Poll health until it answers ``status``; fail with the last answer otherwise."""
    deadline = time.monotonic() + within
    last: tuple[int, dict[str, Any]] | None = None
    while time.monotonic() < deadline:
        last = health(gw)
        if last[0] == status:
            return last[1]
        time.sleep(0.2)
    raise AssertionError(f"health did not answer {status} within {within} s; last: {last}")


@dataclass
class Answer:
    """One request of the load, as the client saw it."""

    op: str
    key: str
    sha256: str
    status: int | None
    code: str | None = None
    message: str | None = None
    retry_after: str | None = None
    seconds: float = 0.0
    #: a failure without an HTTP answer (connection refused, client timeout)
    error: str | None = None


def put(s3, bucket: str, key: str, body: bytes) -> Answer:
    digest = hashlib.sha256(body).hexdigest()
    started = time.monotonic()
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    except ClientError as err:
        meta = err.response.get("ResponseMetadata", {})
        return Answer(
            "put",
            key,
            digest,
            meta.get("HTTPStatusCode"),
            err.response.get("Error", {}).get("Code"),
            err.response.get("Error", {}).get("Message"),
            meta.get("HTTPHeaders", {}).get("retry-after"),
            time.monotonic() - started,
        )
    except Exception as exc:  # no HTTP answer at all: recorded, and fails the checks
        return Answer("put", key, digest, None, seconds=time.monotonic() - started, error=repr(exc))
    return Answer("put", key, digest, 200, seconds=time.monotonic() - started)


@dataclass
class WriteLoad:
    """``writers`` threads PUTting fresh keys (1 B - 256 KiB, a few 2 MiB) until stopped."""

    gw: Gateway
    bucket: str
    writers: int = 4
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> WriteLoad:
        for n in range(self.writers):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, n: int) -> None:
        s3 = client(self.gw)
        i = 0
        while not self._stop.is_set():
            i += 1
            size = 2 << 20 if i % 25 == 0 else secrets.randbelow(256 << 10) + 1
            body = secrets.token_bytes(size)
            answer = put(s3, self.bucket, f"w{n}/{i:06d}-{secrets.token_hex(3)}", body)
            with self._lock:
                self.answers.append(answer)
            if answer.status != 200:
                time.sleep(0.05)  # a client backing off a little, as SDKs do

    def ok_count(self) -> int:
        with self._lock:
            return sum(1 for a in self.answers if a.status == 200)

    def wait_for_ok(self, more_than: int, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.ok_count() > more_than:
                return
            time.sleep(0.05)
        raise AssertionError(
            f"fewer than {more_than + 1} writes succeeded within {within} s; "
            f"last answers: {self.answers[-5:]}"
        )

    def stop(self) -> list[Answer]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2 * ANSWER_WITHIN)
            assert not thread.is_alive(), "a writer hung"
        return list(self.answers)


def check_outage_answers(answers: list[Answer], store: str, secrets_not_shown: list[str]) -> None:
    """Every answer is a success or a 503 that names ``store`` (no address, no driver text),
    carries Retry-After, and came within the hang guard. (A 503 either says the store is
    unavailable, or, for a write whose commit failed after its bytes landed, that the metadata
    store could not record it: docs/write-protocol.md.)"""
    waits = sorted(a.seconds for a in answers if a.status == 503)
    if waits:  # for the log of a run (docs/failures.md quotes these), not asserted
        print(f"{len(waits)} x 503: median {waits[len(waits) // 2]:.2f} s, max {waits[-1]:.2f} s")
    odd = [a for a in answers if a.status not in (200, 503)]
    assert not odd, f"answers other than 200/503: {odd[:5]}"
    slow = [a for a in answers if a.seconds > ANSWER_WITHIN]
    assert not slow, f"answers slower than {ANSWER_WITHIN} s: {slow[:5]}"
    for a in answers:
        if a.status != 503:
            continue
        assert a.code == "ServiceUnavailable", a
        assert a.retry_after is not None and a.retry_after.isdigit(), a
        assert a.message is not None and a.message.startswith(f"The {store} store "), a
        for hidden in ["127.0.0.1", "mongodb://", "Error", "Timeout", *secrets_not_shown]:
            assert hidden not in a.message, (hidden, a)


# -- integrity after a fault ---------------------------------------------------------------------
def records_of(gw: Gateway, bucket: str, keys: list[str]) -> dict[str, Any]:
    """The current object record of each key, read from the gateway's metadata store."""

    async def main() -> dict[str, Any]:
        store = await open_metadata_store(gw.data_dir / "minimo.sqlite3", mongo_uri=gw.mongo_uri)
        try:
            found = {}
            for key in keys:
                found[key] = await store.get_object_record(bucket, key)
            return found
        finally:
            await store.close()

    return asyncio.run(main())


def listed_keys(s3, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def reconcile(
    gw: Gateway, bucket: str, upstream: Versitygw | None
) -> tuple[list[dict[str, Any]], dict]:
    """``minimo reconcile --json --bucket BUCKET`` against the gateway's stores: (findings,
    summary). One bucket: a shared upstream holds other tests' buckets, recorded elsewhere."""
    command = [sys.executable, "-m", "gateway.cli", "reconcile", "--json", "--bucket", bucket]
    command += ["--data-dir", str(gw.data_dir)]
    if gw.mongo_uri:
        command += ["--mongo-uri", gw.mongo_uri]
    if upstream is not None:
        command += [
            "--s3-endpoint", upstream.endpoint,
            "--s3-access-key", upstream.access_key,
            "--s3-secret-key", upstream.secret_key,
        ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMO_")}
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return [line["finding"] for line in lines[:-1]], lines[-1]["summary"]


def check_integrity(
    gw: Gateway, bucket: str, answers: list[Answer], upstream: Versitygw | None = None
) -> None:
    """Nothing acknowledged lost or different, everything acknowledged recorded, and nothing
    visible without a record (docs/design.md, decision 4)."""
    s3 = client(gw)
    acknowledged = {a.key: a.sha256 for a in answers if a.status == 200}
    assert acknowledged, "no write was acknowledged"
    for key, digest in acknowledged.items():
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest, f"{key}: other bytes than acknowledged"
    visible = listed_keys(s3, bucket)
    records = records_of(gw, bucket, sorted(set(visible) | set(acknowledged)))
    for key, digest in acknowledged.items():
        record = records[key]
        assert record is not None, f"acknowledged {key} has no record"
        assert record.sha256 == digest, f"{key}: its record names other bytes"
    # A write rolled back while the metadata store was down is finished by the gateway's
    # janitor once the store is back (docs/write-protocol.md): give it that time.
    deadline = time.monotonic() + ROLLBACK_WITHIN
    while True:
        unrecorded = [key for key in visible if records[key] is None]
        if not unrecorded or time.monotonic() > deadline:
            break
        time.sleep(1)
        visible = listed_keys(s3, bucket)
        records = records_of(gw, bucket, visible)
    assert not unrecorded, f"visible without a record: {unrecorded[:10]} ({len(unrecorded)})"
    findings, _summary = reconcile(gw, bucket, upstream)
    wrong = [f for f in findings if f["kind"] in ("rebuildable", "unlinked", "mismatch")]
    missing = [f for f in findings if f["kind"] == "missing_object"]
    assert not wrong, f"reconcile: objects without a matching record: {wrong[:5]}"
    assert not missing, f"reconcile: records without an object: {missing[:5]}"
