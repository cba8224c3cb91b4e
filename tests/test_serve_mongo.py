"""``minimo serve --mongo-uri``: metadata in MongoDB (FerretDB), the CLI beside the server."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import boto3
from pymongo import AsyncMongoClient

from tests.servers import REPO, Gateway, free_port, mongo_uri, run_ferretdb, run_gateway


def s3_client(gw: Gateway, access_key: str, secret_key: str):
    return boto3.client(
        "s3",
        endpoint_url=gw.endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
    )


def user_names_in_mongo(uri: str) -> list[str]:
    """Read the users collection directly, to prove where the gateway wrote them."""

    async def main() -> list[str]:
        client: AsyncMongoClient = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000)
        try:
            db = client.get_default_database()
            return sorted([doc["name"] async for doc in db["users"].find({})])
        finally:
            await client.close()

    return asyncio.run(main())


def test_serve_on_mongo_and_cli_beside_it(tmp_path: Path, ferretdb: str) -> None:
    uri = mongo_uri(ferretdb, f"e2e_{secrets.token_hex(6)}")
    data = tmp_path / "data"
    with run_gateway(data, mongo_uri=uri) as gw:
        # the first admin lives in MongoDB, and no SQLite file was made beside it
        assert user_names_in_mongo(uri) == ["admin"]
        assert not (data / "minimo.sqlite3").exists()
        s3_client(gw, gw.access_key, gw.secret_key).list_buckets()

        # the CLI with the same --mongo-uri (gw.cli passes it) acts on the running server's state
        gw.cli("user", "add", "carol", "--role", "uploader")
        created = json.loads(gw.cli("key", "create", "carol", "--json").stdout)
        s3_client(gw, created["access_key"], created["secret_key"]).list_buckets()

        # MINIMO_MONGO_URI selects the same store as the option
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMO_")}
        env["MINIMO_MONGO_URI"] = uri
        listed = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "key", "list", "--json",
             "--data-dir", str(data)],
            cwd=REPO, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        owners = sorted(k["user"] for k in json.loads(listed.stdout))
        assert owners == ["admin", "carol"]
        assert user_names_in_mongo(uri) == ["admin", "carol"]

    # a restart on the same database finds its admin and creates nothing
    before = (data / "initial-admin.txt").read_bytes()
    with run_gateway(data, mongo_uri=uri) as gw:
        assert (data / "initial-admin.txt").read_bytes() == before
        assert user_names_in_mongo(uri) == ["admin", "carol"]
        s3_client(gw, created["access_key"], created["secret_key"]).list_buckets()


def test_health_answers_503_soon_after_mongo_goes_away(tmp_path: Path) -> None:
    with ExitStack() as stack:
        # a private FerretDB, stopped while the gateway keeps running
        with run_ferretdb(tmp_path / "ferretdb") as server:
            gw = stack.enter_context(
                run_gateway(tmp_path / "data", mongo_uri=mongo_uri(server, "minimo"))
            )
        started = time.monotonic()
        try:
            urllib.request.urlopen(f"{gw.endpoint}/_minimo/health", timeout=30)
            raise AssertionError("health answered 200 without its metadata store")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
            body = json.loads(exc.read())
        assert body["metadata_store"].startswith("unavailable")
        assert body["object_store"] == "ok"
        assert time.monotonic() - started < 10


def test_unreachable_mongo_is_a_quick_clear_error(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--listen", f"127.0.0.1:{free_port()}",
         "--workers", "1", "--data-dir", str(tmp_path / "data"),
         "--mongo-uri", f"mongodb://minimo:hunter2@127.0.0.1:{free_port()}/minimo"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "cannot open the metadata store mongodb://minimo:***@127.0.0.1" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30  # the 5 s selection timeout, not PyMongo's 30 s


def test_mongo_uri_must_be_a_mongodb_url(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "user", "list",
         "--data-dir", str(tmp_path / "data"), "--mongo-uri", "postgres://nope"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "mongodb://" in result.stderr
