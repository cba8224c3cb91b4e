"""The default bundle (compose.yaml) started for real, without a Docker engine.

Each container's program runs here as a process, with the configuration compose.yaml gives it:

- ``init``: ``deploy/init_secrets.py``, with no ``.env`` (every secret generated);
- ``seaweedfs``: ``weed server -s3 -s3.config=<init's s3.json>`` (the image's command);
- ``mongo``: FerretDB speaking MongoDB's protocol, with its root user created from init's
  ``mongo/root_username`` and ``mongo/root_password`` files (what the mongo image does with
  ``MONGO_INITDB_ROOT_*_FILE``) and passwords checked;
- ``minimo``: ``deploy/entrypoint.sh`` running ``minimo serve`` with the ``environment`` and
  ``command`` of compose.yaml's ``minimo`` service (container paths mapped to temporary
  directories, service names to 127.0.0.1 ports), probed by ``deploy/healthcheck.py``.

The tests then do what an admin does after ``docker compose up -d``: read the printed
credentials, trust the generated certificate, sign in, restart, back up and restore.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config as BotoConfig

from tests.servers import free_port, go_binary, stop, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
INIT = ROOT / "deploy" / "init_secrets.py"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"
PUBLIC_HOST = "data.lab.example.org"
#: what compose.yaml's minimo service may run under the everything-is-scratch policy of the
#: tests: writing a first object needs no form or session here
SCRATCH_POLICY = """\
[[rule]]
bucket = "*"
prefix = ""
require_session = false
overwrite = "allow"
delete = "admin"
"""


def compose_service(name: str) -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"][name]


def interpolate(text: str, env: dict[str, str]) -> str:
    """compose's ``${NAME:-default}`` with ``env`` as the (empty) .env."""
    return re.sub(r"\$\{([A-Z0-9_]+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), text)


@dataclass
class Volumes:
    """The bundle's named volumes, as directories."""

    root: Path
    secrets: Path = field(init=False)
    seaweedfs: Path = field(init=False)
    mongo: Path = field(init=False)
    data: Path = field(init=False)
    certs: Path = field(init=False)

    def __post_init__(self) -> None:
        for name in ("secrets", "seaweedfs", "mongo", "data", "certs"):
            path = self.root / name
            path.mkdir(parents=True, exist_ok=True)
            setattr(self, name, path)

    def container_path(self, value: str) -> str:
        """A path inside a container, mapped to the directory of its volume."""
        for mount, path in (
            ("/secrets", self.secrets),
            ("/data", self.data),
            ("/certs", self.certs),
        ):
            if value == mount or value.startswith(mount + "/"):
                return str(path) + value[len(mount) :]
        return value


@dataclass
class Bundle:
    volumes: Volumes
    mongo_port: int
    s3_port: int
    gateway_port: int
    logs: Path
    #: MINIMO_PUBLIC_HOST in the (otherwise absent) .env
    public_host: str = PUBLIC_HOST

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.gateway_port}"

    @property
    def ca_file(self) -> Path:
        return self.volumes.certs / "cert.pem"

    def minimo_env(self) -> dict[str, str]:
        """compose.yaml's environment for minimo, paths and service names mapped here."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "TMPDIR": str(self.volumes.root),
        }
        for name, value in compose_service("minimo")["environment"].items():
            value = self.volumes.container_path(interpolate(str(value), {}))
            value = value.replace("http://seaweedfs:8333", f"http://127.0.0.1:{self.s3_port}")
            env[name] = value
        env["MINIMO_LISTEN"] = f"127.0.0.1:{self.gateway_port}"
        policy = self.volumes.root / "policy.toml"
        policy.write_text(SCRATCH_POLICY)
        env["MINIMO_POLICY"] = str(policy)
        return env

    def minimo_command(self) -> list[str]:
        """compose.yaml's command for minimo (no .env), run by this repository's Python."""
        command = [interpolate(str(part), {"MINIMO_PUBLIC_HOST": self.public_host}) for part in
                   compose_service("minimo")["command"]]  # fmt: skip
        assert command[:2] == ["minimo", "serve"]
        listen = command.index("--listen") + 1
        command[listen] = f"127.0.0.1:{self.gateway_port}"
        return [sys.executable, "-m", "gateway.cli", *command[1:]]

    def run_in_gateway(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``docker compose exec minimo minimo-entrypoint minimo ARGS``: a command with the
        gateway's environment, its secrets read from init's files by the entrypoint."""
        return subprocess.run(
            ["bash", str(ENTRYPOINT), sys.executable, "-m", "gateway.cli", *args],
            env=self.minimo_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )


