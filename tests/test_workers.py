"""``minimo serve --workers N``: one port, N worker processes under a supervisor
(gateway.supervisor, docs/deploy.md "Several workers on one host").

Everything here is real: the gateway is a subprocess, requests are SigV4-signed HTTP on fresh
connections (so the kernel hands each to whichever worker accepts it), and the workers are
found as the supervisor's children in /proc. Each worker names itself in the response header
``x-minimo-worker`` (its PID), which is how a test knows who answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from gateway.protocol.sigv4 import UNSIGNED_PAYLOAD, sign_request
from policy.store import MetadataStore, open_metadata_store
from tests.api.client import Signer
from tests.faults.kill_support import WRITE_ONCE_SCRATCH, start_upload, wait_until
from tests.servers import REPO, Gateway, mongo_uri, run_gateway

T = TypeVar("T")
WORKER = "x-minimo-worker"
#: a guard for anything polled here (a loaded 2-core machine), never a timing assertion
WITHIN = 90.0

FORM = {
    "name": "imaging",
    "title": "Imaging run",
    "fields": [{"name": "operator", "type": "text", "required": True}],
}
SESSION_POLICY = """\
[[rule]]
bucket = "*"
prefix = ""
forms = ["imaging"]
open_sessions = ["admin"]
"""


# -- talking to the gateway ----------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    worker: int
    code: str | None
    body: bytes


def request(
    gw: Gateway,
    method: str,
    path: str,
    body: bytes = b"",
    key: tuple[str, str] | None = None,
) -> Answer:
    """One SigV4-signed request (the admin's key unless ``key``) on a new connection."""
    access, secret = key or (gw.access_key, gw.secret_key)
    url = urlsplit(gw.endpoint)
    headers = sign_request(
        method=method,
        raw_path=path,
        query=[],
        headers={"content-length": str(len(body))},
        payload_hash=UNSIGNED_PAYLOAD,
        access_key=access,
        secret_key=secret,
        region="us-east-1",
        host=url.netloc,
    )
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        code = re.search(rb"<Code>([^<]+)</Code>", data)
        return Answer(
            resp.status,
            int(resp.headers[WORKER]),
            code.group(1).decode() if code else None,
            data,
        )
    finally:
        conn.close()


def worker_pids(gw: Gateway) -> set[int]:
    """The supervisor's live children (a reaped or zombie worker is not one)."""
    pid = gw.proc.pid
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(p) for p in text.split() if alive(int(p))}


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed and not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def until_every_worker(
    gw: Gateway, attempt: Callable[[], Answer], ok: Callable[[Answer], bool], what: str
) -> set[int]:
    """Repeat ``attempt`` until every live worker has answered it with ``ok``; the workers."""
    satisfied: set[int] = set()

    def done() -> bool:
        answer = attempt()
        if ok(answer):
            satisfied.add(answer.worker)
        return worker_pids(gw) <= satisfied

    wait_until(done, what, timeout=WITHIN)
    return satisfied


def on_store(gw: Gateway, fn: Callable[[MetadataStore], Any]) -> Any:
    """``await fn(store)`` on the gateway's metadata store, opened by the test process."""

    async def main() -> Any:
        store = await open_metadata_store(gw.data_dir / "minimo.sqlite3", mongo_uri=gw.mongo_uri)
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(main())


def log_of(gw: Gateway) -> str:
    return "".join(p.read_text(errors="replace") for p in gw.data_dir.glob("gateway-*.log"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "mongo"])
def metadata(request: pytest.FixtureRequest) -> str | None:
    """The metadata store: the embedded default (None) or a database on FerretDB."""
    if request.param == "sqlite":
        return None
    return mongo_uri(request.getfixturevalue("ferretdb"), f"workers_{secrets.token_hex(6)}")


@contextmanager
def two_workers(
    data_dir: Path, uri: str | None = None, *extra: str, policy: str | None = WRITE_ONCE_SCRATCH
) -> Iterator[Gateway]:
    """``minimo serve --workers 2``; heartbeats every second and recovery every 2 s, so a dead
    worker's writes are repaired in seconds."""
    args = ["--heartbeat-interval", "1s", "--recovery-interval", "2s", *extra]
    with run_gateway(data_dir, mongo_uri=uri, workers=2, extra_args=args, policy=policy) as gw:
        wait_until(lambda: len(worker_pids(gw)) == 2, "two workers run", timeout=WITHIN)
        # both serve (so both have their SIGTERM handler in place)
        until_every_worker(gw, lambda: health(gw), lambda a: a.status == 200, "both answer")
        yield gw


