#!/usr/bin/env python
"""minimo's benchmark: six servers side by side on loopback, one client.

    python bench/run.py            # full run: 1 GiB objects, 5 GiB RSS upload, 3 repeats
    python bench/run.py --quick    # development: 256 MiB objects, 1 GiB RSS upload, 1 repeat

Targets: minimo-local, minimo-s3 (in front of versitygw), versitygw posix direct, a bare
aiohttp server (the Python ceiling), and minimo-seaweedfs (in front of a SeaweedFS cluster of
separate processes) beside that cluster direct (seaweedfs). minimo is written through an open
metadata session (``--writes scratch``: a scratch area instead). Measures, with the same client
against each: single-stream PUT and GET throughput of a large object, 4 KiB PUT and GET
operations per second at concurrency 32, and the server's peak RSS while one very large object
streams in.

Prints a markdown report and writes it to bench/results/latest.md (raw figures beside it in
latest.json) to paste into docs/benchmarks.md. Exits 1 when any measurement failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make gateway, tests and bench importable
    sys.path.insert(0, str(REPO))

from bench import client, procfs  # noqa: E402
from bench.model import (  # noqa: E402
    BUCKET,
    KEY_PREFIX,
    MIB,
    PHASES,
    PY_SPY_SUFFIX,
    Settings,
    TargetResults,
)
from bench.report import filesystem_type, render  # noqa: E402
from bench.targets import (  # noqa: E402
    ALL_TARGETS,
    STARTERS,
    WRITE_MODES,
    Target,
    log_tail,
    tune_versitygw,
)

# ---------------------------------------------------------------------------------------------
# measurements


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def settle() -> None:
    """Flush dirty pages so one measurement does not pay for the previous one's writeback."""
    os.sync()


@dataclass(slots=True)
class Cost:
    """CPU seconds spent by the server (process tree) and by this client during one step."""

    server: float = 0.0
    client: float = 0.0


@contextmanager
def cpu_cost(pid: int) -> Iterator[Cost]:
    cost = Cost()
    server, client_cpu = procfs.cpu_seconds(pid), time.process_time()
    yield cost
    cost.server = procfs.cpu_seconds(pid) - server
    cost.client = time.process_time() - client_cpu


def measure_large(target: Target, res: TargetResults, s: Settings, rep: int, block: bytes) -> None:
    key = f"/{BUCKET}/{KEY_PREFIX}large-{rep}"
    gib = s.large_bytes / (1 << 30)
    settle()
    with cpu_cost(target.pid) as cost:
        seconds = client.put_large(target.endpoint, key, s.large_bytes, block)
    res.put_mibs.append(s.large_bytes / MIB / seconds)
    res.put_cpu_s_gib.append(cost.server / gib)
    res.client_put_cpu_s_gib.append(cost.client / gib)
    settle()
    with cpu_cost(target.pid) as cost:
        seconds = client.get_large(target.endpoint, key, s.large_bytes)
    res.get_mibs.append(s.large_bytes / MIB / seconds)
    res.get_cpu_s_gib.append(cost.server / gib)
    res.client_get_cpu_s_gib.append(cost.client / gib)
    client.request(target.admin, "DELETE", key)


def measure_small(target: Target, res: TargetResults, s: Settings, rep: int) -> None:
    prefix = f"/{BUCKET}/{KEY_PREFIX}small-{rep}/"
    body = os.urandom(s.small_size)
    settle()
    steps = (
        ("PUT", res.small_put_ops, res.small_put_cpu_us),
        ("GET", res.small_get_ops, res.small_get_cpu_us),
    )
    count = s.small_count
    for method, ops_sink, cpu_sink in steps:
        with cpu_cost(target.pid) as cost:
            result = client.small_ops(
                target.endpoint,
                method,
                prefix,
                count=count,
                max_seconds=s.small_seconds,
                concurrency=s.concurrency,
                body=body,
            )
        if result.errors:
            raise client.BenchError(
                f"{result.errors}/{result.ops} small {method}s failed; first: {result.first_error}"
            )
        ops_sink.append(result.per_second)
        cpu_sink.append(cost.server / result.ops * 1e6)
        # the GETs read what the PUTs wrote: keys 0 .. ops-1 (a PUT run cut short by the time
        # cap wrote fewer than --small-count)
        count = result.ops


