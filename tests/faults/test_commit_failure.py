"""A write whose commit fails after its bytes landed is rolled back, and its key stays writable.

The fault is real: while a PutObject's body is on its way, another process takes SQLite's write
lock (``BEGIN EXCLUSIVE``) and holds it past the gateway's busy timeout, so the commit of the
record fails after the object store has stored the bytes. The client must get a retryable
``503 ServiceUnavailable``, the object must not be visible (it was never recorded), and once the
lock is gone the same write-once key must be writable again without anyone running a repair.
Both object backends.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from collections.abc import Callable
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError

from tests.faults.kill_support import start_upload
from tests.sites import Site

BODY = 512 * 1024


@pytest.fixture(params=["sqlite-local", "sqlite-s3"])
def site(request: pytest.FixtureRequest, sites: Callable[[str], Site]) -> Site:
    return sites(request.param)


def _wait(condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def test_commit_failure_rolls_back_and_frees_the_key(site: Site) -> None:
    session_id, prefix, keys = site.session()
    key = prefix + "locked.bin"
    data = secrets.token_bytes(BODY)
    store = site.meta.store

    conn = start_upload(site.gw.endpoint, keys, f"/{site.bucket}/{quote(key)}", [], len(data))
    conn.send(data[: BODY // 2])
    # The intent and the write-once claim are stored before the first byte moves on.
    _wait(lambda: site.meta.run(store.get_claim(site.bucket, key)) is not None, "claimed")

    lock = sqlite3.connect(site.gw.data_dir / "minimo.sqlite3", timeout=1, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        conn.send(data[BODY // 2 :])
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 503, body
        assert resp.getheader("Retry-After")
        assert "<Code>ServiceUnavailable</Code>" in body
        assert "could not record this write, so it was not stored" in body
        # Rolled back at once in the object store: nothing unrecorded to see, even while the
        # metadata store is still locked.
        with pytest.raises(ClientError) as info:
            site.client(site.admin).head_object(Bucket=site.bucket, Key=key)
        assert info.value.response["Error"]["Code"] in ("404", "NoSuchKey")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
        conn.close()

    # The janitor finishes the rollback once the store answers: the claim goes, the key is free.
    _wait(lambda: site.meta.run(store.get_claim(site.bucket, key)) is None, "claim released")
    assert site.meta.record(site.bucket, key) is None
    site.client(keys).put_object(Bucket=site.bucket, Key=key, Body=data)
    record = site.meta.record(site.bucket, key)
    assert record is not None and record.session_id == session_id
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    got = site.client(keys).get_object(Bucket=site.bucket, Key=key)["Body"].read()
    assert got == data