def health(gw: Gateway) -> Answer:
    return request(gw, "GET", "/_minimo/health")


def stop_supervisor(gw: Gateway, sig: int = signal.SIGTERM) -> int:
    gw.proc.send_signal(sig)
    return gw.proc.wait(timeout=WITHIN)


# -- one port, many workers ----------------------------------------------------------------------
def test_workers_share_one_port_one_admin_and_the_stores(tmp_path: Path, metadata: str) -> None:
    with two_workers(tmp_path / "gw", metadata) as gw:
        workers = worker_pids(gw)  # and both answer on the one port (two_workers waited)
        # the first admin was created and printed once, by the supervisor
        assert log_of(gw).count(gw.admin_password) == 1
        # the workers' metrics directory (prometheus_client's multiprocess mode), made fresh by
        # the supervisor and removed when it stops
        metrics = gw.data_dir / f"metrics-{gw.proc.pid}"
        assert metrics.is_dir()
        # each worker is a gateway instance of its own for crash recovery (its own id, its own
        # heartbeat); the supervisor is none
        instances = on_store(gw, lambda s: s.list_instances())
        by_pid = {int(i.process.split(":")[0]): i.id for i in instances}
        assert set(by_pid) == workers and len(set(by_pid.values())) == 2

        # many writers at once on both workers (each worker group-commits its own requests,
        # both on one store): every acknowledged write is recorded, and of the writers racing
        # for one write-once key exactly one wins
        assert request(gw, "PUT", "/shared").status == 200
        bodies = {f"k{i:03d}": secrets.token_bytes(4096) for i in range(40)}
        racers = [secrets.token_bytes(1000 + i) for i in range(12)]
        answers: dict[str, Answer] = {}
        raced: list[tuple[bytes, Answer]] = []

        def put(key: str, body: bytes) -> None:
            answers[key] = request(gw, "PUT", f"/shared/{key}", body)

        def race(body: bytes) -> None:
            raced.append((body, request(gw, "PUT", "/shared/contested", body)))

        threads = [threading.Thread(target=put, args=item) for item in bodies.items()]
        threads += [threading.Thread(target=race, args=(body,)) for body in racers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert {a.status for a in answers.values()} == {200}
        assert {a.worker for a in answers.values()} | {a.worker for _, a in raced} == workers
        records = on_store(gw, lambda s: s.list_object_records("shared"))
        recorded = {r.key: r.sha256 for r in records}
        for key, body in bodies.items():
            assert recorded[key] == sha256(body)
        winners = [body for body, a in raced if a.status == 200]
        assert len(winners) == 1, [(a.status, a.code) for _, a in raced]
        assert {a.code for _, a in raced if a.status != 200} == {"AccessDenied"}
        assert recorded["contested"] == sha256(winners[0])

        assert stop_supervisor(gw) == 0
        assert not metrics.exists()
        assert not any(alive(pid) for pid in workers)


def test_a_port_in_use_is_the_same_clear_error_with_workers(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMO_")}
        result = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "serve", "--listen", f"127.0.0.1:{port}",
             "--workers", "2", "--data-dir", str(tmp_path / "data")],
            cwd=REPO, capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "data").glob("metrics-*"))


# -- a worker that dies --------------------------------------------------------------------------
def test_a_killed_worker_is_replaced_and_its_write_in_flight_recovered(
    tmp_path: Path, metadata: str
) -> None:
    with two_workers(tmp_path / "gw", metadata) as gw:
        assert request(gw, "PUT", "/crash").status == 200
        size = 1 << 20
        conn = start_upload(gw.endpoint, gw, "/crash/interrupted.bin", [], size)
        conn.send(secrets.token_bytes(64 * 1024))
        # the worker that took this write is the one whose instance id begins its intent
        intents = wait_until(
            lambda: on_store(gw, lambda s: s.list_intents()), "the write's intent is stored"
        )
        instances = on_store(gw, lambda s: s.list_instances())
        owner = next(i for i in instances if intents[0].id.startswith(i.id))
        victim = int(owner.process.split(":")[0])
        before = worker_pids(gw)
        assert victim in before

        os.kill(victim, signal.SIGKILL)
        conn.close()

        def replacement() -> set[int] | None:
            pids = worker_pids(gw)
            return pids if len(pids) == 2 and victim not in pids else None

        replaced = wait_until(replacement, "a new worker replaced the killed one", timeout=WITHIN)
        assert replaced - before  # a new process
        assert f"(pid {victim}) ended with signal SIGKILL" in log_of(gw)
        until_every_worker(gw, lambda: health(gw), lambda a: a.status == 200, "both answer")

        # the dead worker's write is rolled back by the living, like a dead gateway's: nothing
        # visible without a record, and the write-once key is free again
        wait_until(lambda: not on_store(gw, lambda s: s.list_intents()), "the intent is gone")
        assert on_store(gw, lambda s: s.get_object_record("crash", "interrupted.bin")) is None
        assert request(gw, "GET", "/crash/interrupted.bin").status == 404
        again = secrets.token_bytes(2048)
        assert request(gw, "PUT", "/crash/interrupted.bin", again).status == 200
        record = on_store(gw, lambda s: s.get_object_record("crash", "interrupted.bin"))
        assert record is not None and record.sha256 == sha256(again)
        tmp = gw.data_dir / "objects" / ".minimo" / "tmp"
        wait_until(lambda: not any(tmp.iterdir()), "no temp file is left")


