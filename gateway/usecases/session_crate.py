"""Close a session, first writing its RO-Crate into its prefix (issue 4).

``<prefix>ro-crate-metadata.json`` is written as an object OF the session, through the same
write protocol as a PutObject (:mod:`gateway.usecases.writes`): the policy decides (as for a
personal key
naming the session in ``x-amz-meta-minimo-session``), the key is claimed under write-once rules,
an intent is recorded, the bytes are stamped ``minimo-session: <id>`` and hashed, and the record
(principal = whoever closes) and its audit event are committed. Then the session is closed.

Decisions:

* Write first, close after: a closed session refuses writes, and if the write fails the session
  stays open and nothing is half done (the write protocol leaves no object and no record).
* A crate minimo generated carries the user metadata ``minimo-generated: ro-crate`` next to its
  session stamp. An object at that key without both marks (a user's own file) is never replaced:
  the close is refused with :class:`CrateConflict`. A generated crate of the same, still open
  session (an earlier close that stopped between the two steps) is regenerated.
* Closing an already-closed session rewrites nothing; the result names the crate written then.
* Sessions that only expire get no crate, and the policy default (``ro_crate_on_close``) applies
  only to open sessions: asking explicitly for a crate of an expired session is refused.
* Bounded memory (docs/design.md, decision 3): the records are read from the store page by page
  and the document is spooled (in memory up to ``SPOOL_IN_MEMORY`` bytes, then a temporary
  file), so its size is known before the upload starts, as the object stores need.
* An object committed under the session between the crate's write and the close (the session key
  is still valid then) would be missing from the crate: after closing, the session's object count
  and bytes are compared with what the crate describes, and the crate is regenerated once if
  they differ (best effort: the close already happened).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from gateway.backends.base import ObjectStore, WriteMeta
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.usecases.writes import GENERATED_META, WritePath, stamp
from policy.enforce import SESSION_META, Decision, OperationClass, Refusal, s3_url
from policy.principal import Principal, Role
from policy.rocrate import MEDIA_TYPE, CrateLayout, crate_key
from policy.services import Services
from policy.sessions import SessionError, SessionInvalid
from policy.store.base import MAX_PAGE, ObjectRecord, SessionRecord

log = logging.getLogger("minimo.crate")

#: the mark of a crate minimo wrote (with the session stamp); clients cannot set it
GENERATED_VALUE = "ro-crate"
#: crates up to this size stay in memory while being built; larger ones spill to a temp file
SPOOL_IN_MEMORY = 1024 * 1024
_READ_PIECE = 64 * 1024


@dataclass(slots=True)
class _Written:
    record: ObjectRecord
    decision: Decision
    #: (object count, bytes) of the session as the crate describes it, the crate included
    usage: tuple[int, int]


class CrateConflict(SessionError):
    """The crate's key holds an object minimo must not replace (a user's own file)."""


@dataclass(slots=True)
class CloseResult:
    session: SessionRecord
    #: s3://bucket/key of the session's crate (written now or at an earlier close), else None
    crate: str | None = None
    #: whether this close wrote it
    crate_written: bool = False


async def crate_default(services: Services, session: SessionRecord) -> bool:
    """The ``ro_crate_on_close`` of the policy rule covering the session's scope."""
    policy = await services.policies.current()
    rule = policy.match(session.bucket, session.prefix)
    return rule is not None and rule.ro_crate_on_close


async def close_with_crate(
    services: Services,
    writes: WritePath,
    objects: ObjectStore,
    principal: Principal,
    session_id: str,
    ro_crate: bool | None = None,
) -> CloseResult:
    """Close ``session_id``; with ``ro_crate`` (None: the policy's default) write its crate first.

    Raises SessionError (unknown session, not the owner, policy refusals, expired session),
    CrateConflict (a user's object at the crate's key) or S3Error (the object store failed). In
    every case the session is still open afterwards.
    """
    session = await services.sessions.get(session_id)
    if session is None or not _may_close(principal, session):
        # SessionService.close words and audits these refusals.
        return CloseResult(await services.sessions.close(principal, session_id))
    now = datetime.now(UTC)
    if session.state == "closed":
        closed = await services.sessions.close(principal, session_id)
        return CloseResult(closed, await _existing_crate(services, closed))
    if ro_crate is None:
        ro_crate = session.is_open(now) and await crate_default(services, session)
    if not ro_crate:
        return CloseResult(await services.sessions.close(principal, session_id))
    if not session.is_open(now):
        raise SessionInvalid(
            f"session {session.id} expired at {session.expires:%Y-%m-%d %H:%M:%S} UTC: nothing "
            "can be written into it any more, so it gets no RO-Crate; close it without one"
        )
    written = await write_crate(services, writes, objects, principal, session)
    closed = await services.sessions.close(principal, session_id)
    if await services.sessions.usage(session_id) != written.usage:
        # Something was committed under the session between the crate and the close: write the
        # crate again, now that nothing more can join (same decision: it was taken while open).
        # The session is closed by now, so a failure here must not turn the close into an error:
        # the crate written before stays, and the log says why it is not newer.
        try:
            written = await _put(services, writes, objects, written.decision, closed, replace=True)
        except Exception:
            log.exception("could not rewrite the RO-Crate of session %s after closing", session_id)
    record = written.record
    return CloseResult(closed, s3_url(record.bucket, record.key), crate_written=True)


def _may_close(principal: Principal, session: SessionRecord) -> bool:
    return principal.role is Role.ADMIN or principal.user == session.owner


async def _existing_crate(services: Services, session: SessionRecord) -> str | None:
    record = await services.store.get_object_record(session.bucket, crate_key(session))
    if record is None or record.session_id != session.id:
        return None
    return s3_url(record.bucket, record.key)


