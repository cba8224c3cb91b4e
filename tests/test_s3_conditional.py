"""Conditional and multipart behaviour that SDKs and their retries rely on (issue 10, item 1),
through boto3 and raw signed requests against a real ``minimo serve`` on both backends."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from botocore.exceptions import ClientError

from gateway.config import Config
from gateway.server import open_identity
from policy.store.base import MetadataStore
from tests.servers import Gateway
from tests.test_s3_api import assert_error, code_of, raw, status_of

pytestmark = pytest.mark.parametrize("gateway", ["local-http", "s3-http"], indirect=True)

MiB = 1 << 20
T = TypeVar("T")


def _copy_part(s3, bucket: str, upload_id: str, number: int, source_range: str) -> str:
    return s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=upload_id,
        PartNumber=number,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=source_range,
    )["CopyPartResult"]["ETag"]


def test_copy_source_range_is_strict(gateway: Gateway, s3, bucket: str) -> None:
    src = secrets.token_bytes(1000)
    s3.put_object(Bucket=bucket, Key="src", Body=src)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    for bad in ("bytes=5-", "bytes=-10", "bytes=9-3", "bytes=0-1,3-4", "0-9"):
        with pytest.raises(ClientError) as exc:
            _copy_part(s3, bucket, uid, 1, bad)
        assert (code_of(exc), status_of(exc)) == ("InvalidArgument", 400), bad
    for past in ("bytes=0-1000", "bytes=1000-1001"):
        with pytest.raises(ClientError) as exc:
            _copy_part(s3, bucket, uid, 1, past)
        assert (code_of(exc), status_of(exc)) == ("InvalidRange", 416), past
    # an empty value is malformed too, never "the whole source"
    reply = raw(
        gateway,
        "PUT",
        f"/{bucket}/dst",
        query={"partNumber": "1", "uploadId": uid},
        headers={"x-amz-copy-source": f"/{bucket}/src", "x-amz-copy-source-range": ""},
    )
    assert_error(reply, "InvalidArgument", 400)
    assert "Parts" not in s3.list_parts(Bucket=bucket, Key="dst", UploadId=uid)
    etag = _copy_part(s3, bucket, uid, 1, "bytes=990-999")
    parts = s3.list_parts(Bucket=bucket, Key="dst", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in parts] == [(1, 10, etag)]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="dst",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == src[990:]


# -- conditional writes ---------------------------------------------------------------------------


def _start(s3, bucket: str, key: str, data: bytes) -> tuple[str, list[dict]]:
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1, Body=data)["ETag"]
    return uid, [{"PartNumber": 1, "ETag": etag}]


def _complete(s3, bucket: str, key: str, uid: str, parts: list[dict], **condition: str) -> dict:
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": parts}, **condition
    )


def test_complete_if_none_match(s3, bucket: str) -> None:
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"first")["ETag"]
    uid, parts = _start(s3, bucket, "k", b"second")
    with pytest.raises(ClientError) as exc:
        _complete(s3, bucket, "k", uid, parts, IfNoneMatch="*")
    assert (code_of(exc), status_of(exc)) == ("PreconditionFailed", 412)
    got = s3.get_object(Bucket=bucket, Key="k")
    assert (got["ETag"], got["Body"].read()) == (first, b"first")
    # refused, not consumed: the upload is still there to complete another way
    assert len(s3.list_parts(Bucket=bucket, Key="k", UploadId=uid)["Parts"]) == 1
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=uid)

    uid, parts = _start(s3, bucket, "new", b"fresh")
    done = _complete(s3, bucket, "new", uid, parts, IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="new")["ETag"] == done["ETag"]


def test_complete_if_match(s3, bucket: str) -> None:
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"first")["ETag"]
    uid, parts = _start(s3, bucket, "k", b"second")
    with pytest.raises(ClientError) as exc:
        _complete(s3, bucket, "k", uid, parts, IfMatch='"0123456789abcdef0123456789abcdef"')
    assert (code_of(exc), status_of(exc)) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"
    done = _complete(s3, bucket, "k", uid, parts, IfMatch=first)
    got = s3.get_object(Bucket=bucket, Key="k")
    assert (got["ETag"], got["Body"].read()) == (done["ETag"], b"second")

    uid, parts = _start(s3, bucket, "missing", b"x")
    with pytest.raises(ClientError) as exc:
        _complete(s3, bucket, "missing", uid, parts, IfMatch=first)
    assert (code_of(exc), status_of(exc)) == ("NoSuchKey", 404)
    s3.abort_multipart_upload(Bucket=bucket, Key="missing", UploadId=uid)


def test_put_if_match(s3, bucket: str) -> None:
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"first")["ETag"]
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfMatch=first)["ETag"]
    got = s3.get_object(Bucket=bucket, Key="k")
    assert (got["ETag"], got["Body"].read()) == (second, b"second")
    # the ETag it was read at is gone: a compare-and-swap on it must fail
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"third", IfMatch=first)
    assert (code_of(exc), status_of(exc)) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"second"
    # as S3: If-Match on a key with no object is 404 NoSuchKey
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="none", Body=b"x", IfMatch=first)
    assert (code_of(exc), status_of(exc)) == ("NoSuchKey", 404)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="none")
    # a folder marker too
    marker = s3.put_object(Bucket=bucket, Key="dir/", Body=b"")["ETag"]
    s3.put_object(Bucket=bucket, Key="dir/", Body=b"", IfMatch=marker)


# -- DeleteBucket ---------------------------------------------------------------------------------


def _on_store(gw: Gateway, call: Callable[[MetadataStore], Awaitable[T]]) -> T:
    """``call`` on the gateway's own metadata store, from this (sync) test."""

    async def run() -> T:
        identity = await open_identity(Config(data_dir=gw.data_dir, mongo_uri=gw.mongo_uri))
        try:
            return await call(identity.store)
        finally:
            await identity.store.close()

    return asyncio.run(run())


