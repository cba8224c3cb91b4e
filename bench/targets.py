"""Start the four servers the benchmark compares, side by side on loopback.

* ``minimo-local``: ``minimo serve`` on its embedded default (objects in a local directory).
* ``minimo-s3``: ``minimo serve`` with the ``s3`` backend in front of its own versitygw.
* ``versitygw``: versitygw's posix backend, talked to directly (the reference).
* ``bare``: ``bench/bare_aiohttp.py``, which reads and discards (the Python ceiling).
* ``minimo-seaweedfs``: ``minimo serve`` with the ``s3`` backend in front of its own SeaweedFS
  cluster (master, two volume servers, filer, S3 gateway: separate processes).
* ``seaweedfs``: such a cluster, talked to directly through its S3 gateway. Its CPU figures
  are the S3 gateway process's only (the volume servers and filer are not its children).

The servers come from ``tests.servers`` so the benchmark starts them exactly as the tests do,
except for two versitygw settings (see :func:`tune_versitygw`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.client import BenchError, Endpoint, put_large, request
from bench.model import BUCKET, KEY_PREFIX
from tests.servers import (
    Gateway,
    free_port,
    run_gateway,
    run_seaweedfs,
    run_versitygw,
    stop,
    wait_for_port,
)

BENCH_DIR = Path(__file__).resolve().parent
ALL_TARGETS = (
    "minimo-local",
    "minimo-s3",
    "versitygw",
    "bare",
    "minimo-seaweedfs",
    "seaweedfs",
)


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
    #: the credentials the measured requests use (for minimo: a session key, see WRITE_MODES)
    endpoint: Endpoint
    #: the process whose memory is measured (for minimo-s3: the gateway, not the upstream)
    pid: int
    #: credentials for clean-up (deletes), which a session key may not be allowed
    admin: Endpoint


#: How writes reach minimo. ``session`` is the product's normal path (docs/design.md, decision
#: 7): a policy rule that needs a form, one open session, and every request signed with its
#: session key.
#: ``scratch`` is a ``require_session = false`` rule and the admin's own key: the S3 front door
#: without session bookkeeping, to show what sessions cost.
WRITE_MODES = ("session", "scratch")

_FORM = {
    "name": "bench",
    "title": "Benchmark run",
    "fields": [{"name": "run", "type": "text", "required": True}],
}
_RULES = {
    "session": 'forms = ["bench"]\n',
    "scratch": "require_session = false\n",
}


def _policy(bucket: str, mode: str) -> str:
    return (
        f'[[rule]]\nbucket = "{bucket}"\nprefix = ""\n{_RULES[mode]}'
        'overwrite = "allow"\ndelete = "admin"\n'
    )


def _prepare_minimo(gw: Gateway, work: Path, mode: str) -> tuple[Endpoint, Endpoint]:
    """Create the bucket and put the write mode's policy (and session) in force.

    Returns the endpoints for measured requests and for clean-up. Waits until a measured write
    is accepted, since running servers pick up a new policy within a couple of seconds.
    """
    admin = Endpoint(gw.endpoint, gw.access_key, gw.secret_key)
    request(admin, "PUT", f"/{BUCKET}")
    policy_file = work / "policy.toml"
    policy_file.write_text(_policy(BUCKET, mode))
    if mode == "session":
        form_file = work / "form.json"
        form_file.write_text(json.dumps(_FORM))
        _cli(gw, "form", "create", "--file", str(form_file))
    _cli(gw, "policy", "set", str(policy_file))
    writer = admin
    if mode == "session":
        opened = _cli(
            gw, "session", "open", "--form", "bench", "--bucket", BUCKET, "--prefix", KEY_PREFIX,
            "--set", "run=benchmark", "--json",
        )  # fmt: skip
        session = json.loads(opened)
        writer = Endpoint(gw.endpoint, session["access_key"], session["secret_key"])
    _wait_writable(writer, admin)
    return writer, admin


def _cli(gw: Gateway, *args: str) -> str:
    """Run ``minimo ARGS`` on the gateway's stores; its own message explains any failure."""
    done = gw.cli(*args, check=False)
    if done.returncode != 0:
        raise BenchError(f"minimo {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def _wait_writable(writer: Endpoint, admin: Endpoint, seconds: float = 15.0) -> None:
    probe = f"/{BUCKET}/{KEY_PREFIX}probe"
    deadline = time.monotonic() + seconds
    while True:
        try:
            put_large(writer, probe, 4, b"beep")
            break
        except BenchError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)
    request(admin, "DELETE", probe)


@contextmanager
def _minimo_local(work: Path, mode: str) -> Iterator[Target]:
    with run_gateway(work / "minimo-local") as gw:
        writer, admin = _prepare_minimo(gw, work / "minimo-local", mode)
        yield Target("minimo-local", writer, gw.proc.pid, admin)


@contextmanager
def _minimo_s3(work: Path, mode: str) -> Iterator[Target]:
    with (
        run_versitygw(work / "minimo-s3-upstream" / "root") as upstream,
        run_gateway(work / "minimo-s3", upstream=upstream) as gw,
    ):
        writer, admin = _prepare_minimo(gw, work / "minimo-s3", mode)
        yield Target("minimo-s3", writer, gw.proc.pid, admin)


@contextmanager
def _versitygw(work: Path, mode: str) -> Iterator[Target]:
    with run_versitygw(work / "versitygw" / "root") as server:
        endpoint = Endpoint(server.endpoint, server.access_key, server.secret_key)
        request(endpoint, "PUT", f"/{BUCKET}")
        # run_versitygw hides the process; find it as the one listening on the port.
        yield Target("versitygw", endpoint, _listener_pid(endpoint.port), endpoint)


@contextmanager
def _minimo_seaweedfs(work: Path, mode: str) -> Iterator[Target]:
    with (
        run_seaweedfs(work / "minimo-seaweedfs-upstream") as upstream,
        run_gateway(work / "minimo-seaweedfs", upstream=upstream) as gw,
    ):
        writer, admin = _prepare_minimo(gw, work / "minimo-seaweedfs", mode)
        yield Target("minimo-seaweedfs", writer, gw.proc.pid, admin)


@contextmanager
def _seaweedfs(work: Path, mode: str) -> Iterator[Target]:
    with run_seaweedfs(work / "seaweedfs") as server:
        endpoint = Endpoint(server.endpoint, server.access_key, server.secret_key)
        request(endpoint, "PUT", f"/{BUCKET}")
        yield Target("seaweedfs", endpoint, _listener_pid(endpoint.port), endpoint)


@contextmanager
def _bare(work: Path, mode: str) -> Iterator[Target]:
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
            endpoint = Endpoint(f"http://127.0.0.1:{port}", "bench", "bench")
            request(endpoint, "PUT", f"/{BUCKET}")
            yield Target("bare", endpoint, proc.pid, endpoint)
        finally:
            stop(proc)


#: name -> context manager starting it with (work dir, write mode), bucket created and writable
STARTERS: dict[str, Callable[[Path, str], AbstractContextManager[Target]]] = {
    "minimo-local": _minimo_local,
    "minimo-s3": _minimo_s3,
    "versitygw": _versitygw,
    "bare": _bare,
    "minimo-seaweedfs": _minimo_seaweedfs,
    "seaweedfs": _seaweedfs,
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
