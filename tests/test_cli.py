"""The ``minimo`` CLI as users and scripts run it: a subprocess on a data directory."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

from cryptography import x509

from tests.servers import REPO


def minimo(
    *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MINIMO_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**base, **(env or {})},
        timeout=120,
    )


def ok(*args: str, **kwargs) -> str:
    result = minimo(*args, **kwargs)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(*args: str, **kwargs) -> str:
    """Run a command that must fail with one clear line and no traceback; return stderr."""
    result = minimo(*args, **kwargs)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    return result.stderr


def fields(text: str) -> dict[str, str]:
    return dict(
        (k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in text.splitlines())
    )


def test_help_lists_the_commands() -> None:
    out = ok("--help")
    for command in ("serve", "user", "key", "certs"):
        assert command in out
    assert "--data-dir" in ok("serve", "--help")


def test_user_add_generates_a_password(tmp_path: Path) -> None:
    out = fields(ok("user", "add", "alice", "--role", "uploader", "--data-dir", str(tmp_path)))
    assert out["user"] == "alice" and out["role"] == "uploader"
    assert len(out["password"]) >= 16
    listing = ok("user", "list", "--data-dir", str(tmp_path))
    assert re.search(r"^alice\s+uploader\s+.*active$", listing, re.M)


def test_user_add_password_stdin(tmp_path: Path) -> None:
    out = ok(
        "user",
        "add",
        "bob",
        "--role",
        "reader",
        "--password-stdin",
        "--data-dir",
        str(tmp_path),
        input="s3cret-from-stdin\n",
    )
    assert "password" not in fields(out)
    assert b"s3cret-from-stdin" not in (tmp_path / "minimo.sqlite3").read_bytes()
    users = json.loads(ok("user", "list", "--json", "--data-dir", str(tmp_path)))
    assert [(u["name"], u["role"], u["deleted"]) for u in users] == [("bob", "reader", None)]


def test_user_add_errors(tmp_path: Path) -> None:
    d = str(tmp_path)
    ok("user", "add", "alice", "--role", "admin", "--data-dir", d)
    assert "already exists" in fails("user", "add", "alice", "--role", "admin", "--data-dir", d)
    assert "boss" in fails("user", "add", "carol", "--role", "boss", "--data-dir", d)
    assert "invalid user name" in fails("user", "add", "a/b", "--role", "reader", "--data-dir", d)
    assert "no password" in fails(
        "user", "add", "dave", "--role", "reader", "--password-stdin", "--data-dir", d, input=""
    )
    assert "at least" in fails(
        "user",
        "add",
        "erin",
        "--role",
        "reader",
        "--password-stdin",
        "--data-dir",
        d,
        input="short\n",
    )


def test_key_create_json_list_revoke(tmp_path: Path) -> None:
    d = str(tmp_path)
    ok("user", "add", "alice", "--role", "uploader", "--data-dir", d)
    created = json.loads(ok("key", "create", "alice", "--json", "--data-dir", d))
    assert set(created) == {"access_key", "secret_key"}
    assert re.fullmatch(r"MK[A-Z0-9]{18}", created["access_key"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{40}", created["secret_key"])
    plain = fields(ok("key", "create", "alice", "--data-dir", d))
    assert set(plain) == {"access_key", "secret_key"}

    listing = ok("key", "list", "--data-dir", d)
    assert created["access_key"] in listing and plain["access_key"] in listing
    assert created["secret_key"] not in listing
    ok("key", "revoke", created["access_key"], "--data-dir", d)
    keys = {k["access_key"]: k for k in json.loads(ok("key", "list", "--json", "--data-dir", d))}
    assert keys[created["access_key"]]["revoked"] is not None
    assert keys[plain["access_key"]]["revoked"] is None
    assert all(k["user"] == "alice" for k in keys.values())
    # the secrets never reach the database in plaintext
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("minimo.sqlite3*"))
    for secret in (created["secret_key"], plain["secret_key"]):
        assert secret.encode() not in raw


def test_key_labels_and_read_only_keys(tmp_path: Path) -> None:
    d = str(tmp_path)
    ok("user", "add", "alice", "--role", "uploader", "--data-dir", d)
    ok("user", "add", "rae", "--role", "reader", "--data-dir", d)
    mine = json.loads(
        ok("key", "create", "alice", "--label", "laptop", "--read-only", "--json", "--data-dir", d)
    )
    hers = json.loads(ok("key", "create", "rae", "--json", "--data-dir", d))
    keys = {k["access_key"]: k for k in json.loads(ok("key", "list", "--json", "--data-dir", d))}
    assert keys[mine["access_key"]]["label"] == "laptop"
    assert keys[mine["access_key"]]["read_only"] is True
    assert keys[hers["access_key"]]["read_only"] is True  # a reader's keys only read
    listing = ok("key", "list", "--user", "alice", "--data-dir", d)
    assert "active, read-only" in listing and "laptop" in listing
    assert "at most 64" in fails("key", "create", "alice", "--label", "x" * 65, "--data-dir", d)


def test_key_errors(tmp_path: Path) -> None:
    d = str(tmp_path)
    assert "no user 'ghost'" in fails("key", "create", "ghost", "--data-dir", d)
    assert "no access key" in fails("key", "revoke", "MKNOSUCHKEY000000000", "--data-dir", d)


def test_data_dir_from_environment(tmp_path: Path) -> None:
    env = {"MINIMO_DATA_DIR": str(tmp_path / "from-env")}
    ok("user", "add", "alice", "--role", "reader", env=env)
    assert (tmp_path / "from-env" / "minimo.sqlite3").is_file()
    assert "alice" in ok("user", "list", "--data-dir", str(tmp_path / "from-env"))
    key_file = tmp_path / "from-env" / "secret.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_secret_key_file_option_and_env(tmp_path: Path) -> None:
    d = str(tmp_path / "data")
    key_file = tmp_path / "keys" / "minimo.key"
    ok("user", "add", "alice", "--role", "reader", "--data-dir", d)
    created = json.loads(
        ok("key", "create", "alice", "--json", "--data-dir", d, "--secret-key-file", str(key_file))
    )
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert created["access_key"] in ok(
        "key", "list", "--data-dir", d, env={"MINIMO_SECRET_KEY_FILE": str(key_file)}
    )


def test_certs_generate(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    out = ok(
        "certs",
        "generate",
        "--certs-dir",
        str(certs),
        "--host",
        "s3.example.org",
        "--host",
        "10.1.2.3",
        "--data-dir",
        str(tmp_path),
    )
    assert "cert.pem" in out
    assert stat.S_IMODE(os.stat(certs / "key.pem").st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((certs / "cert.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(sans.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert {"localhost", "s3.example.org"} <= names
    assert {"127.0.0.1", "::1", "10.1.2.3"} <= ips
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert days == 825
    # generate replaces the pair
    first = (certs / "cert.pem").read_bytes()
    ok("certs", "generate", "--certs-dir", str(certs), "--data-dir", str(tmp_path))
    assert (certs / "cert.pem").read_bytes() != first


def test_serve_refuses_plain_http_off_loopback(tmp_path: Path) -> None:
    err = fails("serve", "--listen", "0.0.0.0:9", "--data-dir", str(tmp_path / "d"))
    assert "not a loopback address" in err and "--insecure-http" in err
    assert not (tmp_path / "d").exists()  # refused before touching anything


def test_serve_rejects_bad_options(tmp_path: Path) -> None:
    d = str(tmp_path)
    assert "HOST:PORT" in fails("serve", "--listen", "nonsense", "--data-dir", d)
    assert "--s3-access-key" in fails(
        "serve", "--s3-endpoint", "http://127.0.0.1:1", "--data-dir", d
    )
    assert "together" in fails("serve", "--tls-cert", str(tmp_path / "c.pem"), "--data-dir", d)


def test_user_set_role_passwd_delete(tmp_path: Path) -> None:
    d = str(tmp_path)
    ok("user", "add", "alice", "--role", "reader", "--data-dir", d)
    created = json.loads(ok("key", "create", "alice", "--json", "--data-dir", d))
    ok("user", "set-role", "alice", "uploader", "--data-dir", d)
    users = json.loads(ok("user", "list", "--json", "--data-dir", d))
    assert users[0]["role"] == "uploader"
    assert "password" in fields(ok("user", "passwd", "alice", "--data-dir", d))
    ok("user", "passwd", "alice", "--password-stdin", "--data-dir", d, input="new-password-1\n")
    ok("user", "delete", "alice", "--data-dir", d)
    users = json.loads(ok("user", "list", "--json", "--data-dir", d))
    assert users[0]["deleted"] is not None
    assert "no user" in fails("key", "create", "alice", "--data-dir", d)
    assert created["access_key"] in ok("key", "list", "--data-dir", d)
    assert "no user" in fails("user", "set-role", "ghost", "admin", "--data-dir", d)