def reset_hwm(pid: int) -> bool:
    """Reset the kernel's peak-RSS counter (``echo 5 > clear_refs``) so VmHWM covers the upload."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure_rss(target: Target, res: TargetResults, s: Settings, block: bytes) -> None:
    key = f"/{BUCKET}/{KEY_PREFIX}rss"
    settle()
    res.rss_hwm_reset = reset_hwm(target.pid)
    with procfs.PeakRss(target.pid) as meter:
        seconds = client.put_large(target.endpoint, key, s.rss_bytes, block)
    res.rss_upload_mibs = s.rss_bytes / MIB / seconds
    res.rss_before_mib = meter.before_kib / 1024
    res.rss_peak_mib = meter.peak_kib / 1024
    res.rss_hwm_mib = procfs.hwm_kib(target.pid) / 1024
    client.request(target.admin, "DELETE", key)


def guarded(name: str, res: TargetResults, what: str, fn, *args) -> None:
    """Run one measurement; a failure is recorded for the report instead of ending the run."""
    log(f"{name}: {what}")
    try:
        fn(*args)
    except (client.BenchError, OSError, RuntimeError, http.client.HTTPException) as exc:
        res.errors.append(f"{what}: {exc}")
        log(f"{name}: {what} FAILED: {exc}")


@contextmanager
def py_spy(target: Target, out_dir: Path, fmt: str, extra: list[str]) -> Iterator[None]:
    """Record a profile of ``target`` for as long as the block runs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    svg = out_dir / f"{target.name}.{PY_SPY_SUFFIX[fmt]}"
    args = ["py-spy", "record", "--pid", str(target.pid), "--output", str(svg)]
    # Not stopping the process to sample it disturbs it least, but native frames need a stop.
    args += ["--format", fmt, *extra] + ([] if "--native" in extra else ["--nonblocking"])
    exe = Path(sys.executable).with_name("py-spy")
    args[0] = str(exe) if exe.exists() else "py-spy"
    log_path = out_dir / f"{target.name}.py-spy.log"
    with log_path.open("wb") as spy_log:
        proc = subprocess.Popen(args, stdout=spy_log, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            proc.wait(timeout=60)
    log(f"{target.name}: profile in {svg} (py-spy said: {log_path})")


def run_all(s: Settings, work: Path) -> tuple[dict[str, TargetResults], list[str]]:
    results = {name: TargetResults() for name in s.targets}
    order: list[Target] = []
    block = client.make_block()
    tune_versitygw(s.tune_versitygw)
    with ExitStack() as stack:
        for name in s.targets:
            log(f"starting {name}")
            try:
                target = stack.enter_context(STARTERS[name](work, s.write_mode))
                order.append(target)
                if s.py_spy and name.startswith("minimo"):
                    stack.enter_context(py_spy(target, s.py_spy, s.py_spy_format, s.py_spy_args))
            except (client.BenchError, OSError, RuntimeError) as exc:
                results[name].errors.append(f"start: {exc}".splitlines()[0])
                log(f"{name}: could not start: {exc}\n{log_tail(work, name)}")
        # Repeats go round the targets so background noise spreads over all of them alike.
        for rep in range(s.repeats if "large" in s.phases else 0):
            for t in order:
                what = f"large PUT/GET {s.large_bytes // MIB} MiB, run {rep + 1}"
                guarded(
                    t.name, results[t.name], what, measure_large, t, results[t.name], s, rep, block
                )
        for rep in range(s.repeats if "small" in s.phases else 0):
            for t in order:
                what = f"small ops, run {rep + 1}"
                guarded(t.name, results[t.name], what, measure_small, t, results[t.name], s, rep)
        for t in order if "rss" in s.phases else ():
            what = f"peak RSS during a {s.rss_bytes // MIB} MiB PUT"
            guarded(t.name, results[t.name], what, measure_rss, t, results[t.name], s, block)
        log("stopping servers")
    return results, [t.name for t in order]


# ---------------------------------------------------------------------------------------------
# report


def parse_args(argv: list[str] | None) -> Settings:
    p = argparse.ArgumentParser(description="Benchmark minimo against versitygw on loopback.")
    p.add_argument("--quick", action="store_true", help="256 MiB / 1 GiB sizes, 1 repeat")
    p.add_argument("--large-mib", type=int, help="large object size (default 1024, quick 256)")
    p.add_argument("--rss-mib", type=int, help="RSS upload size (default 5120, quick 1024)")
    p.add_argument("--small-count", type=int, help="4 KiB ops per run (default 3000, quick 1000)")
    p.add_argument("--small-seconds", type=float, default=10.0, help="time cap per small run")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--repeats", type=int, help="runs per measurement (default 3, quick 1)")
    p.add_argument(
        "--targets",
        default=",".join(ALL_TARGETS),
        help=f"comma-separated subset of {','.join(ALL_TARGETS)}",
    )
    p.add_argument(
        "--tmp-dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="where data directories go (on disk, not tmpfs)",
    )
    p.add_argument("--phases", default=",".join(PHASES), help="subset of large,small,rss")
    p.add_argument("--py-spy", type=Path, metavar="DIR", help="flame graphs of minimo here")
    p.add_argument(
        "--py-spy-format",
        choices=sorted(PY_SPY_SUFFIX),
        default="flamegraph",
        help="raw = collapsed stacks, one per line",
    )
    p.add_argument("--py-spy-args", default="", help='more py-spy options, e.g. "--native"')
    p.add_argument(
        "--versitygw-stock",
        action="store_true",
        help="run versitygw as tests do: Connection: close on every answer, request logging",
    )
    p.add_argument(
        "--writes",
        choices=WRITE_MODES,
        default="session",
        help="minimo writes through an open session's key (default) or into a scratch area",
    )
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "latest.md")
    a = p.parse_args(argv)
    targets = [t for t in a.targets.split(",") if t]
    unknown = set(targets) - set(ALL_TARGETS)
    if unknown:
        p.error(f"unknown targets: {', '.join(sorted(unknown))}")
    phases = [x for x in a.phases.split(",") if x]
    if set(phases) - set(PHASES):
        p.error(f"unknown phases: {', '.join(sorted(set(phases) - set(PHASES)))}")
    if filesystem_type(a.tmp_dir) == "tmpfs":
        p.error(f"{a.tmp_dir} is tmpfs: give --tmp-dir on a disk so writes are real")
    quick = a.quick
    return Settings(
        large_bytes=(a.large_mib or (256 if quick else 1024)) * MIB,
        rss_bytes=(a.rss_mib or (1024 if quick else 5120)) * MIB,
        small_count=a.small_count or (1000 if quick else 3000),
        small_seconds=a.small_seconds,
        small_size=4096,
        concurrency=a.concurrency,
        repeats=a.repeats or (1 if quick else 3),
        targets=targets,
        tmp_dir=a.tmp_dir,
        out=a.out,
        phases=phases,
        py_spy=a.py_spy,
        py_spy_format=a.py_spy_format,
        py_spy_args=shlex.split(a.py_spy_args),
        tune_versitygw=not a.versitygw_stock,
        write_mode=a.writes,
    )


def _terminate(signum: int, frame: object) -> None:
    # `timeout` and job control send SIGTERM, which would end Python without running `finally`
    # blocks: servers would be orphaned and gigabytes of objects left behind.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    s = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = datetime.now(UTC)
    clock = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="minimo-bench-", dir=s.tmp_dir))
    log(f"working in {work}")
    load_before = os.getloadavg()[0]
    try:
        results, _ = run_all(s, work)
    finally:
        # Gigabytes of objects: never leave them behind, even after Ctrl-C.
        shutil.rmtree(work, ignore_errors=True)
    load = f"{load_before:.2f} / {os.getloadavg()[0]:.2f}"
    report = render(results, s, started, time.monotonic() - clock, load)
    print(report)
    s.out.parent.mkdir(parents=True, exist_ok=True)
    s.out.write_text(report)
    raw = {
        "settings": {k: str(v) for k, v in asdict(s).items()},
        "results": {n: asdict(r) for n, r in results.items()},
    }
    s.out.with_suffix(".json").write_text(json.dumps(raw, indent=2) + "\n")
    log(f"wrote {s.out}")
    return 1 if any(r.errors for r in results.values()) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted: servers stopped, temporary data removed")
        sys.exit(130)
