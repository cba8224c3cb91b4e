"""``minimo reconcile``: find (and with ``repair`` fix) where the object store and the metadata
store disagree.

The write protocol (docs/design.md, decision 4) is intent -> stamped object -> commit. A process
that dies between those steps, or an operator who touches either store behind minimo's back,
leaves one of these inconsistencies, each a :data:`FindingKind`:

- ``rebuildable``: an object without a current record whose ``minimo-session`` stamp names a
  known session. Repair rebuilds the record from the object itself (HEAD data, SHA-256
  recomputed by streaming the bytes, principal ``reconcile``), through the normal intent ->
  commit path so the history shows it.
- ``unlinked``: an object without a record and without a usable stamp. Only reported: which
  session it belongs to is a human decision (the UI adopts such objects).
- ``missing_object``: a current record whose object is gone. Repair drops the record (and the
  key's write-once claim); the history keeps it.
- ``mismatch``: a record whose size or ETag disagrees with the object. Repair rewrites the
  record from the object when the object is stamped with a known session (else reported only).

and the crash leftovers that :mod:`gateway.usecases.recovery` finds (and a running gateway
repairs by itself within about a minute), repaired here with the same code:

- ``dead_intent``: an intent whose writer is gone (its gateway stopped heartbeating or its
  process no longer exists; an intent of an unknown writer once older than ``stale_after``),
  whatever its age. Repair rolls the write back (gateway.usecases.rollback: the object it may
  have stored is removed, its claim released), so the key is writable again.
- ``temp_file`` / ``interrupted_complete``: a dead writer's temp files, and a multipart upload
  whose completion it was running (``local`` backend). Repair removes them, or puts the upload
  back so it can be listed, completed or aborted.
- ``expired_upload``: a multipart upload unfinished for longer than ``multipart_expiry``.
  Repair aborts it and forgets its record.
- ``orphan_claim``: a write-once claim with neither its intent nor a record: it keeps its key
  refused for nothing. Repair releases it.

Memory stays bounded however large the stores are: objects are walked one listing page at a
time (each looked up by key), records one bucket page at a time, and findings are handed to a
callback as they are found instead of being collected.

This module lives in ``gateway`` (not ``policy``) because it needs the object store, and
``policy`` never imports ``gateway`` (docs/design.md, "Layers").
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from gateway.backends.base import ObjectInfo, ObjectStore
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.usecases.recovery import (
    RECOVERY_KINDS,
    Liveness,
    Recovered,
    Recovery,
    RecoverySettings,
)
from policy.enforce import SESSION_META
from policy.store.base import (
    MAX_PAGE,
    MetadataStore,
    ObjectRecord,
    SessionRecord,
    WriteIntent,
)

#: the principal rebuilt records name, so nobody mistakes them for a client's own commit
RECONCILE_PRINCIPAL = "reconcile"

FindingKind = Literal[
    "rebuildable",
    "unlinked",
    "missing_object",
    "mismatch",
    "dead_intent",
    "temp_file",
    "interrupted_complete",
    "expired_upload",
    "orphan_claim",
]
FINDING_KINDS: tuple[FindingKind, ...] = (
    "rebuildable",
    "unlinked",
    "missing_object",
    "mismatch",
    *RECOVERY_KINDS,
)

#: sessions remembered while walking objects (objects of one session usually come together);
#: the cache is emptied when full so memory stays bounded
_SESSION_CACHE_MAX = 10_000


@dataclass(slots=True)
class Finding:
    kind: FindingKind
    bucket: str
    key: str
    #: what is wrong, in words
    detail: str
    #: the session the object or record names, when any
    session_id: str | None = None
    #: set for dead intents and orphan claims
    intent_id: str | None = None
    #: True once repaired in this run
    repaired: bool = False
    #: the rebuilt record's SHA-256 (repairs of rebuildable and mismatch findings)
    sha256: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bucket": self.bucket,
            "key": self.key,
            "detail": self.detail,
            "session_id": self.session_id,
            "intent_id": self.intent_id,
            "repaired": self.repaired,
            "sha256": self.sha256,
        }


@dataclass(slots=True)
class Summary:
    objects_checked: int = 0
    records_checked: int = 0
    intents_checked: int = 0
    #: objects written after the run started or by a live intent: someone's write in flight
    in_flight: int = 0
    found: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINDING_KINDS, 0))
    repaired: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINDING_KINDS, 0))
    #: True when more expired uploads exist than one report lists (report mode only)
    more_expired_uploads: bool = False

    @property
    def problems(self) -> int:
        return sum(self.found.values())

    @property
    def remaining(self) -> int:
        """Problems still there after this run (all of them unless repairing)."""
        return self.problems - sum(self.repaired.values())

    @property
    def consistent(self) -> bool:
        return self.remaining == 0 and not self.more_expired_uploads

    def as_json(self) -> dict[str, Any]:
        return {
            "objects_checked": self.objects_checked,
            "records_checked": self.records_checked,
            "intents_checked": self.intents_checked,
            "in_flight": self.in_flight,
            "found": dict(self.found),
            "repaired": dict(self.repaired),
            "remaining": self.remaining,
            "more_expired_uploads": self.more_expired_uploads,
            "consistent": self.consistent,
        }


class Progress(Protocol):
    """What the walk reports progress to (a tqdm bar in the CLI)."""

    def update(self, n: int = 1) -> object: ...

    def set_description(self, desc: str | None = None, refresh: bool = True) -> object: ...


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        pass


def _bare_etag(etag: str) -> str:
    # Backends return ETags unquoted; a record written by a handler may keep S3's quotes.
    return etag.strip().strip('"')


class Reconciler:
    """One reconcile run over ``objects`` and ``metadata``; call :meth:`run` once."""

    def __init__(
        self,
        objects: ObjectStore,
        metadata: MetadataStore,
        *,
        repair: bool = False,
        bucket: str | None = None,
        stale_after: timedelta = timedelta(hours=1),
        multipart_expiry: timedelta = timedelta(days=7),
        on_finding: Callable[[Finding], Awaitable[None] | None] | None = None,
        progress: Callable[[str], Progress] | None = None,
        clock: Callable[[], datetime] | None = None,
        page_size: int = MAX_PAGE,
    ) -> None:
        self.objects = objects
        self.metadata = metadata
        self.repair = repair
        self.bucket = bucket
        self.stale_after = stale_after
        self.multipart_expiry = multipart_expiry
        self._on_finding = on_finding
        self._progress = progress or (lambda _phase: _NoProgress())
        self._clock = clock or (lambda: datetime.now(UTC))
        self._page_size = page_size
        self._sessions: dict[str, SessionRecord | None] = {}
        self.summary = Summary()
        self._recovery: Recovery | None = None
        self._liveness: Liveness | None = None
        # Fixed when the run starts: objects newer than this are writes still in flight.
        self._started = self._clock()

    # -- the run -------------------------------------------------------------------------------
    async def run(self) -> Summary:
        self._started = self._clock()
        # Crash leftovers first: rolling back a dead intent releases its write-once claim and
        # removes the object it may have stored, so the object walk below sees what is left.
        await self._check_leftovers()
        await self._check_objects()
        await self._check_records()
        return self.summary

    async def _report(self, finding: Finding) -> None:
        self.summary.found[finding.kind] += 1
        if finding.repaired:
            self.summary.repaired[finding.kind] += 1
        if self._on_finding is not None:
            result = self._on_finding(finding)
            if result is not None:
                await result

    # -- (c) crash leftovers: gateway.usecases.recovery's steps, reported or repaired --------------
    async def _check_leftovers(self) -> None:
        bar = self._progress("leftovers")

        async def found(item: Recovered) -> None:
            bar.update()
            await self._report(
                Finding(
                    item.kind,
                    item.bucket,
                    item.key,
                    item.detail,
                    session_id=item.session_id,
                    intent_id=item.intent_id,
                    repaired=item.repaired,
                )
            )

        self._recovery = recovery = Recovery(
            self.objects,
            self.metadata,
            settings=RecoverySettings(
                unknown_grace=self.stale_after, multipart_expiry=self.multipart_expiry
            ),
            repair=self.repair,
            bucket=self.bucket,
            on_found=found,
            clock=self._clock,
            page_size=self._page_size,
        )
        self._liveness = live = await recovery.liveness()
        if self.bucket is None:
            # the scratch space belongs to no bucket; reconcile also walks the local store's
            # part layouts for any that no object names
            await recovery.leftovers(live, thorough=True)
        await recovery.dead_intents(live)
        await recovery.expired_uploads()
        await recovery.orphan_claims()
        report = recovery.report
        self.summary.intents_checked = report.found["dead_intent"] + report.live_intents
        self.summary.more_expired_uploads = report.more

    # -- (a) objects without records, (d) records that disagree --------------------------------
    async def _buckets(self) -> list[str]:
        if self.bucket is not None:
            try:
                await self.objects.head_bucket(self.bucket)
            except S3Error as exc:
                if exc.code != S3ErrorCode.NoSuchBucket:
                    raise
                # A deleted bucket has no objects, but its records and intents still count.
                return []
            return [self.bucket]
        return [b.name for b in await self.objects.list_buckets()]

    async def _check_objects(self) -> None:
        bar = self._progress("objects")
        for bucket in await self._buckets():
            bar.set_description(f"objects in {bucket}")
            after = ""
            while True:
                try:
                    page = await self.objects.list_objects(
                        bucket, start_after=after, max_keys=self._page_size
                    )
                except S3Error as exc:
                    if exc.code == S3ErrorCode.NoSuchBucket:  # deleted while we walked
                        break
                    raise
                for info in page.objects:
                    await self._check_object(bucket, info)
                    bar.update()
                if not page.truncated or not page.objects:
                    break
                after = page.next_marker or page.objects[-1].key

    async def _check_object(self, bucket: str, info: ObjectInfo) -> None:
        self.summary.objects_checked += 1
        if info.last_modified > self._started:
            # Stored after this run began: a live gateway's write whose commit is on its way.
            self.summary.in_flight += 1
            return
        if (
            not self.repair
            and self._recovery is not None
            and (bucket, info.key) in self._recovery.dead_keys
        ):
            # a dead write's key: reported as its dead intent, whose rollback decides
            return
        record = await self.metadata.get_object_record(bucket, info.key)
        if record is None:
            await self._unrecorded(bucket, info)
            return
        if record.size == info.size and _bare_etag(record.etag) == _bare_etag(info.etag):
            return
        await self._mismatch(bucket, info, record)

    async def _unrecorded(self, bucket: str, listed: ObjectInfo) -> None:
        try:
            info = await self.objects.head_object(bucket, listed.key)
        except S3Error as exc:
            if exc.code in (S3ErrorCode.NoSuchKey, S3ErrorCode.NoSuchBucket):
                return  # deleted since it was listed: nothing to reconcile
            raise
        if await self._write_in_flight(bucket, info.key):
            self.summary.in_flight += 1
            return
        stamp = info.metadata.get(SESSION_META)
        session = await self._session(stamp) if stamp else None
        if session is None:
            detail = (
                f"no committed record and its stamp names unknown session {stamp}"
                if stamp
                else "no committed record and no minimo-session stamp"
            )
            await self._report(Finding("unlinked", bucket, info.key, detail, session_id=stamp))
            return
        finding = Finding(
            "rebuildable",
            bucket,
            info.key,
            f"no committed record; stamped with session {session.id}",
            session_id=session.id,
        )
        if self.repair:
            rebuilt = await self._rebuild(bucket, info.key, session.id, claim=True)
            if rebuilt is not None:
                finding.repaired = True
                finding.sha256 = rebuilt.sha256
            else:
                finding.detail += " (changed while reconciling; not rebuilt)"
        await self._report(finding)

    async def _write_in_flight(self, bucket: str, key: str) -> bool:
        """A live writer's intent holds the key's claim: it will commit (or roll back)."""
        holder = await self.metadata.get_claim(bucket, key)
        if holder is None:
            return False
        intent = await self.metadata.get_intent(holder)
        if intent is None:
            return False
        if self._liveness is None:
            return intent.started >= self._started - self.stale_after
        return self._liveness.why_dead(intent) is None

    async def _mismatch(self, bucket: str, listed: ObjectInfo, record: ObjectRecord) -> None:
        differences = []
        if record.size != listed.size:
            differences.append(f"size {record.size} in the record, {listed.size} stored")
        if _bare_etag(record.etag) != _bare_etag(listed.etag):
            differences.append(
                f"ETag {_bare_etag(record.etag)} in the record, {_bare_etag(listed.etag)} stored"
            )
        finding = Finding(
            "mismatch", bucket, listed.key, "; ".join(differences), session_id=record.session_id
        )
        if self.repair:
            try:
                info = await self.objects.head_object(bucket, listed.key)
            except S3Error as exc:
                if exc.code not in (S3ErrorCode.NoSuchKey, S3ErrorCode.NoSuchBucket):
                    raise
                info = None  # gone since listed: the record walk reports it
            stamp = info.metadata.get(SESSION_META) if info is not None else None
            session = await self._session(stamp) if stamp else None
            if session is None:
                finding.detail += " (object not stamped with a known session; not refreshed)"
            else:
                rebuilt = await self._rebuild(bucket, listed.key, session.id, claim=False)
                if rebuilt is not None:
                    finding.repaired = True
                    finding.sha256 = rebuilt.sha256
                    finding.session_id = session.id
        await self._report(finding)

    async def _rebuild(
        self, bucket: str, key: str, session_id: str, *, claim: bool
    ) -> ObjectRecord | None:
        """Write the record of (bucket, key) from the object itself, as a write would: intent,
        hash the stored bytes, commit. None when the object changed or vanished meanwhile."""
        intent = WriteIntent(
            id=f"reconcile-{secrets.token_hex(16)}",
            bucket=bucket,
            key=key,
            session_id=session_id,
            principal=RECONCILE_PRINCIPAL,
            started=self._clock(),
        )
        await self.metadata.begin_write(intent)
        claimed = False
        try:
            if claim:
                # A recorded object keeps its key's write-once claim; an object that lost its
                # record must get it back. Another holder (a live write) keeps its own.
                claimed = await self.metadata.claim_key(bucket, key, intent.id)
            try:
                reader = await self.objects.open_object(bucket, key)
            except S3Error as exc:
                if exc.code in (S3ErrorCode.NoSuchKey, S3ErrorCode.NoSuchBucket):
                    raise _Vanished from exc
                raise
            try:
                # The GET's own info, not the earlier HEAD: size, ETag and bytes then all
                # describe one version of the object even if it is overwritten meanwhile.
                info = reader.info
                if info.metadata.get(SESSION_META) != session_id:
                    raise _Vanished
                digest = hashlib.sha256()
                size = 0
                async for piece in reader:
                    digest.update(piece)
                    size += len(piece)
            finally:
                await reader.aclose()
            if size != info.size:
                raise _Vanished
            record = ObjectRecord(
                bucket=bucket,
                key=key,
                size=size,
                etag=_bare_etag(info.etag),
                sha256=digest.hexdigest(),
                content_type=info.content_type,
                session_id=session_id,
                principal=RECONCILE_PRINCIPAL,
                committed=self._clock(),
            )
            return await self.metadata.commit_write(intent.id, record)
        except BaseException as exc:
            if claimed:
                await self.metadata.release_claim(bucket, key, intent.id)
            await self.metadata.abort_write(intent.id)
            if isinstance(exc, _Vanished):
                return None
            raise

    async def _session(self, session_id: str) -> SessionRecord | None:
        if session_id in self._sessions:
            return self._sessions[session_id]
        if len(self._sessions) >= _SESSION_CACHE_MAX:
            self._sessions.clear()
        session = await self.metadata.get_session(session_id)
        self._sessions[session_id] = session
        return session

    # -- (b) records without objects -----------------------------------------------------------
    async def _check_records(self) -> None:
        """Every current record whose object is gone, walked bucket by bucket in key order.

        Walking by bucket rather than by session is what finds records written into scratch
        areas (no session) too; only one page of records is held at a time.
        """
        bar = self._progress("records")
        for bucket in await self._record_buckets():
            bar.set_description(f"records in {bucket}", refresh=False)
            after = ""
            while True:
                page = await self.metadata.list_object_records(
                    bucket, start_after=after, limit=self._page_size
                )
                for record in page:
                    bar.update()
                    self.summary.records_checked += 1
                    await self._check_record(record)
                if len(page) < self._page_size:
                    break
                # Keys, not offsets: repairs delete records behind the cursor without
                # shifting the next page.
                after = page[-1].key

    async def _record_buckets(self) -> list[str]:
        """The buckets whose records to walk: the object store's, plus any holding records.

        A bucket deleted behind minimo's back can still hold records (all of them now missing
        their objects), whether a session names it or its writes went to a scratch area. Only
        bucket names are kept, so memory stays bounded by the number of buckets.
        """
        if self.bucket is not None:
            return [self.bucket]
        buckets = set(await self._buckets())
        after = ""
        while True:
            page = await self.metadata.list_record_buckets(start_after=after, limit=self._page_size)
            buckets.update(page)
            if len(page) < self._page_size:
                break
            after = page[-1]
        return sorted(buckets)

    async def _check_record(self, record: ObjectRecord) -> None:
        try:
            await self.objects.head_object(record.bucket, record.key)
            return
        except S3Error as exc:
            if exc.code not in (S3ErrorCode.NoSuchKey, S3ErrorCode.NoSuchBucket):
                raise
        finding = Finding(
            "missing_object",
            record.bucket,
            record.key,
            f"record committed {record.committed:%Y-%m-%d %H:%M:%S} UTC by {record.principal} "
            "but no object is stored",
            session_id=record.session_id,
        )
        if self.repair:
            # Delete only the record we judged: a write that committed a new one since (its
            # object now stored) must keep it.
            current = await self.metadata.get_object_record(record.bucket, record.key)
            if current is not None and current.committed == record.committed:
                await self.metadata.delete_object_record(record.bucket, record.key)
            finding.repaired = True
        await self._report(finding)


class _Vanished(Exception):
    """The object changed or disappeared while being rebuilt."""


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds // 86400}d{seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60}m"
    return f"{seconds // 60}m{seconds % 60}s"
