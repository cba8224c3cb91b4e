"""What the SIGKILL tests (test_kill_*.py) share: a gateway that can be killed and restarted on
the same data dir and port, a view of its stores from the test process, and the checks that
every crash must pass once recovery has run.

The gateways here run a write-once scratch policy (no sessions needed, overwrites refused, so
every write takes a write-once claim: exactly what a crash used to leave blocking a key) and
heartbeat every second with a recovery run every two seconds, so tests wait seconds, not
minutes (the defaults are 10 s and 60 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from gateway.protocol.sigv4 import UNSIGNED_PAYLOAD, sign_request
from policy.store import MetadataStore, open_metadata_store
from policy.store.base import ObjectRecord, WriteIntent
from tests.servers import (
    REPO,
    Versitygw,
    _wait_healthy,
    free_port,
    read_initial_admin,
    wait_for_port,
)

T = TypeVar("T")

#: every write claims its key (overwrite = deny) and needs no session
WRITE_ONCE_SCRATCH = """\
[[rule]]
bucket = "*"
prefix = ""
require_session = false
overwrite = "deny"
delete = "admin"
"""

#: how long a test waits for recovery to have done its work (it runs at start and every 2 s;
#: a generous bound for a loaded 2-core machine, never a timing assertion)
RECOVERY_WAIT = 90.0


class KillableGateway:
    """``minimo serve`` as a subprocess that the test SIGKILLs and restarts (same data dir,
    same port, same stores)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        upstream: Versitygw | None = None,
        mongo_uri: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.upstream = upstream
        self.mongo_uri = mongo_uri
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.access_key = ""
        self.secret_key = ""

    @property
    def backend(self) -> str:
        return "s3" if self.upstream is not None else "local"

    def _args(self) -> list[str]:
        policy = self.data_dir / "policy.toml"
        policy.write_text(WRITE_ONCE_SCRATCH)
        args = [
            sys.executable, "-m", "gateway.cli", "serve",
            "--data-dir", str(self.data_dir),
            "--listen", f"127.0.0.1:{self.port}",
            "--workers", "1",  # SIGKILL kills the gateway itself, not a supervisor
            "--policy", str(policy),
            "--heartbeat-interval", "1s",
            "--recovery-interval", "2s",
        ]  # fmt: skip
        if self.upstream is not None:
            args += [
                "--s3-endpoint", self.upstream.endpoint,
                "--s3-access-key", self.upstream.access_key,
                "--s3-secret-key", self.upstream.secret_key,
            ]  # fmt: skip
        if self.mongo_uri:
            args += ["--mongo-uri", self.mongo_uri]
        return args

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        log = open(self.data_dir / f"gateway-{self.starts:02d}.log", "wb")  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMO_")}
        self.proc = subprocess.Popen(
            self._args(), stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env
        )
        log.close()  # the child keeps its own descriptor
        wait_for_port(self.port, self.proc, "minimo serve")
        _wait_healthy(self.endpoint, self.data_dir, self.proc)
        creds = read_initial_admin(self.data_dir)
        self.access_key, self.secret_key = creds["access_key"], creds["secret_key"]

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly as in a crash (then reap the process)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def client(self, **config: Any) -> Any:
        """boto3 that never retries (a retry would hide which attempt a kill interrupted)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=BotoConfig(
                s3={"addressing_style": "path"},
                retries={"total_max_attempts": 1},
                connect_timeout=5,
                read_timeout=120,
                **config,
            ),
        )

    # -- the stores, from the test process ---------------------------------------------------
    def store(self, fn: Callable[[MetadataStore], Any]) -> Any:
        """Run ``await fn(store)`` on a store opened for the call (as another process would)."""

        async def main() -> Any:
            store = await open_metadata_store(
                self.data_dir / "minimo.sqlite3", mongo_uri=self.mongo_uri
            )
            try:
                return await fn(store)
            finally:
                await store.close()

        return asyncio.run(main())

    def intents(self) -> list[WriteIntent]:
        async def all_intents(store: MetadataStore) -> list[WriteIntent]:
            found: list[WriteIntent] = []
            after = ""
            while page := await store.list_intents(start_after=after):
                found += page
                after = page[-1].id
            return found

        return self.store(all_intents)

    def record(self, bucket: str, key: str) -> ObjectRecord | None:
        return self.store(lambda s: s.get_object_record(bucket, key))

    def tmp_entries(self) -> list[str]:
        """What is in the local backend's temp directory."""
        tmp = self.data_dir / "objects" / ".minimo" / "tmp"
        return sorted(os.listdir(tmp)) if tmp.is_dir() else []

    def part_files(self) -> list[str]:
        """Every file under the local backend's multipart directory."""
        root = self.data_dir / "objects" / ".minimo" / "multipart"
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    def reconcile(self, bucket: str | None = None) -> tuple[int, list[dict], dict]:
        """``minimo reconcile --json`` on this gateway's stores: (exit code, findings, summary)."""
        command = [sys.executable, "-m", "gateway.cli", "reconcile", "--json"]
        command += ["--data-dir", str(self.data_dir)]
        if bucket is not None:
            command += ["--bucket", bucket]
        if self.mongo_uri:
            command += ["--mongo-uri", self.mongo_uri]
        if self.upstream is not None:
            command += [
                "--s3-endpoint", self.upstream.endpoint,
                "--s3-access-key", self.upstream.access_key,
                "--s3-secret-key", self.upstream.secret_key,
            ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMO_")}
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300
        )
        assert done.returncode in (0, 1), done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        findings = [line["finding"] for line in lines[:-1]]
        return done.returncode, findings, lines[-1]["summary"]


