"""The enforcement matrix of issue 3, with real clients against real gateway processes.

Gateways run on {sqlite, mongo (FerretDB)} x {local, s3 (versitygw)}; boto3 covers the whole
matrix on all four, aws cli, rclone and minio-py one accepted and one refused write each on
sqlite+local and mongo+s3. Users, forms, the policy and sessions are set up through the policy
services in this process, on the gateway's own metadata store (what the CLI and UI do too), so
every close or expiry reaches the gateway the way it would in production: through the store,
within the documented 2 s cache bound.

Every accepted object is checked three ways: its record exists, its SHA-256 equals the bytes',
and HeadObject shows the ``x-amz-meta-minimo-session`` stamp (none for scratch writes).
"""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import urllib3
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.sites import SITES, TOOL_SITES, Keys, Site

MiB = 1 << 20
BIN = Path(sys.executable).parent


@pytest.fixture(params=SITES)
def site(request: pytest.FixtureRequest, sites: Callable[[str], Site]) -> Site:
    return sites(request.param)


@pytest.fixture(params=TOOL_SITES)
def tool_site(request: pytest.FixtureRequest, sites: Callable[[str], Site]) -> Site:
    return sites(request.param)


def refusal(call: Callable[[], Any], code: str = "AccessDenied") -> str:
    """Run a boto3 call that must be refused; return the refusal's Message."""
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response["Error"]
    assert error["Code"] == code, error
    return error.get("Message", "")


