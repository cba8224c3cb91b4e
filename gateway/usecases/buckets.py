"""Creating a bucket from the web UI, and deleting one as S3 does: in-flight multipart uploads
do not keep it, objects do.

The object stores count an in-flight upload as content (their ``delete_bucket`` refuses with
BucketNotEmpty); S3 aborts such uploads instead. So when the bucket holds no object, its
uploads are aborted here, in the object store and their records in the metadata store (the
two stores: hence a use case), and the delete is tried again.
"""

from __future__ import annotations

import contextlib
import logging

from gateway.backends.base import ObjectStore
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.protocol.names import validate_bucket
from gateway.usecases.writes import accepted_event
from policy.enforce import Decision
from policy.principal import Principal
from policy.store.base import MetadataStore

log = logging.getLogger("minimo.buckets")

#: rounds of "list a page of uploads, abort them" before giving up: uploads begun faster than
#: they are aborted make the bucket busy, not empty
_ROUNDS = 20
_PAGE = 1000


async def delete_bucket(objects: ObjectStore, metadata: MetadataStore, bucket: str) -> list[str]:
    """Delete ``bucket``; returns the ids of the in-flight uploads aborted on the way.

    BucketNotEmpty stands when the bucket holds an object (checked before any upload is
    aborted). An object written after that check still refuses the delete, but the uploads
    aborted by then stay aborted: the same outcome as an abort just before the delete.
    """
    try:
        await objects.delete_bucket(bucket)
        return []
    except S3Error as err:
        if err.code != S3ErrorCode.BucketNotEmpty:
            raise
        not_empty = err
    if (await objects.list_objects(bucket, max_keys=1)).objects:
        raise not_empty
    aborted: list[str] = []
    for _round in range(_ROUNDS):
        page = await objects.list_multipart_uploads(bucket, max_uploads=_PAGE)
        if not page.uploads:
            break
        for upload in page.uploads:
            with contextlib.suppress(S3Error):  # gone already (completed or aborted meanwhile)
                await objects.abort_multipart_upload(bucket, upload.key, upload.upload_id)
            await metadata.delete_multipart(upload.upload_id)
            aborted.append(upload.upload_id)
    await objects.delete_bucket(bucket)
    if aborted:
        log.info("bucket %s deleted; %d in-flight uploads aborted", bucket, len(aborted))
    return aborted


async def create_bucket(
    objects: ObjectStore, metadata: MetadataStore, who: Principal, bucket: str
) -> None:
    """Create ``bucket`` for an admin of the web UI, as CreateBucket does for an S3 client: the
    name checked by S3's rules first (InvalidBucketName says which rule it breaks), then made
    (BucketAlreadyOwnedByYou when it exists) and audited like CreateBucket. Whether ``who``
    may create buckets is the caller's check (the UI's page and API allow admins only)."""
    validate_bucket(bucket)
    await objects.create_bucket(bucket)
    try:
        await metadata.append_audit(
            accepted_event(Decision("CreateBucket", who), f"s3://{bucket}/")
        )
    except Exception as exc:  # the bucket exists either way; the missing event is logged
        log.error("could not record audit event for CreateBucket s3://%s/: %s", bucket, exc)