def run_init(volumes: Volumes, mongo_port: int, **dotenv: str) -> subprocess.CompletedProcess:
    fixed = {k: str(v) for k, v in compose_service("init")["environment"].items()}
    env = {
        "PATH": os.environ.get("PATH", ""),
        **{k: v for k, v in fixed.items() if "$" not in v},  # no .env: the ${...:-} are empty
        **dotenv,
    }
    env["MINIMO_INIT_SECRETS_DIR"] = str(volumes.secrets)
    env["MINIMO_INIT_MONGO_HOST"] = f"127.0.0.1:{mongo_port}"  # compose: the service `mongo`
    return subprocess.run(
        [sys.executable, str(INIT)], env=env, capture_output=True, text=True, timeout=60
    )


@contextmanager
def running(args: list[str], log: Path, port: int, what: str, **kwargs: object) -> Iterator[None]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kwargs)  # type: ignore[call-overload]
        try:
            try:
                wait_for_port(port, proc, what, timeout=120)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{log.read_text(errors='replace')[-3000:]}") from None
            yield
        finally:
            stop(proc)


@contextmanager
def mongo(bundle: Bundle) -> Iterator[None]:
    """FerretDB in the mongo service's place; its root user from init's files."""
    secrets_dir = bundle.volumes.secrets / "mongo"
    user = (secrets_dir / "root_username").read_text().strip()
    password = (secrets_dir / "root_password").read_text().strip()
    data = bundle.volumes.mongo / "data"
    data.mkdir(exist_ok=True)
    args = [
        go_binary("ferretdb"),
        "--handler=sqlite",
        f"--sqlite-url=file:{data}/",
        f"--listen-addr=127.0.0.1:{bundle.mongo_port}",
        f"--state-dir={bundle.volumes.mongo}",
        "--debug-addr=-",
        "--telemetry=disable",
        "--log-level=warn",
        "--test-enable-new-auth",  # check passwords, as MongoDB does
        "--setup-database=admin",
        f"--setup-username={user}",
        f"--setup-password={password}",
    ]
    with running(args, bundle.logs / "mongo.log", bundle.mongo_port, "ferretdb"):
        yield


@contextmanager
def seaweedfs(bundle: Bundle) -> Iterator[None]:
    """compose.yaml's ``weed`` command line as written, but for its paths (volumes mapped),
    its address (127.0.0.1) and its ports (all given: the test machine runs other clusters)."""
    service = compose_service("seaweedfs")
    assert service["entrypoint"] == ["/usr/bin/weed"]
    args = [go_binary("weed")]
    for part in map(str, service["command"]):
        if part.startswith("-dir="):
            part = f"-dir={bundle.volumes.seaweedfs}"
        elif part.startswith("-s3.config="):
            part = f"-s3.config={bundle.volumes.container_path(part.split('=', 1)[1])}"
        elif part.startswith("-ip.bind="):
            part = "-ip.bind=127.0.0.1"
        args.append(part)
    ports = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc"]
    ports += ["filer.port", "filer.port.grpc", "s3.port.grpc"]
    args += ["-ip=127.0.0.1", f"-s3.port={bundle.s3_port}"]
    args += [f"-{name}={free_port()}" for name in ports]
    with running(args, bundle.logs / "seaweedfs.log", bundle.s3_port, "weed server"):
        # compose waits for this service's healthcheck: GET /healthz on the S3 port
        wait_until(lambda: http_status(f"http://127.0.0.1:{bundle.s3_port}/healthz") == 200)
        yield


@contextmanager
def gateway(bundle: Bundle) -> Iterator[Path]:
    """minimo through its entrypoint; yields its log (its stdout, `docker compose logs`)."""
    log = bundle.logs / f"minimo-{time.monotonic_ns()}.log"
    args = ["bash", str(ENTRYPOINT), *bundle.minimo_command()]
    with running(args, log, bundle.gateway_port, "minimo", env=bundle.minimo_env(), cwd=ROOT):
        wait_until(
            lambda: healthcheck(bundle).returncode == 0, why=lambda: not_healthy(bundle, log)
        )
        yield log


