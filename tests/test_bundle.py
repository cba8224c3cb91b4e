"""The production bundle (Dockerfile, compose.yaml, deploy/), checked statically.

No Docker engine runs here, so nothing is built or started: the files are parsed and compared
with the real ``minimo serve`` options, and the entrypoint and the health check script run on
their own with stub commands and a stub server.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

GATEWAY_PORT = 9000
#: what the entrypoint exits with when it refuses to start (sysexits EX_CONFIG)
EX_CONFIG = 78
FERNET_KEY = "4Gq196NQcHFMcctf10oJRWYWNHNJOK6FUOhjKjm5ApI="  # a test key, not a deployed one

#: ${NAME...} interpolations; the bundle's messages contain no braces
INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
REQUIRED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):\?(.+)$")


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict:
    data = yaml.safe_load(compose_text)
    assert isinstance(data, dict), "compose.yaml is not a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def gateway(services: dict) -> dict:
    return services["minimo"]


@pytest.fixture(scope="module")
def serve_flags() -> set[str]:
    """Every --flag that `minimo serve --help` lists."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    flags = set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", result.stdout))
    assert {"--listen", "--tls", "--mongo-uri"} <= flags, result.stdout
    return flags


@pytest.fixture(scope="module")
def serve_envvars() -> set[str]:
    """Every environment variable the `minimo serve` command reads (its click envvars)."""
    from gateway.cli.serve import serve

    names: set[str] = set()
    for param in serve.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            names.add(envvar)
        elif envvar:
            names.update(envvar)
    assert {"MINIMO_LISTEN", "MINIMO_MONGO_URI", "MINIMO_SECRET_KEY_FILE"} <= names
    return names


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(part) for part in cmd]


def strings(node: object) -> Iterator[str]:
    """Every string compose interpolates: the values (and keys) of the parsed file, not comments."""
    if isinstance(node, str):
        yield node.replace("$$", "")  # $$ is a literal dollar
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def compose_variables(compose: dict) -> set[str]:
    names = set()
    for expression in (e for text in strings(compose) for e in INTERPOLATION.findall(text)):
        match = REQUIRED.match(expression)
        assert match, f"${{{expression}}} must be ${{NAME:?message}}"
        names.add(match.group(1))
    return names


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


# -- compose.yaml --------------------------------------------------------------------------------
def test_compose_has_the_three_services(services: dict) -> None:
    assert set(services) == {"minimo", "minio", "mongo"}


def test_gateway_is_built_here(gateway: dict) -> None:
    build = gateway["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert (ROOT / context / "Dockerfile").is_file()


def test_every_image_is_pinned(services: dict) -> None:
    for name, service in services.items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name} has neither image nor build"
            continue
        _repository, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag, f"{name}: {image} has no tag"
        tag = tag.split("@", 1)[0]
        assert tag not in {"latest", "stable", "edge"}, f"{name}: {image} is not pinned"
        assert re.search(r"\d", tag), f"{name}: {image} names no version"
    assert re.fullmatch(
        r"minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ(@sha256:[0-9a-f]{64})?",
        services["minio"]["image"],
    )
    # a patch release, not a floating "7" or "7.0"
    assert re.fullmatch(r"mongo:7\.0\.\d+(@sha256:[0-9a-f]{64})?", services["mongo"]["image"])


def test_every_service_has_a_healthcheck(services: dict) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        test = check["test"]
        assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1
    assert services["minio"]["healthcheck"]["test"][1:] == ["mc", "ready", "local"]
    mongo_check = " ".join(services["mongo"]["healthcheck"]["test"])
    assert "mongosh" in mongo_check and "ping" in mongo_check
    gateway_check = services["minimo"]["healthcheck"]["test"]
    assert gateway_check[-1] == "/usr/local/lib/minimo/healthcheck.py"