class AccessKey(Protocol):
    access_key: str
    secret_key: str


def start_upload(
    endpoint: str, key: AccessKey, path: str, query: list[tuple[str, str]], size: int
) -> http.client.HTTPConnection:
    """Send a PUT's headers (UNSIGNED-PAYLOAD, signed with ``key``); the caller sends the
    ``size`` bytes of body."""
    url = urlsplit(endpoint)
    headers = sign_request(
        method="PUT",
        raw_path=path,
        query=query,
        headers={"content-length": str(size)},
        payload_hash=UNSIGNED_PAYLOAD,
        access_key=key.access_key,
        secret_key=key.secret_key,
        region="us-east-1",
        host=url.netloc,
    )
    target = path + ("?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query) if query else "")
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    conn.putrequest("PUT", target, skip_host=True, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    return conn


@contextmanager
def killable_gateway(data_dir: Path, **kw: Any) -> Iterator[KillableGateway]:
    gw = KillableGateway(data_dir, **kw)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


def wait_until(condition: Callable[[], T], what: str, timeout: float = RECOVERY_WAIT) -> T:
    """Poll ``condition`` until it returns something true (bounded; fails with ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting until {what}"
        time.sleep(0.05)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code"))
    return None


def assert_recovered(
    gw: KillableGateway,
    bucket: str,
    acked: dict[str, str],
    interrupted: dict[str, str | None],
) -> None:
    """The checks every crash must pass, once recovery has run.

    ``acked``: key -> SHA-256 of every acknowledged write (present, byte-identical, recorded).
    ``interrupted``: key -> SHA-256 of what was being written when the client lost its answer
    (None: unknown bytes, e.g. a copy). Such a key either committed before the crash (then it is
    recorded with exactly those bytes) or has nothing visible and is writable again: a PUT to it
    succeeds under the write-once rule."""
    s3 = gw.client()
    # recovery has run once no intent is left (nothing else is writing now)
    wait_until(lambda: not gw.intents(), "every dead write's intent was rolled back")
    if gw.backend == "local":
        wait_until(lambda: not gw.tmp_entries(), "no temp files are left in .minimo/tmp")
    for key, digest in acked.items():
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert sha256(got) == digest, f"acknowledged {key} changed"
        record = gw.record(bucket, key)
        assert record is not None and record.sha256 == digest, f"acknowledged {key} unrecorded"
    # no visible object without its record
    listed: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        listed += [o["Key"] for o in page.get("Contents", [])]
    for key in listed:
        assert gw.record(bucket, key) is not None, f"{key} is visible but has no record"
    for key, digest in interrupted.items():
        if key in acked:
            continue
        record = gw.record(bucket, key)
        if record is not None:
            # committed just before the kill, only the answer was lost: it must be whole
            assert digest is None or record.sha256 == digest, f"{key}: wrong bytes recorded"
            got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert sha256(got) == record.sha256
            continue
        assert key not in listed, f"interrupted {key} is visible without a record"
        # the key is free again: the write-once claim of the dead write was released
        s3.put_object(Bucket=bucket, Key=key, Body=b"written again after the crash")
        assert gw.record(bucket, key) is not None
    # uploads left open (a client that died with the gateway, or one killed during Complete
    # and put back) can be listed and aborted; then no part file is left
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    for upload in uploads:
        # recovery may finish or expire it between the listing and the abort (an interrupted
        # Complete is settled once its writer's liveness bound passed)
        with contextlib.suppress(s3.exceptions.NoSuchUpload):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    left = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert left == [], f"uploads that cannot be aborted: {left}"
    if gw.backend == "local":
        assert gw.part_files() == [], "part files left behind"
        assert gw.tmp_entries() == []
    code, findings, summary = gw.reconcile(None if gw.backend == "local" else bucket)
    assert (code, findings) == (0, []), findings
    assert summary["consistent"] is True