async def write_crate(
    services: Services,
    writes: WritePath,
    objects: ObjectStore,
    principal: Principal,
    session: SessionRecord,
) -> _Written:
    """Write the session's crate through the write protocol; the session must be open."""
    key = crate_key(session)
    try:
        # As a personal key naming the session would: same rule, scope and ownership checks.
        decision = await writes.enforcer.decide(
            principal, "PutObject", OperationClass.CREATE, session.bucket, key, session.id
        )
    except Refusal as refusal:
        raise SessionInvalid(f"the RO-Crate cannot be written: {refusal.message}") from None
    replace = await _replaceable(objects, session, key)
    return await _put(services, writes, objects, decision, session, replace=replace)


async def _replaceable(objects: ObjectStore, session: SessionRecord, key: str) -> bool:
    """False when the key is free; True when it holds this session's generated crate; otherwise
    (someone's own file) refuse."""
    try:
        info = await objects.head_object(session.bucket, key)
    except S3Error as exc:
        if exc.code == S3ErrorCode.NoSuchKey:
            return False
        raise
    if _generated_for(info.metadata, session.id):
        return True
    raise _conflict(session, key)


def _generated_for(metadata: dict[str, str], session_id: str) -> bool:
    return (
        metadata.get(GENERATED_META) == GENERATED_VALUE and metadata.get(SESSION_META) == session_id
    )


def _conflict(session: SessionRecord, key: str) -> CrateConflict:
    return CrateConflict(
        f"{s3_url(session.bucket, key)} already exists and is not an RO-Crate minimo wrote for "
        f"session {session.id}; minimo never overwrites it. Rename or move that file and close "
        "again, or close without writing the RO-Crate."
    )


async def _put(
    services: Services,
    writes: WritePath,
    objects: ObjectStore,
    decision: Decision,
    session: SessionRecord,
    *,
    replace: bool,
) -> _Written:
    key = crate_key(session)
    if replace and decision.rule is not None:
        # Our own earlier crate keeps the key's write-once claim; replacing it must not ask for
        # a new one (it would be refused as an overwrite). Only this write is exempted.
        decision = dataclasses.replace(
            decision, rule=dataclasses.replace(decision.rule, overwrite="allow")
        )
    meta = stamp(WriteMeta(content_type=MEDIA_TYPE), decision)
    meta.metadata[GENERATED_META] = GENERATED_VALUE  # after stamp(), which drops clients' marks
    form = await services.forms.find(session.form_name, session.form_version)
    # Written just before the close: its publication date is now, not the session's creation.
    described = (
        session if session.closed else dataclasses.replace(session, closed=datetime.now(UTC))
    )
    layout = CrateLayout.build(described, form, writes.ui_url)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        size, sha256, (count, total) = await _spool(services, layout, spool)
        write = writes.begin(decision, session.bucket, key)
        try:
            await write.start()
        except S3Error as exc:
            if exc.code == S3ErrorCode.AccessDenied:  # the write-once claim is held: another writer
                raise CrateConflict(
                    f"{s3_url(session.bucket, key)} is being written by another request right "
                    "now; close again in a moment"
                ) from None
            raise
        try:
            # A fresh crate must not land on a file written since the check above.
            etag = await objects.put_object(
                session.bucket, key, _SpoolBody(spool, size), meta, if_none_match=not replace
            )
        except BaseException as exc:
            await write.fail(objects, exc)
            if isinstance(exc, S3Error) and exc.code == S3ErrorCode.PreconditionFailed:
                raise _conflict(session, key) from None
            raise
        record = await write.commit(
            objects,
            size=size,
            etag=etag,
            sha256=sha256,
            content_type=MEDIA_TYPE,
            generated="ro-crate",
        )
    return _Written(record, decision, (count + 1, total + size))


async def crate_pieces(
    services: Services, layout: CrateLayout, counts: list[int] | None = None
) -> AsyncIterator[bytes]:
    """The crate's bytes, piece by piece, read from the store a page at a time: two passes over
    the records (refs, then entities) keep memory bounded by one page. ``counts``, when given,
    gets [files, their bytes] added as the entities go by."""
    yield layout.head
    first = True
    async for record in _records(services, layout):
        yield layout.ref(record) if first else b", " + layout.ref(record)
        first = False
    yield layout.middle
    async for record in _records(services, layout):
        if counts is not None:
            counts[0] += 1
            counts[1] += record.size
        yield layout.file(record)
    yield layout.tail


async def _spool(
    services: Services, layout: CrateLayout, out: IO[bytes]
) -> tuple[int, str, tuple[int, int]]:
    """Write the crate into ``out``; (size, hex SHA-256, (files, their bytes))."""
    digest = hashlib.sha256()
    counts = [0, 0]
    async for piece in crate_pieces(services, layout, counts):
        digest.update(piece)
        out.write(piece)
    size = out.tell()
    out.seek(0)
    return size, digest.hexdigest(), (counts[0], counts[1])


async def _records(services: Services, layout: CrateLayout) -> AsyncIterator[ObjectRecord]:
    cursor: str | None = None
    while True:
        page, cursor = await services.sessions.objects(layout.session.id, MAX_PAGE, cursor)
        for record in page:
            if layout.includes(record):
                yield record
        if cursor is None:
            return


class _SpoolBody:
    """The spooled crate as an object store write body (known size, read in pieces)."""

    def __init__(self, spool: IO[bytes], size: int) -> None:
        self.spool = spool
        self.size: int | None = size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while piece := await asyncio.to_thread(self.spool.read, _READ_PIECE):
            yield piece