def test_gateway_waits_for_healthy_stores(gateway: dict) -> None:
    depends = gateway["depends_on"]
    assert set(depends) == {"minio", "mongo"}
    for name, condition in depends.items():
        assert condition["condition"] == "service_healthy", name


def test_only_the_gateway_publishes_a_port(services: dict, gateway: dict) -> None:
    for name, service in services.items():
        if name != "minimo":
            assert not service.get("ports"), f"{name} must not publish a port"
            assert not service.get("network_mode"), name
    (mapping,) = gateway["ports"]
    assert str(mapping).rsplit(":", 1)[-1] == str(GATEWAY_PORT)


def test_stores_are_on_an_internal_network_only(compose: dict, services: dict) -> None:
    networks = compose["networks"]
    for name in ("minio", "mongo"):
        for network in services[name]["networks"]:
            assert networks[network] and networks[network].get("internal") is True, name


def test_data_lives_in_named_volumes(compose: dict, services: dict) -> None:
    declared = set(compose["volumes"])
    mounts = {
        name: {str(v).split(":", 2)[1]: str(v).split(":", 1)[0] for v in service["volumes"]}
        for name, service in services.items()
    }
    assert mounts["minio"]["/data"] in declared
    assert mounts["mongo"]["/data/db"] in declared
    assert mounts["minimo"]["/data"] in declared
    assert mounts["minimo"]["/certs"] in declared


def test_every_variable_is_required_and_documented(compose: dict) -> None:
    # no bare $VAR (it could not carry :?) and no ${VAR}, ${VAR:-default}, ${VAR-default}
    bare = [text for text in strings(compose) if re.search(r"\$(?!\{)", text)]
    assert not bare, f"use ${{VAR:?message}}, never $VAR: {bare}"
    names = compose_variables(compose)
    assert {
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
        "MONGO_INITDB_ROOT_USERNAME",
        "MONGO_INITDB_ROOT_PASSWORD",
        "MINIMO_SECRET_KEY",
        "MINIMO_PUBLIC_HOST",
    } <= names
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    assigned = {}
    for line in example.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"env.example: {line!r} is not NAME="
            assigned[name.strip()] = value.strip()
    for name in names:
        assert f"`{name}`" in doc, f"{name} is not documented in docs/deploy.md"
    assert set(assigned) == names, "deploy/env.example must list exactly the compose variables"
    assert not any(assigned.values()), "deploy/env.example must not hold values"


def test_secrets_from_the_environment_are_required(compose: dict) -> None:
    required = compose_variables(compose)
    for name, secret in compose["secrets"].items():
        source = secret.get("environment")
        if source is not None:
            # compose does not refuse an empty `environment:` secret by itself
            assert source in required, f"secret {name}: ${{{source}:?...}} must guard it"


def test_gateway_command_uses_real_serve_options(gateway: dict, serve_flags: set[str]) -> None:
    cmd = command(gateway)
    assert cmd[:2] == ["minimo", "serve"]
    used = {part.split("=", 1)[0] for part in cmd if part.startswith("--")}
    assert used <= serve_flags, f"not `minimo serve` options: {sorted(used - serve_flags)}"
    assert "--tls" in cmd, "TLS is on by default"
    assert "--insecure-http" not in cmd
    listen = cmd[cmd.index("--listen") + 1]
    assert listen == f"0.0.0.0:{GATEWAY_PORT}"


def test_gateway_environment_is_read_by_the_cli(gateway: dict, serve_envvars: set[str]) -> None:
    env = environment(gateway)
    minimo_vars = {name for name in env if name.startswith("MINIMO_")}
    unknown = sorted(minimo_vars - serve_envvars)
    assert not unknown, f"not read by `minimo serve`: {unknown}"
    assert port_of(env["MINIMO_LISTEN"]) == GATEWAY_PORT  # the health check reads it
    # the entrypoint's required variables are all supplied
    for name in ("MINIMO_S3_ENDPOINT", "MINIMO_S3_ACCESS_KEY", "MINIMO_S3_SECRET_KEY"):
        assert env[name], name
    # credentials come only from required variables, never literals in the file
    for name in ("MINIMO_S3_ACCESS_KEY", "MINIMO_S3_SECRET_KEY"):
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", env[name]), name
    uri = env["MINIMO_MONGO_URI"]
    assert re.fullmatch(r"mongodb://\$\{[^}]+\}:\$\{[^}]+\}@mongo:27017/\S+", uri), uri


