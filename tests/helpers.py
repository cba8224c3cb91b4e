"""Small helpers the end-to-end tests share: boto3 pointed at a real server, the flags that name
the upstream S3 store to minimo's CLI, minimo's CLI on a data directory, and objects put into
the object store behind minimo's back (data that was there before minimo)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from gateway.backends.base import WriteMeta
from gateway.backends.local import LocalObjectStore
from tests.contract.helpers import Bytes
from tests.servers import REPO, Gateway, Versitygw


def s3_client(
    server: Gateway | Versitygw, access_key: str | None = None, secret_key: str | None = None
) -> Any:
    """boto3 for ``server`` with the given key, or else the server's own admin key.

    Path-style addressing: the servers listen on 127.0.0.1, where bucket subdomains cannot work.
    """
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=access_key or server.access_key,
        aws_secret_access_key=secret_key or server.secret_key,
        region_name="us-east-1",
        config=BotoConfig(s3={"addressing_style": "path"}),
    )


def policy_rule(bucket: str, forms: list[str], prefix: str = "", **settings: Any) -> str:
    """One ``[[rule]]`` of a policy as TOML (rules are joined with blank lines between them);
    ``settings`` are the rule's other keys, e.g. ``open_sessions=["uploader"]``."""
    keys = {"bucket": bucket, "prefix": prefix, "forms": forms, **settings}
    # JSON's strings, lists of strings and booleans are spelt the same in TOML
    return "[[rule]]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())


def store_args(upstream: Versitygw | None) -> list[str]:
    """The CLI flags that point a command at the same object store as the gateway."""
    if upstream is None:
        return []  # the local store under --data-dir
    return [
        "--s3-endpoint", upstream.endpoint,
        "--s3-access-key", upstream.access_key,
        "--s3-secret-key", upstream.secret_key,
    ]  # fmt: skip


def cli(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``minimo ARGS --data-dir DATA_DIR``, for a data directory no gateway serves yet."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=check,
        cwd=REPO,
    )


class Setup:
    """Puts objects into the object store behind minimo's back: no record, no session stamp."""

    def __init__(self, data_dir: Path, upstream: Versitygw | None) -> None:
        self.data_dir = data_dir
        self.upstream = upstream

    def put(self, bucket: str, key: str, data: bytes, metadata: dict[str, str]) -> None:
        if self.upstream is not None:
            s3_client(self.upstream).put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                ContentType="application/x-run",
                CacheControl="no-cache",
                Metadata=metadata,
            )
            return

        async def main() -> None:
            store = LocalObjectStore(self.data_dir / "objects")
            await store.start()
            try:
                meta = WriteMeta(
                    content_type="application/x-run",
                    metadata=dict(metadata),
                    headers={"cache-control": "no-cache"},
                )
                await store.put_object(bucket, key, Bytes(data), meta)
            finally:
                await store.close()

        asyncio.run(main())

    def create_bucket(self, bucket: str) -> None:
        if self.upstream is not None:
            s3_client(self.upstream).create_bucket(Bucket=bucket)
            return

        async def main() -> None:
            store = LocalObjectStore(self.data_dir / "objects")
            await store.start()
            try:
                await store.create_bucket(bucket)
            finally:
                await store.close()

        asyncio.run(main())

    def store_args(self) -> list[str]:
        return store_args(self.upstream)
