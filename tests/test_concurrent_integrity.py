"""Deletes beside writes under load: nothing accepted is lost, nothing unrecorded is visible.

On every gateway of the enforcement matrix ({sqlite, mongo} x {local, s3}), threads run at once:
PutObject with a session key (write-once), PutObject into a scratch prefix by the admin,
DeleteObject and DeleteObjects of scratch keys, multipart uploads with the session key; then a
DeleteObjects of every session object runs beside another round of writes. boto3 retries are
off, so every answer is seen as sent. Afterwards:

- no answer was a 5xx, except the retryable 503 that tells a scratch PUT a delete of the same
  key ran at the same time (its write was undone: docs/write-protocol.md, "Writes beside
  deletes");
- every acknowledged write not deleted since is there, byte-identical to its record;
- the objects under the test's prefixes and their records agree key by key (size and ETag);
- the audit log holds exactly one ``allowed`` event per acknowledged PutObject, DeleteObject
  (also each key a DeleteObjects reported deleted) and CompleteMultipartUpload.

This is the load that, before the SQLite store ran every statement on one ordered path, failed
half of all writes with ``cannot open savepoint - SQL statements in progress`` and left objects
without records and deletes without audit events.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.faults.kill_support import start_upload, wait_until
from tests.sites import SITES, Site

MiB = 1 << 20
THREADS = 6
ROUNDS = 12
POOL = 12  # scratch keys shared by all threads, so writes and deletes of one key collide


@pytest.fixture(params=SITES)
def site(request: pytest.FixtureRequest, sites: Callable[[str], Site]) -> Site:
    return sites(request.param)


@dataclass
class Ledger:
    """What the clients were told, shared by the threads (under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: acknowledged session writes still expected: key -> SHA-256
    kept: dict[str, str] = field(default_factory=dict)
    #: acknowledged operations by audit action
    acked: Counter[str] = field(default_factory=Counter)
    #: every failed answer: (operation, HTTP status, code)
    failures: list[tuple[str, int, str]] = field(default_factory=list)
    #: scratch PUTs undone because a delete of their key ran at the same time
    collided: int = 0

    def ack(self, action: str, n: int = 1) -> None:
        with self.lock:
            self.acked[action] += n

    def failed(self, op: str, exc: ClientError) -> None:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        with self.lock:
            self.failures.append((op, status, exc.response.get("Error", {}).get("Code", "")))

    def put_collided(self, exc: ClientError) -> bool:
        """Whether a PUT was refused because a delete of its key ran at once (a 503 that the
        SDKs retry by themselves; retries are off here)."""
        error = exc.response.get("Error", {})
        if error.get("Code") == "ServiceUnavailable" and "A delete of this key" in error.get(
            "Message", ""
        ):
            with self.lock:
                self.collided += 1
            return True
        return False


def _body(rng: random.Random) -> bytes:
    return rng.randbytes(rng.choice((1, 700, 4096, 20_000, 150_000)))


def _worker(site: Site, ledger: Ledger, session_keys: Any, raw: str, scratch: str, n: int) -> None:
    rng = random.Random(n)
    writer = site.client(session_keys)
    admin = site.client(site.admin)
    bucket = site.bucket
    for i in range(ROUNDS):
        key = f"{raw}w{n}-{i}"
        data = _body(rng)
        try:
            writer.put_object(Bucket=bucket, Key=key, Body=data)
            with ledger.lock:
                ledger.kept[key] = hashlib.sha256(data).hexdigest()
            ledger.ack("PutObject")
        except ClientError as exc:
            ledger.failed("PutObject", exc)
        pool_key = f"{scratch}k{rng.randrange(POOL)}"
        choice = rng.random()
        try:
            if choice < 0.4:
                admin.put_object(Bucket=bucket, Key=pool_key, Body=_body(rng))
                ledger.ack("PutObject")
            elif choice < 0.75:
                admin.delete_object(Bucket=bucket, Key=pool_key)
                ledger.ack("DeleteObject")
            else:
                keys = {f"{scratch}k{rng.randrange(POOL)}" for _ in range(4)}
                answer = admin.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": k} for k in sorted(keys)]}
                )
                ledger.ack("DeleteObject", len(answer.get("Deleted", [])))
                for error in answer.get("Errors", []):
                    with ledger.lock:
                        ledger.failures.append(("DeleteObjects item", 0, error["Code"]))
        except ClientError as exc:
            if not (choice < 0.4 and ledger.put_collided(exc)):
                ledger.failed("scratch", exc)
        if i == ROUNDS // 2:
            _multipart(writer, ledger, bucket, f"{raw}mp{n}", rng)


