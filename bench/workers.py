#!/usr/bin/env python
"""CPU-bound throughput of ``minimo serve --workers N``: 4 KiB PUTs and GETs, many concurrent
clients, the same client against every N.

    python bench/workers.py                 # workers 1 and 2, 3 repeats
    python bench/workers.py --workers 1 2 4 --repeats 1

One gateway per N on its embedded default (local objects, SQLite), written through an open
metadata session with its session key (the product's normal path, as in ``bench/run.py``). For
each N it prints operations per second, the server's CPU per operation (the supervisor and its
workers), and the client's CPU, both in seconds and as a share of the cores this process may
use: the client runs on the same cores as the server, so whatever it takes is not available to
the workers, and the speed-up of N workers is bounded by the cores the client leaves free.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make gateway, tests and bench importable
    sys.path.insert(0, str(REPO))

from bench import client, procfs  # noqa: E402
from bench.model import BUCKET, KEY_PREFIX  # noqa: E402
from bench.targets import _prepare_minimo  # noqa: E402  (as bench/run.py prepares minimo)
from gateway.supervisor import default_workers  # noqa: E402
from tests.servers import run_gateway  # noqa: E402

SIZE = 4096
BODY = os.urandom(SIZE)


@dataclass
class Step:
    """One measured loop of PUTs or GETs."""

    ops_per_s: float
    server_cpu_us: float
    client_cpu_s: float
    seconds: float
    ops: int


@dataclass
class Figures:
    workers: int
    put: list[Step] = field(default_factory=list)
    get: list[Step] = field(default_factory=list)


def measure(
    endpoint: client.Endpoint,
    pid: int,
    method: str,
    prefix: str,
    count: int,
    args: argparse.Namespace,
) -> Step:
    server, client_cpu = procfs.cpu_seconds(pid), time.process_time()
    result = client.small_ops(
        endpoint,
        method,
        prefix,
        count=count,
        max_seconds=args.seconds,
        concurrency=args.concurrency,
        body=BODY,
    )
    server = procfs.cpu_seconds(pid) - server
    client_cpu = time.process_time() - client_cpu
    if result.errors:
        raise client.BenchError(
            f"{result.errors}/{result.ops} {method}s failed; first: {result.first_error}"
        )
    return Step(
        result.per_second, server / result.ops * 1e6, client_cpu, result.seconds, result.ops
    )


def run_one(workers: int, work: Path, args: argparse.Namespace) -> Figures:
    figures = Figures(workers)
    with run_gateway(work / f"workers-{workers}", workers=workers) as gw:
        writer, _ = _prepare_minimo(gw, work / f"workers-{workers}", "session")
        for rep in range(args.repeats):
            prefix = f"/{BUCKET}/{KEY_PREFIX}w{workers}-{rep}/"
            os.sync()
            put = measure(writer, gw.proc.pid, "PUT", prefix, args.count, args)
            # GET what was PUT (the PUT loop may stop on its time limit before its count)
            get = measure(writer, gw.proc.pid, "GET", prefix, put.ops, args)
            figures.put.append(put)
            figures.get.append(get)
            log(
                f"workers {workers} rep {rep + 1}: PUT {figures.put[-1].ops_per_s:,.0f}/s, "
                f"GET {figures.get[-1].ops_per_s:,.0f}/s"
            )
    return figures


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def report(all_figures: list[Figures], cores: int, load: tuple[float, float, float]) -> str:
    base = all_figures[0]
    lines = [
        f"cores this process may use: {cores}; load average before: "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        "",
        "| workers | 4 KiB PUT ops/s | vs. workers 1 | server CPU µs/PUT | client CPU share PUT "
        "| 4 KiB GET ops/s | vs. workers 1 | server CPU µs/GET | client CPU share GET |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in all_figures:
        row = [str(f.workers)]
        for steps, base_steps in ((f.put, base.put), (f.get, base.get)):
            ops = statistics.median(s.ops_per_s for s in steps)
            ratio = ops / statistics.median(s.ops_per_s for s in base_steps)
            cpu = statistics.median(s.server_cpu_us for s in steps)
            share = statistics.median(s.client_cpu_s / (s.seconds * cores) for s in steps)
            row += [f"{ops:,.0f}", f"{ratio:.2f}", f"{cpu:,.0f}", f"{share:.0%}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "client CPU share: the client's CPU time over (wall time times cores): the part of the "
        "machine the workers could not use.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--count", type=int, default=20_000, help="requests per step at most")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per step at most")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="minimo-bench-workers-") as tmp:
        figures = [run_one(n, Path(tmp), args) for n in args.workers]
    after = os.getloadavg()
    print(report(figures, default_workers(), load))
    print(f"load average after: {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
