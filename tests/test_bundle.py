"""The production bundles (Dockerfile, compose.yaml, deploy/compose.*.yaml, deploy/), checked
statically.

No Docker engine runs here, so nothing is built or started: every bundle is validated against
the Compose Specification's schema, its references resolved as compose's loader does, and
compared with the real ``minimo serve`` options and the files ``deploy/init_secrets.py`` writes;
the entrypoint and the health check script run on their own with stub commands and a stub
server. tests/test_bundle_start.py starts the default bundle's programs for real.
"""

from __future__ import annotations

import http.server
import json
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

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
COMPOSE_MINIO = ROOT / "deploy" / "compose.minio.yaml"
COMPOSE_SINGLE = ROOT / "deploy" / "compose.single.yaml"
#: the Compose Specification's JSON schema, vendored from compose-spec/compose-spec
#: (schema/compose-spec.json at 170098ba, Apache-2.0): no Docker engine or compose plugin here
COMPOSE_SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
INIT_SECRETS = ROOT / "deploy" / "init_secrets.py"
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
DEFAULTED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):-(.*)$")
#: what the entrypoint reads from NAME_FILE (compose.yaml points them at init's files)
ENTRYPOINT_FILE_VARIABLES = ["MINIMO_S3_ACCESS_KEY", "MINIMO_S3_SECRET_KEY", "MINIMO_MONGO_URI"]


# -- helpers -------------------------------------------------------------------------------------
#: every bundle (docs/deploy.md, "Profiles"): its file and the services it runs
BUNDLES = {
    "default": (COMPOSE, {"init", "minimo", "seaweedfs", "mongo"}),
    "minio": (COMPOSE_MINIO, {"init", "minimo", "minio", "mongo"}),
    "single": (COMPOSE_SINGLE, {"minimo"}),
}
#: the object store each bundle's gateway talks to
S3_ENDPOINTS = {"default": "http://seaweedfs:8333", "minio": "http://minio:9000"}
#: the .env variables that override a generated secret: passed to `init` only
SECRET_VARIABLES = {
    "MONGO_INITDB_ROOT_USERNAME",
    "MONGO_INITDB_ROOT_PASSWORD",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "MINIMO_SECRET_KEY",
}
#: the directory of the secrets volume each service may read (deploy/init_secrets.py)
SECRETS_DIR_OF = {"minimo": "minimo", "mongo": "mongo", "minio": "minio", "seaweedfs": "seaweedfs"}


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


