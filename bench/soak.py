#!/usr/bin/env python
"""Soak benchmark: a mixed load for minutes, then an integrity check.

    python bench/soak.py --target embedded                  # 64 clients, 5 minutes
    python bench/soak.py --target mongo-s3 --minutes 1 --clients 16
    python bench/soak.py --target mongo-s3 --outage metadata --outage-at 20 --outage-for 10
    python bench/soak.py --url http://127.0.0.1:9000 --access-key AK --secret-key SK

N clients (default 64) each send one request after the other until M minutes (default 5) have
passed: PUT with a session key into the session's prefix 30%, PUT into a scratch prefix (a
``require_session = false`` rule where admins may delete) 10%, GET 30%, HEAD 10%, LIST 10%,
DELETE of a scratch key it wrote 10%; object sizes log-uniform between 1 KiB and 4 MiB. GET and
HEAD pick keys known to exist, and every GET hashes what it reads.

Targets: ``embedded`` starts ``minimo serve`` on its default stores (local objects + SQLite) in
a temporary directory; ``mongo-s3`` starts FerretDB and versitygw and a gateway on the ``s3``
object store and the ``mongo`` metadata store; ``--url`` soaks any running gateway with an
admin's personal key (setup through the JSON API; ``--pid`` names its process for the RSS and
descriptor samples). Only loopback addresses are used.

``--outage metadata|objects`` (mongo-s3 only) kills FerretDB or versitygw with SIGKILL at
``--outage-at`` seconds and restarts it on the same data directory and port ``--outage-for``
seconds later; errors are split into "during the outage" (from the kill to the restart plus
``--outage-grace``) and "outside".

At the end: operations per second, errors by status and S3 code, p50/p99 per operation, the
gateway's RSS and open descriptors over time, and the integrity check of bench/soak_check.py.
Exits 1 when any integrity check fails, or any answer was 5xx (or none) other than 503 during
an injected outage; 2 when the setup failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make gateway, tests and bench importable
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from bench import procfs  # noqa: E402
from bench.client import Endpoint  # noqa: E402
from bench.soak_check import Api, Integrity, SetupError, check, judge, restore_policy, setup  # noqa: E402
from bench.soak_load import Bodies, Client, Load, Signer, Window  # noqa: E402
from bench.soak_report import figures, log_exceptions, render, windows_json  # noqa: E402
from bench.targets import _listener_pid, tune_versitygw  # noqa: E402
from tests.servers import (  # noqa: E402
    Gateway,
    mongo_uri,
    run_ferretdb,
    run_gateway,
    run_versitygw,
    stop,
    wait_for_port,
)

TARGETS = ("embedded", "mongo-s3")
SCRATCH = "scratch/"


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


@dataclass
class Target:
    name: str
    admin: Endpoint
    #: the gateway's process (RSS, descriptors, CPU), when known
    pid: int | None
    #: the gateway the soak started (its stores are then known: reconcile runs on them)
    gateway: Gateway | None = None
    #: ``--s3-*`` options of the object store, for ``minimo reconcile``
    s3_args: list[str] = field(default_factory=list)
    #: "metadata" / "objects" -> the port of the server an outage kills
    ports: dict[str, int] = field(default_factory=dict)
    #: where the started servers' logs are
    work: Path | None = None
    stores: str = ""


@contextmanager
def start_target(args: argparse.Namespace, work: Path) -> Iterator[Target]:
    if args.url:
        admin = Endpoint(args.url.rstrip("/"), args.access_key, args.secret_key)
        yield Target("url", admin, args.pid, stores=f"gateway at {args.url}")
        return
    with ExitStack() as stack:
        if args.target == "embedded":
            gw = stack.enter_context(run_gateway(work / "gateway", policy=None))
            target = Target("embedded", _admin(gw), gw.proc.pid, gw, work=work)
            target.stores = "Embedded default: local object store, SQLite metadata store"
        else:
            tune_versitygw(True)
            ferret = stack.enter_context(run_ferretdb(work / "ferretdb"))
            upstream = stack.enter_context(run_versitygw(work / "versitygw" / "root"))
            gw = stack.enter_context(
                run_gateway(
                    work / "gateway",
                    upstream=upstream,
                    mongo_uri=mongo_uri(ferret, "soak"),
                    policy=None,
                )
            )
            target = Target("mongo-s3", _admin(gw), gw.proc.pid, gw, work=work)
            target.s3_args = [
                "--s3-endpoint", upstream.endpoint,
                "--s3-access-key", upstream.access_key,
                "--s3-secret-key", upstream.secret_key,
            ]  # fmt: skip
            target.ports = {
                "metadata": urlsplit(ferret).port or 27017,
                "objects": urlsplit(upstream.endpoint).port or 80,
            }
            target.stores = "s3 object store on versitygw (posix), mongo metadata store on FerretDB"
        yield target


def _admin(gw: Gateway) -> Endpoint:
    return Endpoint(gw.endpoint, gw.access_key, gw.secret_key)


class Restarter:
    """Kill the server listening on a port (SIGKILL) and start it again the same way: same
    command line, same working directory, so the same data directory and port."""

    def __init__(self, port: int, pid: int, work: Path) -> None:
        self.port = port
        self.work = work
        self.procs: list[subprocess.Popen] = []
        self.pid = pid
        #: CPU seconds of the killed process just before the kill
        self.cpu_at_kill = 0.0
        raw = Path(f"/proc/{self.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        self.argv = [a.decode() for a in raw]
        self.cwd = os.readlink(f"/proc/{self.pid}/cwd")

    def kill(self) -> None:
        self.cpu_at_kill = procfs.cpu_seconds(self.pid)
        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def start(self) -> None:
        log_file = self.work / f"restarted-{self.port}-{len(self.procs)}.log"
        with log_file.open("wb") as out:
            proc = subprocess.Popen(self.argv, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        wait_for_port(self.port, proc, self.argv[0])
        self.pid = proc.pid

    def stop_all(self) -> None:
        for proc in self.procs:
            stop(proc)


def _alive(pid: int) -> bool:
    """False once the process is gone or a zombie (its parent's stop() reaps it later)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def inject(
    restarter: Restarter, window: Window, at: float, duration: float, t0: float
) -> None:
    await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
    window.killed = time.monotonic()
    await asyncio.to_thread(restarter.kill)
    log(f"outage: {window.what} store killed at {window.killed - t0:.1f} s")
    await asyncio.sleep(max(0.0, window.killed + duration - time.monotonic()))
    await asyncio.to_thread(restarter.start)
    window.restarted = time.monotonic()
    log(f"outage: {window.what} store restarted at {window.restarted - t0:.1f} s")


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


