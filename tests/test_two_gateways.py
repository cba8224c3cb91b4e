"""Two gateways, one state (issue 3 item 10, docs/design.md, decision 2).

Two ``minimo serve`` processes share one FerretDB database and one object store, as two
replicas behind a load balancer would: versitygw (one process), and a SeaweedFS cluster (master,
two volume servers, filer and S3 gateway, each its own process: the deployment at scale).
Nothing a write needs may live only in one process's memory: a
session opened on the shared store works through either gateway, a multipart upload created on
one takes parts through the other and completes on the first, and closing the session makes
both refuse within 5 s (their session caches are bounded at 2 s).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from policy.store import ObjectRecord, open_metadata_store
from tests.servers import REPO, Gateway, Versitygw, mongo_uri, run_gateway

FORM = {
    "name": "imaging",
    "title": "Imaging run",
    "fields": [{"name": "operator", "type": "text", "required": True}],
}
PART = 5 * 1024 * 1024


def policy_for(bucket: str) -> str:
    return f"""\
[[rule]]
bucket = "{bucket}"
prefix = ""
forms = ["imaging"]
open_sessions = ["admin"]
"""


def cli(data_dir: Path, uri: str, *args: str) -> str:
    """``minimo ARGS`` on the shared stores (before any gateway runs, too)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMO_")}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args, "--data-dir", str(data_dir),
         "--mongo-uri", uri],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def client(gw: Gateway, access_key: str, secret_key: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=gw.endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
    )


def record_of(uri: str, bucket: str, key: str) -> ObjectRecord | None:
    async def get() -> ObjectRecord | None:
        store = await open_metadata_store(uri)
        try:
            return await store.get_object_record(bucket, key)
        finally:
            await store.close()

    return asyncio.run(get())


@dataclass
class Pair:
    a: Gateway
    b: Gateway
    uri: str
    bucket: str
    upstream: Versitygw


@pytest.fixture(params=["versitygw", "seaweedfs"])
def pair(tmp_path: Path, ferretdb: str, request: pytest.FixtureRequest) -> Iterator[Pair]:
    upstream: Versitygw = request.getfixturevalue(request.param)
    uri = mongo_uri(ferretdb, f"two_{secrets.token_hex(6)}")
    bucket = f"two-{secrets.token_hex(4)}"
    dir_a, dir_b = tmp_path / "a", tmp_path / "b"
    dir_a.mkdir()
    # The policy names a form, so the form must exist before a gateway puts the policy in force.
    form_file = dir_a / "form.json"
    form_file.write_text(json.dumps(FORM))
    cli(dir_a, uri, "form", "create", "--file", str(form_file))
    policy_file = tmp_path / "rules.toml"
    policy_file.write_text(policy_for(bucket))
    # --policy last: it overrides any default policy run_gateway itself passes.
    extra = ["--policy", str(policy_file)]
    with run_gateway(dir_a, upstream=upstream, mongo_uri=uri, extra_args=extra) as a:
        # B shares A's secret key (session secrets in the database are encrypted with it) and
        # the admin A created (B finds users already there and prints no credentials).
        dir_b.mkdir()
        shutil.copy2(dir_a / "secret.key", dir_b / "secret.key")
        shutil.copy2(dir_a / "initial-admin.txt", dir_b / "initial-admin.txt")
        with run_gateway(dir_b, upstream=upstream, mongo_uri=uri, extra_args=extra) as b:
            admin = client(a, a.access_key, a.secret_key)
            admin.create_bucket(Bucket=bucket)
            yield Pair(a, b, uri, bucket, upstream)


