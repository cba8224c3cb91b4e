"""The bundle's one-shot ``init`` service: every secret the stores and the gateway need, generated
on the first start into the secrets volume and reused on every later start.

Nothing has to be filled in before ``docker compose up -d``. A value set in ``.env`` (compose
passes it here) overrides the stored one and is stored in its place, so it keeps applying after
it is removed from ``.env``. The values are random (``secrets.token_hex``, a Fernet key from
``os.urandom``): nothing weak by default.

Each consumer gets its own directory (0700) of files (0600) owned by the user its image runs as,
because each image reads its secret as a different user and a 0600 file has one reader:

=================  ======  =====================================================================
directory          owner   files
=================  ======  =====================================================================
``mongo/``         999     ``root_username``, ``root_password`` (``MONGO_INITDB_ROOT_*_FILE``)
``seaweedfs/``     0       ``s3.json`` (``weed server -s3.config``: the one identity, minimo's)
``minio/``         0       ``root_user``, ``root_password`` (MinIO's ``MINIO_ROOT_*_FILE``)
``minimo/``        10001   ``s3_access_key``, ``s3_secret_key``, ``mongo_uri``, ``secret_key``
``.state/``        0       the values themselves, the source of the copies above
=================  ======  =====================================================================

Run as root (compose gives this service ``user: "0:0"``) so it can hand each file to its owner;
run as anyone else (the tests) it writes the same files, all owned by the caller. It prints which
values it generated, kept or took from ``.env``, never a value. Standard library only: it runs in
the minimo image with ``python``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

#: uids of the users the consumers' images run as (mongo: ``mongodb``; minimo: the Dockerfile's)
MONGO_UID = 999
MINIMO_UID = 10001
ROOT_UID = 0

EX_CONFIG = 78
FERNET_KEY = re.compile(r"^[A-Za-z0-9_-]{43}=$")


def fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class Secret:
    """One stored value: its file under ``.state/``, the ``.env`` variable that overrides it,
    how to make a fresh one and what a valid one looks like."""

    name: str
    override: str
    generate: Callable[[], str]
    #: the problem with a value given in .env, None when it is fine
    check: Callable[[str], str | None] | None = None
    #: False for a plain default (a user name), not a secret
    random: bool = True


def at_least(n: int) -> Callable[[str], str | None]:
    return lambda value: None if len(value) >= n else f"must be {n} characters or more"


def fernet(value: str) -> str | None:
    return None if FERNET_KEY.match(value) else "is not a Fernet key (43 characters and '=')"


SECRETS = [
    Secret("mongo_user", "MONGO_INITDB_ROOT_USERNAME", lambda: "minimo", random=False),
    Secret("mongo_password", "MONGO_INITDB_ROOT_PASSWORD", lambda: secrets.token_hex(24)),
    # MinIO wants an access key of 3+ and a secret of 8+ characters; SeaweedFS takes any
    Secret("s3_access_key", "S3_ACCESS_KEY", lambda: "minimo" + secrets.token_hex(8), at_least(3)),
    Secret("s3_secret_key", "S3_SECRET_KEY", lambda: secrets.token_hex(24), at_least(16)),
    Secret("secret_key", "MINIMO_SECRET_KEY", fernet_key, fernet),
]


class InitError(Exception):
    """A value from .env is unusable; the message names the variable, never the value."""


def write_private(path: Path, text: str, uid: int) -> None:
    """``path`` holds ``text``, mode 0600, owned by ``uid`` when we may give it away."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, 0o600)  # the umask may have narrowed it, or the file pre-existed
    give(tmp, uid)
    os.replace(tmp, path)


def private_dir(path: Path, uid: int) -> Path:
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    give(path, uid)
    return path


def give(path: Path, uid: int) -> None:
    if os.geteuid() == 0:
        os.chown(path, uid, uid)


def resolve(state: Path, env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The value of every secret and where it came from (generated, kept, .env)."""
    values, origin = {}, {}
    for secret in SECRETS:
        stored = state / secret.name
        given = env.get(secret.override, "").strip()
        if given:
            problem = secret.check(given) if secret.check else None
            if problem:
                raise InitError(f"{secret.override} (from .env) {problem}")
            values[secret.name], origin[secret.name] = given, f".env {secret.override}"
        elif stored.is_file() and stored.read_text(encoding="utf-8").strip():
            values[secret.name] = stored.read_text(encoding="utf-8").strip()
            origin[secret.name] = "kept"
        else:
            values[secret.name] = secret.generate()
            origin[secret.name] = "generated" if secret.random else "default"
        current = stored.read_text(encoding="utf-8").strip() if stored.is_file() else None
        if current != values[secret.name]:
            write_private(stored, values[secret.name] + "\n", ROOT_UID)
    return values, origin


def mongo_uri(values: dict[str, str], host: str) -> str:
    user, password = quote(values["mongo_user"], safe=""), quote(values["mongo_password"], safe="")
    return f"mongodb://{user}:{password}@{host}/minimo?authSource=admin"


def seaweedfs_config(values: dict[str, str]) -> str:
    key = {"accessKey": values["s3_access_key"], "secretKey": values["s3_secret_key"]}
    identity = {
        "name": "minimo",
        "credentials": [key],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    return json.dumps({"identities": [identity]}, indent=2) + "\n"


def write_all(root: Path, env: dict[str, str]) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o711)  # every consumer may enter, none may list
    state = private_dir(root / ".state", ROOT_UID)
    values, origin = resolve(state, env)
    mongo_host = env.get("MINIMO_INIT_MONGO_HOST", "").strip() or "mongo:27017"
    files = {
        (MONGO_UID, "mongo"): {
            "root_username": values["mongo_user"],
            "root_password": values["mongo_password"],
        },
        (ROOT_UID, "seaweedfs"): {"s3.json": seaweedfs_config(values)},
        (ROOT_UID, "minio"): {
            "root_user": values["s3_access_key"],
            "root_password": values["s3_secret_key"],
        },
        (MINIMO_UID, "minimo"): {
            "s3_access_key": values["s3_access_key"],
            "s3_secret_key": values["s3_secret_key"],
            "mongo_uri": mongo_uri(values, mongo_host),
            "secret_key": values["secret_key"],
        },
    }
    for (uid, directory), contents in files.items():
        folder = private_dir(root / directory, uid)
        for name, text in contents.items():
            write_private(folder / name, text if text.endswith("\n") else text + "\n", uid)
    return origin


def main() -> int:
    root = Path(os.environ.get("MINIMO_INIT_SECRETS_DIR", "/secrets"))
    try:
        origin = write_all(root, dict(os.environ))
    except (InitError, OSError) as exc:
        print(f"minimo-init: refusing to start: {exc}", file=sys.stderr)
        return EX_CONFIG
    for name, where in origin.items():
        print(f"minimo-init: {name}: {where}")
    print(f"minimo-init: secrets ready in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
