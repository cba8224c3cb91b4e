#!/usr/bin/env python
"""What metadata enforcement costs: 4 KiB PUTs, session vs. scratch area.

    python bench/enforce.py            # full: 3000 PUTs per run, 3 runs per path and store
    python bench/enforce.py --quick    # development: 300 PUTs, 1 run

One ``minimo serve`` per metadata store (``sqlite``, and ``mongo`` on a FerretDB it starts),
each on the local object store, each with one policy of two rules for bucket ``bench``:

* ``scratch/`` is a scratch area (``require_session = false``); the admin's own key writes there:
  the S3 front door and the write protocol's record, without any session bookkeeping;
* everything else needs form ``bench``; one session is opened for ``run/`` and its session key
  writes there: session-key authentication, the policy decision, the session check and the
  object record, i.e. the product's normal path.

Both rules keep the default ``overwrite = "deny"`` (every key is new). The same client
(``bench.client.small_ops``: aiohttp on uvloop, SigV4 with ``UNSIGNED-PAYLOAD``) sends both
kinds at concurrency 32, runs alternate between the two paths so background load spreads over
both, and each figure is the median of its runs. Prints the four figures, the server's CPU per
PUT and the two ratios; the target is enforced >= 0.8 x unenforced. Exits 1 when a request failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make gateway, tests and bench importable
    sys.path.insert(0, str(REPO))

from bench import client, procfs  # noqa: E402
from bench.report import filesystem_type  # noqa: E402
from tests.servers import (  # noqa: E402
    Gateway,
    mongo_uri,
    run_ferretdb,
    run_gateway,
    run_postgres,
)

BUCKET = "bench"
SESSION_PREFIX = "run/"
SCRATCH_PREFIX = "scratch/"
#: mongo: FerretDB on SQLite (the tests' server); mongo-pg: FerretDB on PostgreSQL, which pushes
#: filters, sorts and limits down to SQL and so is closer to what a real MongoDB costs
STORES = ("sqlite", "mongo", "mongo-pg")
PATHS = ("enforced", "scratch")
TARGET_RATIO = 0.8

FORM = {
    "name": "bench",
    "title": "Benchmark run",
    "fields": [{"name": "run", "type": "text", "required": True}],
}
POLICY = f"""\
[[rule]]
bucket = "{BUCKET}"
prefix = "{SCRATCH_PREFIX}"
require_session = false