def test_secret_key_reaches_the_gateway_as_a_file(compose: dict, gateway: dict) -> None:
    env = environment(gateway)
    (grant,) = gateway["secrets"]
    target = grant["target"] if isinstance(grant, dict) else grant
    source = grant["source"] if isinstance(grant, dict) else grant
    assert source in compose["secrets"]
    assert env["MINIMO_SECRET_KEY_FILE"] == f"/run/secrets/{target}"
    assert "MINIMO_SECRET_KEY" not in env, "the Fernet key must not be an environment variable"
    if isinstance(grant, dict) and "mode" in grant:
        assert int(grant["mode"]) & 0o077 == 0, "the key file must be private"


# -- Dockerfile ----------------------------------------------------------------------------------
def test_dockerfile_base_is_pinned() -> None:
    froms = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert froms
    for base in froms:
        image = base.split()[0]
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image), (
            f"base {image} is not pinned to an exact Python 3.11 release"
        )


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [args for keyword, args in dockerfile_instructions() if keyword == "USER"]
    assert users, "no USER"
    final = users[-1].split(":")[0]
    assert final not in {"root", "0"}


def test_dockerfile_installs_only_runtime_dependencies() -> None:
    runs = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "RUN")
    assert re.search(r"pip install (--\S+ )*\.(\s|$)", runs), "pip install . (runtime deps)"
    assert ".[" not in runs, "no extras (test, bench) in the image"
    assert "-e ." not in runs


def test_dockerfile_health_port_and_entrypoint() -> None:
    instructions = dockerfile_instructions()
    by_keyword: dict[str, list[str]] = {}
    for keyword, args in instructions:
        by_keyword.setdefault(keyword, []).append(args)
    (health,) = by_keyword["HEALTHCHECK"]
    assert "/usr/local/lib/minimo/healthcheck.py" in health and "CMD" in health
    assert f"{GATEWAY_PORT}" in by_keyword["EXPOSE"][0].split()
    copies = " ".join(by_keyword["COPY"])
    assert "deploy/healthcheck.py /usr/local/lib/minimo/healthcheck.py" in copies
    assert "deploy/entrypoint.sh /usr/local/bin/minimo-entrypoint" in copies
    assert '"/usr/local/bin/minimo-entrypoint"' in by_keyword["ENTRYPOINT"][0]


def test_dockerfile_environment_is_read_by_the_cli(serve_envvars: set[str]) -> None:
    envs = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "ENV")
    names = set(re.findall(r"\b(MINIMO_[A-Z0-9_]+)=", envs))
    assert names and names <= serve_envvars, sorted(names - serve_envvars)
    listen = re.search(r"MINIMO_LISTEN=(\S+)", envs)
    assert listen and port_of(listen.group(1)) == GATEWAY_PORT


def test_dockerignore_keeps_secrets_out_of_the_build() -> None:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    assert "*" in lines  # everything is excluded unless named
    assert "**/.env" in lines


# -- shell and the entrypoint --------------------------------------------------------------------
def test_shell_scripts_parse() -> None:
    scripts = sorted((ROOT / "deploy").glob("*.sh"))
    assert ENTRYPOINT in scripts
    for script in scripts:
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script}: {result.stderr}"
    assert os.access(ENTRYPOINT, os.X_OK), "the entrypoint must be executable"