def eventually_refused(call: Callable[[], Any], timeout: float = 15.0) -> ClientError:
    """Closing lands within the 2 s cache bound; poll well past it so a busy machine is fine."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            call()
        except ClientError as exc:
            return exc
        assert time.monotonic() < deadline, "still accepted long after the session closed"
        time.sleep(0.2)


# -- the boto3 matrix: every case on every gateway ------------------------------------------------
def test_no_session_is_refused_with_a_teaching_message(site: Site) -> None:
    s3 = site.client(site.alice)
    message = refusal(lambda: s3.put_object(Bucket=site.bucket, Key="raw/run7/a.tif", Body=b"x"))
    assert message == (
        f"No open metadata session for s3://{site.bucket}/raw/run7/. Open one at "
        f"{site.gw.endpoint}/_minimo/sessions/new?bucket={site.bucket}&prefix=raw%2Frun7%2F "
        "and upload with its key, or send header x-amz-meta-minimo-session: <id>."
    )
    assert site.meta.record(site.bucket, "raw/run7/a.tif") is None


def test_session_key_write(site: Site) -> None:
    session_id, prefix, keys = site.session()
    data = secrets.token_bytes(4096)
    site.client(keys).put_object(Bucket=site.bucket, Key=prefix + "a.bin", Body=data)
    site.verify(prefix + "a.bin", data, session_id)
    # a session key reads back inside its bucket
    got = site.client(keys).get_object(Bucket=site.bucket, Key=prefix + "a.bin")["Body"].read()
    assert got == data


def test_header_path(site: Site) -> None:
    session_id, prefix, _ = site.session()
    data = b"named by header"
    site.client(site.alice).put_object(
        Bucket=site.bucket, Key=prefix + "h.txt", Body=data, Metadata={"minimo-session": session_id}
    )
    site.verify(prefix + "h.txt", data, session_id)
    # an admin may write into anyone's session
    site.client(site.admin).put_object(
        Bucket=site.bucket,
        Key=prefix + "adm.txt",
        Body=data,
        Metadata={"minimo-session": session_id},
    )
    site.verify(prefix + "adm.txt", data, session_id)


def test_closed_session(site: Site) -> None:
    session_id, prefix, keys = site.session()
    site.client(keys).put_object(Bucket=site.bucket, Key=prefix + "before", Body=b"1")
    site.meta.close(session_id)
    s3 = site.client(site.alice)
    exc = eventually_refused(
        lambda: s3.put_object(
            Bucket=site.bucket,
            Key=prefix + "after-" + secrets.token_hex(4),  # fresh: earlier tries may have landed
            Body=b"2",
            Metadata={"minimo-session": session_id},
        )
    )
    message = exc.response["Error"]["Message"]
    assert exc.response["Error"]["Code"] == "AccessDenied"
    assert message.startswith(f"Session {session_id} closed at ")
    assert "open a new one at " in message
    # the session key dies with its session
    exc = eventually_refused(
        lambda: site.client(keys).put_object(
            Bucket=site.bucket, Key=prefix + secrets.token_hex(4), Body=b"3"
        )
    )
    assert exc.response["Error"]["Code"] in ("InvalidAccessKeyId", "AccessDenied")
    site.verify(prefix + "before", b"1", session_id)


def test_expired_session(site: Site) -> None:
    session_id, prefix, keys = site.session(ttl=timedelta(seconds=1))
    time.sleep(1.5)
    message = refusal(
        lambda: site.client(site.alice).put_object(
            Bucket=site.bucket,
            Key=prefix + "late",
            Body=b"x",
            Metadata={"minimo-session": session_id},
        )
    )
    assert message.startswith(f"Session {session_id} expired at ")
    message = refusal(
        lambda: site.client(keys).put_object(Bucket=site.bucket, Key=prefix + "late", Body=b"x")
    )
    assert "expired at" in message


def test_key_outside_the_scope(site: Site) -> None:
    session_id, prefix, keys = site.session()
    message = refusal(
        lambda: site.client(keys).put_object(Bucket=site.bucket, Key="raw/elsewhere/x", Body=b"x")
    )
    assert message.startswith(
        f"Key s3://{site.bucket}/raw/elsewhere/x is outside session {session_id}'s scope "
        f"s3://{site.bucket}/{prefix}"
    )
    # also through a scratch area: a session key writes only inside its scope
    message = refusal(
        lambda: site.client(keys).put_object(Bucket=site.bucket, Key="scratch/x", Body=b"x")
    )
    assert "outside session" in message
    # a session key names no other session, and reads only in its session's bucket
    other_id, _, _ = site.session()
    message = refusal(
        lambda: site.client(keys).put_object(
            Bucket=site.bucket, Key=prefix + "x", Body=b"x", Metadata={"minimo-session": other_id}
        )
    )
    assert message.startswith(f"This is the key of session {session_id}; it writes into that")
    other_bucket = f"enf-{secrets.token_hex(4)}"
    site.client(site.admin).create_bucket(Bucket=other_bucket)
    message = refusal(lambda: site.client(keys).list_objects_v2(Bucket=other_bucket))
    assert f"it reads only in s3://{site.bucket}/" in message
    site.client(keys).list_objects_v2(Bucket=site.bucket, Prefix=prefix)
    message = refusal(
        lambda: site.client(site.alice).put_object(
            Bucket=site.bucket,
            Key="raw/elsewhere/y",
            Body=b"y",
            Metadata={"minimo-session": session_id},
        )
    )
    assert "outside session" in message


def test_someone_elses_session(site: Site) -> None:
    session_id, prefix, _ = site.session(owner="alice")
    message = refusal(
        lambda: site.client(site.bob).put_object(
            Bucket=site.bucket, Key=prefix + "b", Body=b"b", Metadata={"minimo-session": session_id}
        )
    )
    assert message.startswith(f"Session {session_id} belongs to alice; bob may write only")


def test_no_matching_rule(site: Site) -> None:
    message = refusal(
        lambda: site.client(site.admin).put_object(Bucket=site.bucket, Key="nowhere/x", Body=b"x")
    )
    assert message == (
        f"No policy rule covers s3://{site.bucket}/nowhere/x, so nothing may be written there; "
        "an admin must add one (minimo policy set)."
    )


def test_no_rule_and_no_bucket_is_no_such_bucket(site: Site) -> None:
    """Outside every rule, a missing bucket is named first (as S3 does); a bucket that exists
    keeps the policy's refusal (test_no_matching_rule)."""
    missing = f"absent-{secrets.token_hex(4)}"
    s3 = site.client(site.admin)
    refusal(lambda: s3.put_object(Bucket=missing, Key="nowhere/x", Body=b"x"), "NoSuchBucket")
    refusal(lambda: s3.create_multipart_upload(Bucket=missing, Key="nowhere/y"), "NoSuchBucket")
    refusal(lambda: s3.put_object(Bucket=site.bucket, Key="nowhere/x", Body=b"x"))


