"""Crash recovery (docs/design.md, decision 4: crash leftovers are recovered automatically).

A gateway process that dies (SIGKILL, OOM, power loss) in the middle of a write leaves its
intent (and the write-once claim the intent holds, which keeps the key refused), maybe the
object it was storing, temp files or a half-completed multipart upload. Nobody will ever finish
those writes: the client never got an acknowledgement. Recovery finds them and undoes them.

Liveness. Every gateway process registers itself in the metadata store under its *instance id*
(gateway.instance; every intent id it makes starts with it) and heartbeats every
``heartbeat`` seconds (:class:`RecoveryService`). An instance is dead when

- its last heartbeat is older than ``MISSED_HEARTBEATS`` heartbeats plus ``CLOCK_SLACK`` (35 s
  with the default 10 s heartbeat), or
- it ran on this host (same host name, boot and PID namespace) and its process is gone (its
  PID no longer exists, or now belongs to a process started at another time): known at once,
  so a gateway restarted after a crash recovers its predecessor's writes at start;
- it stopped cleanly (its record says so).

A gateway judges others by their heartbeats only once its own heartbeats have succeeded for
that bound without interruption: after a metadata store outage every heartbeat in the store is
old, and the live gateways catch up within one interval.

An intent whose id names no registered instance (written by a process from before instances
were registered, by the CLI, or ``adopt-``/``reconcile-`` intents) is dead once it is older
than ``unknown_grace`` (1 h). The intents of live instances are never touched, and a process
never recovers its own (its :class:`~gateway.usecases.rollback.Janitor` does).

What a run does (each step idempotent, so two gateways running at once do no harm):

1. leftovers in the object store's own scratch space (``local`` backend): temp files of dead
   writers are removed; a multipart upload whose completion was killed is put back, so it can be
   listed, completed again or aborted (or removed, when the completion was done);
2. dead intents are rolled back (:func:`gateway.usecases.rollback.roll_back`): the object such
   a write may have stored is removed, then its partial commit, claim and intent, so the key is
   writable again. ``adopt-`` and ``reconcile-`` intents only lose their metadata side: their
   object is the owner's data. A dead CompleteMultipartUpload is left alone until the dead
   gateway's heartbeat bound has passed since it began (an S3 upstream goes on completing after
   the gateway died); whose upload is gone then (the object store completed it) also loses its
   upload record;
3. multipart uploads older than ``multipart_expiry`` (7 days, as S3's lifecycle rule
   AbortIncompleteMultipartUpload) are aborted in the object store and forgotten in the
   metadata store;
4. instance records dead for over a day are forgotten.

When. At gateway start (after registering), then every ``interval`` seconds (60 s). Of several
gateways sharing the stores, one runs each period: the first to insert that period's lease
record (:meth:`MetadataStore.take_lease`, an insert under a unique index). So an interrupted key
is writable again within about a minute of the crash (plus the 35 s heartbeat bound when the
dead process ran on another host), and at once when a gateway restarts on the same host.

``minimo reconcile`` runs the same steps (gateway.usecases.reconcile): without ``--repair`` it
reports them as findings, with it it repairs them; it also finds write-once claims that have neither
intent nor record (:meth:`Recovery.orphan_claims`, a walk over every claim, so not done
periodically).

This module lives in ``gateway`` because it needs the object store (``policy`` never imports
``gateway``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gateway.backends.base import Leftover, ObjectStore
from gateway.instance import host_key, instance_id, owner_of, process_alive, process_token
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.usecases.rollback import finish_dead_delete, roll_back
from policy.store.base import MAX_PAGE, InstanceRecord, MetadataStore, WriteIntent

log = logging.getLogger("minimo.recovery")

#: an instance that missed this many heartbeats (plus CLOCK_SLACK) is dead
MISSED_HEARTBEATS = 3
#: how far gateways' clocks may disagree
CLOCK_SLACK = timedelta(seconds=5)
#: instance records are forgotten this long after their last heartbeat
FORGET_INSTANCES_AFTER = timedelta(days=1)
#: the lease that picks one gateway to run recovery each period
LEASE = "recovery"
#: seconds between a gateway's heartbeats unless configured
DEFAULT_HEARTBEAT = 10.0
#: a stopped instance's heartbeat: so long ago that it is dead at once
STOPPED = datetime.fromtimestamp(0, UTC)

RecoveryKind = Literal[
    "dead_intent", "temp_file", "interrupted_complete", "expired_upload", "orphan_claim"
]
RECOVERY_KINDS: tuple[RecoveryKind, ...] = (
    "dead_intent",
    "temp_file",
    "interrupted_complete",
    "expired_upload",
    "orphan_claim",
)


@dataclass(frozen=True, slots=True)
class RecoverySettings:
    #: seconds between heartbeats of a gateway instance
    heartbeat: float = DEFAULT_HEARTBEAT
    #: seconds between recovery runs (one gateway per period runs it)
    interval: float = 60.0
    #: intents and temp files of unknown owners are dead when older than this
    unknown_grace: timedelta = timedelta(hours=1)
    #: unfinished multipart uploads are aborted when older than this
    multipart_expiry: timedelta = timedelta(days=7)


@dataclass(slots=True)
class Recovered:
    """One leftover recovery found (and, when repairing, fixed)."""

    kind: RecoveryKind
    bucket: str
    key: str
    detail: str
    session_id: str | None = None
    intent_id: str | None = None
    upload_id: str | None = None
    repaired: bool = False


@dataclass(slots=True)
class RecoveryReport:
    found: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RECOVERY_KINDS, 0))
    repaired: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RECOVERY_KINDS, 0))
    #: intents of live writers (or of unknown ones, still within the grace period)
    live_intents: int = 0
    #: True when reporting only and more leftovers of a kind exist than one page shows
    more: bool = False

    @property
    def total(self) -> int:
        return sum(self.found.values())


def heartbeat_bound(instance: InstanceRecord) -> timedelta:
    """How long after its last heartbeat ``instance`` counts as dead."""
    return timedelta(seconds=MISSED_HEARTBEATS * instance.every) + CLOCK_SLACK


def instance_dead(
    instance: InstanceRecord, now: datetime, watched_since: datetime | None = None
) -> bool:
    """Whether ``instance`` is dead at ``now`` (see the module docstring).

    ``watched_since``: since when the judge has been in touch with the metadata store without
    interruption (None: trust the store's view as it is, as the CLI does). An old heartbeat
    only proves death to a judge who was in touch long enough to have seen a newer one: after a
    metadata store outage every gateway's heartbeat is old, and the live ones catch up within
    one interval."""
    if instance.heartbeat == STOPPED:
        return True
    if instance.host == host_key() and not process_alive(instance.process):
        return True
    bound = heartbeat_bound(instance)
    if now - instance.heartbeat <= bound:
        return False
    return watched_since is None or now - watched_since > bound


class Liveness:
    """Which writers are alive, as judged once at the start of a run."""

    def __init__(
        self,
        instances: list[InstanceRecord],
        now: datetime,
        grace: timedelta,
        me: str | None,
        watched_since: datetime | None = None,
    ) -> None:
        self.now = now
        self.grace = grace
        self.me = me
        self.instances = {i.id: i for i in instances}
        self.dead = {i.id for i in instances if i.id != me and instance_dead(i, now, watched_since)}

    def owner_dead(self, owner: str | None, age: float) -> bool:
        """Whether leftovers of ``owner`` (None: unknown), ``age`` seconds old, are dead."""
        if owner is not None and owner == self.me:
            return False
        if owner is not None and owner in self.instances:
            return owner in self.dead
        return age > self.grace.total_seconds()

    def _complete_settle(self, owner: str | None) -> timedelta:
        """How long after it began a dead CompleteMultipartUpload is left alone: the dead
        gateway's heartbeat bound (35 s by default)."""
        instance = self.instances.get(owner) if owner is not None else None
        if instance is None:
            return timedelta(seconds=MISSED_HEARTBEATS * DEFAULT_HEARTBEAT) + CLOCK_SLACK
        return heartbeat_bound(instance)

    def why_dead(self, intent: WriteIntent) -> str | None:
        """Why ``intent``'s writer is gone, or None while it may still be alive."""
        owner = owner_of(intent.id)
        age = (self.now - intent.started).total_seconds()
        if not self.owner_dead(owner, age):
            return None
        if intent.upload_id is not None and age <= self._complete_settle(owner).total_seconds():
            # An S3 upstream goes on completing an upload after the gateway that asked for it
            # died; rolled back now, the object could appear after the rollback looked for it.
            return None
        if owner is not None and owner in self.instances:
            beat = self.instances[owner].heartbeat
            if beat == STOPPED:
                return f"its gateway {owner} stopped"
            return f"its gateway {owner} is gone (last heartbeat {beat:%Y-%m-%d %H:%M:%S} UTC)"
        return f"its writer is unknown and it is older than {_age(self.grace)}"


class Recovery:
    """One recovery run over ``objects`` and ``metadata``.

    ``repair``: fix what is found (the gateway's runs); False only reports (``minimo
    reconcile`` without ``--repair``). ``me``: the instance id of the running gateway, whose own
    writes are never touched (None for the CLI). ``on_found`` hears of every leftover."""

    def __init__(
        self,
        objects: ObjectStore,
        metadata: MetadataStore,
        *,
        settings: RecoverySettings | None = None,
        repair: bool = True,
        me: str | None = None,
        watched_since: datetime | None = None,
        bucket: str | None = None,
        on_found: Callable[[Recovered], Awaitable[None] | None] | None = None,
        clock: Callable[[], datetime] | None = None,
        page_size: int = MAX_PAGE,
    ) -> None:
        self.objects = objects
        self.metadata = metadata
        self.settings = settings or RecoverySettings()
        self.repair = repair
        self.me = me
        self.watched_since = watched_since
        self.bucket = bucket
        self._on_found = on_found
        self._clock = clock or (lambda: datetime.now(UTC))
        self._page_size = page_size
        self.report = RecoveryReport()
        #: (bucket, key) of the dead intents found: their objects are the intents' business
        self.dead_keys: set[tuple[str, str]] = set()

    async def liveness(self) -> Liveness:
        return Liveness(
            await self.metadata.list_instances(),
            self._clock(),
            self.settings.unknown_grace,
            self.me,
            self.watched_since,
        )

    async def run(self) -> RecoveryReport:
        """Every periodic step (see the module docstring), in order."""
        live = await self.liveness()
        await self.leftovers(live)
        await self.dead_intents(live)
        await self.expired_uploads()
        if self.repair:
            await self.forget_instances(live)
        return self.report

    async def _found(self, item: Recovered) -> None:
        self.report.found[item.kind] += 1
        if item.repaired:
            self.report.repaired[item.kind] += 1
        if self._on_found is not None:
            result = self._on_found(item)
            if result is not None:
                await result

    # -- 1. the object store's scratch space --------------------------------------------------
    async def leftovers(self, live: Liveness, *, thorough: bool = False) -> None:
        found: list[Leftover] = await self.objects.leftovers(
            live.owner_dead, repair=self.repair, thorough=thorough
        )
        for item in found:
            await self._found(
                Recovered(
                    item.kind,
                    "",
                    item.name,
                    f"{item.detail} ({_size(item.size)})",
                    repaired=item.repaired,
                )
            )

    # -- 2. dead intents ----------------------------------------------------------------------
    async def dead_intents(self, live: Liveness) -> None:
        after = ""
        while True:
            page = await self.metadata.list_intents(start_after=after, limit=self._page_size)
            for intent in page:
                if self.bucket is not None and intent.bucket != self.bucket:
                    continue
                why = live.why_dead(intent)
                if why is None:
                    self.report.live_intents += 1
                    continue
                await self._dead_intent(intent, why)
            if len(page) < self._page_size:
                return
            # ids, not offsets: rolled-back intents vanish behind the cursor
            after = page[-1].id

    async def _dead_intent(self, intent: WriteIntent, why: str) -> None:
        if len(self.dead_keys) < 100_000:
            self.dead_keys.add((intent.bucket, intent.key))
        if intent.kind == "delete":
            await self._dead_delete(intent, why)
            return
        foreign = owner_of(intent.id) is None  # adopt-/reconcile-: the object is not its own
        what = f"multipart upload {intent.upload_id} " if intent.upload_id else ""
        item = Recovered(
            "dead_intent",
            intent.bucket,
            intent.key,
            f"{what}write by {intent.principal} started {intent.started:%Y-%m-%d %H:%M:%S} UTC "
            f"never finished: {why}",
            session_id=intent.session_id,
            intent_id=intent.id,
            upload_id=intent.upload_id,
        )
        if self.repair:
            await roll_back(None if foreign else self.objects, self.metadata, intent)
            if intent.upload_id is not None and not await self._upload_exists(
                intent.bucket, intent.key, intent.upload_id
            ):
                # the object store completed it before the crash (and the object was just
                # rolled back): nothing is left to list or abort
                await self.metadata.delete_multipart(intent.upload_id)
            item.repaired = True
            log.info(
                "recovered s3://%s/%s: rolled back write %s (%s)",
                intent.bucket,
                intent.key,
                intent.id,
                why,
            )
        await self._found(item)

    async def _dead_delete(self, intent: WriteIntent, why: str) -> None:
        item = Recovered(
            "dead_intent",
            intent.bucket,
            intent.key,
            f"delete by {intent.principal} started {intent.started:%Y-%m-%d %H:%M:%S} UTC "
            f"never finished: {why}",
            session_id=intent.session_id,
            intent_id=intent.id,
        )
        if self.repair:
            await finish_dead_delete(self.objects, self.metadata, intent)
            item.repaired = True
            log.info(
                "recovered s3://%s/%s: finished delete %s (%s)",
                intent.bucket,
                intent.key,
                intent.id,
                why,
            )
        await self._found(item)

    async def _upload_exists(self, bucket: str, key: str, upload_id: str) -> bool:
        try:
            await self.objects.list_parts(bucket, key, upload_id, max_parts=1)
        except S3Error as exc:
            if exc.code in (
                S3ErrorCode.NoSuchUpload,
                S3ErrorCode.NoSuchBucket,
                S3ErrorCode.NoSuchKey,
            ):
                return False
            raise
        return True

    # -- 3. expired multipart uploads ---------------------------------------------------------
    async def expired_uploads(self) -> None:
        cutoff = self._clock() - self.settings.multipart_expiry
        seen: set[str] = set()
        # the metadata store's records first: what minimo's clients began
        while True:
            page = await self.metadata.list_multiparts(created_before=cutoff, limit=self._page_size)
            fresh = [u for u in page if u.upload_id not in seen]
            for upload in fresh:
                seen.add(upload.upload_id)
                if self.bucket is not None and upload.bucket != self.bucket:
                    continue
                await self._expired(upload.bucket, upload.key, upload.upload_id, upload.created)
            if not fresh or len(page) < self._page_size:
                break
            if not self.repair:
                self.report.more = True
                break
        # then the object store's own list: uploads whose record is gone (or never existed)
        for bucket in await self._buckets():
            key_marker, id_marker = "", ""
            while True:
                try:
                    listing = await self.objects.list_multipart_uploads(
                        bucket, key_marker=key_marker, upload_id_marker=id_marker
                    )
                except S3Error as exc:
                    if exc.code == S3ErrorCode.NoSuchBucket:
                        break
                    raise
                for info in listing.uploads:
                    if info.initiated < cutoff and info.upload_id not in seen:
                        if len(seen) < 100_000:
                            seen.add(info.upload_id)
                        await self._expired(bucket, info.key, info.upload_id, info.initiated)
                if not listing.truncated or not listing.next_key_marker:
                    break
                key_marker = listing.next_key_marker
                id_marker = listing.next_upload_id_marker or ""

    async def _buckets(self) -> list[str]:
        if self.bucket is not None:
            return [self.bucket]
        return [b.name for b in await self.objects.list_buckets()]

    async def _expired(self, bucket: str, key: str, upload_id: str, created: datetime) -> None:
        item = Recovered(
            "expired_upload",
            bucket,
            key,
            f"multipart upload {upload_id} begun {created:%Y-%m-%d %H:%M:%S} UTC, unfinished "
            f"for longer than {_age(self.settings.multipart_expiry)}",
            upload_id=upload_id,
        )
        if self.repair:
            try:
                await self.objects.abort_multipart_upload(bucket, key, upload_id)
            except S3Error as exc:
                if exc.code not in (
                    S3ErrorCode.NoSuchUpload,
                    S3ErrorCode.NoSuchBucket,
                    S3ErrorCode.NoSuchKey,
                ):
                    raise
            await self.metadata.delete_multipart(upload_id)
            item.repaired = True
            log.info("aborted expired multipart upload %s of s3://%s/%s", upload_id, bucket, key)
        await self._found(item)

    # -- 4. old instance records --------------------------------------------------------------
    async def forget_instances(self, live: Liveness) -> None:
        for instance in live.instances.values():
            if instance.id in live.dead and (
                live.now - instance.heartbeat > FORGET_INSTANCES_AFTER
            ):
                await self.metadata.remove_instance(instance.id)

    # -- claims without intent or record (reconcile only) -------------------------------------
    async def orphan_claims(self) -> None:
        """Write-once claims whose intent and record are both gone: nothing would ever release
        them, and they keep their key refused. Every step of the write protocol keeps a claim
        covered (the intent is stored with or before it, the record before the intent is
        dropped, the claim released before the intent), so a claim seen without either is an
        orphan (left by an older version or a hand-edited store)."""
        after = ("", "")
        while True:
            page = await self.metadata.list_claims(start_after=after, limit=self._page_size)
            for bucket, key, holder in page:
                if self.bucket is not None and bucket != self.bucket:
                    continue
                if await self.metadata.get_intent(holder) is not None:
                    continue
                if await self.metadata.get_object_record(bucket, key) is not None:
                    continue
                item = Recovered(
                    "orphan_claim",
                    bucket,
                    key,
                    f"write-once claim of write {holder} without its intent or a record: the "
                    "key is refused for nothing",
                    intent_id=holder,
                )
                if self.repair:
                    await self.metadata.release_claim(bucket, key, holder)
                    item.repaired = True
                await self._found(item)
            if len(page) < self._page_size:
                return
            after = (page[-1][0], page[-1][1])


class RecoveryService:
    """A gateway's side of recovery: register this instance, heartbeat it, run recovery at
    start and every ``interval`` seconds when this gateway holds that period's lease."""

    def __init__(
        self, objects: ObjectStore, metadata: MetadataStore, settings: RecoverySettings
    ) -> None:
        self.objects = objects
        self.metadata = metadata
        self.settings = settings
        self.started = datetime.now(UTC)
        #: since when this gateway's heartbeats have all succeeded (None: the last one failed)
        self.watched_since: datetime | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        #: set after each finished run (tests and health may wait on it)
        self.runs = 0

    @property
    def me(self) -> str:
        return instance_id()

    def _record(self, heartbeat: datetime) -> InstanceRecord:
        return InstanceRecord(
            self.me, host_key(), process_token(), self.started, heartbeat, self.settings.heartbeat
        )

    async def _beat(self) -> None:
        now = datetime.now(UTC)
        try:
            await self.metadata.heartbeat_instance(self._record(now))
        except Exception:
            self.watched_since = None
            raise
        if self.watched_since is None:
            self.watched_since = now

    async def start(self) -> None:
        """Register (a store that is down now only delays it), then start the loops."""
        try:
            await self._beat()
        except Exception as exc:
            log.warning("could not register this gateway for crash recovery yet: %s", exc)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._heartbeats(), name="minimo-heartbeat"),
            loop.create_task(self._recoveries(), name="minimo-recovery"),
        ]

    async def stop(self) -> None:
        """Stop the loops and mark this instance stopped (its leftovers, if any, are then
        another gateway's to recover at once)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.metadata.heartbeat_instance(self._record(STOPPED))

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat)
            try:
                await self._beat()
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)

    async def run_once(self) -> RecoveryReport:
        # Out of touch with the store (the last heartbeat failed): judge nobody by heartbeat.
        watched_since = self.watched_since or datetime.now(UTC)
        recovery = Recovery(
            self.objects,
            self.metadata,
            settings=self.settings,
            me=self.me,
            watched_since=watched_since,
        )
        report = await recovery.run()
        if report.total:
            log.info(
                "recovery: %s",
                ", ".join(f"{n} {kind}" for kind, n in report.repaired.items() if n),
            )
        return report

    async def _recoveries(self) -> None:
        first = True
        while True:
            try:
                if first or await self._take_lease():
                    await self.run_once()
            except Exception as exc:
                log.warning("recovery run failed (tried again next period): %s", exc)
            first = False
            self.runs += 1
            await asyncio.sleep(self._until_next_term())

    def _until_next_term(self) -> float:
        """Seconds until just after the next period starts: every gateway asks for the lease
        then, so each period has a run (a random fraction of a second apart, so they do not
        all hit the store at the same instant)."""
        interval = self.settings.interval
        now = datetime.now(UTC).timestamp()
        return interval - now % interval + random.uniform(0.05, min(1.0, interval / 10))

    async def _take_lease(self) -> bool:
        term = int(datetime.now(UTC).timestamp() // self.settings.interval)
        return await self.metadata.take_lease(LEASE, term, self.me)


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = n / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