SECRETS = {
    "MINIMO_S3_ACCESS_KEY": "s3-access-AKIA7",
    "MINIMO_S3_SECRET_KEY": "s3-secret-do-not-print",
    "MONGO_PASSWORD": "mongo-pass-do-not-print",
}
#: the child prints what the gateway would get
STUB = (
    "import os, sys; "
    "open(sys.argv[1], 'w').write('ran'); "
    "print('KEYFILE=' + os.environ['MINIMO_SECRET_KEY_FILE']); "
    "print('HAS_KEY_VAR=' + str('MINIMO_SECRET_KEY' in os.environ))"
)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "minimo_secret_key"
    path.write_text(FERNET_KEY + "\n")
    path.chmod(0o400)
    return path


def base_env(key_file: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TMPDIR": str(key_file.parent),
        "MINIMO_S3_ENDPOINT": "http://minio:9000",
        "MINIMO_S3_ACCESS_KEY": SECRETS["MINIMO_S3_ACCESS_KEY"],
        "MINIMO_S3_SECRET_KEY": SECRETS["MINIMO_S3_SECRET_KEY"],
        "MINIMO_MONGO_URI": (
            f"mongodb://root:{SECRETS['MONGO_PASSWORD']}@mongo:27017/minimo?authSource=admin"
        ),
        "MINIMO_SECRET_KEY_FILE": str(key_file),
    }


def run_entrypoint(env: dict[str, str], marker: Path) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash
    return subprocess.run(
        [bash, str(ENTRYPOINT), sys.executable, "-c", STUB, str(marker)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_refused(result: subprocess.CompletedProcess[str], marker: Path, *words: str) -> None:
    assert result.returncode == EX_CONFIG, (result.returncode, result.stdout, result.stderr)
    assert "refusing to start" in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    assert not marker.exists(), "the command must not run"
    for value in [*SECRETS.values(), FERNET_KEY]:
        assert value not in result.stderr + result.stdout, "secrets must never be printed"


def test_entrypoint_starts_with_every_secret(key_file: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    result = run_entrypoint(base_env(key_file), marker)
    assert result.returncode == 0, result.stderr
    assert marker.read_text() == "ran"
    assert f"KEYFILE={key_file}" in result.stdout
    assert "HAS_KEY_VAR=False" in result.stdout


@pytest.mark.parametrize(
    "name",
    ["MINIMO_S3_ENDPOINT", "MINIMO_S3_ACCESS_KEY", "MINIMO_S3_SECRET_KEY", "MINIMO_MONGO_URI"],
)
@pytest.mark.parametrize("how", ["empty", "blank", "unset"])
def test_entrypoint_refuses_an_empty_secret(
    name: str, how: str, key_file: Path, tmp_path: Path
) -> None:
    env = base_env(key_file)
    if how == "unset":
        del env[name]
    else:
        env[name] = "" if how == "empty" else "  "
    marker = tmp_path / "ran"
    assert_refused(run_entrypoint(env, marker), marker, name)


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("mongodb://mongo:27017/minimo", "no credentials"),
        ("mongodb://root:@mongo:27017/minimo?authSource=admin", "empty password"),
        ("mongodb://root@mongo:27017/minimo", "empty password"),
        ("mongodb://:pw@mongo:27017/minimo", "empty user"),
        ("http://root:pw@mongo:27017/minimo", "must start with mongodb://"),
    ],
)
def test_entrypoint_refuses_a_mongo_uri_without_password(
    uri: str, problem: str, key_file: Path, tmp_path: Path
) -> None:
    env = base_env(key_file) | {"MINIMO_MONGO_URI": uri}
    marker = tmp_path / "ran"
    assert_refused(run_entrypoint(env, marker), marker, "MINIMO_MONGO_URI", problem)


def test_entrypoint_accepts_srv_uris_and_encoded_passwords(key_file: Path, tmp_path: Path) -> None:
    env = base_env(key_file) | {
        "MINIMO_MONGO_URI": "mongodb+srv://app:p%40ss@db.example.org/minimo?retryWrites=true"
    }
    result = run_entrypoint(env, tmp_path / "ran")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "does not exist"), ("", "is empty"), ("\n", "is empty"), ("secret", "Fernet")],
)
def test_entrypoint_refuses_a_missing_or_bad_key_file(
    content: str | None, problem: str, tmp_path: Path
) -> None:
    key_path = tmp_path / "secret.key"
    if content is not None:
        key_path.write_text(content)
    env = base_env(key_path)
    marker = tmp_path / "ran"
    assert_refused(run_entrypoint(env, marker), marker, problem)


