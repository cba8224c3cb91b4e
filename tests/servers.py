"""Start the real servers tests talk to: versitygw, FerretDB and minimo itself.

Every helper here raises (never skips) when a server cannot be started: CI must fail loudly
when a dependency is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VERSITYGW_ACCESS = "vgwadmin"
VERSITYGW_SECRET = "vgwadmin-secret-for-tests-only"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def go_binary(name: str) -> str:
    """Find a Go-installed server binary (``go install`` puts them in GOBIN or GOPATH/bin)."""
    candidates = []
    if os.environ.get("GOBIN"):
        candidates.append(Path(os.environ["GOBIN"]) / name)
    gopath = os.environ.get("GOPATH") or str(Path.home() / "go")
    candidates.append(Path(gopath) / "bin" / name)
    found = shutil.which(name)
    if found:
        candidates.insert(0, Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    raise RuntimeError(
        f"{name} is not installed (looked in {', '.join(map(str, candidates))}); "
        "scripts/test installs it with go install"
    )


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Versitygw:
    endpoint: str
    access_key: str
    secret_key: str
    root: Path


@contextmanager
def run_versitygw(root: Path) -> Iterator[Versitygw]:
    """versitygw's posix backend on a fresh directory (xattrs are available on ext4 here)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(root.parent / f"versitygw-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            go_binary("versitygw"),
            "--access",
            VERSITYGW_ACCESS,
            "--secret",
            VERSITYGW_SECRET,
            "--port",
            f"127.0.0.1:{port}",
            "posix",
            str(root),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc, "versitygw")
        yield Versitygw(f"http://127.0.0.1:{port}", VERSITYGW_ACCESS, VERSITYGW_SECRET, root)
    finally:
        stop(proc)
        log.close()


def ferretdb_command(root: Path, data: Path, port: int) -> list[str]:
    """FerretDB on SQLite files in ``data``, listening on 127.0.0.1:``port``."""
    return [
        go_binary("ferretdb"),
        "--handler=sqlite",
        f"--sqlite-url=file:{data}/",
        f"--listen-addr=127.0.0.1:{port}",
        f"--state-dir={root}",
        # the default debug address is a fixed port: two servers (xdist workers) would clash
        "--debug-addr=-",
        "--telemetry=disable",
        "--log-level=warn",
    ]


@contextmanager
def run_ferretdb(root: Path) -> Iterator[str]:
    """FerretDB (MongoDB wire protocol) on SQLite files under ``root``; yields its URI.

    Tests give every store its own database name, so one server serves a whole session.
    """
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    data.mkdir(exist_ok=True)
    port = free_port()
    log = open(root / f"ferretdb-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ferretdb_command(root, data, port),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
    )
    try:
        try:
            wait_for_port(port, proc, "ferretdb")
        except RuntimeError as exc:
            log.flush()
            tail = (root / f"ferretdb-{port}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{exc}\n{tail}") from None
        yield f"mongodb://127.0.0.1:{port}/"
    finally:
        stop(proc)
        log.close()


#: a policy under which everything is a scratch area: admins and uploaders write without a
#: session, overwrite, and admins delete (what the S3 protocol tests of issue 2 need)
SCRATCH_POLICY = """\
[[rule]]
bucket = "*"
prefix = ""
require_session = false
overwrite = "allow"
delete = "admin"
"""


def mongo_uri(server: str, database: str) -> str:
    """``server`` (a URI from run_ferretdb) naming ``database`` in its path."""
    return server.rstrip("/") + "/" + database


@dataclass
class Gateway:
    """A running ``minimo serve`` process and the admin credentials it printed."""

    endpoint: str
    data_dir: Path
    access_key: str
    secret_key: str
    admin_password: str
    proc: subprocess.Popen
    ca_file: Path | None = None
    #: set when the gateway keeps its metadata in MongoDB (FerretDB)
    mongo_uri: str | None = None

    def cli(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess:
        """Run ``minimo ARGS --data-dir [--mongo-uri]`` against this gateway's stores."""
        stores = ["--data-dir", str(self.data_dir)]
        if self.mongo_uri:
            stores += ["--mongo-uri", self.mongo_uri]
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args, *stores],
            input=input,
            capture_output=True,
            text=True,
            check=check,
            cwd=REPO,
        )


def read_initial_admin(data_dir: Path) -> dict[str, str]:
    text = (data_dir / "initial-admin.txt").read_text()
    values = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            values[k.strip()] = v.strip()
    return values


@contextmanager
def run_gateway(
    data_dir: Path,
    *,
    upstream: Versitygw | None = None,
    tls: bool = False,
    extra_args: list[str] | None = None,
    mongo_uri: str | None = None,
    policy: str | None = SCRATCH_POLICY,
    workers: int = 1,
) -> Iterator[Gateway]:
    """One ``minimo serve`` process (``workers`` > 1: a supervisor and its workers on one port;
    ``proc`` is the supervisor).

    ``policy`` (TOML text) is written to the data dir and put in force with ``--policy``.

    The default makes everything a scratch area, so tests about the S3 protocol (or serving)
    write with the admin key as before enforcement; None starts without ``--policy`` (no rules:
    every write refused). A ``--policy`` in ``extra_args`` comes later and wins.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "gateway.cli",
        "serve",
        "--data-dir",
        str(data_dir),
        "--listen",
        f"127.0.0.1:{port}",
        # one process unless a test asks for more (the default is one worker per CPU)
        "--workers",
        str(workers),
    ]
    if upstream is not None:
        args += [
            "--s3-endpoint",
            upstream.endpoint,
            "--s3-access-key",
            upstream.access_key,
            "--s3-secret-key",
            upstream.secret_key,
        ]
    if tls:
        args += ["--tls", "--certs-dir", str(data_dir / "certs")]
    if mongo_uri:
        args += ["--mongo-uri", mongo_uri]
    if policy is not None:
        policy_file = data_dir / "policy.toml"
        policy_file.write_text(policy)
        args += ["--policy", str(policy_file)]
    args += extra_args or []
    log = open(data_dir / f"gateway-{port}.log", "wb")  # noqa: SIM115 - closed below
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMO_")}
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    scheme = "https" if tls else "http"
    endpoint = f"{scheme}://127.0.0.1:{port}"
    try:
        wait_for_port(port, proc, "minimo serve")
        _wait_healthy(endpoint, data_dir, proc)
        creds = read_initial_admin(data_dir)
        yield Gateway(
            endpoint=endpoint,
            data_dir=data_dir,
            access_key=creds["access_key"],
            secret_key=creds["secret_key"],
            admin_password=creds["password"],
            proc=proc,
            ca_file=(data_dir / "certs" / "cert.pem") if tls else None,
            mongo_uri=mongo_uri,
        )
    finally:
        stop(proc)
        log.close()


def _wait_healthy(endpoint: str, data_dir: Path, proc: subprocess.Popen) -> None:
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + 30
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{endpoint}/_minimo/health", context=ctx, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    logs = sorted(data_dir.glob("gateway-*.log"))
    tail = logs[-1].read_text(errors="replace")[-3000:] if logs else ""
    raise RuntimeError(f"minimo did not become healthy at {endpoint}: {last}\n{tail}")
