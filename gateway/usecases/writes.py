"""The write protocol (docs/design.md, decision 4) as the object handlers run it.

enforce (done by the app before the handler) -> claim the key when the rule is write-once ->
record a write intent -> stream to the object store with the session stamp while hashing
SHA-256 -> commit the object record -> audit. Any failure in between aborts the intent and
releases the claim, so a failed write leaves no committed record and no claim behind (the object
store's own atomicity leaves no visible object).

Everything here talks to the :class:`~gateway.backends.base.ObjectStore` interface and the
metadata store interface only, so both object backends (and both metadata backends) behave the
same.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.backends.base import Conditions, ObjectStore, WriteMeta
from gateway.instance import instance_id
from gateway.protocol.errors import RETRY_AFTER_SECONDS, S3Error, S3ErrorCode, storage_full
from gateway.usecases import metrics
from gateway.usecases.rollback import Janitor, maybe_landed, roll_back
from policy.audit import Auditor, principal_details, principal_name
from policy.enforce import (
    SESSION_META,
    Decision,
    Enforcer,
    Refusal,
    RefusalCode,
    SessionLink,
    s3_url,
)
from policy.identity import IdentityService
from policy.services import Services
from policy.store.base import (
    AuditEvent,
    IntentKind,
    KeyBusy,
    MetadataStore,
    ObjectRecord,
    StoreFull,
    WriteIntent,
)

log = logging.getLogger("minimo.writes")

#: pieces at least this large are hashed on a worker thread (hashlib releases the GIL)
_THREAD_HASH = 128 * 1024


#: each way policy refuses (its own vocabulary: policy may not import the gateway) as the S3
#: error clients see; the one place the two meet
REFUSAL_CODES: dict[RefusalCode, S3ErrorCode] = {
    RefusalCode.AccessDenied: S3ErrorCode.AccessDenied,
    RefusalCode.NoSuchUpload: S3ErrorCode.NoSuchUpload,
}


def refused(refusal: Refusal, resource: str | None = None) -> S3Error:
    """A policy refusal as the S3 error clients print (its Message teaches); counted in the
    metrics by its reason (every refusal a client hears passes here)."""
    metrics.count_refusal(refusal.reason)
    return S3Error(REFUSAL_CODES[refusal.code], refusal.message, resource=resource)


#: intent ids only need to be unique (they are never a secret or a capability): the process's
#: instance id (random, re-drawn in a forked child; gateway.instance) and a counter, far cheaper
#: than asking the OS for 16 random bytes each time. The prefix tells recovery which process
#: wrote an intent, and so whether that writer is still alive.
_intent_counter = itertools.count()


def new_intent_id() -> str:
    return f"{instance_id()}{next(_intent_counter):016x}"


#: user metadata only minimo itself sets (gateway.usecases.session_crate marks the crates it writes)
GENERATED_META = "minimo-generated"


def stamp(meta: WriteMeta, decision: Decision) -> WriteMeta:
    """Put the session stamp on (or, for scratch writes, keep any stray one off) the metadata."""
    # A client must not pass its file off as one minimo generated (it could then be replaced).
    meta.metadata.pop(GENERATED_META, None)
    if decision.session_id is not None:
        meta.metadata[SESSION_META] = decision.session_id
    else:
        meta.metadata.pop(SESSION_META, None)
    return meta


#: what a client is told when its write could not be recorded; the write was rolled back, so
#: trying again is safe (botocore and the other SDKs retry a 503 by themselves)
NOT_RECORDED = (
    "The metadata store could not record this write, so it was not stored (nothing under this "
    "key changed). Try again."
)
RETRY_AFTER = {"Retry-After": str(RETRY_AFTER_SECONDS)}


def not_recorded(resource: str) -> S3Error:
    return S3Error(
        S3ErrorCode.ServiceUnavailable, NOT_RECORDED, resource=resource, headers=RETRY_AFTER
    )


#: a write refused because a delete of its key is running (docs/write-protocol.md, "Writes
#: beside deletes"); the delete takes milliseconds, so the SDKs' own retry of a 503 gets through
KEY_BUSY = (
    "A delete of this key ran at the same time, so this write was not stored (nothing under "
    "this key changed by it). Try again."
)


def key_busy(resource: str) -> S3Error:
    return S3Error(
        S3ErrorCode.ServiceUnavailable, KEY_BUSY, resource=resource, headers={"Retry-After": "1"}
    )


def metadata_failure(exc: BaseException, otherwise: S3Error) -> S3Error:
    """The answer for a write whose metadata store call failed with ``exc``: 507 when the store
    is full (policy.store.StoreFull), else ``otherwise``."""
    return storage_full("metadata") if isinstance(exc, StoreFull) else otherwise


@dataclass(slots=True)
class WritePath:
    """The services the write handlers need; one per process (an app key)."""

    store: MetadataStore
    enforcer: Enforcer
    auditor: Auditor
    #: the web UI's base URL: the crates written on close name their form's schema under it
    ui_url: str
    janitor: Janitor = field(init=False)

    def __post_init__(self) -> None:
        self.janitor = Janitor(self.store)

    def begin(
        self, decision: Decision, bucket: str, key: str, upload_id: str | None = None
    ) -> Write:
        return Write(self, decision, _intent(decision, bucket, key, upload_id=upload_id))

    async def accepted(self, decision: Decision, target: str, **details: object) -> None:
        """Audit an accepted operation that stores no object record (a part, an upload begun
        or aborted, a bucket made). Audit is part of the operation: when the event cannot be
        stored the client is not told it succeeded."""
        try:
            await self.store.append_audit(accepted_event(decision, target, **details))
        except Exception as exc:
            log.error("could not record audit event for %s: %s", target, exc)
            raise S3Error(
                S3ErrorCode.ServiceUnavailable,
                "The metadata store could not record this request in the audit log. Try again.",
                headers=RETRY_AFTER,
            ) from exc

    async def deleted(
        self, objects: ObjectStore, decision: Decision, bucket: str, key: str
    ) -> bool:
        """DeleteObject after the policy allowed it: a delete intent, the object, then its
        record, write-once claim and audit event in one store call. Returns whether a record
        existed.

        The delete intent keeps writes of the key from committing across the delete: without
        it a PUT could store its object, lose it to this delete, and then record it (a record
        of nothing), or store it after this delete removed the old object and be recorded
        just before this delete drops "the" record (an object without one). Writes in flight
        when the delete starts or ends fail and roll back; writes that start meanwhile are
        refused (both with a retryable 503).

        The object goes before the record: a record without its object is harmless (reads say
        NoSuchKey, reconcile drops it), an object without its record is the one thing minimo
        promises never to show. When the last store call fails the client hears 503 and may
        retry (a delete of a deleted key is a no-op that still drops the record)."""
        resource = f"/{bucket}/{key}"
        intent = _intent(decision, bucket, key, kind="delete")
        try:
            await self.store.start_delete(intent)
        except Exception as exc:
            log.error("could not start the delete of %s: %s", s3_url(bucket, key), exc)
            self.janitor.add_intent_drop(intent)  # it may have been stored all the same
            raise metadata_failure(exc, _not_deleted(resource)) from exc
        try:
            await objects.delete_object(bucket, key)
        except BaseException:
            # (whether or not the object went, its record stays: at worst a record of nothing)
            self.janitor.add_intent_drop(intent)
            raise
        event = accepted_event(decision, s3_url(bucket, key))
        try:
            return await self.store.finish_delete(bucket, key, event, intent.id)
        except Exception as exc:
            log.error("could not record the delete of %s: %s", event.target, exc)
            self.janitor.add_record_drop(objects, bucket, key, event, intent.id)
            raise S3Error(
                S3ErrorCode.ServiceUnavailable,
                "The object was deleted, but the metadata store could not record it. Send the "
                "delete again.",
                resource=resource,
                headers=RETRY_AFTER,
            ) from exc


def _intent(
    decision: Decision,
    bucket: str,
    key: str,
    *,
    upload_id: str | None = None,
    kind: IntentKind = "write",
) -> WriteIntent:
    return WriteIntent(
        id=new_intent_id(),
        bucket=bucket,
        key=key,
        session_id=decision.session_id,
        principal=decision.principal.user if decision.principal else "-",
        started=datetime.now(UTC),
        upload_id=upload_id,
        kind=kind,
    )


def _not_deleted(resource: str) -> S3Error:
    return S3Error(
        S3ErrorCode.ServiceUnavailable,
        "The metadata store could not record this delete, so nothing was deleted. Try again.",
        resource=resource,
        headers=RETRY_AFTER,
    )


def accepted_event(decision: Decision, target: str, **details: object) -> AuditEvent:
    """The audit event of an accepted operation under ``decision``."""
    if decision.session_id is not None:
        details["session"] = decision.session_id
    return AuditEvent(
        time=datetime.now(UTC),
        principal=principal_name(decision.principal),
        action=decision.op,
        target=target,
        outcome="allowed",
        details={**principal_details(decision.principal), **details},
    )


class Write:
    """One write in progress: ``await start()``, then ``commit(...)``; on any failure after
    ``start`` returned, ``abort(...)`` (it rolls back what was stored)."""

    def __init__(self, path: WritePath, decision: Decision, intent: WriteIntent) -> None:
        self.path = path
        self.decision = decision
        self.intent = intent
        self.started = False

    @property
    def target(self) -> str:
        return s3_url(self.intent.bucket, self.intent.key)

    @property
    def resource(self) -> str:
        return f"/{self.intent.bucket}/{self.intent.key}"

    async def start(self) -> None:
        """Record the intent and claim the key (write-once rules); refuse a lost claim."""
        store = self.path.store
        # Intent first: a process that dies after claiming leaves an intent naming the claimed
        # key, which recovery finds and rolls back (a bare claim would block the key).
        # The claim is the overwrite check: one insert under a unique index, so of two
        # concurrent writers of a fresh key exactly one wins, and a committed object keeps its
        # claim (no extra object-store round trip to see whether it exists). Both go to the store
        # in one call (one transaction on sqlite).
        write_once = self.decision.write_once
        if write_once and self.path.janitor:
            await self.path.janitor.settle(self.intent.bucket, self.intent.key)
        self.started = True
        try:
            won = await store.start_write(self.intent, claim=write_once)
        except KeyBusy as exc:
            self.started = False  # nothing is left behind
            raise key_busy(self.resource) from exc
        except BaseException:
            # A store that timed out may still have stored the intent or the claim (it did the
            # work, the answer was lost): undo both, now or, via the janitor, once it answers.
            # Otherwise the claim would keep the key refused for as long as this process lives.
            await self.abort()
            raise
        if not won:
            await self.abort()
            raise await self.overwrite_refused()

    async def overwrite_refused(self) -> S3Error:
        refusal = await self.path.enforcer.overwrite_refusal(
            self.decision, self.intent.bucket, self.intent.key
        )
        return refused(refusal, self.resource)

    async def refuse_if_exists(self, objects: ObjectStore) -> None:
        """For writes the object store cannot make conditional (copy, multipart completion):
        under write-once, an object that exists without a claim (written while overwrites were
        allowed, or before minimo) must not be replaced either."""
        if not self.decision.write_once:
            return
        try:
            await objects.head_object(self.intent.bucket, self.intent.key)
        except S3Error as err:
            if err.code == S3ErrorCode.NoSuchKey:
                return
            raise
        raise await self.overwrite_refused()

    async def commit(
        self,
        objects: ObjectStore,
        *,
        size: int,
        etag: str,
        sha256: str,
        content_type: str | None,
        **details: object,
    ) -> ObjectRecord:
        """Record the stored object and its audit event: the moment the write is acknowledged.
        When that fails the write is rolled back (the object removed) and the client gets a
        retryable 503."""
        record = ObjectRecord(
            bucket=self.intent.bucket,
            key=self.intent.key,
            size=size,
            etag=etag,
            sha256=sha256,
            content_type=content_type,
            session_id=self.intent.session_id,
            principal=self.intent.principal,
            committed=datetime.now(UTC),
        )
        event = accepted_event(self.decision, self.target, size=size, sha256=sha256, **details)
        try:
            record = await self.path.store.finish_write(self.intent.id, record, event)
        except KeyBusy as exc:
            # a delete of the key overtook this write: it may have removed these very bytes
            await self.abort(objects, etag=etag)
            raise key_busy(self.resource) from exc
        except Exception as exc:
            log.error("could not commit %s (write %s): %s", self.target, self.intent.id, exc)
            await self.abort(objects, etag=etag)
            # a full metadata store is a 507, as everywhere (docs/failures.md)
            raise metadata_failure(exc, not_recorded(self.resource)) from exc
        self.started = False  # a committed object keeps its claim
        return record

    async def abort(self, objects: ObjectStore | None = None, *, etag: str | None = None) -> None:
        """Roll the write back; never raises (the original error is the one to report).

        ``objects``: the object store, when the object may have been stored; ``etag``: what
        the store answered for it, when it did. What cannot be undone now (a store is down) is
        left to the janitor."""
        if not self.started:
            return
        self.started = False
        try:
            await roll_back(objects, self.path.store, self.intent, etag=etag)
        except Exception as exc:
            # (the failure itself was logged where it happened; during an outage every failed
            # write comes here, so this stays below the default level)
            log.debug("rollback of write %s deferred: %s", self.intent.id, exc)
            self.path.janitor.add_rollback(objects, self.intent, etag=etag)

    async def fail(self, objects: ObjectStore, exc: BaseException) -> None:
        """Roll back after the object store call (or what followed it) raised ``exc``."""
        await self.abort(objects if maybe_landed(exc) else None)

    async def overtaken(self, exc: BaseException) -> S3Error | None:
        """The answer for an object store error that a delete of the key running at the same
        time explains: that delete superseded this write anyway, and an upstream store may
        answer the overlap with a confusing error of its own (versitygw's posix backend says
        ``409 ExistingObjectIsDirectory``). None for other errors (a bad body stays the
        client's to hear) and when no delete of the key is running."""
        if not isinstance(exc, S3Error) or exc.status != 409:
            return None
        try:
            busy = await self.path.store.delete_in_progress(self.intent.bucket, self.intent.key)
        except Exception:
            return None
        return key_busy(self.resource) if busy else None


async def hash_object(
    objects: ObjectStore, bucket: str, key: str, etag: str | None = None
) -> tuple[str, int, str | None]:
    """(hex SHA-256, size, content type) of a stored object, read once as a stream (bounded memory).

    ``etag`` makes the read conditional, so a concurrent overwrite is noticed (PreconditionFailed)
    instead of hashing someone else's bytes.
    """
    cond = Conditions(if_match=etag) if etag else None
    reader = await objects.open_object(bucket, key, conditions=cond)
    digest = hashlib.sha256()
    size = 0
    try:
        async for piece in reader:
            size += len(piece)
            if len(piece) >= _THREAD_HASH:
                await asyncio.to_thread(digest.update, piece)
            else:
                digest.update(piece)
    finally:
        await reader.aclose()
    return digest.hexdigest(), size, reader.info.content_type


def build_write_path(identity: IdentityService, ui_url: str, open_link: SessionLink) -> WritePath:
    """The enforcement services over the identity's metadata store (gateway.server uses it);
    ``open_link`` is where refusals send people to open a session (the wiring's choice)."""
    s = Services.build(identity)
    enforcer = Enforcer(s.policies, s.sessions, s.store, s.auditor, open_link)
    return WritePath(s.store, enforcer, s.auditor, ui_url)