def test_entrypoint_never_generates_a_key(tmp_path: Path) -> None:
    key_path = tmp_path / "secret.key"
    env = base_env(key_path)
    del env["MINIMO_SECRET_KEY_FILE"]  # default /run/secrets/minimo_secret_key: absent here
    marker = tmp_path / "ran"
    assert_refused(run_entrypoint(env, marker), marker, "/run/secrets/minimo_secret_key")
    assert not key_path.exists()


def test_entrypoint_writes_a_key_from_the_environment(tmp_path: Path) -> None:
    env = base_env(tmp_path / "absent.key")
    del env["MINIMO_SECRET_KEY_FILE"]
    env["MINIMO_SECRET_KEY"] = FERNET_KEY
    marker = tmp_path / "ran"
    result = run_entrypoint(env, marker)
    assert result.returncode == 0, result.stderr
    assert "HAS_KEY_VAR=False" in result.stdout, "the key must leave the environment"
    written = Path(re.search(r"KEYFILE=(\S+)", result.stdout).group(1))
    assert written.parent.parent == tmp_path  # in a private directory under TMPDIR
    assert written.read_text().strip() == FERNET_KEY
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("value", ["", "   ", "not-a-fernet-key"])
def test_entrypoint_refuses_a_bad_key_in_the_environment(
    value: str, key_file: Path, tmp_path: Path
) -> None:
    env = base_env(key_file) | {"MINIMO_SECRET_KEY": value}  # set wins over the file
    marker = tmp_path / "ran"
    assert_refused(run_entrypoint(env, marker), marker, "MINIMO_SECRET_KEY")


# -- the health check script ---------------------------------------------------------------------
@pytest.fixture
def health_server() -> Iterator[tuple[int, dict[str, int]]]:
    """A plain-HTTP stub of the gateway whose /_minimo/health status the test sets."""
    state = {"status": 200, "hits": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["hits"] += 1
            status = state["status"] if self.path == "/_minimo/health" else 404
            body = b'{"status": "ok"}' if status == 200 else b'{"status": "unavailable"}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], state
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "MINIMO_LISTEN": f"0.0.0.0:{port}"}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, text=True, timeout=30
    )


def test_healthcheck_passes_on_200(health_server: tuple[int, dict[str, int]]) -> None:
    port, state = health_server
    result = run_healthcheck(port)
    assert result.returncode == 0, result.stdout + result.stderr
    assert state["hits"] >= 1


def test_healthcheck_fails_on_503(health_server: tuple[int, dict[str, int]]) -> None:
    port, state = health_server
    state["status"] = 503
    result = run_healthcheck(port)
    assert result.returncode == 1
    assert "503" in result.stdout


def test_healthcheck_fails_when_nothing_listens() -> None:
    with socket.socket() as sock:  # a port just released: nothing listens there
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    result = run_healthcheck(closed)
    assert result.returncode == 1
    assert "refused" in result.stdout.lower()


def test_docs_name_the_pinned_versions(services: dict) -> None:
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    for name in ("minio", "mongo"):
        assert f"`{services[name]['image']}`" in doc, f"docs/deploy.md: update {name}'s image"
    (base,) = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert f"`{base.split('@')[0]}`" in doc, "docs/deploy.md: update the Dockerfile's base"