def refused_put(s3: Any, bucket: str, key: str) -> str | None:
    """The S3 error code when a small PutObject is refused, None when it succeeds."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=b"late")
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return None


def test_session_multipart_and_close_across_gateways(pair: Pair) -> None:
    a, b, bucket = pair.a, pair.b, pair.bucket
    # Sanity: B enforces the shared policy (a write with no session is refused with the
    # teaching message), so what follows is not a scratch area at work.
    admin_b = client(b, b.access_key, b.secret_key)
    with pytest.raises(ClientError) as refusal:
        admin_b.put_object(Bucket=bucket, Key="run1/nosession.txt", Body=b"x")
    assert refusal.value.response["Error"]["Code"] == "AccessDenied"
    assert "session" in refusal.value.response["Error"]["Message"]

    # -- a session opened on the shared store, used through the other gateway with its key
    opened = json.loads(
        a.cli(
            "session", "open", "--form", "imaging", "--bucket", bucket, "--prefix", "run1/",
            "--set", "operator=Ada", "--json",
        ).stdout
    )  # fmt: skip
    sid = opened["id"]
    via_a = client(a, opened["access_key"], opened["secret_key"])
    via_b = client(b, opened["access_key"], opened["secret_key"])
    data = secrets.token_bytes(4096)
    via_b.put_object(Bucket=bucket, Key="run1/from-b.bin", Body=data)
    record = record_of(pair.uri, bucket, "run1/from-b.bin")
    assert record is not None
    assert record.session_id == sid
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    # the stamp is there whichever gateway reads it
    head = via_a.head_object(Bucket=bucket, Key="run1/from-b.bin")
    assert head["Metadata"]["minimo-session"] == sid

    # -- multipart: created on A, parts through B, completed on A
    key = "run1/big.bin"
    part1, part2 = secrets.token_bytes(PART), secrets.token_bytes(1234)
    upload_id = via_a.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number, body in enumerate((part1, part2), start=1):
        sent = via_b.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        parts.append({"PartNumber": number, "ETag": sent["ETag"]})
    via_a.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    record = record_of(pair.uri, bucket, key)
    assert record is not None
    assert record.session_id == sid
    assert record.size == PART + len(part2)
    assert record.sha256 == hashlib.sha256(part1 + part2).hexdigest()
    got = via_b.get_object(Bucket=bucket, Key=key)
    assert got["Metadata"]["minimo-session"] == sid
    assert hashlib.sha256(got["Body"].read()).hexdigest() == record.sha256

    # -- both gateways have the session cached as open (they just used it); close it on the
    # shared store and both must refuse within 5 s
    via_a.put_object(Bucket=bucket, Key="run1/warm-a.bin", Body=b"a")
    via_b.put_object(Bucket=bucket, Key="run1/warm-b.bin", Body=b"b")
    a.cli("session", "close", sid)
    closed = time.monotonic()
    pending = {"a": via_a, "b": via_b}
    refused_after: dict[str, float] = {}
    attempt = 0
    while pending and time.monotonic() - closed < 8:
        for name, s3 in list(pending.items()):
            attempt += 1
            code = refused_put(s3, bucket, f"run1/after-close-{name}-{attempt}")
            if code is not None:
                assert code in ("AccessDenied", "InvalidAccessKeyId"), code
                refused_after[name] = time.monotonic() - closed
                del pending[name]
        time.sleep(0.2)
    assert not pending, f"still accepting writes 8 s after close: {sorted(pending)}"
    assert max(refused_after.values()) < 5, refused_after
    print(f"refused {refused_after} s after the close")

    # -- everything the two gateways wrote is recorded as stored: reconcile finds nothing
    upstream = pair.upstream
    done = a.cli(
        "reconcile", "--json", "--bucket", bucket, "--s3-endpoint", upstream.endpoint,
        "--s3-access-key", upstream.access_key, "--s3-secret-key", upstream.secret_key,
        check=False,
    )  # fmt: skip
    summary = json.loads(done.stdout.splitlines()[-1])["summary"]
    assert done.returncode == 0, done.stdout
    assert summary["consistent"] is True
    assert summary["records_checked"] >= 4  # from-b, big, warm-a, warm-b
