"""A client load (boto3 threads: single PUTs of 1 KiB to 3 MiB, multipart uploads, copies)
while the gateway is SIGKILLed several times and restarted on the same data dir and port.

Afterwards, once recovery has run: every acknowledged object present, byte-identical and
recorded; no visible object without a record; every interrupted key either committed whole
(only the answer was lost) or free and writable again; uploads left open can be listed and
aborted; no temp or part files left; ``minimo reconcile --json`` consistent.

Where the kills land is up to chance (that is the point of a load); test_kill_during_writes
aims one at each kind of write. Runs on sqlite with both object backends and on FerretDB with
versitygw (the production bundle's pair).
"""

from __future__ import annotations

import itertools
import random
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.faults.kill_support import (
    KillableGateway,
    assert_recovered,
    error_code,
    killable_gateway,
    sha256,
)
from tests.servers import mongo_uri

KIB, MIB = 1024, 1024 * 1024
WORKERS = 4
KILLS = 3
#: random bytes every payload is cut from (a unique head makes each payload's SHA-256 unique)
POOL = secrets.token_bytes(6 * MIB)


@pytest.fixture(params=["sqlite-local", "sqlite-s3", "mongo-s3"])
def gw(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KillableGateway]:
    metadata, objects = request.param.split("-")
    upstream = request.getfixturevalue("versitygw") if objects == "s3" else None
    uri = None
    if metadata == "mongo":
        uri = mongo_uri(request.getfixturevalue("ferretdb"), f"load_{secrets.token_hex(6)}")
    with killable_gateway(tmp_path / "data", upstream=upstream, mongo_uri=uri) as gateway:
        yield gateway


def payload(size: int) -> bytes:
    start = random.randrange(0, len(POOL) - size + 1)
    return secrets.token_bytes(16) + POOL[start : start + size - 16]


@dataclass
class Ledger:
    """What the clients were told, shared by the worker threads."""

    acked: dict[str, str] = field(default_factory=dict)
    interrupted: dict[str, str | None] = field(default_factory=dict)
    #: a refusal or error other than a lost connection (must not happen)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ops: itertools.count = field(default_factory=itertools.count)

    def ok(self, key: str, digest: str) -> None:
        with self.lock:
            self.acked[key] = digest

    def lost(self, key: str, digest: str | None, exc: BaseException) -> None:
        code = error_code(exc)
        with self.lock:
            self.interrupted[key] = digest
            # a dead gateway answers nothing; a restarting one may answer 503 (store busy); a
            # Complete whose upload the crash took away answers NoSuchUpload
            if code not in (None, "503", "ServiceUnavailable", "NoSuchUpload", "SlowDown"):
                self.unexpected.append(f"{key}: {code}: {exc}")

    def a_source(self) -> tuple[str, str] | None:
        with self.lock:
            if not self.acked:
                return None
            key = random.choice(list(self.acked))
            return key, self.acked[key]


def worker(gw: KillableGateway, bucket: str, n: int, ledger: Ledger, stop: threading.Event):
    s3 = gw.client()
    for i in itertools.count():
        if stop.is_set():
            return
        next(ledger.ops)
        kind = ("put-small", "put-medium", "multipart", "put-large", "copy")[i % 5]
        key = f"w{n}/{i:05d}-{kind}"
        digest: str | None = None
        try:
            if kind.startswith("put"):
                size = {"put-small": KIB, "put-medium": 256 * KIB, "put-large": 3 * MIB}[kind]
                data = payload(size)
                digest = sha256(data)
                s3.put_object(Bucket=bucket, Key=key, Body=data)
            elif kind == "multipart":
                first, last = payload(5 * MIB), payload(MIB)
                digest = sha256(first + last)
                upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
                parts = []
                for number, data in enumerate((first, last), 1):
                    etag = s3.upload_part(
                        Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=data
                    )["ETag"]
                    parts.append({"PartNumber": number, "ETag": etag})
                s3.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
                )
            else:
                source = ledger.a_source()
                if source is None:
                    continue
                digest = source[1]
                s3.copy_object(Bucket=bucket, Key=key, CopySource=f"{bucket}/{source[0]}")
        except Exception as exc:
            ledger.lost(key, digest, exc)
            stop.wait(0.2)  # the gateway is down or restarting: do not spin
            continue
        assert digest is not None
        ledger.ok(key, digest)


def wait_for_progress(
    ledger: Ledger, threads: list[threading.Thread], goal: int, *, acked_only: bool
) -> None:
    """Until the clients have finished ``goal`` operations (acknowledged only, or all)."""

    def done() -> int:
        return len(ledger.acked) + (0 if acked_only else len(ledger.interrupted))

    deadline = time.monotonic() + 300
    while done() < goal:
        assert all(t.is_alive() for t in threads), "a client thread died"
        assert time.monotonic() < deadline, f"the clients made no progress: {ledger.unexpected}"
        time.sleep(0.05)


def test_kill_under_load(gw: KillableGateway) -> None:
    bucket = f"load-{secrets.token_hex(4)}"
    gw.client().create_bucket(Bucket=bucket)
    ledger = Ledger()
    stop = threading.Event()
    threads = [
        threading.Thread(target=worker, args=(gw, bucket, n, ledger, stop), daemon=True)
        for n in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    rng = random.Random()
    try:
        for _ in range(KILLS):
            # let the load run a while (the clients' progress, not a clock, says how long)
            start = len(ledger.acked) + len(ledger.interrupted)
            wait_for_progress(ledger, threads, start + rng.randrange(4, 12), acked_only=False)
            gw.restart()
        # one more stretch of load on the last gateway, then stop
        wait_for_progress(ledger, threads, len(ledger.acked) + 5, acked_only=True)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert ledger.unexpected == []
    assert ledger.acked, "no write was acknowledged"
    assert ledger.interrupted, "no kill interrupted a write"
    assert_recovered(gw, bucket, ledger.acked, ledger.interrupted)
    summary: dict[str, Any] = {"acked": len(ledger.acked), "interrupted": len(ledger.interrupted)}
    print(f"{gw.backend}: {summary}")