# -- stopping ------------------------------------------------------------------------------------
def test_sigterm_drains_a_slow_upload_then_the_supervisor_exits_0(tmp_path: Path) -> None:
    with two_workers(tmp_path / "gw") as gw:
        assert request(gw, "PUT", "/drain").status == 200
        workers = worker_pids(gw)
        body = secrets.token_bytes(256 * 1024)
        conn = start_upload(gw.endpoint, gw, "/drain/slow.bin", [], len(body))
        conn.send(body[:4096])
        wait_until(lambda: on_store(gw, lambda s: s.list_intents()), "the upload is in flight")

        gw.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "SIGTERM: stopping the workers" in log_of(gw), "the drain began")
        for start in range(4096, len(body), 32 * 1024):
            conn.send(body[start : start + 32 * 1024])
        answer = conn.getresponse()
        assert answer.status == 200, answer.read()
        conn.close()
        assert gw.proc.wait(timeout=WITHIN) == 0
        record = on_store(gw, lambda s: s.get_object_record("drain", "slow.bin"))
        assert record is not None and record.sha256 == sha256(body)
        assert not any(alive(pid) for pid in workers)
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", urlsplit(gw.endpoint).port)) != 0


def test_a_worker_that_does_not_drain_is_killed_after_the_grace(tmp_path: Path) -> None:
    with two_workers(tmp_path / "gw", None, "--drain-timeout", "1s") as gw:
        stuck = min(worker_pids(gw))
        os.kill(stuck, signal.SIGSTOP)  # it cannot act on SIGTERM
        assert stop_supervisor(gw) == 0
        assert not alive(stuck)
        assert f"(pid {stuck}) did not stop within 6 s: killing it" in log_of(gw)


def test_sigkill_of_the_supervisor_takes_its_workers(tmp_path: Path) -> None:
    with two_workers(tmp_path / "gw") as gw:
        workers = worker_pids(gw)
        assert stop_supervisor(gw, signal.SIGKILL) == -signal.SIGKILL
        wait_until(lambda: not any(alive(pid) for pid in workers), "the workers died too")
        port = urlsplit(gw.endpoint).port

        def refused() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) != 0

        wait_until(refused, "nobody listens any more")


