"""Start the four servers the benchmark compares, side by side on loopback.

* ``minimo-local``: ``minimo serve`` on its embedded default (objects in a local directory).
* ``minimo-s3``: ``minimo serve`` with the ``s3`` backend in front of its own versitygw.
* ``versitygw``: versitygw's posix backend, talked to directly (the reference).
* ``bare``: ``bench/bare_aiohttp.py``, which reads and discards (the Python ceiling).

The servers come from ``tests.servers`` so the benchmark starts them exactly as the tests do,
except for two versitygw settings (see :func:`tune_versitygw`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.client import Endpoint
from tests.servers import free_port, run_gateway, run_versitygw, stop, wait_for_port

BENCH_DIR = Path(__file__).resolve().parent
ALL_TARGETS = ("minimo-local", "minimo-s3", "versitygw", "bare")


#: versitygw's own switches, read from its environment (it inherits ours): by default it answers
#: every request with ``Connection: close`` and logs every request to stdout. A reference run
#: like that would be slowed by per-request TCP handshakes and log writes, and so would minimo-s3
#: behind it; any real deployment turns both off.
VERSITYGW_TUNING = {"VGW_KEEP_ALIVE": "true", "VGW_QUIET": "true"}


def tune_versitygw(enabled: bool) -> None:
    """Apply (or, for a run with versitygw's stock settings, remove) :data:`VERSITYGW_TUNING`."""
    for name, value in VERSITYGW_TUNING.items():
        if enabled:
            os.environ[name] = value
        else:
            os.environ.pop(name, None)


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    endpoint: Endpoint
    #: the process whose memory is measured (for minimo-s3: the gateway, not the upstream)
    pid: int


@contextmanager
def _minimo_local(work: Path) -> Iterator[Target]:
    with run_gateway(work / "minimo-local") as gw:
        yield Target(
            "minimo-local", Endpoint(gw.endpoint, gw.access_key, gw.secret_key), gw.proc.pid
        )


@contextmanager
def _minimo_s3(work: Path) -> Iterator[Target]:
    with (
        run_versitygw(work / "minimo-s3-upstream" / "root") as upstream,
        run_gateway(work / "minimo-s3", upstream=upstream) as gw,
    ):
        yield Target("minimo-s3", Endpoint(gw.endpoint, gw.access_key, gw.secret_key), gw.proc.pid)


@contextmanager
def _versitygw(work: Path) -> Iterator[Target]:
    with run_versitygw(work / "versitygw" / "root") as server:
        # run_versitygw hides the process; find it as the one listening on the port.
        yield Target(
            "versitygw",
            Endpoint(server.endpoint, server.access_key, server.secret_key),
            _listener_pid(Endpoint(server.endpoint, "", "").port),
        )


@contextmanager
def _bare(work: Path) -> Iterator[Target]:
    port = free_port()
    log_path = work / f"bare-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "bare_aiohttp.py"), "--listen", f"127.0.0.1:{port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port, proc, "bare aiohttp server")
            yield Target("bare", Endpoint(f"http://127.0.0.1:{port}", "bench", "bench"), proc.pid)
        finally:
            stop(proc)


STARTERS: dict[str, Callable[[Path], AbstractContextManager[Target]]] = {
    "minimo-local": _minimo_local,
    "minimo-s3": _minimo_s3,
    "versitygw": _versitygw,
    "bare": _bare,
}


def log_tail(work: Path, name: str, chars: int = 1500) -> str:
    """The end of the newest log a target's servers wrote, to explain why it failed."""
    logs = [*work.glob(f"{name}*.log"), *work.glob(f"{name}*/**/*.log")]
    if not logs:
        return ""
    newest = max(logs, key=lambda p: p.stat().st_mtime)
    return newest.read_text(errors="replace")[-chars:]


def _listener_pid(port: int) -> int:
    """The pid of the process holding a listening TCP socket on ``port`` (Linux /proc)."""
    inode = _listening_inode(port)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if fd.readlink().as_posix() == f"socket:[{inode}]":
                    return int(proc.name)
        except OSError:
            continue  # gone, or not ours to look at
    raise RuntimeError(f"no process found listening on port {port}")


def _listening_inode(port: int) -> str:
    # Servers here bind 127.0.0.1 only, so the IPv4 table is enough; state 0A is LISTEN.
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].upper() == local and fields[3] == "0A":
            return fields[9]
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")
