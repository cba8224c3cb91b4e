"""Rolling back a write that will not be acknowledged (docs/design.md, decision 4).

A write is acknowledged exactly when its record and audit event are stored. When anything
fails after the intent was recorded (the object store, the commit, the client going away), the
write is undone here: the object it may have stored is removed when nobody else's record
describes it, then the metadata store forgets the intent, its write-once claim and whatever part
of its commit got stored (:meth:`MetadataStore.roll_back_write`). Every step is idempotent, so a
rollback that fails half way (a store is down) is simply tried again later: by the
:class:`Janitor` of the process that failed, or after a crash by recovery, which finds the
intent.

Which object is "the write's own"? With the ETag the object store answered, exactly that one.
Without it (the store failed before answering, or a crashed process's intent), an object stamped
with the intent's session and modified after the intent started, that no other write's record
describes: under a write-once rule the intent's claim kept every other minimo writer off the
key, so that can only be this write's bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from gateway.backends.base import ObjectInfo, ObjectStore
from gateway.protocol.errors import S3Error, S3ErrorCode
from policy.enforce import SESSION_META, s3_url
from policy.store.base import AuditEvent, MetadataStore, WriteIntent

log = logging.getLogger("minimo.writes")

#: how far the object store's clock may lag the gateway's when "modified after the intent
#: started" is judged without an ETag
CLOCK_SLACK = timedelta(seconds=5)


def bare_etag(etag: str) -> str:
    return etag.strip().strip('"')


def maybe_landed(exc: BaseException) -> bool:
    """Whether a failed object-store call may still have stored the object: an S3 client error
    (4xx: a refused condition, a bad digest, a short body) never did; a 5xx, a timeout or a
    lost connection may have (the store may have finished after we stopped listening)."""
    return not (isinstance(exc, S3Error) and exc.status < 500)


async def roll_back(
    objects: ObjectStore | None,
    metadata: MetadataStore,
    intent: WriteIntent,
    *,
    etag: str | None = None,
) -> None:
    """Undo ``intent``'s write in both stores. ``objects``: the object store, unless it surely
    stored nothing; ``etag``: what it answered for this write, when it did. Raises when a store
    fails; nothing is then known to be undone, and calling again is safe."""
    if objects is not None:
        await _remove_object(objects, metadata, intent, etag)
    await metadata.roll_back_write(intent)


async def _remove_object(
    objects: ObjectStore, metadata: MetadataStore, intent: WriteIntent, etag: str | None
) -> None:
    try:
        info = await objects.head_object(intent.bucket, intent.key)
    except S3Error as exc:
        if exc.code in (S3ErrorCode.NoSuchKey, S3ErrorCode.NoSuchBucket):
            return
        raise
    if not _written_by(info, intent, etag):
        return
    record = await metadata.get_object_record(intent.bucket, intent.key)
    foreign = record is not None and record.intent_id != intent.id
    if foreign and bare_etag(record.etag) == bare_etag(info.etag):
        return  # another write committed these very bytes: they are recorded, and not ours
    await objects.delete_object(intent.bucket, intent.key)
    log.warning(
        "rolled back s3://%s/%s: write %s was not acknowledged",
        intent.bucket,
        intent.key,
        intent.id,
    )
    if foreign:
        # That record described the object this write replaced (overwrites allowed), which is
        # gone now: a record without its object is what reconcile would drop.
        await metadata.delete_object_record(intent.bucket, intent.key)


async def finish_dead_delete(
    objects: ObjectStore, metadata: MetadataStore, intent: WriteIntent
) -> None:
    """Settle a delete whose process died (``intent.kind == "delete"``) so that the metadata
    matches the object store: the key's writes are marked superseded first (what the dead
    process may not have got to), so none commits across this; then, when the object is gone,
    its record goes too, with an audit event marked as not acknowledged (the delete happened,
    its client never heard so); when it is still there, only the intent goes."""
    await metadata.supersede_writes(intent.bucket, intent.key)
    try:
        await objects.head_object(intent.bucket, intent.key)
    except S3Error as exc:
        if exc.code not in (S3ErrorCode.NoSuchKey, S3ErrorCode.NoSuchBucket):
            raise
    else:
        await metadata.abort_write(intent.id)
        return
    details: dict[str, object] = {"acknowledged": False, "recovered": True}
    if intent.session_id is not None:
        details["session"] = intent.session_id
    event = AuditEvent(
        time=datetime.now(UTC),
        principal=intent.principal,
        action="DeleteObject",
        target=s3_url(intent.bucket, intent.key),
        outcome="allowed",
        details=details,
    )
    await metadata.finish_delete(intent.bucket, intent.key, event, intent.id, again=True)


def _written_by(info: ObjectInfo, intent: WriteIntent, etag: str | None) -> bool:
    if etag is not None:
        return bare_etag(info.etag) == bare_etag(etag)
    return (
        info.metadata.get(SESSION_META) == intent.session_id
        and info.last_modified >= intent.started - CLOCK_SLACK
    )


@dataclass(slots=True)
class _Repair:
    """One piece of unfinished cleanup: ``fix`` does it (idempotent), or raises."""

    bucket: str
    key: str
    fix: Callable[[], Awaitable[None]]
    #: one attempt at a time: a retry racing the first attempt could undo what a new write of
    #: the key did in between (the first attempt's checks are stale by then)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    done: bool = False


class Janitor:
    """Cleanups that failed because a store was down, tried again until they succeed: the
    rollback of a write that was not acknowledged, the record drop of a delete whose record
    could not be dropped.

    One per process. A write's intent stays in the metadata store until its rollback is done,
    so if this process dies the rollback is not lost: recovery finds the intent."""

    #: the first retry comes after this long; each further one waits twice as long, up to MAX
    FIRST_DELAY = 1.0
    MAX_DELAY = 5.0
    #: repairs tried at once once the store answers again
    PARALLEL = 16
    #: repairs held at the most; beyond it the oldest are dropped (logged; reconcile finds them)
    LIMIT = 100_000

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata
        self._pending: dict[str, _Repair] = {}
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def add_rollback(
        self, objects: ObjectStore | None, intent: WriteIntent, *, etag: str | None
    ) -> None:
        async def fix() -> None:
            await roll_back(objects, self.metadata, intent, etag=etag)

        self._add(f"write {intent.id}", _Repair(intent.bucket, intent.key, fix))

    def add_intent_drop(self, intent: WriteIntent) -> None:
        """A delete that failed before its object went (or may have): drop its delete intent,
        which otherwise keeps writes of the key refused for as long as this process lives."""

        async def fix() -> None:
            await self.metadata.abort_write(intent.id)

        self._add(f"delete {intent.id}", _Repair(intent.bucket, intent.key, fix))

    def add_record_drop(
        self,
        objects: ObjectStore,
        bucket: str,
        key: str,
        event: AuditEvent,
        intent_id: str | None = None,
    ) -> None:
        """The object was deleted but its record stayed: drop it (with the delete's audit
        event, marked as not acknowledged to the client) and the delete intent ``intent_id``
        once the store answers, unless a new object has been written at the key meanwhile (its
        record is the right one)."""

        async def fix() -> None:
            try:
                await objects.head_object(bucket, key)
            except S3Error as exc:
                if exc.code not in (S3ErrorCode.NoSuchKey, S3ErrorCode.NoSuchBucket):
                    raise
            else:
                if intent_id is not None:
                    await self.metadata.abort_write(intent_id)
                return
            details = {**event.details, "acknowledged": False}
            event_now = replace(event, details=details)
            await self.metadata.finish_delete(bucket, key, event_now, intent_id, again=True)

        self._add(f"delete {s3_url(bucket, key)} {id(event)}", _Repair(bucket, key, fix))

    def _add(self, name: str, repair: _Repair) -> None:
        if len(self._pending) >= self.LIMIT:
            oldest = next(iter(self._pending))
            log.error("%s: cleanup dropped (too many pending); reconcile will find it", oldest)
            del self._pending[oldest]
        self._pending[name] = repair
        task = self._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def settle(self, bucket: str, key: str) -> None:
        """Try now the pending cleanups of (bucket, key): a new write of the key must not be
        refused for a claim that a failed write of this process still holds."""
        held = [
            (name, r) for name, r in self._pending.items() if (r.bucket, r.key) == (bucket, key)
        ]
        for name, repair in held:
            with contextlib.suppress(Exception):
                await self._try(name, repair)

    async def _try(self, name: str, repair: _Repair) -> None:
        async with repair.lock:
            if repair.done:
                return
            await repair.fix()
            repair.done = True
        self._pending.pop(name, None)

    async def _run(self) -> None:
        delay = self.FIRST_DELAY
        while self._pending:
            await asyncio.sleep(delay)
            # One probe first: while the store is still down, one failure per round is enough.
            name, repair = next(iter(self._pending.items()))
            try:
                await self._try(name, repair)
            except Exception as exc:
                log.info("%s: cleanup still pending: %s", name, exc)
                delay = min(delay * 2, self.MAX_DELAY)
                continue
            delay = self.FIRST_DELAY
            # The store answers again: the rest in parallel (an outage under load leaves
            # hundreds, each a few round trips to a store that is busy catching up).
            gate = asyncio.Semaphore(self.PARALLEL)
            await asyncio.gather(
                *(self._attempt(gate, n, r) for n, r in list(self._pending.items()))
            )

    async def _attempt(self, gate: asyncio.Semaphore, name: str, repair: _Repair) -> None:
        async with gate:
            try:
                await self._try(name, repair)
            except Exception as exc:
                log.info("%s: cleanup still pending: %s", name, exc)