def _multipart(s3: Any, ledger: Ledger, bucket: str, key: str, rng: random.Random) -> None:
    first, last = rng.randbytes(5 * MiB), rng.randbytes(1000)
    try:
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        etags = [
            s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n, Body=part)["ETag"]
            for n, part in ((1, first), (2, last))
        ]
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload,
            MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), etags, strict=True)]
            },
        )
    except ClientError as exc:
        ledger.failed("multipart", exc)
        return
    with ledger.lock:
        ledger.kept[key] = hashlib.sha256(first + last).hexdigest()
    ledger.ack("CompleteMultipartUpload")


def _run_threads(targets: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # an unexpected exception fails the test, not the thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a client thread hung"
    assert not errors, errors


def _objects(site: Site, prefix: str) -> dict[str, tuple[int, str]]:
    s3 = site.client(site.admin)
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=site.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = (obj["Size"], obj["ETag"].strip('"'))
    return found


def _records(site: Site, prefix: str) -> dict[str, tuple[int, str]]:
    store = site.meta.store
    found: dict[str, tuple[int, str]] = {}
    after = prefix
    while True:
        page = site.meta.run(store.list_object_records(site.bucket, start_after=after, limit=500))
        page = [r for r in page if r.key.startswith(prefix)]
        if not page:
            return found
        for record in page:
            found[record.key] = (record.size, record.etag.strip('"'))
        after = page[-1].key


def _audited(site: Site, prefixes: tuple[str, ...]) -> Counter[str]:
    counted: Counter[str] = Counter()
    targets = tuple(f"s3://{site.bucket}/{p}" for p in prefixes)
    for action in ("PutObject", "DeleteObject", "CompleteMultipartUpload"):
        cursor = None
        while True:
            events, cursor = site.meta.run(
                site.meta.store.list_audit(action=action, limit=500, cursor=cursor)
            )
            counted[action] += sum(
                e.outcome == "allowed" and e.target.startswith(targets) for e in events
            )
            if cursor is None:
                break
    return counted


def test_deletes_beside_writes(site: Site) -> None:
    session_id, raw, keys = site.session()
    scratch = f"scratch/{secrets.token_hex(4)}/"
    ledger = Ledger()
    _run_threads(
        [
            lambda n=n: _worker(site, ledger, keys, raw, scratch, n)  # type: ignore[misc]
            for n in range(THREADS)
        ]
    )

    # Then every session object goes in one DeleteObjects while another round of writes runs.
    doomed = sorted(ledger.kept)
    second = f"{raw}second/"

    def delete_all() -> None:
        try:
            answer = site.client(site.admin).delete_objects(
                Bucket=site.bucket, Delete={"Objects": [{"Key": k} for k in doomed]}
            )
        except ClientError as exc:
            ledger.failed("DeleteObjects", exc)
            return
        deleted = [d["Key"] for d in answer.get("Deleted", [])]
        ledger.ack("DeleteObject", len(deleted))
        with ledger.lock:
            for key in deleted:
                ledger.kept.pop(key, None)
        for error in answer.get("Errors", []):
            with ledger.lock:
                ledger.failures.append(("DeleteObjects item", 0, error["Code"]))

    _run_threads(
        [
            delete_all,
            *(
                lambda n=n: _worker(site, ledger, keys, second, scratch, 100 + n)  # type: ignore[misc]
                for n in range(2)
            ),
        ]
    )

    # Every request here is allowed (fresh write-once keys, an admin in a scratch area): no
    # answer may have failed, and above all none with a 5xx.
    assert not ledger.failures, ledger.failures

    objects = _objects(site, raw) | _objects(site, scratch)
    records = _records(site, raw) | _records(site, scratch)
    assert objects == records, {
        "objects without records": sorted(set(objects) - set(records)),
        "records without objects": sorted(set(records) - set(objects)),
        "differing": sorted(k for k in set(objects) & set(records) if objects[k] != records[k]),
    }
    assert set(ledger.kept) == set(_objects(site, raw))
    s3 = site.client(site.admin)
    for key, sha in ledger.kept.items():
        body = s3.get_object(Bucket=site.bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == sha, key
        record = site.meta.record(site.bucket, key)
        assert record is not None and record.sha256 == sha and record.session_id == session_id
    assert _audited(site, (raw, scratch)) == ledger.acked


def test_a_delete_overtakes_a_write_in_flight(site: Site) -> None:
    """A PUT whose bytes are still arriving when a DELETE of the same key runs cannot commit
    afterwards: the delete may have removed what it stored (a record of nothing) or it may land
    after the delete (an object the delete's record drop would orphan). The PUT is answered with
    a retryable 503 and undone; the DELETE's outcome stands; the key is writable again."""
    s3 = site.client(site.admin)
    key = f"scratch/{secrets.token_hex(4)}/overtaken"
    s3.put_object(Bucket=site.bucket, Key=key, Body=b"first version")
    size = 256 * 1024
    conn = start_upload(site.gw.endpoint, site.admin, f"/{site.bucket}/{key}", [], size)
    try:
        conn.send(b"x" * (size // 2))
        wait_until(
            lambda: [
                i
                for i in site.meta.run(site.meta.store.list_intents())
                if (i.key, i.kind) == (key, "write")
            ],
            "the PUT's write intent",
            timeout=30,
        )
        s3.delete_object(Bucket=site.bucket, Key=key)
        conn.send(b"x" * (size - size // 2))
        answer = conn.getresponse()
        body = answer.read().decode()
    finally:
        conn.close()
    assert answer.status == 503, body
    assert "<Code>ServiceUnavailable</Code>" in body and "A delete of this key" in body
    assert answer.getheader("Retry-After")
    with pytest.raises(ClientError) as gone:
        s3.head_object(Bucket=site.bucket, Key=key)
    assert gone.value.response["Error"]["Code"] in ("404", "NoSuchKey")
    assert site.meta.record(site.bucket, key) is None
    assert [i for i in site.meta.run(site.meta.store.list_intents()) if i.key == key] == []
    audited = _audited(site, (key,))
    assert (audited["PutObject"], audited["DeleteObject"]) == (1, 1)
    # sent again, the write goes through
    s3.put_object(Bucket=site.bucket, Key=key, Body=b"second version")
    site.verify(key, b"second version", None)


@pytest.mark.parametrize("name", ["sqlite-s3", "mongo-s3"])
def test_an_admin_aborts_an_upload_minimo_never_recorded(
    name: str, sites: Callable[[str], Site], versitygw: Any
) -> None:
    """A gateway killed between creating a multipart upload upstream and recording it leaves an
    upload that ListMultipartUploads shows and no record names: an admin can abort it (it only
    frees space); anyone else hears NoSuchUpload, and so does an upload id nobody has."""
    import boto3

    site = sites(name)
    key = f"scratch/{secrets.token_hex(4)}/orphan"
    upstream = boto3.client(
        "s3",
        endpoint_url=versitygw.endpoint,
        aws_access_key_id=versitygw.access_key,
        aws_secret_access_key=versitygw.secret_key,
        region_name="us-east-1",
    )
    upload_id = upstream.create_multipart_upload(Bucket=site.bucket, Key=key)["UploadId"]
    admin, alice = site.client(site.admin), site.client(site.alice)
    listed = admin.list_multipart_uploads(Bucket=site.bucket, Prefix=key).get("Uploads", [])
    assert [u["UploadId"] for u in listed] == [upload_id]
    with pytest.raises(ClientError) as refused:
        alice.abort_multipart_upload(Bucket=site.bucket, Key=key, UploadId=upload_id)
    assert refused.value.response["Error"]["Code"] == "NoSuchUpload"
    admin.abort_multipart_upload(Bucket=site.bucket, Key=key, UploadId=upload_id)
    assert admin.list_multipart_uploads(Bucket=site.bucket, Prefix=key).get("Uploads", []) == []
    with pytest.raises(ClientError) as unknown:
        admin.abort_multipart_upload(Bucket=site.bucket, Key=key, UploadId="no-such-upload-id")
    assert unknown.value.response["Error"]["Code"] == "NoSuchUpload"
