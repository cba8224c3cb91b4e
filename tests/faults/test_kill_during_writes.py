"""SIGKILL of the gateway in the middle of each kind of write, then a restart on the same data
dir and port: nothing acknowledged lost, nothing visible unrecorded, every interrupted key
writable again, no temp or part files left, and ``minimo reconcile`` says consistent; all
without anyone running a repair (gateway.usecases.recovery does it).

Each kill is aimed: a PutObject and an UploadPart are killed with half their body sent (the
test sends it by hand); a CompleteMultipartUpload and a CopyObject are killed as soon as their
write intent is stored (on the ``local`` backend, the Complete once it has taken the upload).
Runs on sqlite with both object backends and on FerretDB with the local one.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.kill_support import (
    KillableGateway,
    assert_recovered,
    killable_gateway,
    sha256,
    start_upload,
    wait_until,
)
from tests.servers import mongo_uri

MIB = 1024 * 1024


@pytest.fixture(params=["sqlite-local", "sqlite-s3", "mongo-local"])
def gw(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KillableGateway]:
    metadata, objects = request.param.split("-")
    upstream = request.getfixturevalue("versitygw") if objects == "s3" else None
    uri = None
    if metadata == "mongo":
        uri = mongo_uri(request.getfixturevalue("ferretdb"), f"kill_{secrets.token_hex(6)}")
    with killable_gateway(tmp_path / "data", upstream=upstream, mongo_uri=uri) as gateway:
        yield gateway


class Background:
    """A client call running in a thread while the test kills the gateway under it."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.result = call()
        except BaseException as exc:  # the kill: a reset connection
            self.error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self) -> bool:
        """Wait for the call; True when it was answered with success."""
        self._thread.join(timeout=180)
        assert not self._thread.is_alive(), "the client call never ended"
        return self.error is None


def intent_on(gw: KillableGateway, key: str) -> bool:
    return any(i.key == key for i in gw.intents())


def test_kill_during_each_write(gw: KillableGateway) -> None:
    s3 = gw.client()
    bucket = f"kill-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=bucket)
    acked: dict[str, str] = {}
    interrupted: dict[str, str | None] = {}
    local = gw.backend == "local"

    # -- PutObject, killed with half its body sent --------------------------------------------
    # (more than the local backend's 4 MiB write batch is sent: its temp file then exists)
    data = secrets.token_bytes(12 * MIB)
    conn = start_upload(gw.endpoint, gw, f"/{bucket}/put/half.bin", [], len(data))
    conn.send(data[: 6 * MIB])
    # the intent and the write-once claim are stored before the first byte moves on
    wait_until(lambda: intent_on(gw, "put/half.bin"), "the PUT's intent is stored")
    if local:
        wait_until(lambda: any(n.startswith("obj-") for n in gw.tmp_entries()), "a temp file")
    gw.restart()
    conn.close()
    interrupted["put/half.bin"] = sha256(data)

    # -- UploadPart, killed with half its body sent --------------------------------------------
    key = "mpu/part-killed.bin"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part1 = secrets.token_bytes(5 * MIB)
    etag1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=part1)[
        "ETag"
    ]
    part2 = secrets.token_bytes(12 * MIB)
    query = [("partNumber", "2"), ("uploadId", upload_id)]
    conn = start_upload(gw.endpoint, gw, f"/{bucket}/{key}", query, len(part2))
    conn.send(part2[: 6 * MIB])
    if local:
        wait_until(lambda: any(n.startswith("obj-") for n in gw.tmp_entries()), "a part temp file")
    else:
        # the gateway streams the part on to versitygw: wait until the upstream has part of it
        # in flight (ListParts cannot show a part before it is whole, so give it a moment)
        threading.Event().wait(0.5)
    gw.restart()
    conn.close()
    # the upload survived the crash: listed, with its whole part, and it can be finished
    listed = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert upload_id in [u["UploadId"] for u in listed]
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts", [])
    assert [p["PartNumber"] for p in parts] == [1]
    etag2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=part2)[
        "ETag"
    ]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": etag1}, {"PartNumber": 2, "ETag": etag2}]
        },
    )
    acked[key] = sha256(part1 + part2)

    # -- CompleteMultipartUpload, killed while it runs -----------------------------------------
    key = "mpu/complete-killed.bin"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    chunks = [secrets.token_bytes(5 * MIB) for _ in range(3)]
    done_parts = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=chunk
            )["ETag"],
        }
        for n, chunk in enumerate(chunks, 1)
    ]
    whole = b"".join(chunks)
    call = Background(
        lambda: gw.client().complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done_parts}
        )
    )
    if local:
        # the local backend takes the upload out of the list before assembling it
        wait_until(
            lambda: call.done or any(n.startswith("complete-") for n in gw.tmp_entries()),
            "the Complete took its upload",
        )
    else:
        wait_until(lambda: call.done or intent_on(gw, key), "the Complete's intent is stored")
    gw.restart()
    if call.join():
        acked[key] = sha256(whole)  # answered before the kill: must be there
    else:
        interrupted[key] = sha256(whole)
        # once recovery ran the upload is either back (it can be completed again) or gone
        wait_until(lambda: not intent_on(gw, key), "the Complete's intent was rolled back")
        listed = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        if upload_id in [u["UploadId"] for u in listed]:
            s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done_parts}
            )
            acked[key] = sha256(whole)

    # -- CopyObject, killed while it copies -----------------------------------------------------
    source = secrets.token_bytes(24 * MIB)
    s3.put_object(Bucket=bucket, Key="copy/source.bin", Body=source)
    acked["copy/source.bin"] = sha256(source)
    call = Background(
        lambda: gw.client().copy_object(
            Bucket=bucket, Key="copy/target.bin", CopySource=f"{bucket}/copy/source.bin"
        )
    )
    wait_until(lambda: call.done or intent_on(gw, "copy/target.bin"), "the copy's intent")
    gw.restart()
    if call.join():
        acked["copy/target.bin"] = sha256(source)
    else:
        interrupted["copy/target.bin"] = sha256(source)

    assert_recovered(gw, bucket, acked, interrupted)