async def sample(pid: int, every: float, t0: float, out: list[dict[str, float]]) -> None:
    while True:
        out.append(
            {
                "t": time.monotonic() - t0,
                "rss_mib": procfs.tree_rss_kib(pid) / 1024,
                "fds": fd_count(pid),
                "cpu_s": procfs.cpu_seconds(pid),
            }
        )
        await asyncio.sleep(every)


def client_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def wait_writable(load: Load, seconds: float = 20.0) -> int:
    """Probe PUTs until both rules take writes (they count as acknowledged writes)."""
    deadline = time.monotonic() + seconds
    probes = 0
    for kind in ("session", "scratch"):
        while True:
            probes += 1
            if await load.put(kind, count=False):
                break
            if time.monotonic() > deadline:
                raise SetupError(f"{kind} PUTs still refused after {seconds:g} s")
            await asyncio.sleep(0.25)
    return probes


def reconcile(target: Target, bucket: str) -> dict[str, Any] | None:
    """``minimo reconcile --json`` on the stores the soak started: its summary and findings."""
    if target.gateway is None:
        return None
    done = target.gateway.cli(
        "reconcile", "--json", "--bucket", bucket, *target.s3_args, check=False
    )
    summary: dict[str, Any] = {}
    findings: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if "summary" in doc:
            summary = doc["summary"]
        elif "finding" in doc:
            f = doc["finding"]
            findings.setdefault(f["kind"], []).append(f["key"])
    if not summary:
        return {"error": (done.stderr or done.stdout).strip()[-500:], "found": {"failed": 1}}
    summary["first_keys"] = {k: v[:10] for k, v in findings.items()}
    return summary