def test_readers_never_write(site: Site) -> None:
    message = refusal(
        lambda: site.client(site.reader).put_object(Bucket=site.bucket, Key="scratch/r", Body=b"r")
    )
    assert "role 'reader'" in message


def test_scratch_area(site: Site) -> None:
    data = b"scratch bytes"
    for keys in (site.admin, site.alice):
        site.client(keys).put_object(Bucket=site.bucket, Key="scratch/s.txt", Body=data)
        site.verify("scratch/s.txt", data, None)  # no session, no stamp; overwrite allowed
    # a stray stamp header names a session, which must then be valid
    message = refusal(
        lambda: site.client(site.alice).put_object(
            Bucket=site.bucket, Key="scratch/t", Body=b"t", Metadata={"minimo-session": "nope"}
        )
    )
    assert "is not a session id" in message


def test_overwrite_rules(site: Site) -> None:
    session_id, prefix, keys = site.session()
    s3 = site.client(keys)
    s3.put_object(Bucket=site.bucket, Key=prefix + "once", Body=b"first")
    message = refusal(lambda: s3.put_object(Bucket=site.bucket, Key=prefix + "once", Body=b"2nd"))
    assert f"s3://{site.bucket}/{prefix}once already exists" in message
    assert "write-once (overwrite = deny)" in message
    site.verify(prefix + "once", b"first", session_id)

    # overwrite = allow under mutable/
    mutable_id, _ = site.meta.open("alice", site.bucket, f"mutable/{secrets.token_hex(4)}/")
    record = site.meta.run(site.meta.sessions.get(mutable_id))
    key = record.prefix + "m"
    alice = site.client(site.alice)
    for body in (b"one", b"two"):
        alice.put_object(
            Bucket=site.bucket, Key=key, Body=body, Metadata={"minimo-session": mutable_id}
        )
    site.verify(key, b"two", mutable_id)


def test_conditional_writes_keep_write_once(site: Site) -> None:
    """If-Match names the object to replace; under overwrite = deny it is still refused, on a
    PUT as on a multipart completion (which stays usable)."""
    session_id, prefix, keys = site.session()
    s3 = site.client(keys)
    etag = s3.put_object(Bucket=site.bucket, Key=prefix + "once", Body=b"first")["ETag"]
    message = refusal(
        lambda: s3.put_object(Bucket=site.bucket, Key=prefix + "once", Body=b"2", IfMatch=etag)
    )
    assert "write-once (overwrite = deny)" in message
    upload = s3.create_multipart_upload(Bucket=site.bucket, Key=prefix + "once")["UploadId"]
    part = s3.upload_part(
        Bucket=site.bucket, Key=prefix + "once", UploadId=upload, PartNumber=1, Body=b"2"
    )["ETag"]
    for condition in ({"IfMatch": etag}, {}):
        message = refusal(
            lambda condition=condition: s3.complete_multipart_upload(
                Bucket=site.bucket,
                Key=prefix + "once",
                UploadId=upload,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part}]},
                **condition,
            )
        )
        assert "write-once (overwrite = deny)" in message
    site.verify(prefix + "once", b"first", session_id)
    s3.abort_multipart_upload(Bucket=site.bucket, Key=prefix + "once", UploadId=upload)


def test_completion_retry_on_every_store(site: Site) -> None:
    """A completion sent again (SDK retry) answers the same on sqlite and mongo, with a session
    key; another user's identical request stays NoSuchUpload."""
    session_id, prefix, keys = site.session()
    s3 = site.client(keys)
    key = prefix + "mpu"
    upload = s3.create_multipart_upload(Bucket=site.bucket, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=site.bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"p")
    listed = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}

    def complete(client: Any) -> dict:
        return client.complete_multipart_upload(
            Bucket=site.bucket, Key=key, UploadId=upload, MultipartUpload=listed
        )

    first = complete(s3)
    assert complete(s3)["ETag"] == first["ETag"]
    refusal(lambda: complete(site.client(site.bob)), "NoSuchUpload")
    site.verify(key, b"p", session_id)


