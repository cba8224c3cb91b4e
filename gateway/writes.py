"""The write protocol (DESIGN.md decision 4) as the object handlers run it.

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
import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.backends.base import Conditions, ObjectStore, WriteMeta
from gateway.errors import S3Error
from policy.audit import Auditor
from policy.catalog import FormService, PolicyService
from policy.enforce import SESSION_META, Decision, Enforcer, Refusal, s3_url
from policy.identity import IdentityService
from policy.sessions import SessionService
from policy.store.base import MetadataStore, ObjectRecord, WriteIntent

#: pieces at least this large are hashed on a worker thread (hashlib releases the GIL)
_THREAD_HASH = 128 * 1024


def refused(refusal: Refusal, resource: str | None = None) -> S3Error:
    """A policy refusal as the S3 error clients print (its Message teaches)."""
    return S3Error(refusal.code, refusal.message, resource=resource)


def new_intent_id() -> str:
    return secrets.token_hex(16)


def stamp(meta: WriteMeta, decision: Decision) -> WriteMeta:
    """Put the session stamp on (or, for scratch writes, keep any stray one off) the metadata."""
    if decision.session_id is not None:
        meta.metadata[SESSION_META] = decision.session_id
    else:
        meta.metadata.pop(SESSION_META, None)
    return meta


@dataclass(slots=True)
class WritePath:
    """The services the write handlers need; one per process (an app key)."""

    store: MetadataStore
    enforcer: Enforcer
    auditor: Auditor

    def begin(
        self, decision: Decision, bucket: str, key: str, upload_id: str | None = None
    ) -> Write:
        intent = WriteIntent(
            id=new_intent_id(),
            bucket=bucket,
            key=key,
            session_id=decision.session_id,
            principal=decision.principal.user if decision.principal else "-",
            started=datetime.now(UTC),
            upload_id=upload_id,
        )
        return Write(self, decision, intent)

    async def accepted(self, decision: Decision, target: str, **details: object) -> None:
        """Audit an accepted write (one insert; best effort, see policy.audit)."""
        if decision.session_id is not None:
            details["session"] = decision.session_id
        await self.auditor.record(decision.principal, decision.op, target, "allowed", **details)


class Write:
    """One write in progress: ``await start()``, then ``commit(...)`` or ``abort()``."""

    def __init__(self, path: WritePath, decision: Decision, intent: WriteIntent) -> None:
        self.path = path
        self.decision = decision
        self.intent = intent
        self.claimed = False
        self.started = False

    @property
    def target(self) -> str:
        return s3_url(self.intent.bucket, self.intent.key)

    async def start(self) -> None:
        """Record the intent and claim the key (write-once rules); refuse a lost claim."""
        store = self.path.store
        bucket, key = self.intent.bucket, self.intent.key
        # Intent first: a process that dies after claiming leaves a stale intent naming the
        # claimed key, which reconcile finds and releases (a bare claim would block the key).
        await store.begin_write(self.intent)
        self.started = True
        if self.decision.write_once:
            # The claim is the overwrite check: one insert under a unique index, so of two
            # concurrent writers of a fresh key exactly one wins, and a committed object keeps
            # its claim (no extra object-store round trip to see whether it exists).
            try:
                self.claimed = await store.claim_key(bucket, key, self.intent.id)
            except BaseException:
                await self.abort()
                raise
            if not self.claimed:
                await self.abort()
                raise await self.overwrite_refused()

    async def overwrite_refused(self) -> S3Error:
        refusal = await self.path.enforcer.overwrite_refusal(
            self.decision, self.intent.bucket, self.intent.key
        )
        return refused(refusal, f"/{self.intent.bucket}/{self.intent.key}")

    async def refuse_if_exists(self, objects: ObjectStore) -> None:
        """For writes the object store cannot make conditional (copy, multipart completion):
        under write-once, an object that exists without a claim (written while overwrites were
        allowed, or before minimo) must not be replaced either."""
        if not self.decision.write_once:
            return
        try:
            await objects.head_object(self.intent.bucket, self.intent.key)
        except S3Error as err:
            if err.code == "NoSuchKey":
                return
            raise
        raise await self.overwrite_refused()

    async def commit(
        self, *, size: int, etag: str, sha256: str, content_type: str | None, **details: object
    ) -> ObjectRecord:
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
        record = await self.path.store.commit_write(self.intent.id, record)
        self.started = False
        self.claimed = False  # a committed object keeps its claim
        await self.path.accepted(self.decision, self.target, size=size, sha256=sha256, **details)
        return record

    async def abort(self) -> None:
        """Undo the intent and the claim; never raises (the original error is the one to report)."""
        store = self.path.store
        if self.claimed:
            with contextlib.suppress(Exception):
                await store.release_claim(self.intent.bucket, self.intent.key, self.intent.id)
            self.claimed = False
        if self.started:
            with contextlib.suppress(Exception):
                await store.abort_write(self.intent.id)
            self.started = False


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


def build_write_path(identity: IdentityService, public_url: str) -> WritePath:
    """The enforcement services over the identity's metadata store (gateway.server uses it)."""
    store = identity.store
    auditor = Auditor(store)
    forms = FormService(store, auditor)
    policies = PolicyService(store, forms, auditor)
    sessions = SessionService(store, identity, policies, forms, auditor)
    return WritePath(store, Enforcer(policies, sessions, store, auditor, public_url), auditor)