@pytest.fixture(scope="module", params=sorted(BUNDLES))
def bundle(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def compose(bundle: str) -> dict:
    return load(BUNDLES[bundle][0])


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


@pytest.fixture(scope="module")
def init_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The secrets volume as deploy/init_secrets.py fills it with no .env."""
    root = tmp_path_factory.mktemp("secrets")
    env = {"PATH": os.environ.get("PATH", ""), "MINIMO_INIT_SECRETS_DIR": str(root)}
    result = subprocess.run(
        [sys.executable, str(INIT_SECRETS)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return root


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(part) for part in cmd]


def mounts(service: dict) -> dict[str, str]:
    """container path -> volume name (short syntax, as the bundles write them)."""
    out = {}
    for volume in service.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        out[target] = source
    return out


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


def compose_variables(node: object) -> dict[str, str]:
    """NAME -> default of every ${NAME:-default} (the only form the bundles use)."""
    names = {}
    for expression in (e for text in strings(node) for e in INTERPOLATION.findall(text)):
        match = DEFAULTED.match(expression)
        assert match, f"${{{expression}}} must be ${{NAME:-default}} (nothing to fill in)"
        names[match.group(1)] = match.group(2)
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


# -- every bundle: the Compose Specification and what compose's loader resolves -------------------
def test_bundle_matches_the_compose_specification(compose: dict) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_the_schema_catches_a_misspelt_key() -> None:
    """The vendored schema is strict: a typo in a service is an error, not ignored."""
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    broken = load(COMPOSE)
    broken["services"]["minimo"]["healthchek"] = broken["services"]["minimo"].pop("healthcheck")
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_references_resolve(compose: dict, services: dict) -> None:
    """What compose's loader refuses: a dependency, volume or network that is not declared."""
    volumes, networks = set(compose.get("volumes") or {}), set(compose.get("networks") or {})
    for name, service in services.items():
        assert set(service.get("depends_on") or {}) <= set(services), name
        for target, source in mounts(service).items():
            assert source in volumes, f"{name}: volume {source} ({target}) is not declared"
        assert set(service.get("networks") or []) <= networks, name
        assert not (service.get("network_mode") and service.get("networks")), name


def test_bundle_has_its_services(bundle: str, services: dict) -> None:
    assert set(services) == BUNDLES[bundle][1]


def test_gateway_is_built_here(bundle: str, services: dict) -> None:
    for name in ("minimo", "init"):
        if name in services:
            build = services[name]["build"]
            context = build if isinstance(build, str) else build.get("context", ".")
            assert (BUNDLES[bundle][0].parent / context / "Dockerfile").resolve() == DOCKERFILE
            assert services[name]["image"] == services["minimo"]["image"]


def test_every_image_is_pinned(services: dict) -> None:
    for name, service in services.items():
        image = service["image"]
        _repository, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag, f"{name}: {image} has no tag"
        tag = tag.split("@", 1)[0]
        assert tag not in {"latest", "stable", "edge"}, f"{name}: {image} is not pinned"
        assert re.search(r"\d", tag), f"{name}: {image} names no version"
    patterns = {
        "minio": r"minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ",
        "mongo": r"mongo:7\.0\.\d+",  # a patch release, not a floating "7" or "7.0"
        "seaweedfs": r"chrislusf/seaweedfs:\d+\.\d+",
    }
    for name, pattern in patterns.items():
        if name in services:
            assert re.fullmatch(pattern + r"(@sha256:[0-9a-f]{64})?", services[name]["image"])


def test_every_long_running_service_has_a_healthcheck_its_image_can_run(services: dict) -> None:
    # the tools each image ships: mc (MinIO), mongosh (mongo), busybox wget (SeaweedFS's Alpine
    # image: no curl), python (minimo)
    expected = {
        "minimo": ["CMD", "python", "/usr/local/lib/minimo/healthcheck.py"],
        "minio": ["CMD", "mc", "ready", "local"],
        "seaweedfs": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8333/healthz"],
    }
    for name, service in services.items():
        if name == "init":  # one-shot: dependants wait for it to exit 0
            assert "healthcheck" not in service and "restart" not in service
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        if name == "mongo":
            assert check["test"][:2] == ["CMD", "mongosh"] and "ping" in " ".join(check["test"])
        else:
            assert check["test"] == expected[name], name


def test_gateway_waits_for_init_and_healthy_stores(services: dict, gateway: dict) -> None:
    depends = gateway.get("depends_on") or {}
    assert set(depends) == set(services) - {"minimo"}
    for name, condition in depends.items():
        wanted = "service_completed_successfully" if name == "init" else "service_healthy"
        assert condition["condition"] == wanted, name
    for name, service in services.items():
        if name not in {"minimo", "init"}:
            init_done = {"init": {"condition": "service_completed_successfully"}}
            assert service["depends_on"] == init_done, name


def test_only_the_gateway_publishes_a_port(services: dict, gateway: dict) -> None:
    for name, service in services.items():
        if name != "minimo":
            assert not service.get("ports"), f"{name} must not publish a port"
    (mapping,) = gateway["ports"]
    assert str(mapping).rsplit(":", 1)[-1] == str(GATEWAY_PORT)


def test_stores_are_on_an_internal_network_only(compose: dict, services: dict) -> None:
    networks = compose.get("networks") or {}
    for name, service in services.items():
        if name == "minimo":
            continue
        if name == "init":
            assert service["network_mode"] == "none"  # it only writes files
            continue
        for network in service["networks"]:
            assert networks[network] and networks[network].get("internal") is True, name


def test_data_lives_in_named_volumes(services: dict) -> None:
    data_paths = {
        "minimo": ["/data", "/certs"],
        "minio": ["/data"],
        "seaweedfs": ["/data"],
        "mongo": ["/data/db", "/data/configdb"],
        "init": ["/secrets"],
    }
    for name, service in services.items():
        assert set(data_paths[name]) <= set(mounts(service)), name


def test_nothing_to_fill_in_and_secrets_reach_init_only(
    bundle: str, compose: dict, services: dict
) -> None:
    # no bare $VAR (it could not carry a default) and no required ${VAR:?...}
    bare = [text for text in strings(compose) if re.search(r"\$(?!\{)", text)]
    assert not bare, f"use ${{VAR:-default}}, never $VAR: {bare}"
    for name, service in services.items():
        used = compose_variables(service)
        if name == "init":
            assert used == dict.fromkeys(SECRET_VARIABLES, ""), "empty: generate, then keep"
        else:
            assert not used.keys() & SECRET_VARIABLES, f"{name} must read secrets from files"
    variables = compose_variables(compose)
    assert variables.get("MINIMO_PUBLIC_HOST") == "localhost"
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    for name in variables:
        assert f"`{name}`" in doc, f"{name} is not documented in docs/deploy.md"
        assert re.search(rf"^#\s*{name}=$", example, re.M), f"deploy/env.example: # {name}="
    assert not [line for line in example.splitlines() if line and not line.startswith("#")], (
        "deploy/env.example must set nothing: every line stays a comment until uncommented"
    )


def test_every_secret_file_a_service_reads_is_one_init_writes(
    bundle: str, services: dict, init_output: Path
) -> None:
    """Each *_FILE variable (and SeaweedFS's -s3.config) names a file of the secrets volume
    that init writes, in the directory of that service (owned by the user it runs as)."""
    for name, service in services.items():
        paths = [v for k, v in environment(service).items() if k.endswith("_FILE")]
        paths += [part.split("=", 1)[1] for part in command(service) if "-s3.config=" in part]
        if bundle == "single":
            assert not paths or paths == ["/data/secret.key"], paths  # the gateway makes it
            continue
        if name == "init":
            continue
        assert paths, f"{name} reads no secret"
        assert mounts(service)["/secrets"] == "secrets"
        assert "/secrets:ro" in " ".join(map(str, service["volumes"])), f"{name}: mount it :ro"
        for path in paths:
            relative = Path(path).relative_to("/secrets")
            assert relative.parts[0] == SECRETS_DIR_OF[name], f"{name} reads {path}"
            assert (init_output / relative).is_file(), f"init does not write {path}"


def test_gateway_command_uses_real_serve_options(
    bundle: str, gateway: dict, serve_flags: set[str]
) -> None:
    cmd = command(gateway)
    if bundle == "single":
        assert gateway["entrypoint"] == ["minimo"], "the embedded stores need no S3 or MongoDB"
        cmd = ["minimo", *cmd]
    assert cmd[:2] == ["minimo", "serve"]
    used = {part.split("=", 1)[0] for part in cmd if part.startswith("--")}
    assert used <= serve_flags, f"not `minimo serve` options: {sorted(used - serve_flags)}"
    assert "--tls" in cmd, "TLS is on by default"
    assert "--insecure-http" not in cmd
    assert cmd[cmd.index("--listen") + 1] == f"0.0.0.0:{GATEWAY_PORT}"
    # the certificate names the service (clients on the compose network) and the public host
    hosts = [cmd[i + 1] for i, part in enumerate(cmd) if part == "--host"]
    assert hosts == ["minimo", "${MINIMO_PUBLIC_HOST:-localhost}"]


def test_gateway_environment_is_read_by_the_cli(
    bundle: str, gateway: dict, serve_envvars: set[str]
) -> None:
    env = environment(gateway)
    # the entrypoint reads these three and exports the variable without _FILE
    entrypoint_files = {f"{n}_FILE" for n in ENTRYPOINT_FILE_VARIABLES}
    unknown = sorted(n for n in env if n.startswith("MINIMO_") and n not in serve_envvars)
    assert set(unknown) <= entrypoint_files, f"not read by `minimo serve`: {unknown}"
    assert port_of(env["MINIMO_LISTEN"]) == GATEWAY_PORT  # the health check reads it
    if bundle == "single":
        assert not {"MINIMO_S3_ENDPOINT", "MINIMO_MONGO_URI"} & set(env)
        return
    assert env["MINIMO_S3_ENDPOINT"] == S3_ENDPOINTS[bundle]
    assert set(unknown) == entrypoint_files, "S3 keys and the MongoDB URI come from init's files"
    assert "MINIMO_SECRET_KEY" not in env, "the Fernet key must not be an environment variable"


def test_entrypoint_reads_the_file_variables_compose_sets() -> None:
    text = ENTRYPOINT.read_text(encoding="utf-8")
    line = re.search(r"^for name in (.+); do$", text, re.M)
    assert line and line.group(1).split() == ENTRYPOINT_FILE_VARIABLES


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
    for name, service in services.items():
        if name not in {"minimo", "init"}:
            assert f"`{service['image']}`" in doc, f"docs/deploy.md: update {name}'s image"
    (base,) = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert f"`{base.split('@')[0]}`" in doc, "docs/deploy.md: update the Dockerfile's base"


# -- the entrypoint's NAME_FILE variables (compose.yaml's way of giving the gateway its secrets) -
def file_env(key_file: Path, tmp_path: Path) -> dict[str, str]:
    """base_env with the S3 keys and the MongoDB URI in files, as init writes them."""
    env = base_env(key_file)
    for name in ENTRYPOINT_FILE_VARIABLES:
        path = tmp_path / name.lower()
        path.write_text(env.pop(name) + "\n")
        path.chmod(0o600)
        env[f"{name}_FILE"] = str(path)
    return env


FILE_STUB = (
    "import json, os, sys; open(sys.argv[1], 'w').write('ran'); "
    "print(json.dumps({n: os.environ.get(n) for n in sys.argv[2:]}))"
)


def run_with_files(env: dict[str, str], marker: Path) -> subprocess.CompletedProcess[str]:
    names = [*ENTRYPOINT_FILE_VARIABLES, *(f"{n}_FILE" for n in ENTRYPOINT_FILE_VARIABLES)]
    return subprocess.run(
        ["bash", str(ENTRYPOINT), sys.executable, "-c", FILE_STUB, str(marker), *names],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_entrypoint_reads_secrets_from_files(key_file: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    result = run_with_files(file_env(key_file, tmp_path), marker)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["MINIMO_S3_ACCESS_KEY"] == SECRETS["MINIMO_S3_ACCESS_KEY"]
    assert seen["MINIMO_S3_SECRET_KEY"] == SECRETS["MINIMO_S3_SECRET_KEY"]
    assert SECRETS["MONGO_PASSWORD"] in seen["MINIMO_MONGO_URI"]
    assert all(seen[f"{n}_FILE"] is None for n in ENTRYPOINT_FILE_VARIABLES), "not passed on"


def test_entrypoint_prefers_the_variable_to_its_file(key_file: Path, tmp_path: Path) -> None:
    env = file_env(key_file, tmp_path) | {"MINIMO_S3_ACCESS_KEY": "from-docker-run-e"}
    result = run_with_files(env, tmp_path / "ran")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["MINIMO_S3_ACCESS_KEY"] == "from-docker-run-e"


@pytest.mark.parametrize("name", ENTRYPOINT_FILE_VARIABLES)
@pytest.mark.parametrize("problem", ["is empty", "not a readable file"])
def test_entrypoint_refuses_a_missing_or_empty_secret_file(
    name: str, problem: str, key_file: Path, tmp_path: Path
) -> None:
    env = file_env(key_file, tmp_path)
    path = Path(env[f"{name}_FILE"])
    if problem == "is empty":
        path.write_text("\n")
    else:
        path.unlink()
    marker = tmp_path / "ran"
    assert_refused(run_with_files(env, marker), marker, f"{name}_FILE", problem)


def test_the_documented_versitygw_service_is_valid_and_health_checked() -> None:
    """docs/deploy.md's versitygw snippet: a valid service with a healthcheck its (Alpine,
    busybox) image can run, reading the keys init writes, so minimo's service_healthy holds."""
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    section = doc[doc.index("**versitygw**") :]
    snippet = section[section.index("```yaml") + len("```yaml") : section.index("```\n", 10)]
    fragment = yaml.safe_load(snippet)
    compose = load(COMPOSE)
    compose["services"].update(fragment)
    compose["volumes"]["versitygw-data"] = None
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    assert not list(jsonschema.Draft7Validator(schema).iter_errors(compose))
    service = fragment["versitygw"]
    assert service["healthcheck"]["test"][:2] == ["CMD", "wget"]
    assert "--health /health" in service["command"][0]
    assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert "/secrets/minio/root_user" in service["command"][0]


def test_quick_start_is_three_commands_and_needs_no_env() -> None:
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    section = doc[doc.index("## Quick start") :]
    block = section[section.index("```sh\n") + len("```sh\n") : section.index("```\n", 10)]
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) <= 3, commands
    assert commands[0] == "docker compose up -d --build"
    assert not any(".env" in command or "EDITOR" in command for command in commands)