# -- caches --------------------------------------------------------------------------------------
def test_a_closed_session_and_a_revoked_key_are_refused_by_every_worker(
    tmp_path: Path, metadata: str
) -> None:
    data = tmp_path / "gw"
    data.mkdir()
    form = data / "form.json"
    form.write_text(json.dumps(FORM))
    stores = ["--data-dir", str(data)] + (["--mongo-uri", metadata] if metadata else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMO_")}
    subprocess.run(
        [sys.executable, "-m", "gateway.cli", "form", "create", "--file", str(form), *stores],
        cwd=REPO, env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with two_workers(data, metadata, policy=SESSION_POLICY) as gw:
        assert request(gw, "PUT", "/runs").status == 200
        opened = json.loads(
            gw.cli(
                "session", "open", "--form", "imaging", "--bucket", "runs", "--prefix", "r1/",
                "--set", "operator=Ada", "--json",
            ).stdout
        )  # fmt: skip
        session_key = (opened["access_key"], opened["secret_key"])
        writes = iter(range(1_000_000))

        def put() -> Answer:
            return request(gw, "PUT", f"/runs/r1/o{next(writes)}", b"x", session_key)

        # every worker has used the session (its cache holds it as open)
        until_every_worker(gw, put, lambda a: a.status == 200, "every worker accepts")
        admin = Signer(gw.endpoint, gw.access_key, gw.secret_key)
        closed = admin.call("POST", f"/sessions/{opened['id']}/close", {})
        assert closed.status == 200, closed.body
        closer = int({k.lower(): v for k, v in closed.headers.items()}[WORKER])
        assert closer in worker_pids(gw)
        # every worker refuses, the one that closed it and the others (within their cache
        # bound, docs/design.md decision 2)
        until_every_worker(
            gw, put, lambda a: a.status == 403, "every worker refuses the closed session"
        )
        late = [put() for _ in range(10)]
        assert {a.status for a in late} == {403}, [(a.status, a.code) for a in late]

        # a personal key: used on every worker, revoked through one, refused by all
        gw.cli("user", "add", "carol", "--role", "uploader")
        created = json.loads(gw.cli("key", "create", "carol", "--json").stdout)
        carol = (created["access_key"], created["secret_key"])
        until_every_worker(
            gw, lambda: request(gw, "GET", "/", key=carol), lambda a: a.status == 200, "all serve"
        )
        revoked = admin.call("DELETE", f"/keys/{created['access_key']}")
        assert revoked.status == 200, revoked.body
        until_every_worker(
            gw,
            lambda: request(gw, "GET", "/", key=carol),
            lambda a: a.status == 403 and a.code == "InvalidAccessKeyId",
            "every worker refuses the revoked key",
        )
        late = [request(gw, "GET", "/", key=carol) for _ in range(10)]
        assert {a.code for a in late} == {"InvalidAccessKeyId"}
        # no object was stored under the closed session without its record
        listed = on_store(gw, lambda s: s.list_object_records("runs"))
        assert listed and all(r.session_id == opened["id"] for r in listed)


def test_workers_that_keep_dying_at_start_make_the_supervisor_give_up(tmp_path: Path) -> None:
    with two_workers(tmp_path / "gw") as gw:
        # an operator empties the secret key file under a running gateway: the workers serving
        # keep their key, but no new worker can start
        (gw.data_dir / "secret.key").write_bytes(b"")
        for pid in worker_pids(gw):
            os.kill(pid, signal.SIGKILL)
        assert gw.proc.wait(timeout=WITHIN) == 1
        log = log_of(gw)
        assert "secret key file" in log and "is empty" in log
        assert "workers keep dying right after they start (5 in a row" in log
        assert "Traceback" not in log


def test_workers_serve_https_with_one_certificate(tmp_path: Path) -> None:
    import ssl
    import urllib.request

    with run_gateway(tmp_path / "gw", tls=True, workers=2) as gw:
        assert gw.ca_file is not None
        context = ssl.create_default_context(cafile=str(gw.ca_file))

        def fetch() -> Answer:
            with urllib.request.urlopen(f"{gw.endpoint}/_minimo/health", context=context) as r:
                return Answer(r.status, int(r.headers[WORKER]), None, r.read())

        wait_until(lambda: len(worker_pids(gw)) == 2, "two workers run", timeout=WITHIN)
        # both serve the certificate the supervisor generated (verified against its cert.pem)
        until_every_worker(gw, fetch, lambda a: a.status == 200, "both answer over TLS")


def test_metrics_add_up_every_workers_counts(tmp_path: Path) -> None:
    """A scrape of either worker counts the requests both answered (each worker shares its
    counts every second; docs/metrics.md)."""
    token = secrets.token_urlsafe(24)
    token_file = tmp_path / "metrics.token"
    token_file.write_text(token)
    with two_workers(tmp_path / "gw", None, "--metrics-token-file", str(token_file)) as gw:
        request(gw, "PUT", "/counted")
        answered_by: set[int] = set()
        for i in range(40):
            answer = request(gw, "PUT", f"/counted/k{i}", b"x" * 100)
            assert answer.status == 200, answer.body
            answered_by.add(answer.worker)
        assert len(answered_by) == 2  # the kernel spread the 40 connections over both

        def scrape() -> Answer:
            url = urlsplit(gw.endpoint)
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
            try:
                conn.request(
                    "GET", "/_minimo/metrics", headers={"Authorization": f"Bearer {token}"}
                )
                resp = conn.getresponse()
                return Answer(resp.status, int(resp.headers[WORKER]), None, resp.read())
            finally:
                conn.close()

        line = re.compile(
            rb'^minimo_requests_total\{operation="PutObject",status="200"\} (\S+)$', re.M
        )

        def counts_all(answer: Answer) -> bool:
            found = line.search(answer.body)
            return answer.status == 200 and found is not None and float(found.group(1)) == 40

        # every worker, scraped, reports all 40 PutObjects (within a share interval of the last)
        until_every_worker(gw, scrape, counts_all, "each worker's scrape counts all PUTs")