def healthcheck(bundle: Bundle) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "MINIMO_LISTEN": f"0.0.0.0:{bundle.gateway_port}"}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, text=True, timeout=30
    )


def wait_until(
    ready: Callable[[], bool], timeout: float = 120.0, why: Callable[[], str] = lambda: ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.25)
    raise AssertionError(f"not ready within {timeout} s\n{why()}")


def not_healthy(bundle: Bundle, gateway_log: Path) -> str:
    """What a failed start leaves to read: the health check's last answer and each log's tail."""
    parts = [f"healthcheck: {healthcheck(bundle).stdout.strip()}"]
    for log in (gateway_log, bundle.logs / "seaweedfs.log", bundle.logs / "mongo.log"):
        if log.exists():
            parts.append(f"--- {log.name} (tail)\n{log.read_text(errors='replace')[-4000:]}")
    return "\n".join(parts)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def printed_admin(log: Path) -> dict[str, str]:
    text = log.read_text(errors="replace")
    block = text.split("created its first admin", 1)[1]
    return dict(re.findall(r"^\s+(user|password|access_key|secret_key):\s+(\S+)$", block, re.M))


def sign_in(bundle: Bundle, user: str, password: str) -> tuple[int, dict]:
    """POST /_minimo/api/v1/login over HTTPS, verifying the certificate with cert.pem."""
    context = ssl.create_default_context(cafile=str(bundle.ca_file))
    request = urllib.request.Request(
        f"{bundle.endpoint}/_minimo/api/v1/login",
        data=json.dumps({"user": user, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def handshake(bundle: Bundle, server_name: str) -> None:
    """A TLS handshake as a client reaching the gateway by ``server_name`` does it."""
    context = ssl.create_default_context(cafile=str(bundle.ca_file))
    address = ("127.0.0.1", bundle.gateway_port)
    with (
        socket.create_connection(address, timeout=30) as sock,
        context.wrap_socket(sock, server_hostname=server_name) as tls,
    ):
        assert tls.version()


def s3(bundle: Bundle, admin: dict[str, str]) -> Any:  # a boto3 S3 client
    return boto3.client(
        "s3",
        endpoint_url=bundle.endpoint,
        aws_access_key_id=admin["access_key"],
        aws_secret_access_key=admin["secret_key"],
        region_name="us-east-1",
        verify=str(bundle.ca_file),
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def digests(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    logs = tmp_path / "logs"
    logs.mkdir()
    return Bundle(Volumes(tmp_path / "volumes"), free_port(), free_port(), free_port(), logs)


# -- the tests -----------------------------------------------------------------------------------
def test_first_start_with_no_env_then_restart_with_the_same_secrets(bundle: Bundle) -> None:
    first = run_init(bundle.volumes, bundle.mongo_port)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(": generated") == 4, first.stdout  # and the user name's default
    assert "mongo_user: default" in first.stdout
    secrets_before = digests(bundle.volumes.secrets)
    for path in bundle.volumes.secrets.rglob("*"):
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"
    for value in (bundle.volumes.secrets / ".state").iterdir():
        if value.name == "mongo_user":
            continue  # "minimo", a name, not a secret
        assert value.read_text().strip() not in first.stdout + first.stderr, "printed a secret"

    with mongo(bundle), seaweedfs(bundle):
        with gateway(bundle) as log:
            admin = printed_admin(log)
            assert set(admin) == {"user", "password", "access_key", "secret_key"}
            kept = (bundle.volumes.data / "initial-admin.txt").read_text()
            assert admin["password"] in kept and admin["secret_key"] in kept
            assert (bundle.volumes.data / "initial-admin.txt").stat().st_mode & 0o777 == 0o600

            # the certificate names the service and the public host, and clients accept it
            handshake(bundle, "minimo")
            handshake(bundle, PUBLIC_HOST)
            with pytest.raises(ssl.SSLCertVerificationError):
                handshake(bundle, "elsewhere.example.org")

            status, body = sign_in(bundle, admin["user"], admin["password"])
            assert status == 200, body
            assert body["role"] == "admin"
            client = s3(bundle, admin)
            client.create_bucket(Bucket="first")
            client.put_object(Bucket="first", Key="hello.txt", Body=b"hello")
            assert client.get_object(Bucket="first", Key="hello.txt")["Body"].read() == b"hello"
        cert_before = bundle.ca_file.read_bytes()

        # `docker compose restart` (or down + up): init runs again and changes nothing
        again = run_init(bundle.volumes, bundle.mongo_port)
        assert again.returncode == 0, again.stderr
        assert again.stdout.count(": kept") == 5, again.stdout
        assert digests(bundle.volumes.secrets) == secrets_before
        with gateway(bundle) as log:
            assert "created its first admin" not in log.read_text()
            assert bundle.ca_file.read_bytes() == cert_before
            status, _ = sign_in(bundle, admin["user"], admin["password"])
            assert status == 200
            body = s3(bundle, admin).get_object(Bucket="first", Key="hello.txt")["Body"].read()
            assert body == b"hello"

        # a new MINIMO_PUBLIC_HOST in .env: the next start makes a certificate that names it
        bundle.public_host = "storage.lab.example.org"
        with gateway(bundle):
            assert bundle.ca_file.read_bytes() != cert_before
            handshake(bundle, "storage.lab.example.org")
            handshake(bundle, "minimo")


def test_a_dotenv_value_overrides_a_generated_one(bundle: Bundle) -> None:
    assert run_init(bundle.volumes, bundle.mongo_port).returncode == 0
    generated = (bundle.volumes.secrets / "minimo" / "mongo_uri").read_text()
    key = "4Gq196NQcHFMcctf10oJRWYWNHNJOK6FUOhjKjm5ApI="  # a test key, not a deployed one
    result = run_init(
        bundle.volumes,
        bundle.mongo_port,
        MONGO_INITDB_ROOT_PASSWORD="from-dotenv p@ss",
        MINIMO_SECRET_KEY=key,
    )
    assert result.returncode == 0, result.stderr
    assert ".env MONGO_INITDB_ROOT_PASSWORD" in result.stdout
    uri = (bundle.volumes.secrets / "minimo" / "mongo_uri").read_text().strip()
    assert uri != generated.strip()
    assert ":from-dotenv%20p%40ss@" in uri  # quoted, so any character is safe in the URI
    mongo_password = (bundle.volumes.secrets / "mongo" / "root_password").read_text().strip()
    assert mongo_password == "from-dotenv p@ss"
    assert (bundle.volumes.secrets / "minimo" / "secret_key").read_text().strip() == key
    # removed from .env later, the value stays (the store was initialised with it)
    later = run_init(bundle.volumes, bundle.mongo_port)
    assert later.stdout.count(": kept") == 5
    assert (bundle.volumes.secrets / "minimo" / "secret_key").read_text().strip() == key


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("MINIMO_SECRET_KEY", "not-a-key", "Fernet"),
        ("S3_SECRET_KEY", "short", "16 characters"),
    ],
)
def test_init_refuses_a_weak_or_malformed_dotenv_value(
    bundle: Bundle, name: str, value: str, problem: str
) -> None:
    result = run_init(bundle.volumes, bundle.mongo_port, **{name: value})
    assert result.returncode == 78
    assert name in result.stderr and problem in result.stderr
    assert value not in result.stdout + result.stderr
    assert not (bundle.volumes.secrets / "minimo").exists(), "nothing half-written for consumers"


def test_backup_restore_and_reconcile_clean(bundle: Bundle, tmp_path: Path) -> None:
    """docs/deploy.md's backup: stop the bundle, archive its volumes, restore them into new
    volumes, start, and `minimo reconcile` finds the stores in agreement."""
    assert run_init(bundle.volumes, bundle.mongo_port).returncode == 0
    with mongo(bundle), seaweedfs(bundle), gateway(bundle) as log:
        admin = printed_admin(log)
        client = s3(bundle, admin)
        client.create_bucket(Bucket="lab")
        for i in range(3):
            client.put_object(Bucket="lab", Key=f"run/{i}.csv", Body=f"{i},{i * i}\n".encode())

    # the bundle is stopped: archive every volume (docs: one tar per volume)
    archives = tmp_path / "backup"
    archives.mkdir()
    for volume in ("secrets", "seaweedfs", "mongo", "data"):
        with tarfile.open(archives / f"{volume}.tar.gz", "w:gz") as tar:
            tar.add(getattr(bundle.volumes, volume), arcname=".")

    restored = Bundle(Volumes(tmp_path / "restored"), free_port(), free_port(), free_port(),
                      bundle.logs)  # fmt: skip
    for volume in ("secrets", "seaweedfs", "mongo", "data"):
        with tarfile.open(archives / f"{volume}.tar.gz") as tar:
            tar.extractall(getattr(restored.volumes, volume), filter="tar")
    # only the mongo host differs: the restored metadata store listens elsewhere here
    assert run_init(restored.volumes, restored.mongo_port).stdout.count(": kept") == 5
    shutil.rmtree(bundle.volumes.root)  # nothing of the original is left to lean on

    with mongo(restored), seaweedfs(restored), gateway(restored) as log:
        assert "created its first admin" not in log.read_text()
        client = s3(restored, admin)
        body = client.get_object(Bucket="lab", Key="run/2.csv")["Body"].read()
        assert body == b"2,4\n"
        result = restored.run_in_gateway("reconcile", "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads(result.stdout.strip().splitlines()[-1])["summary"]
        assert summary["consistent"] is True, summary


def test_single_container_bundle_starts_on_its_embedded_stores(tmp_path: Path) -> None:
    """deploy/compose.single.yaml: `minimo serve` itself (no entrypoint), no S3, no MongoDB,
    its key generated into the data volume, healthy over HTTPS, the admin printed once."""
    service = yaml.safe_load((ROOT / "deploy" / "compose.single.yaml").read_text())["services"][
        "minimo"
    ]
    volumes = Volumes(tmp_path / "volumes")
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    for name, value in service["environment"].items():
        env[name] = volumes.container_path(str(value))
    env["MINIMO_LISTEN"] = f"127.0.0.1:{port}"
    command = [interpolate(str(part), {}) for part in [*service["entrypoint"], *service["command"]]]
    command[command.index("--listen") + 1] = f"127.0.0.1:{port}"
    assert command[:2] == ["minimo", "serve"]
    bundle = Bundle(volumes, 0, 0, port, tmp_path)
    log = tmp_path / "minimo.log"
    args = [sys.executable, "-m", "gateway.cli", *command[1:]]
    with running(args, log, port, "minimo", env=env, cwd=ROOT):
        wait_until(lambda: healthcheck(bundle).returncode == 0)
        admin = printed_admin(log)
        handshake(bundle, "minimo")
        handshake(bundle, "localhost")  # MINIMO_PUBLIC_HOST's default
        status, body = sign_in(bundle, admin["user"], admin["password"])
        assert status == 200, body
    key = volumes.data / "secret.key"
    assert key.is_file() and key.stat().st_mode & 0o777 == 0o600


def test_the_documented_versitygw_service_starts_as_written(tmp_path: Path) -> None:
    """docs/deploy.md's versitygw snippet, its shell command run as the image runs it: it reads
    the keys init wrote, answers its healthcheck's URL, and takes those keys."""
    doc = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = doc[doc.index("**versitygw**") :]
    snippet = section[section.index("```yaml") + len("```yaml") : section.index("```\n", 10)]
    service = yaml.safe_load(snippet)["versitygw"]
    assert service["entrypoint"] == ["/bin/sh", "-c"]
    volumes = Volumes(tmp_path / "volumes")
    assert run_init(volumes, 27017).returncode == 0
    port = free_port()
    script = service["command"][0].replace("$$", "$")  # compose's escape for a literal $
    script = script.replace("/secrets/", f"{volumes.secrets}/").replace(
        " /data", f" {volumes.data}"
    )
    script = script.replace("/app/versitygw", f"{go_binary('versitygw')} --port 127.0.0.1:{port}")
    health = service["healthcheck"]["test"][-1].replace("127.0.0.1:7070", f"127.0.0.1:{port}")
    with running(["/bin/sh", "-c", script], tmp_path / "versitygw.log", port, "versitygw"):
        wait_until(lambda: http_status(health) == 200)
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id=(volumes.secrets / "minimo" / "s3_access_key").read_text().strip(),
            aws_secret_access_key=(volumes.secrets / "minimo" / "s3_secret_key")
            .read_text()
            .strip(),
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="probe")
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["probe"]
