"""``minimo verify``: re-read stored bytes, recompute their SHA-256 and compare with the records.

Fixity you can prove: every committed write keeps the SHA-256 of the bytes it stored
(:class:`policy.store.base.ObjectRecord`); this re-reads the objects from the object store and
reports, per key, one :data:`VerifyResult`:

- ``ok``: same ETag, same size, same SHA-256 as the record.
- ``changed``: same size, but the bytes differ (a flipped bit, an edit in place).
- ``truncated`` / ``size_differs``: fewer / more bytes than the record says.
- ``missing``: a record whose object is gone.
- ``replaced``: the object's ETag is not the record's: something wrote the key behind
  minimo's back (its bytes are not read: they are not the recorded write's).
- ``unrecorded``: an object in scope with no record at all (and no write holding its key: one
  in flight has stored its object before committing its record; it is counted, not reported).

Each recorded key's result and time are kept on its record as soon as it is known
(:meth:`MetadataStore.set_verified`), so an interrupted run loses nothing: a rerun with
``older_than`` skips what was verified since and carries on with the rest.

Scope: one bucket or all; a key prefix; one session (its bucket and prefix, its records only).
Objects and records are walked together in key order, a listing page at a time, so memory stays
bounded however many objects there are; objects are read as streams by a few workers at once
(hashing in threads, which release the GIL) so reads overlap and throughput approaches the
disk's. An optional rate limit caps the bytes read per second, to leave the disk to the users.

This module lives in ``gateway`` (not ``policy``) because it needs the object store.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gateway.backends.base import ObjectInfo, ObjectStore
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.usecases import metrics
from policy.store.base import MAX_PAGE, MetadataStore, ObjectRecord, SessionRecord

VerifyResult = Literal[
    "ok", "changed", "truncated", "size_differs", "missing", "replaced", "unrecorded"
]
RESULTS: tuple[VerifyResult, ...] = (
    "ok",
    "changed",
    "truncated",
    "size_differs",
    "missing",
    "replaced",
    "unrecorded",
)
#: every result but ``ok`` is a problem: the command's exit status says so
PROBLEMS: frozenset[VerifyResult] = frozenset(RESULTS) - {"ok"}

#: objects read at once by default: enough to keep a disk (or an S3 server) busy while one
#: chunk is hashed, few enough not to thrash a spinning disk
DEFAULT_PARALLEL = 4
#: chunks at least this big are hashed in a thread (hashlib releases the GIL), so several
#: objects hash at once on several cores; smaller ones are not worth the thread hop
_THREAD_HASH_MIN = 64 * 1024
_LIST_PAGE = 1000


class VerifyError(Exception):
    """The scope cannot be verified (an unknown session)."""


@dataclass(frozen=True, slots=True)
class Scope:
    bucket: str | None = None
    prefix: str = ""
    session_id: str | None = None
    #: skip records verified less than this long ago (None: verify everything in scope)
    older_than: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    result: VerifyResult
    bucket: str
    key: str
    #: what was found, in words
    detail: str
    #: bytes read (for ``unrecorded`` and ``replaced``: the object's listed size)
    size: int = 0
    #: the recomputed SHA-256, when the bytes were read to the end
    sha256: str | None = None
    session_id: str | None = None

    @property
    def problem(self) -> bool:
        return self.result in PROBLEMS

    def as_json(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "bucket": self.bucket,
            "key": self.key,
            "detail": self.detail,
            "size": self.size,
            "sha256": self.sha256,
            "session_id": self.session_id,
        }


@dataclass(slots=True)
class Summary:
    counts: dict[VerifyResult, int] = field(default_factory=lambda: dict.fromkeys(RESULTS, 0))
    #: records verified recently enough to skip (``older_than``)
    skipped: int = 0
    #: objects without a record whose key a write holds (claimed, not yet committed)
    in_flight: int = 0
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def problems(self) -> int:
        return sum(n for result, n in self.counts.items() if result in PROBLEMS)

    @property
    def all_ok(self) -> bool:
        return self.problems == 0

    def as_json(self) -> dict[str, Any]:
        return {
            **self.counts,
            "skipped": self.skipped,
            "in_flight": self.in_flight,
            "problems": self.problems,
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
        }


class _RateLimit:
    """At most ``rate`` bytes per second over the whole run (all workers together)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.taken = 0

    async def take(self, n: int) -> None:
        if not self.rate:
            return
        self.taken += n
        # sleep until the bytes taken so far fit the rate since the start
        ahead = self.taken / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            await asyncio.sleep(ahead)


@dataclass(slots=True)
class _Pair:
    bucket: str
    key: str
    record: ObjectRecord | None
    info: ObjectInfo | None


