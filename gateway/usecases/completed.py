"""A CompleteMultipartUpload sent again after it succeeded (an SDK retry after a lost answer).

S3 answers such a retry 200 with the same ETag for a while; minimo forgets the upload (its
:class:`MultipartRecord`) at completion, so a retry would be NoSuchUpload. What the completion
left behind is enough to recognise it, in the metadata store (so on any gateway) and without a
new table: the object record at the key (its ETag is the multipart ETag, which the retried
parts list determines exactly, and who wrote it, when), and the completion's audit event, which
names the upload id. The retry is answered only when all of them agree and the object store
still holds that object; nothing is written or audited again.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from gateway.backends.base import ObjectStore
from gateway.protocol.errors import S3Error
from policy.principal import Principal
from policy.store.base import MetadataStore
from policy.store.records import ObjectRecord

#: how long a completed upload answers a retry (S3 keeps completed upload ids for a while too)
RETRY_WINDOW = timedelta(hours=1)
#: the completion's audit event is stamped just after its record
_EVENT_SLACK = timedelta(minutes=1)
_AUDIT_PAGES = 20


def multipart_etag(parts: list[tuple[int, str]]) -> str | None:
    """The S3 multipart ETag of these parts (MD5 of the parts' MD5s, dash, count); None when a
    part ETag is not an MD5."""
    digests = b""
    for _number, etag in parts:
        try:
            digests += bytes.fromhex(etag.strip('"'))
        except ValueError:
            return None
    return f"{hashlib.md5(digests).hexdigest()}-{len(parts)}"


async def completed_again(
    objects: ObjectStore,
    metadata: MetadataStore,
    principal: Principal | None,
    bucket: str,
    key: str,
    upload_id: str,
    parts: list[tuple[int, str]],
) -> str | None:
    """The ETag to answer again when this completion already happened (same parts, same
    uploader, recently, and the object is still the one it made); None otherwise."""
    etag = multipart_etag(parts)
    record = await metadata.get_object_record(bucket, key)
    if etag is None or record is None or principal is None:
        return None
    if not _same_completion(record, principal, etag):
        return None
    if not await _completed_upload(metadata, record, upload_id, len(parts)):
        return None
    try:
        info = await objects.head_object(bucket, key)
    except S3Error:
        return None
    return etag if info.etag == etag else None


def _same_completion(record: ObjectRecord, principal: Principal, etag: str) -> bool:
    if record.etag != etag or record.principal != principal.user:
        return False
    if principal.session_id is not None and principal.session_id != record.session_id:
        return False
    return datetime.now(UTC) - record.committed <= RETRY_WINDOW


async def _completed_upload(
    metadata: MetadataStore, record: ObjectRecord, upload_id: str, count: int
) -> bool:
    """Whether the record's own completion was of ``upload_id`` (its audit event says so)."""
    target = f"s3://{record.bucket}/{record.key}"
    cursor = None
    for _page in range(_AUDIT_PAGES):
        events, cursor = await metadata.list_audit(
            since=record.committed - _EVENT_SLACK,
            until=record.committed + _EVENT_SLACK,
            principal=record.principal,
            action="CompleteMultipartUpload",
            limit=100,
            cursor=cursor,
        )
        for event in events:
            details = event.details
            if (
                event.target == target
                and event.outcome == "allowed"
                and details.get("upload_id") == upload_id
                and details.get("parts") == count
            ):
                return True
        if cursor is None:
            return False
    return False