def test_delete_rules(site: Site) -> None:
    admin, alice, bob = (site.client(k) for k in (site.admin, site.alice, site.bob))
    # raw/: delete = admin
    _, prefix, keys = site.session()
    site.client(keys).put_object(Bucket=site.bucket, Key=prefix + "d", Body=b"d")
    message = refusal(lambda: alice.delete_object(Bucket=site.bucket, Key=prefix + "d"))
    assert "Only admins may delete" in message
    admin.delete_object(Bucket=site.bucket, Key=prefix + "d")
    assert site.meta.record(site.bucket, prefix + "d") is None
    # the claim went with the record: the key can be written again
    site.client(keys).put_object(Bucket=site.bucket, Key=prefix + "d", Body=b"again")

    # kept/: delete = deny, for admins too
    kept_id, _ = site.meta.open("alice", site.bucket, f"kept/{secrets.token_hex(4)}/")
    kept = site.meta.run(site.meta.sessions.get(kept_id)).prefix + "k"
    alice.put_object(Bucket=site.bucket, Key=kept, Body=b"k", Metadata={"minimo-session": kept_id})
    message = refusal(lambda: admin.delete_object(Bucket=site.bucket, Key=kept))
    assert "(delete = deny)" in message

    # mutable/: delete = owner (the session's owner), in DeleteObjects too
    mut_id, _ = site.meta.open("alice", site.bucket, f"mutable/{secrets.token_hex(4)}/")
    mut = site.meta.run(site.meta.sessions.get(mut_id)).prefix
    for name in ("a", "b"):
        alice.put_object(
            Bucket=site.bucket, Key=mut + name, Body=b"m", Metadata={"minimo-session": mut_id}
        )
    message = refusal(lambda: bob.delete_object(Bucket=site.bucket, Key=mut + "a"))
    assert "belongs to alice" in message
    result = bob.delete_objects(
        Bucket=site.bucket, Delete={"Objects": [{"Key": mut + "a"}, {"Key": kept}]}
    )
    assert {e["Code"] for e in result["Errors"]} == {"AccessDenied"}
    assert not result.get("Deleted")
    result = alice.delete_objects(Bucket=site.bucket, Delete={"Objects": [{"Key": mut + "a"}]})
    assert [d["Key"] for d in result["Deleted"]] == [mut + "a"]
    alice.delete_object(Bucket=site.bucket, Key=mut + "b")
    assert site.meta.record(site.bucket, mut + "a") is None
    assert site.meta.record(site.bucket, mut + "b") is None


def test_concurrent_write_once_race(site: Site) -> None:
    session_id, prefix, keys = site.session()
    writers = 4
    for round_ in range(3):
        key = f"{prefix}race-{round_}"
        bodies = [secrets.token_bytes(64 * 1024) for _ in range(writers)]
        clients = [site.client(keys) for _ in range(writers)]
        barrier = threading.Barrier(writers)
        outcomes: list[str] = [""] * writers

        def write(
            i: int,
            key: str = key,
            bodies: list[bytes] = bodies,
            clients: list[Any] = clients,
            barrier: threading.Barrier = barrier,
            outcomes: list[str] = outcomes,
        ) -> None:
            barrier.wait()
            try:
                clients[i].put_object(Bucket=site.bucket, Key=key, Body=bodies[i])
                outcomes[i] = "ok"
            except ClientError as exc:
                outcomes[i] = exc.response["Error"]["Code"]

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes.count("ok") == 1, outcomes
        assert set(outcomes) - {"ok"} <= {"AccessDenied", "PreconditionFailed"}
        site.verify(key, bodies[outcomes.index("ok")], session_id)


def test_multipart_with_a_session_key(site: Site, tmp_path: Path) -> None:
    session_id, prefix, keys = site.session()
    data = secrets.token_bytes(6 * MiB)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    site.client(keys).upload_fileobj(io.BytesIO(data), site.bucket, prefix + "big", Config=config)
    site.verify(prefix + "big", data, session_id)
    assert site.meta.run(site.meta.store.list_object_history(site.bucket, prefix + "big"))