async def soak(
    args: argparse.Namespace, target: Target, restarters: list[Restarter]
) -> dict[str, Any]:
    """The run itself; servers an outage restarted are added to ``restarters`` (the caller
    stops them, also when the run is interrupted)."""
    bodies = Bodies(args.seed)
    connector = aiohttp.TCPConnector(limit=args.clients + 8)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    windows: list[Window] = []
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        skip_auto_headers=["Content-Type"],
        auto_decompress=False,
    ) as http:
        client = Client(http, bodies, args.bucket)
        admin = Signer(target.admin)
        api = Api(http, admin)
        stamp = datetime.now(UTC)
        run = f"soak-{stamp:%Y%m%dT%H%M%S}/"
        since = (stamp - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        session_prefix, scratch_prefix = run, f"{SCRATCH}{run}"
        st = await setup(api, client, run, SCRATCH)
        log(f"session {st.session_id} open for s3://{args.bucket}/{run}")
        load = Load(
            client,
            Signer(st.session),
            admin,
            session_prefix,
            scratch_prefix,
            args.seed,
            windows,
            retry=not args.no_retry,
        )
        probes = await wait_writable(load)
        # the servers behind the gateway, found before the load starts (walking /proc is slow)
        servers = {name: _listener_pid(port) for name, port in target.ports.items()}
        restarter = None
        if args.outage:
            restarter = Restarter(
                target.ports[args.outage], servers[args.outage], target.work or Path(".")
            )
            restarters.append(restarter)
        samples: list[dict[str, float]] = []
        load_before = os.getloadavg()[0]
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        sampler = (
            asyncio.create_task(sample(target.pid, args.sample_every, t0, samples))
            if target.pid
            else None
        )
        outage = None
        if restarter is not None:
            window = Window(args.outage, killed=float("inf"), grace=args.outage_grace)
            windows.append(window)
            outage = asyncio.create_task(
                inject(restarter, window, args.outage_at, args.outage_for, t0)
            )
        cpu_client0 = client_cpu()
        cpu_gw0 = procfs.cpu_seconds(target.pid) if target.pid else 0.0
        cpu_servers0 = {name: procfs.cpu_seconds(pid) for name, pid in servers.items()}
        log(f"load: {args.clients} clients for {args.minutes:g} min")
        try:
            await load.run(args.clients, end)
            seconds = time.monotonic() - t0
            cpu_client = client_cpu() - cpu_client0
            cpu_gw = (procfs.cpu_seconds(target.pid) - cpu_gw0) if target.pid else 0.0
            load_after = os.getloadavg()[0]
            cpu_servers = {}
            for name, pid in servers.items():
                if restarter is not None and name == args.outage and restarter.procs:
                    # the killed process up to the kill, then its successor
                    used = restarter.cpu_at_kill + procfs.cpu_seconds(restarter.pid)
                else:
                    used = procfs.cpu_seconds(pid)
                cpu_servers[name] = (used - cpu_servers0[name]) / seconds / (os.cpu_count() or 1)
            if outage is not None:
                await outage  # the store is back before anything is checked
            if sampler is not None:
                sampler.cancel()
            total = sum(load.stats.ops.values())
            log(f"load done: {total} requests in {seconds:.0f} s; settling {args.settle:g} s")
            await asyncio.sleep(args.settle)
            integrity: Integrity | None = None
            if not args.no_check:
                integrity = await check(
                    api,
                    client,
                    load.ledger,
                    session_prefix=session_prefix,
                    scratch_prefix=scratch_prefix,
                    since=since,
                    log=log,
                )
                integrity.reconcile = await asyncio.to_thread(reconcile, target, args.bucket)
            if args.url:
                try:
                    await restore_policy(api, st.old_policy)
                except SetupError as exc:
                    log(f"could not put the previous policy back: {exc}")
        finally:
            if outage is not None and not outage.done():
                outage.cancel()
    cores = os.cpu_count() or 1
    result: dict[str, Any] = {
        "date": f"{stamp:%Y-%m-%d %H:%M} UTC",
        "settings": {
            "target": target.name,
            "clients": args.clients,
            "minutes": args.minutes,
            "seed": args.seed,
            "timeout": args.timeout,
            "sample_every": args.sample_every,
            "bucket": args.bucket,
            "run_prefix": run,
            "outage": args.outage,
            "retry": not args.no_retry,
        },
        "stores": target.stores,
        "load_seconds": seconds,
        "setup_probes": probes,
        "per_op": figures(load.stats, seconds),
        "errors": [
            {"op": op, "status": s, "code": c, "window": w, "count": n}
            for (op, s, c, w), n in sorted(load.stats.errors.items())
        ],
        "retries": [
            {"status": s, "code": c, "count": n} for (s, c), n in load.stats.retries.items()
        ],
        "refused_puts": dict(load.stats.refused_puts),
        "sizes": dict(load.stats.sizes),
        "bytes_put": load.stats.bytes_put,
        "bytes_got": load.stats.bytes_got,
        "raced_404": load.stats.raced_404,
        "samples": samples,
        "resources": {
            "cores": cores,
            "client_cpu_s": cpu_client,
            "gateway_cpu_s": cpu_gw,
            "client_cpu_share": cpu_client / seconds / cores,
            "gateway_cpu_share": cpu_gw / seconds / cores,
            #: "metadata" (FerretDB) / "objects" (versitygw) -> their CPU share
            "servers_cpu_share": cpu_servers,
            "load_average_before_after": [load_before, load_after],
        },
        "outages": windows_json(windows, t0),
    }
    logs = sorted(target.work.glob("gateway/gateway-*.log")) if target.work else []
    tracebacks, exceptions = log_exceptions(logs)
    result["gateway_log"] = {"tracebacks": tracebacks, "exceptions": exceptions.most_common(10)}
    problems = [] if integrity is None else judge(integrity)
    for (op, status, code, when), n in sorted(load.stats.errors.items()):
        # 5xx other than 503 during an injected outage, and no answer at all (a timeout or a
        # dropped connection: the gateway must answer within bounded time, outage or not)
        if (status >= 500 or status == 0) and not (status == 503 and when == "outage"):
            problems.append(f"{n}x {op} answered {status or 'nothing'} {code} ({when})")
    result["problems"] = problems
    result["integrity"] = integrity.as_json() if integrity is not None else None
    result["markdown"] = render(result, load.stats, integrity)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Mixed load for minutes, then an integrity check.")
    p.add_argument("--target", choices=TARGETS, default="embedded")
    p.add_argument("--url", help="soak this running gateway instead (http://127.0.0.1:PORT)")
    p.add_argument("--access-key", help="with --url: an admin's personal access key")
    p.add_argument("--secret-key", help="with --url: its secret")
    p.add_argument("--pid", type=int, help="with --url: the gateway's process id (samples)")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--bucket", default="soak")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    p.add_argument("--sample-every", type=float, default=5.0, help="RSS/descriptor samples, s")
    p.add_argument("--settle", type=float, default=5.0, help="wait before the check, seconds")
    p.add_argument("--outage", choices=("metadata", "objects"))
    p.add_argument("--outage-at", type=float, default=60.0, help="seconds into the load")
    p.add_argument("--outage-for", type=float, default=15.0, help="seconds the store is down")
    p.add_argument(
        "--outage-grace",
        type=float,
        default=10.0,
        help="errors up to this long after the restart count as during the outage",
    )
    p.add_argument("--no-retry", action="store_true", help="do not retry a PUT answered 5xx")
    p.add_argument("--no-check", action="store_true", help="skip the integrity check")
    p.add_argument("--json", type=Path, metavar="FILE", help="write all figures here")
    p.add_argument("--tmp-dir", type=Path, default=Path(tempfile.gettempdir()))
    p.add_argument("--keep", action="store_true", help="keep the started servers' data and logs")
    a = p.parse_args(argv)
    if a.url:
        host = urlsplit(a.url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            p.error("--url must be a loopback address (the soak never leaves this machine)")
        if not (a.access_key and a.secret_key):
            p.error("--url needs --access-key and --secret-key (an admin's personal key)")
        a.target = "url"
    if a.outage and a.target != "mongo-s3":
        p.error("--outage needs --target mongo-s3 (the soak restarts the servers it started)")
    if a.outage and a.outage_at + a.outage_for >= a.minutes * 60:
        p.error("the outage must end before the load does (--outage-at + --outage-for)")
    if a.clients < 1 or a.minutes <= 0:
        p.error("--clients and --minutes must be positive")
    return a


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # run `finally` blocks: stop servers, clean up


def _run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    work = Path(tempfile.mkdtemp(prefix="minimo-soak-", dir=args.tmp_dir))
    log(f"target {args.target}; working in {work}")
    restarters: list[Restarter] = []
    try:
        with start_target(args, work) as target:
            try:
                result = _run(soak(args, target, restarters))
            except SetupError as exc:
                log(f"setup failed: {exc}")
                return 2
            finally:
                for r in restarters:
                    r.stop_all()
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(result["markdown"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted: servers stopped, temporary data removed")
        sys.exit(130)