class Verifier:
    """One run over a :class:`Scope`. ``on_outcome`` gets every result as it is known;
    ``on_bytes`` every chunk's size as it is read (for a progress bar)."""

    def __init__(
        self,
        objects: ObjectStore,
        metadata: MetadataStore,
        scope: Scope,
        *,
        parallel: int = DEFAULT_PARALLEL,
        max_rate: float | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        on_bytes: Callable[[int], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.objects = objects
        self.metadata = metadata
        self.scope = scope
        self.parallel = max(1, parallel)
        self.limit = _RateLimit(max_rate)
        self.on_outcome = on_outcome
        self.on_bytes = on_bytes
        self.now = now
        self.summary = Summary()
        self._session: SessionRecord | None = None
        #: records verified at or after this are skipped (older_than)
        self._cutoff: datetime | None = None
        if scope.older_than is not None:
            try:
                self._cutoff = now() - scope.older_than
            except OverflowError:  # longer ago than datetimes go: nothing was verified before
                self._cutoff = datetime.min.replace(tzinfo=UTC)

    # -- planning ---------------------------------------------------------------------------
    async def _where(self) -> list[tuple[str, str]]:
        """The (bucket, prefix) places the scope covers."""
        scope = self.scope
        if scope.session_id is not None:
            session = await self.metadata.get_session(scope.session_id)
            if session is None:
                raise VerifyError(f"no session {scope.session_id!r}")
            self._session = session
            prefix = session.prefix
            if scope.prefix.startswith(prefix):
                prefix = scope.prefix  # narrower, still inside the session
            elif scope.prefix:
                prefix = session.prefix + scope.prefix
            return [(session.bucket, prefix)]
        if scope.bucket is not None:
            return [(scope.bucket, scope.prefix)]
        names = {b.name for b in await self.objects.list_buckets()}
        after = ""
        while page := await self.metadata.list_record_buckets(start_after=after):
            names.update(page)
            after = page[-1]
        return [(name, scope.prefix) for name in sorted(names, key=str.encode)]

    def _in_scope(self, record: ObjectRecord) -> bool:
        return self._session is None or record.session_id == self._session.id

    def _due(self, record: ObjectRecord) -> bool:
        """Not verified within ``older_than`` (always, without it)."""
        if self._cutoff is None or record.verified is None:
            return True
        return record.verified < self._cutoff

    async def planned_bytes(self) -> int:
        """The bytes the run will read (the records' sizes): a progress bar's total. A walk
        of the metadata store only."""
        total = 0
        for bucket, prefix in await self._where():
            async for record in self._records(bucket, prefix):
                if self._in_scope(record) and self._due(record):
                    total += record.size
        return total

    # -- walking ----------------------------------------------------------------------------
    async def _records(self, bucket: str, prefix: str) -> AsyncIterator[ObjectRecord]:
        """Current records of the bucket under the prefix, in key (UTF-8 byte) order."""
        after = ""
        if prefix:
            # start_after is exclusive: the key equal to the prefix comes first, by itself
            exact = await self.metadata.get_object_record(bucket, prefix)
            if exact is not None:
                yield exact
            after = prefix
        while True:
            page = await self.metadata.list_object_records(
                bucket, start_after=after, limit=MAX_PAGE
            )
            for record in page:
                if not record.key.startswith(prefix):
                    return  # keys sharing a prefix are contiguous in byte order
                yield record
            if len(page) < MAX_PAGE:
                return
            after = page[-1].key

    async def _listed(self, bucket: str, prefix: str) -> AsyncIterator[ObjectInfo]:
        after = ""
        while True:
            try:
                page = await self.objects.list_objects(
                    bucket, prefix=prefix, start_after=after, max_keys=_LIST_PAGE
                )
            except S3Error as exc:
                if exc.code == S3ErrorCode.NoSuchBucket:
                    return  # deleted behind minimo's back: every record in it is missing
                raise
            for info in page.objects:
                yield info
            if not page.truncated or not page.objects:
                return
            after = page.next_marker or page.objects[-1].key

    async def _pairs(self, bucket: str, prefix: str) -> AsyncIterator[_Pair]:
        """Records and objects side by side by key: a merge of two sorted walks."""
        records = self._records(bucket, prefix)
        listed = self._listed(bucket, prefix)
        record = await anext(records, None)
        info = await anext(listed, None)
        while record is not None or info is not None:
            r_key = record.key.encode() if record is not None else None
            i_key = info.key.encode() if info is not None else None
            if i_key is None or (r_key is not None and r_key < i_key):
                assert record is not None
                yield _Pair(bucket, record.key, record, None)
                record = await anext(records, None)
            elif r_key is None or i_key < r_key:
                assert info is not None
                yield _Pair(bucket, info.key, None, info)
                info = await anext(listed, None)
            else:
                assert record is not None and info is not None
                yield _Pair(bucket, record.key, record, info)
                record = await anext(records, None)
                info = await anext(listed, None)

    # -- running ----------------------------------------------------------------------------
    async def run(self) -> Summary:
        started = time.monotonic()
        queue: asyncio.Queue[_Pair | None] = asyncio.Queue(maxsize=self.parallel * 2)

        async def worker() -> None:
            while (pair := await queue.get()) is not None:
                await self._verify_pair(pair)

        places = await self._where()
        try:
            async with asyncio.TaskGroup() as group:
                workers = [group.create_task(worker()) for _ in range(self.parallel)]
                for bucket, prefix in places:
                    async for pair in self._pairs(bucket, prefix):
                        if pair.record is not None and not self._in_scope(pair.record):
                            continue  # another session's record under this prefix
                        if pair.record is not None and not self._due(pair.record):
                            self.summary.skipped += 1
                            continue
                        await queue.put(pair)
                # On an error the task group cancels the workers instead.
                for _ in workers:
                    await queue.put(None)
        except BaseExceptionGroup as group_error:
            # one worker's error (an unreachable object store) is the caller's to report as
            # itself, not wrapped in a group
            first = group_error.exceptions[0]
            raise first from first.__cause__
        self.summary.seconds = time.monotonic() - started
        return self.summary

    async def _verify_pair(self, pair: _Pair, retried: bool = False) -> None:
        record = pair.record
        if record is None:
            outcome = await self._unrecorded(pair)
            if outcome is not None:
                self._report(outcome)
            return
        outcome = await self._check(record)
        if outcome.problem and not retried:
            # A write or delete of the key during the read is not damage: look again at
            # whatever the key's record is now.
            current = await self.metadata.get_object_record(pair.bucket, pair.key)
            if current is None or current.intent_id != record.intent_id:
                if current is None or self._in_scope(current):
                    await self._verify_pair(_Pair(pair.bucket, pair.key, current, None), True)
                return
        if record.intent_id is not None:
            await self.metadata.set_verified(
                record.bucket, record.key, record.intent_id, self.now(), outcome.result
            )
        self._report(outcome)

    async def _unrecorded(self, pair: _Pair) -> Outcome | None:
        # The object may have been committed since the records were listed.
        record = await self.metadata.get_object_record(pair.bucket, pair.key)
        if record is not None:
            if self._in_scope(record) and self._due(record):
                await self._verify_pair(_Pair(pair.bucket, pair.key, record, None), True)
            return None
        if await self.metadata.get_claim(pair.bucket, pair.key) is not None:
            # A write holds the key: its object is stored before its record is committed
            # (docs/write-protocol.md). Not damage; an abandoned one is reconcile's to find.
            self.summary.in_flight += 1
            return None
        size = pair.info.size if pair.info is not None else 0
        if pair.info is None:
            try:
                size = (await self.objects.head_object(pair.bucket, pair.key)).size
            except S3Error:
                return None  # neither record nor object: nothing there
        return Outcome(
            "unrecorded",
            pair.bucket,
            pair.key,
            "an object with no record: written behind minimo's back",
            size=size,
        )

    async def _check(self, record: ObjectRecord) -> Outcome:
        bucket, key = record.bucket, record.key

        def outcome(result: VerifyResult, detail: str, size: int = 0, sha: str | None = None):
            return Outcome(result, bucket, key, detail, size, sha, record.session_id)

        try:
            reader = await self.objects.open_object(bucket, key)
        except S3Error as exc:
            if exc.code in (S3ErrorCode.NoSuchKey, S3ErrorCode.NoSuchBucket):
                return outcome("missing", "the record's object is gone from the object store")
            raise
        try:
            stored_etag = _bare_etag(reader.info.etag)
            if stored_etag != _bare_etag(record.etag):
                return outcome(
                    "replaced",
                    f"ETag {stored_etag} stored, {_bare_etag(record.etag)} recorded: "
                    "the object was replaced behind minimo's back",
                    reader.info.size,
                )
            digest = hashlib.sha256()
            read = 0
            async for chunk in reader:
                read += len(chunk)
                if len(chunk) >= _THREAD_HASH_MIN:
                    await asyncio.to_thread(digest.update, chunk)
                else:
                    digest.update(chunk)
                self.summary.bytes_read += len(chunk)
                if self.on_bytes is not None:
                    self.on_bytes(len(chunk))
                await self.limit.take(len(chunk))
        except S3Error as exc:
            if exc.code in (S3ErrorCode.NoSuchKey, S3ErrorCode.NoSuchBucket):
                return outcome("missing", "the object went away while it was read")
            raise
        finally:
            await reader.aclose()
        sha = digest.hexdigest()
        if read < record.size:
            return outcome("truncated", f"{read} bytes stored, {record.size} recorded", read, sha)
        if read > record.size:
            return outcome(
                "size_differs", f"{read} bytes stored, {record.size} recorded", read, sha
            )
        if sha != record.sha256:
            return outcome("changed", f"SHA-256 {sha} stored, {record.sha256} recorded", read, sha)
        return outcome("ok", "the stored bytes are the recorded ones", read, sha)

    def _report(self, outcome: Outcome) -> None:
        self.summary.counts[outcome.result] += 1
        metrics.count_verified(outcome.result)
        if self.on_outcome is not None:
            self.on_outcome(outcome)


def _bare_etag(etag: str) -> str:
    return etag.strip().strip('"')