def test_multipart_whose_session_closes_before_complete(site: Site) -> None:
    session_id, prefix, _ = site.session()
    s3 = site.client(site.alice)
    key = prefix + "mp"
    upload = s3.create_multipart_upload(
        Bucket=site.bucket, Key=key, Metadata={"minimo-session": session_id}
    )["UploadId"]
    etag = s3.upload_part(
        Bucket=site.bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"part one"
    )["ETag"]
    # another user may not add parts to it
    message = refusal(
        lambda: site.client(site.bob).upload_part(
            Bucket=site.bucket, Key=key, UploadId=upload, PartNumber=2, Body=b"x"
        )
    )
    assert "was started by alice" in message
    site.meta.close(session_id)
    # Wait until this gateway has seen the close (a probe write is refused), then complete once:
    # a completion that still landed inside the cache bound would be legitimately accepted.
    eventually_refused(
        lambda: s3.put_object(
            Bucket=site.bucket,
            Key=prefix + secrets.token_hex(4),
            Body=b"probe",
            Metadata={"minimo-session": session_id},
        )
    )
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    with pytest.raises(ClientError) as info:
        s3.complete_multipart_upload(
            Bucket=site.bucket, Key=key, UploadId=upload, MultipartUpload=parts
        )
    exc = info.value
    assert exc.response["Error"]["Code"] == "AccessDenied"
    assert f"Session {session_id} closed at" in exc.response["Error"]["Message"]
    assert "abort it" in exc.response["Error"]["Message"]
    assert site.meta.record(site.bucket, key) is None
    # the upload is still there, so it can be aborted
    s3.abort_multipart_upload(Bucket=site.bucket, Key=key, UploadId=upload)
    assert site.meta.run(site.meta.store.get_multipart(upload)) is None
    refusal(lambda: site.client(site.admin).head_object(Bucket=site.bucket, Key=key), "404")


def test_copy_into_a_session(site: Site) -> None:
    data = secrets.token_bytes(10_000)
    admin = site.client(site.admin)
    admin.put_object(Bucket=site.bucket, Key="scratch/src", Body=data, Metadata={"k": "v"})
    session_id, prefix, keys = site.session()
    site.client(keys).copy_object(
        Bucket=site.bucket,
        Key=prefix + "copy",
        CopySource={"Bucket": site.bucket, "Key": "scratch/src"},
    )
    site.verify(prefix + "copy", data, session_id)
    head = admin.head_object(Bucket=site.bucket, Key=prefix + "copy")
    assert head["Metadata"]["k"] == "v"  # directive COPY keeps the rest of the metadata
    # and a copy into write-once raw/ cannot replace what is there
    message = refusal(
        lambda: site.client(keys).copy_object(
            Bucket=site.bucket,
            Key=prefix + "copy",
            CopySource={"Bucket": site.bucket, "Key": "scratch/src"},
            MetadataDirective="REPLACE",
        )
    )
    assert "write-once" in message


def test_buckets_are_for_admins(site: Site) -> None:
    name = f"enf-{secrets.token_hex(4)}"
    message = refusal(lambda: site.client(site.alice).create_bucket(Bucket=name))
    assert "only admins" in message
    # an existing bucket answers as S3 does, so "make sure it exists" steps of tools pass
    refusal(
        lambda: site.client(site.alice).create_bucket(Bucket=site.bucket), "BucketAlreadyOwnedByYou"
    )


def test_refusals_and_writes_are_audited(site: Site) -> None:
    _, prefix, keys = site.session()
    site.client(keys).put_object(Bucket=site.bucket, Key=prefix + "audited", Body=b"a")
    refusal(
        lambda: site.client(site.alice).put_object(Bucket=site.bucket, Key="raw/x/y", Body=b"y")
    )
    events, _ = site.meta.run(
        site.meta.store.list_audit(action="PutObject", limit=1000, descending=True)
    )
    targets = {(e.target, e.outcome) for e in events}
    assert (f"s3://{site.bucket}/{prefix}audited", "allowed") in targets
    assert (f"s3://{site.bucket}/raw/x/y", "refused") in targets


def test_https_streaming_uploads_are_hashed(sites: Callable[[str], Site]) -> None:
    """Over HTTPS boto3 sends aws-chunked bodies with a trailer checksum and no payload hash:
    the record's SHA-256 is still computed from the decoded bytes, single and multipart."""
    site = sites("sqlite-local-tls")
    session_id, prefix, keys = site.session()
    data = secrets.token_bytes(100_000)
    site.client(keys).put_object(Bucket=site.bucket, Key=prefix + "t", Body=data)
    site.verify(prefix + "t", data, session_id)
    big = secrets.token_bytes(5 * MiB + 123)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    site.client(keys).upload_fileobj(io.BytesIO(big), site.bucket, prefix + "big", Config=config)
    site.verify(prefix + "big", big, session_id)


