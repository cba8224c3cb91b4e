"""``minimo serve`` as a process: first start, health, TLS, and the CLI beside a running server."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography import x509

from tests.servers import (
    REPO,
    Gateway,
    free_port,
    read_initial_admin,
    run_gateway,
    run_versitygw,
    stop,
    wait_for_port,
)


def s3_client(gw: Gateway, access_key: str, secret_key: str):
    return boto3.client(
        "s3",
        endpoint_url=gw.endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        verify=str(gw.ca_file) if gw.ca_file else None,
    )


def get_json(url: str, context: ssl.SSLContext | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, context=context, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@contextmanager
def serve_process(data_dir: Path, *args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``minimo serve`` with ``args`` on a free loopback port; yields (process, http URL)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(data_dir / "serve.log", "wb")  # noqa: SIM115 - closed below
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMO_")}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "gateway.cli", "serve", "--workers", "1",
            "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}", *args,
        ],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
    )  # fmt: skip
    try:
        wait_for_port(port, proc, "minimo serve")
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
        log.close()


# -- first start ---------------------------------------------------------------------------------
def test_first_start_creates_the_admin_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with run_gateway(data) as gw:
        admin_file = data / "initial-admin.txt"
        assert stat.S_IMODE(os.stat(admin_file).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(data / "secret.key").st_mode) == 0o600
        creds = read_initial_admin(data)
        assert set(creds) == {"user", "password", "access_key", "secret_key"}
        assert creds["user"] == "admin"
        # printed once on stdout too
        log = next(data.glob("gateway-*.log")).read_text()
        assert creds["password"] in log and creds["secret_key"] in log
        # the credentials work, and the secret is not stored in plaintext
        s3_client(gw, gw.access_key, gw.secret_key).list_buckets()
        raw = b"".join(p.read_bytes() for p in data.glob("minimo.sqlite3*"))
        assert gw.secret_key.encode() not in raw and gw.admin_password.encode() not in raw
        users = json.loads(gw.cli("user", "list", "--json").stdout)
        assert [(u["name"], u["role"]) for u in users] == [("admin", "admin")]
        before = admin_file.read_bytes()

    with run_gateway(data) as gw:  # second start: nothing new created, same admin works
        assert admin_file.read_bytes() == before
        assert len(json.loads(gw.cli("user", "list", "--json").stdout)) == 1
        assert len(json.loads(gw.cli("key", "list", "--json").stdout)) == 1
        s3_client(gw, gw.access_key, gw.secret_key).list_buckets()


# -- the CLI beside a running server -------------------------------------------------------------
def test_key_created_while_serving_works_at_once_and_revocation_lands(tmp_path: Path) -> None:
    with run_gateway(tmp_path / "data") as gw:
        gw.cli("user", "add", "carol", "--role", "uploader")
        created = json.loads(gw.cli("key", "create", "carol", "--json").stdout)
        s3 = s3_client(gw, created["access_key"], created["secret_key"])
        s3.list_buckets()  # no restart, no wait

        gw.cli("key", "revoke", created["access_key"])
        # Documented bound: refused on every process within 5 s. Poll well past it so a busy
        # machine cannot make this flaky; what matters is that it does land.
        deadline = time.monotonic() + 60
        code = None
        while time.monotonic() < deadline:
            try:
                s3.list_buckets()
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                break
            time.sleep(0.2)
        assert code == "InvalidAccessKeyId"
        # the admin's key is untouched
        s3_client(gw, gw.access_key, gw.secret_key).list_buckets()


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    with run_gateway(tmp_path / "data") as gw:
        s3 = s3_client(gw, "MKNOSUCHKEY000000000", "x" * 40)
        with pytest.raises(ClientError) as info:
            s3.list_buckets()
        assert info.value.response["Error"]["Code"] == "InvalidAccessKeyId"


# -- health --------------------------------------------------------------------------------------
def test_health_ok(tmp_path: Path) -> None:
    with run_gateway(tmp_path / "data") as gw:
        status, body = get_json(f"{gw.endpoint}/_minimo/health")
        assert status == 200
        assert body == {"status": "ok", "object_store": "ok", "metadata_store": "ok"}


def test_health_ok_in_front_of_versitygw(tmp_path: Path) -> None:
    with (
        run_versitygw(tmp_path / "vgw") as upstream,
        run_gateway(tmp_path / "data", upstream=upstream) as gw,
    ):
        status, body = get_json(f"{gw.endpoint}/_minimo/health")
        assert (status, body["object_store"]) == (200, "ok")


def test_health_503_when_the_s3_endpoint_is_unreachable(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens here
    with serve_process(
        tmp_path / "data",
        "--s3-endpoint", f"http://127.0.0.1:{closed}",
        "--s3-access-key", "k", "--s3-secret-key", "s",
    ) as (_, url):  # fmt: skip
        status, body = get_json(f"{url}/_minimo/health")
        assert status == 503
        assert body["status"] == "unavailable"
        assert body["object_store"].startswith("unavailable")
        assert body["metadata_store"] == "ok"


# -- TLS -----------------------------------------------------------------------------------------
def test_tls_generates_certificates_and_serves_https(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with run_gateway(data, tls=True) as gw:
        certs = data / "certs"
        assert stat.S_IMODE(os.stat(certs / "key.pem").st_mode) == 0o600
        cert = x509.load_pem_x509_certificate((certs / "cert.pem").read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "localhost" in sans.get_values_for_type(x509.DNSName)
        assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
        # verified against the generated certificate, host name checked
        context = ssl.create_default_context(cafile=str(certs / "cert.pem"))
        assert gw.endpoint.startswith("https://127.0.0.1:")
        status, body = get_json(f"{gw.endpoint}/_minimo/health", context)
        assert (status, body["status"]) == (200, "ok")
        port = gw.endpoint.rsplit(":", 1)[1]
        status, _ = get_json(f"https://localhost:{port}/_minimo/health", context)
        assert status == 200
        s3_client(gw, gw.access_key, gw.secret_key).list_buckets()
        first = (certs / "cert.pem").read_bytes()

    with run_gateway(data, tls=True):  # existing material is reused, not regenerated
        assert (data / "certs" / "cert.pem").read_bytes() == first


def test_tls_with_your_own_certificate(tmp_path: Path) -> None:
    own = tmp_path / "own"
    gen = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "certs", "generate", "--certs-dir", str(own),
         "--data-dir", str(tmp_path / "unused")],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    with serve_process(
        tmp_path / "data", "--tls-cert", str(own / "cert.pem"), "--tls-key", str(own / "key.pem")
    ) as (_, url):
        https = url.replace("http://", "https://")
        context = ssl.create_default_context(cafile=str(own / "cert.pem"))
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = get_json(f"{https}/_minimo/health", context)
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert status == 200
        host, port = https.removeprefix("https://").split(":")
        served = ssl.get_server_certificate((host, int(port)))
        expected = (own / "cert.pem").read_text()
        assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(expected)
    assert not (tmp_path / "data" / "certs").exists()


# -- refusals ------------------------------------------------------------------------------------
def test_plain_http_off_loopback_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--listen", f"0.0.0.0:{free_port()}",
         "--workers", "1", "--data-dir", str(tmp_path / "data")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "not a loopback address" in result.stderr and "--insecure-http" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "serve", "--listen", f"127.0.0.1:{port}",
             "--workers", "1", "--data-dir", str(tmp_path / "data")],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode != 0
    assert "cannot listen" in result.stderr
    assert "Traceback" not in result.stderr


# -- startup checks, in process ------------------------------------------------------------------
def test_listen_parsing_and_loopback_rules() -> None:
    from gateway.config import Config
    from gateway.server import ServeError, check_transport, is_loopback, parse_listen

    assert parse_listen("127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert parse_listen("[::1]:9443") == ("::1", 9443)
    assert parse_listen("localhost:80") == ("localhost", 80)
    for bad in ("9000", ":9000", "host:", "host:port", "host:70000", "host:0"):
        with pytest.raises(ServeError):
            parse_listen(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.8.9.10")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.0.0.1")
    check_transport(Config(listen_host="127.0.0.1"))
    check_transport(Config(listen_host="0.0.0.0", tls=True))
    check_transport(Config(listen_host="0.0.0.0", insecure_http=True))
    with pytest.raises(ServeError, match="--insecure-http"):
        check_transport(Config(listen_host="0.0.0.0"))
    with pytest.raises(ServeError, match="--insecure-http"):
        check_transport(Config(listen_host="192.0.2.7"))


def test_data_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--listen", f"127.0.0.1:{free_port()}",
         "--workers", "1", "--data-dir", str(tmp_path / "file" / "sub")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "cannot create the data directory" in result.stderr
    assert "Traceback" not in result.stderr