def _multipart_record(gw: Gateway, upload_id: str) -> object:
    """The gateway's metadata-store record of an upload (None once it is forgotten)."""
    return _on_store(gw, lambda store: store.get_multipart(upload_id))


def test_delete_bucket_aborts_in_flight_uploads(gateway: Gateway, s3) -> None:
    name = f"mpu-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=name)
    uids = [s3.create_multipart_upload(Bucket=name, Key=f"big/{i}")["UploadId"] for i in range(3)]
    s3.upload_part(Bucket=name, Key="big/0", UploadId=uids[0], PartNumber=1, Body=b"part")
    s3.put_object(Bucket=name, Key="kept", Body=b"x")
    # an object keeps the bucket, and its uploads are left alone
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert (code_of(exc), status_of(exc)) == ("BucketNotEmpty", 409)
    assert len(s3.list_multipart_uploads(Bucket=name)["Uploads"]) == 3
    assert _multipart_record(gateway, uids[0]) is not None

    s3.delete_object(Bucket=name, Key="kept")
    s3.delete_bucket(Bucket=name)  # only uploads left: aborted, as on S3
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert status_of(exc) == 404
    assert all(_multipart_record(gateway, uid) is None for uid in uids)
    # the same name again starts empty: no upload came back with it
    s3.create_bucket(Bucket=name)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=name, Key="big/0", UploadId=uids[0])
    assert code_of(exc) == "NoSuchUpload"
    s3.delete_bucket(Bucket=name)


# -- a completion retried after it succeeded -----------------------------------------------------


def _completions(gw: Gateway, bucket: str, key: str) -> list[str]:
    """The upload ids of the accepted CompleteMultipartUpload events for s3://bucket/key."""

    async def events(store: MetadataStore) -> list[str]:
        found, _ = await store.list_audit(action="CompleteMultipartUpload", limit=1000)
        return [
            e.details.get("upload_id")
            for e in found
            if e.target == f"s3://{bucket}/{key}" and e.outcome == "allowed"
        ]

    return _on_store(gw, events)


def test_complete_retried_after_success(gateway: Gateway, s3, bucket: str) -> None:
    one, two = secrets.token_bytes(5 * MiB), b"tail"
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    parts = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=n, Body=data)[
                "ETag"
            ],
        }
        for n, data in ((1, one), (2, two))
    ]
    done = _complete(s3, bucket, "k", uid, parts)
    # the SDK never saw that answer and sends the same request again: the same answer
    again = _complete(s3, bucket, "k", uid, parts)
    for field in ("ETag", "Bucket", "Key", "Location"):
        assert again[field] == done[field], field
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == one + two
    assert _completions(gateway, bucket, "k") == [uid]  # no second record, no second event

    # anything but that same completion of that same object is still NoSuchUpload
    attempts = [
        (uid, parts[:1]),  # another parts list
        ("not-" + uid, parts),  # another upload id
    ]
    for upload_id, listed in attempts:
        with pytest.raises(ClientError) as exc:
            _complete(s3, bucket, "k", upload_id, listed)
        assert (code_of(exc), status_of(exc)) == ("NoSuchUpload", 404)
    s3.put_object(Bucket=bucket, Key="k", Body=b"replaced")
    with pytest.raises(ClientError) as exc:
        _complete(s3, bucket, "k", uid, parts)
    assert code_of(exc) == "NoSuchUpload"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"replaced"