[[rule]]
bucket = "{BUCKET}"
prefix = ""
forms = ["bench"]
"""


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


@dataclass(slots=True)
class Figures:
    ops: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.ops) if self.ops else 0.0

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu_us) if self.cpu_us else 0.0


@dataclass(frozen=True, slots=True)
class Writers:
    """The two ways into one gateway: (endpoint, key prefix) per path."""

    pid: int
    paths: dict[str, tuple[client.Endpoint, str]]


def _cli(gw: Gateway, *args: str) -> str:
    done = gw.cli(*args, check=False)
    if done.returncode != 0:
        raise client.BenchError(f"minimo {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def _wait_writable(ep: client.Endpoint, prefix: str, seconds: float = 15.0) -> None:
    """Running servers pick up a new policy within seconds: probe until a write is accepted."""
    deadline = time.monotonic() + seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            client.put_large(ep, f"/{BUCKET}/{prefix}probe-{attempt}", 4, b"beep")
            return
        except client.BenchError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def prepare(gw: Gateway, work: Path) -> Writers:
    admin = client.Endpoint(gw.endpoint, gw.access_key, gw.secret_key)
    client.request(admin, "PUT", f"/{BUCKET}")
    (work / "form.json").write_text(json.dumps(FORM))
    (work / "policy.toml").write_text(POLICY)
    _cli(gw, "form", "create", "--file", str(work / "form.json"))
    _cli(gw, "policy", "set", str(work / "policy.toml"))
    opened = _cli(
        gw, "session", "open", "--form", "bench", "--bucket", BUCKET,
        "--prefix", SESSION_PREFIX, "--set", "run=enforce-bench", "--json",
    )  # fmt: skip
    session = json.loads(opened)
    session_key = client.Endpoint(gw.endpoint, session["access_key"], session["secret_key"])
    _wait_writable(session_key, SESSION_PREFIX)
    _wait_writable(admin, SCRATCH_PREFIX)
    return Writers(
        gw.proc.pid,
        {"enforced": (session_key, SESSION_PREFIX), "scratch": (admin, SCRATCH_PREFIX)},
    )


@contextmanager
def start(store: str, work: Path) -> Iterator[Writers]:
    """A gateway on ``store`` (local object store), policy, form and session in place."""
    with ExitStack() as stack:
        uri = None
        if store == "mongo":
            server = stack.enter_context(run_ferretdb(work / "ferretdb"))
            uri = mongo_uri(server, "enforce_bench")
        elif store == "mongo-pg":
            database = stack.enter_context(run_postgres(work / "postgres"))
            server = stack.enter_context(run_ferretdb(work / "ferretdb-pg", database))
            uri = mongo_uri(server, "enforce_bench")
        gw = stack.enter_context(run_gateway(work / f"gw-{store}", mongo_uri=uri, policy=None))
        yield prepare(gw, work / f"gw-{store}")


def measure(
    writers: Writers, path: str, rep: int, args: argparse.Namespace, body: bytes, out: Figures
) -> None:
    ep, prefix = writers.paths[path]
    before = procfs.cpu_seconds(writers.pid)
    result = client.small_ops(
        ep,
        "PUT",
        f"/{BUCKET}/{prefix}r{rep}/",
        count=args.count,
        max_seconds=args.seconds,
        concurrency=args.concurrency,
        body=body,
    )
    cpu = procfs.cpu_seconds(writers.pid) - before
    if result.errors:
        failed = f"{result.errors}/{result.ops} PUTs failed; first: {result.first_error}"
        out.errors.append(f"{path}, run {rep + 1}: {failed}")
        log(f"  {path}: {failed}")
        return
    out.ops.append(result.per_second)
    out.cpu_us.append(cpu / result.ops * 1e6)
    log(f"  {path}: {result.ops} PUTs in {result.seconds:.2f} s = {result.per_second:.0f}/s")


def run_store(store: str, work: Path, args: argparse.Namespace) -> dict[str, Figures]:
    figures = {path: Figures() for path in PATHS}
    body = os.urandom(4096)
    log(f"{store}: starting")
    try:
        with start(store, work / store) as writers:
            # untimed warm-up of both paths: connections, caches, the stores' first pages
            for path in PATHS:
                ep, prefix = writers.paths[path]
                client.small_ops(
                    ep, "PUT", f"/{BUCKET}/{prefix}warm/", count=min(args.count, 200),
                    max_seconds=args.seconds, concurrency=args.concurrency, body=body,
                )  # fmt: skip
            for rep in range(args.repeats):
                # ABBA order: neither path always runs first (warm caches, page cache pressure)
                order = PATHS if rep % 2 == 0 else PATHS[::-1]
                for path in order:
                    os.sync()  # the previous run's writeback is not charged to this one
                    measure(writers, path, rep, args, body, figures[path])
    except (client.BenchError, OSError, RuntimeError) as exc:
        for f in figures.values():
            f.errors.append(f"{store}: {exc}".splitlines()[0])
        log(f"{store}: FAILED: {exc}")
    return figures


def render(results: dict[str, dict[str, Figures]], args: argparse.Namespace, load: str) -> str:
    lines = [
        f"4 KiB PUT, concurrency {args.concurrency}, up to {args.count} PUTs or "
        f"{args.seconds:g} s per run, median of {args.repeats} run(s); local object store; "
        f"load average before/after {load}",
        "",
        "| metadata store | enforced (session key) PUT/s | scratch (admin key) PUT/s "
        "| enforced / scratch | server CPU µs/PUT enforced / scratch |",
        "|---|---:|---:|---:|---:|",
    ]
    for store, figures in results.items():
        enforced, scratch = figures["enforced"], figures["scratch"]
        ratio = enforced.median / scratch.median if scratch.median else 0.0
        verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
        lines.append(
            f"| {store} | {enforced.median:.0f} | {scratch.median:.0f} "
            f"| {ratio:.2f} ({verdict} ≥ {TARGET_RATIO}) "
            f"| {enforced.median_cpu:.0f} / {scratch.median_cpu:.0f} |"
        )
    errors = [e for figures in results.values() for f in figures.values() for e in f.errors]
    if errors:
        lines += ["", "Errors:", *(f"- {e}" for e in dict.fromkeys(errors))]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="4 KiB PUT through a session vs. a scratch area.")
    p.add_argument("--quick", action="store_true", help="300 PUTs per run, 1 run")
    p.add_argument("--count", type=int, help="PUTs per run (default 3000, quick 300)")
    p.add_argument("--seconds", type=float, default=30.0, help="time cap per run")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--repeats", type=int, help="runs per path and store (default 3, quick 1)")
    p.add_argument("--stores", default=",".join(STORES), help="subset of sqlite,mongo,mongo-pg")
    p.add_argument(
        "--tmp-dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="where data directories go (on disk, not tmpfs)",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the raw figures here")
    a = p.parse_args(argv)
    a.count = a.count or (300 if a.quick else 3000)
    a.repeats = a.repeats or (1 if a.quick else 3)
    a.stores = [s for s in a.stores.split(",") if s]
    if set(a.stores) - set(STORES):
        p.error(f"unknown stores: {', '.join(sorted(set(a.stores) - set(STORES)))}")
    if filesystem_type(a.tmp_dir) == "tmpfs":
        p.error(f"{a.tmp_dir} is tmpfs: give --tmp-dir on a disk so writes are real")
    return a


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # run `finally` blocks: stop servers, clean up


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    work = Path(tempfile.mkdtemp(prefix="minimo-enforce-bench-", dir=args.tmp_dir))
    log(f"working in {work}")
    load_before = os.getloadavg()[0]
    try:
        results = {store: run_store(store, work, args) for store in args.stores}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(render(results, args, f"{load_before:.2f} / {os.getloadavg()[0]:.2f}"))
    if args.json:
        raw = {
            store: {path: {"ops": f.ops, "cpu_us": f.cpu_us, "errors": f.errors}
                    for path, f in figures.items()}
            for store, figures in results.items()
        }  # fmt: skip
        args.json.write_text(json.dumps(raw, indent=2) + "\n")
    failed = any(f.errors for figures in results.values() for f in figures.values())
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted: servers stopped, temporary data removed")
        sys.exit(130)
