"""Link existing data: an admin adopts objects that have no metadata into a new session.

Objects that reached the object store behind minimo's back (copied in before minimo existed, or
written straight to the S3 server) have no committed record and no ``minimo-session`` stamp;
``minimo reconcile`` reports them as ``unlinked`` because which session they belong to is a human
decision. Adopting makes that decision: a NEW session is opened with form values like any other
(owner = the admin, scope = the bucket+prefix), and every unlinked object under the prefix is

1. hashed by streaming its bytes (SHA-256, bounded memory),
2. stamped by a server-side copy onto itself with metadata directive REPLACE that keeps its
   content type, stored headers and user metadata and adds ``minimo-session: <id>``, so the link
   survives the loss of the metadata store as for any write (docs/design.md, decision 4),
3. recorded through the normal intent -> commit path (principal = the admin), and audited.
   The record keeps the object's Last-Modified from before the stamp as ``modified`` (the copy
   onto itself gives it a new one); its ``committed`` is when it was linked.

Objects already stamped or already recorded are skipped and counted, so adopting twice is
harmless. This module lives in ``gateway`` because it needs the object store; ``policy`` never
imports ``gateway``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.backends.base import Conditions, ObjectStore, WriteMeta
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.usecases.writes import GENERATED_META
from policy.audit import principal_details
from policy.enforce import SESSION_META
from policy.principal import Principal, Role
from policy.services import Services
from policy.sessions import SessionInvalid, SessionNotAllowed, SessionNotFound
from policy.store.base import MAX_PAGE, AuditEvent, ObjectRecord, SessionRecord, WriteIntent


@dataclass(slots=True)
class AdoptResult:
    session: SessionRecord
    adopted: int = 0
    #: objects that already had a committed record
    skipped_recorded: int = 0
    #: objects that already carried a minimo-session stamp (reconcile's business, not ours)
    skipped_stamped: int = 0
    #: objects another write was busy with, or that changed while being adopted
    skipped_busy: int = 0
    bytes: int = 0
    #: (key, why) of every skipped object, so the admin sees what was left alone
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "adopted": self.adopted,
            "skipped_recorded": self.skipped_recorded,
            "skipped_stamped": self.skipped_stamped,
            "skipped_busy": self.skipped_busy,
            "bytes": self.bytes,
        }


class _Changed(Exception):
    """The object changed or vanished while being adopted."""


async def adopt(
    objects: ObjectStore,
    services: Services,
    principal: Principal,
    bucket: str,
    prefix: str,
    form: str,
    values: Mapping[str, Any],
) -> AdoptResult:
    """Open a new session over ``bucket``/``prefix``, link every unlinked object under it and
    close the session (also when linking stops halfway: what was linked stays linked).

    Raises SessionError (not an admin, bucket missing, policy refusals) or FormValidationError
    from opening the session; S3Error when the object store fails.
    """
    if principal.role is not Role.ADMIN or principal.session_id is not None:
        raise SessionNotAllowed("only an admin may link existing data")
    try:
        await objects.head_bucket(bucket)
    except S3Error as exc:
        if exc.code == S3ErrorCode.NoSuchBucket:
            raise SessionNotFound(f"no bucket {bucket}") from None
        raise
    # An empty prefix would give the session its default '<id>/' scope, which covers none of
    # the existing data; adopting a whole bucket is not what a session is for.
    if not prefix:
        raise SessionInvalid("a prefix is needed: the session's scope is the data it adopts")
    session, _credential = await services.sessions.open(
        principal, form, bucket, prefix, values, None
    )
    result = AdoptResult(session)
    try:
        after = ""
        while True:
            page = await objects.list_objects(
                bucket, prefix=prefix, start_after=after, max_keys=MAX_PAGE
            )
            for info in page.objects:
                await _adopt_one(objects, services, principal, bucket, info.key, result)
            if not page.truncated or not page.objects:
                break
            after = page.next_marker or page.objects[-1].key
    finally:
        # Nobody ever received this session's key, so nothing else can be written under it:
        # closed, it says "this is what was there" and leaves no stray open session behind.
        result.session = await services.sessions.close(principal, session.id)
    await services.auditor.ok(
        principal,
        "session.adopt",
        f"session:{session.id}",
        scope=f"s3://{bucket}/{prefix}",
        **result.counts(),
    )
    return result


async def _adopt_one(
    objects: ObjectStore,
    services: Services,
    principal: Principal,
    bucket: str,
    key: str,
    result: AdoptResult,
) -> None:
    store = services.store
    if await store.get_object_record(bucket, key) is not None:
        result.skipped_recorded += 1
        result.skipped.append((key, "already recorded"))
        return
    try:
        head = await objects.head_object(bucket, key)
    except S3Error as exc:
        if exc.code in (S3ErrorCode.NoSuchKey, S3ErrorCode.NoSuchBucket):
            return  # deleted since listed: nothing to adopt
        raise
    if SESSION_META in head.metadata:
        result.skipped_stamped += 1
        result.skipped.append((key, f"already stamped with session {head.metadata[SESSION_META]}"))
        return
    session_id = result.session.id
    intent = WriteIntent(
        id=f"adopt-{secrets.token_hex(16)}",
        bucket=bucket,
        key=key,
        session_id=session_id,
        principal=principal.user,
        started=datetime.now(UTC),
    )
    await store.begin_write(intent)
    try:
        # The write-once claim keeps a concurrent write from landing between hash and stamp,
        # and a held claim means someone else's write is in flight: leave that object alone.
        if not await store.claim_key(bucket, key, intent.id):
            raise _Changed
        digest = hashlib.sha256()
        size = 0
        try:
            reader = await objects.open_object(bucket, key)
        except S3Error as exc:
            if exc.code in (S3ErrorCode.NoSuchKey, S3ErrorCode.NoSuchBucket):
                raise _Changed from exc
            raise
        try:
            info = reader.info
            async for piece in reader:
                digest.update(piece)
                size += len(piece)
        finally:
            await reader.aclose()
        if size != info.size or SESSION_META in info.metadata:
            raise _Changed
        meta = WriteMeta(
            content_type=info.content_type,
            # a "generated by minimo" mark on data minimo did not write is dropped, as stamp()
            # drops it from client writes (it would let a crate rewrite overwrite this object)
            metadata={
                **{k: v for k, v in info.metadata.items() if k != GENERATED_META},
                SESSION_META: session_id,
            },
            headers=dict(info.headers),
        )
        try:
            # If-Match on the hashed ETag: the stamp must land on the very bytes we hashed.
            copied = await objects.copy_object(
                bucket, key, bucket, key, meta=meta, conditions=Conditions(if_match=info.etag)
            )
        except S3Error as exc:
            if exc.code in (S3ErrorCode.PreconditionFailed, S3ErrorCode.NoSuchKey):
                raise _Changed from exc
            raise
        record = ObjectRecord(
            bucket=bucket,
            key=key,
            size=size,
            etag=copied.etag.strip('"'),
            sha256=digest.hexdigest(),
            content_type=info.content_type,
            session_id=session_id,
            principal=principal.user,
            committed=datetime.now(UTC),
            # the stamping copy gives the object a new Last-Modified: the record keeps when the
            # data was really last changed (a 2019 file stays a 2019 file), committed is the link
            modified=info.last_modified,
        )
        # The record and its audit event are one write (decision 4), as for client writes.
        event = AuditEvent(
            time=record.committed,
            principal=principal.user,
            action="object.adopt",
            target=f"s3://{bucket}/{key}",
            outcome="ok",
            details={
                **principal_details(principal),
                "session": session_id,
                "sha256": record.sha256,
                "size": size,
            },
        )
        await store.finish_write(intent.id, record, event)
    except BaseException as exc:
        # Only the metadata side is undone: the object was the owner's data before it was
        # adopted, so it stays (stamped, it is what reconcile calls rebuildable).
        await store.roll_back_write(intent)
        if isinstance(exc, _Changed):
            result.skipped_busy += 1
            result.skipped.append((key, "changed or being written while adopting"))
            return
        raise
    result.adopted += 1
    result.bytes += size
