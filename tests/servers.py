"""Start the real servers tests talk to: versitygw, FerretDB and minimo itself.

Every helper here raises (never skips) when a server cannot be started: CI must fail loudly
when a dependency is missing.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VERSITYGW_ACCESS = "vgwadmin"
VERSITYGW_SECRET = "vgwadmin-secret-for-tests-only"


#: where test servers listen: below the kernel's ephemeral range (32768-60999 by default), from
#: which every outgoing connection takes its local port. A port picked there is free only until
#: some client connects somewhere; one picked below it stays free until a server binds it.
_PORTS_BELOW = 32768
_PORTS_FROM = 20000


def _port_range() -> range:
    """This test process's share of the ports (pytest-xdist workers get disjoint shares, so two
    workers never pick the same port)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    share = (_PORTS_BELOW - _PORTS_FROM) // count
    start = _PORTS_FROM + share * min(index, count - 1)
    return range(start, start + share)


#: this process's ports in the order they are handed out (from a point set by the process id,
#: so two test runs at once start apart), made on the first call
_port_cycle: Iterator[int] | None = None


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on, never handed out twice by this process while
    others are left (a server that has just stopped may leave its port in TIME_WAIT)."""
    global _port_cycle
    ports = _port_range()
    if _port_cycle is None:
        first = os.getpid() % len(ports)
        _port_cycle = itertools.cycle([*ports[first:], *ports[:first]])
    for port in itertools.islice(_port_cycle, len(ports)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken (by a server of another test run, say): the next one
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


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


SEAWEED_ACCESS = "weedadmin"
SEAWEED_SECRET = "weedadmin-secret-for-tests-only"


@contextmanager
def run_seaweedfs(root: Path) -> Iterator[Versitygw]:
    """A SeaweedFS cluster of separate processes on 127.0.0.1: one master, two volume servers,
    a filer and the S3 gateway in front of it (what a lab runs across machines, here on one).
    Yields its S3 endpoint and credentials (the same shape as versitygw's; ``root`` holds the
    processes' data, not the objects' files, which live in the volumes)."""
    root.mkdir(parents=True, exist_ok=True)
    weed = go_binary("weed")
    # every gRPC port given: the default (HTTP port + 10000) may be taken or out of range
    master, master_grpc = free_port(), free_port()
    masters = f"127.0.0.1:{master}.{master_grpc}"
    identities = root / "identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "admin",
                        "credentials": [{"accessKey": SEAWEED_ACCESS, "secretKey": SEAWEED_SECRET}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    local = ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    volumes = [(free_port(), free_port()) for _ in range(2)]
    filer, filer_grpc = free_port(), free_port()
    s3_port, s3_grpc = free_port(), free_port()
    parts: list[tuple[str, list[str], int]] = [
        (
            "master",
            ["master", *local, f"-port={master}", f"-port.grpc={master_grpc}",
             f"-mdir={root / 'master'}", "-volumeSizeLimitMB=64", "-telemetry=false"],
            master,
        ),
        *(
            (
                f"volume{i}",
                ["volume", *local, f"-port={port}", f"-port.grpc={grpc}",
                 f"-dir={root / f'volume{i}'}", "-max=0", f"-master={masters}"],
                port,
            )
            for i, (port, grpc) in enumerate(volumes)
        ),
        (
            "filer",
            ["filer", *local, f"-port={filer}", f"-port.grpc={filer_grpc}",
             f"-master={masters}", f"-defaultStoreDir={root / 'filer'}"],
            filer,
        ),
        (
            "s3",
            ["s3", *local, f"-port={s3_port}", f"-port.grpc={s3_grpc}",
             f"-filer=127.0.0.1:{filer}.{filer_grpc}", f"-config={identities}"],
            s3_port,
        ),
    ]  # fmt: skip
    procs: list[tuple[subprocess.Popen, Any]] = []
    try:
        for name, args, port in parts:
            for arg in args:
                if arg.startswith(("-mdir=", "-dir=", "-defaultStoreDir=")):
                    Path(arg.split("=", 1)[1]).mkdir(parents=True, exist_ok=True)
            log = open(root / f"weed-{name}.log", "wb")  # noqa: SIM115 - closed below
            proc = subprocess.Popen([weed, *args], stdout=log, stderr=subprocess.STDOUT)
            procs.append((proc, log))
            wait_for_port(port, proc, f"weed {name}", timeout=60)
        endpoint = f"http://127.0.0.1:{s3_port}"
        _wait_writable(endpoint, root)
        yield Versitygw(endpoint, SEAWEED_ACCESS, SEAWEED_SECRET, root)
    finally:
        for proc, log in reversed(procs):
            stop(proc)
            log.close()


def _wait_writable(endpoint: str, root: Path, timeout: float = 120.0) -> None:
    """Until the cluster takes a write: the volume servers join the master a moment after
    their ports open, and the S3 gateway answers 500 until a volume can be grown."""
    import boto3
    from botocore.config import Config as BotoConfig

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=SEAWEED_ACCESS,
        aws_secret_access_key=SEAWEED_SECRET,
        region_name="us-east-1",
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            # made already by an earlier try whose write then failed: fine
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket="minimo-probe")
            client.put_object(Bucket="minimo-probe", Key="probe", Body=b"probe")
            client.delete_object(Bucket="minimo-probe", Key="probe")
            client.delete_bucket(Bucket="minimo-probe")
            return
        except Exception as exc:  # not ready yet, whatever the client says
            last = exc
            time.sleep(0.5)
    raise RuntimeError(f"the SeaweedFS cluster in {root} took no write within {timeout} s: {last}")


def ferretdb_command(
    root: Path, data: Path, port: int, postgresql_url: str | None = None, sqlite_query: str = ""
) -> list[str]:
    """FerretDB on SQLite files in ``data`` (or on the PostgreSQL database at
    ``postgresql_url``), listening on 127.0.0.1:``port``. ``sqlite_query``: the SQLite URL's
    query (e.g. ``_pragma=busy_timeout(100)``)."""
    if postgresql_url is None:
        query = f"?{sqlite_query}" if sqlite_query else ""
        handler = ["--handler=sqlite", f"--sqlite-url=file:{data}/{query}"]
    else:
        handler = ["--handler=postgresql", f"--postgresql-url={postgresql_url}"]
    return [
        go_binary("ferretdb"),
        *handler,
        f"--listen-addr=127.0.0.1:{port}",
        f"--state-dir={root}",
        # the default debug address is a fixed port: two servers (xdist workers) would clash
        "--debug-addr=-",
        "--telemetry=disable",
        "--log-level=warn",
    ]


@contextmanager
def run_ferretdb(
    root: Path, postgresql_url: str | None = None, sqlite_query: str = ""
) -> Iterator[str]:
    """FerretDB (MongoDB wire protocol) on SQLite files under ``root`` (or, given
    ``postgresql_url``, on that PostgreSQL database: FerretDB's handler closer to a real
    MongoDB, which pushes filters and sorts down); yields its URI.

    Tests give every store its own database name, so one server serves a whole session.
    """
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    data.mkdir(exist_ok=True)
    port = free_port()
    log = open(root / f"ferretdb-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ferretdb_command(root, data, port, postgresql_url, sqlite_query),
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


@contextmanager
def run_postgres(root: Path) -> Iterator[str]:
    """PostgreSQL (Debian's, ``apt-get install postgresql``) on a fresh cluster under ``root``,
    listening on 127.0.0.1 only; yields a URL of its database ``ferretdb`` for FerretDB's
    postgresql handler. PostgreSQL refuses to run as root: as root it runs as the ``postgres``
    user the Debian package creates."""
    bindir = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root.mkdir(parents=True, exist_ok=True)
    # the cluster lives where the postgres user can reach it (pytest's directories are root's,
    # mode 0700); the log stays under root
    home = Path(tempfile.mkdtemp(prefix="minimo-postgres-"))
    if as_user:
        shutil.chown(home, "postgres")
    data = home / "pgdata"
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "ferret", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = open(root / f"postgres-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*as_user, str(bindir / "postgres"), "-D", str(data), "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-k", str(home)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port, proc, "postgres")
        created = None
        for _ in range(50):  # accepting connections a moment after the port opens
            created = subprocess.run(
                [*as_user, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                 "-U", "ferret", "ferretdb"],
                capture_output=True,
                text=True,
            )  # fmt: skip
            if created.returncode == 0:
                break
            time.sleep(0.2)
        if created is None or created.returncode != 0:
            raise RuntimeError(f"createdb failed: {created.stderr if created else ''}")
        yield f"postgres://ferret@127.0.0.1:{port}/ferretdb"
    finally:
        stop(proc)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


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