# -- other clients: one accepted and one refused write each ----------------------------------
def _payload(tmp_path: Path, size: int = 50_000) -> tuple[Path, bytes]:
    data = secrets.token_bytes(size)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    return path, data


def _aws(site: Site, keys: Keys, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    home = tmp_path / "awshome"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": keys.access_key,
        "AWS_SECRET_ACCESS_KEY": keys.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return subprocess.run(
        [str(BIN / "aws"), *args, "--endpoint-url", site.gw.endpoint],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_aws_cli(tool_site: Site, tmp_path: Path) -> None:
    site = tool_site
    path, data = _payload(tmp_path)
    refused = _aws(
        site, site.alice, tmp_path, "s3", "cp", str(path), f"s3://{site.bucket}/raw/cli/x"
    )
    assert refused.returncode != 0
    assert (
        f"No open metadata session for s3://{site.bucket}/raw/cli/. Open one at" in refused.stderr
    )
    session_id, prefix, keys = site.session()
    ok = _aws(site, keys, tmp_path, "s3", "cp", str(path), f"s3://{site.bucket}/{prefix}x")
    assert ok.returncode == 0, ok.stderr
    site.verify(prefix + "x", data, session_id)
    # the header path: a personal key naming the session
    ok = _aws(
        site, site.alice, tmp_path, "s3", "cp", str(path), f"s3://{site.bucket}/{prefix}y",
        "--metadata", f"minimo-session={session_id}",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    site.verify(prefix + "y", data, session_id)


def _rclone(site: Site, keys: Keys, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    config = tmp_path / "rclone.conf"
    config.write_text("")
    env = {
        **os.environ,
        "RCLONE_CONFIG": str(config),
        "RCLONE_CONFIG_GW_TYPE": "s3",
        "RCLONE_CONFIG_GW_PROVIDER": "Minio",
        "RCLONE_CONFIG_GW_ACCESS_KEY_ID": keys.access_key,
        "RCLONE_CONFIG_GW_SECRET_ACCESS_KEY": keys.secret_key,
        "RCLONE_CONFIG_GW_ENDPOINT": site.gw.endpoint,
        "RCLONE_CONFIG_GW_REGION": "us-east-1",
    }
    return subprocess.run(
        [str(BIN / "rclone"), *args, "--retries", "1", "--low-level-retries", "1"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_rclone(tool_site: Site, tmp_path: Path) -> None:
    site = tool_site
    path, data = _payload(tmp_path)
    refused = _rclone(site, site.alice, tmp_path, "copyto", str(path), f"gw:{site.bucket}/raw/rc/x")
    assert refused.returncode != 0
    assert f"No open metadata session for s3://{site.bucket}/raw/rc/." in refused.stderr
    session_id, prefix, keys = site.session()
    ok = _rclone(site, keys, tmp_path, "copyto", str(path), f"gw:{site.bucket}/{prefix}x")
    assert ok.returncode == 0, ok.stderr
    site.verify(prefix + "x", data, session_id)


def test_minio_py(tool_site: Site) -> None:
    from minio import Minio
    from minio.error import S3Error as MinioS3Error

    site = tool_site

    def client(keys: Keys) -> Minio:
        return Minio(
            urlsplit(site.gw.endpoint).netloc,
            access_key=keys.access_key,
            secret_key=keys.secret_key,
            secure=False,
            http_client=urllib3.PoolManager(retries=urllib3.Retry(total=0)),
        )

    data = secrets.token_bytes(20_000)
    with pytest.raises(MinioS3Error) as info:
        client(site.alice).put_object(site.bucket, "raw/mc/x", io.BytesIO(data), len(data))
    assert info.value.code == "AccessDenied"
    assert info.value.message.startswith(
        f"No open metadata session for s3://{site.bucket}/raw/mc/."
    )
    session_id, prefix, keys = site.session()
    client(keys).put_object(site.bucket, prefix + "x", io.BytesIO(data), len(data))
    site.verify(prefix + "x", data, session_id)
