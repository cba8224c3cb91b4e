"""The metadata store interface: what every backend (``sqlite``, ``mongo``) must do.

Backends keep records and nothing else: they never hash passwords, encrypt secrets or decide
who may do what (that is :mod:`policy.identity`). Every method is a single atomic operation on
one record, so correctness never needs a transaction spanning records or processes
(docs/design.md, decision 1); uniqueness is enforced by the backend's unique indexes.

Times are timezone-aware UTC datetimes. The ``mongo`` backend keeps whole milliseconds (BSON
dates), so a record a method returns is always what a later read returns, never the input as is.

Decisions every backend follows:

- Forms and policies are versioned by inserting ``latest + 1`` under a unique index and retrying
  on a conflict, so concurrent editors all succeed with distinct, consecutive versions.
- "First one wins" (closing a session, claiming a key for write-once) is an insert under a
  unique index, never a conditional update: FerretDB runs updates as read-then-replace.
- Object records: one *current* record per (bucket, key), replaced by every commit (the last
  commit wins), plus an append-only history of every committed write (one row per intent), so
  "objects written under a session are linked to it forever" holds even after an overwrite or
  delete. Per-session usage is computed from current records, never kept as a counter
  (FerretDB cannot increment atomically under concurrency).
- Opaque cursors are backend-specific strings; pass back only what the same backend returned.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

# The errors, records and queries the interface speaks live in their own modules. Those its
# callers import from here are named here too (``X as X``), so their imports did not change.
from policy.store.errors import AlreadyExists as AlreadyExists
from policy.store.errors import KeyBusy
from policy.store.errors import NotFound as NotFound
from policy.store.errors import StoreError as StoreError
from policy.store.errors import StoreFull as StoreFull
from policy.store.errors import StoreUnavailable as StoreUnavailable
from policy.store.errors import translate_errors as translate_errors
from policy.store.queries import MAX_PAGE, SessionPage, SessionQuery
from policy.store.queries import FieldFilter as FieldFilter
from policy.store.queries import FieldValue as FieldValue
from policy.store.queries import SortColumn as SortColumn
from policy.store.queries import decode_cursor as decode_cursor
from policy.store.queries import encode_cursor as encode_cursor
from policy.store.records import (
    AuditEvent,
    FormRecord,
    InstanceRecord,
    KeyRecord,
    MultipartRecord,
    ObjectRecord,
    PolicyRecord,
    Role,
    SessionRecord,
    UserRecord,
    WriteIntent,
)
from policy.store.records import AuditOutcome as AuditOutcome
from policy.store.records import IntentKind as IntentKind


class MetadataStore(ABC):
    """One metadata store backend, shared by all requests of a process."""

    #: "sqlite" or "mongo"
    kind: str

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date. Safe while other processes use the store."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; safe to call more than once."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the store cannot answer (used by /_minimo/health)."""

    # -- users ---------------------------------------------------------------------------------
    @abstractmethod
    async def create_user(self, user: UserRecord) -> None:
        """Raise AlreadyExists when a user of that name exists (deleted ones included)."""

    @abstractmethod
    async def get_user(self, name: str) -> UserRecord | None: ...

    @abstractmethod
    async def list_users(self) -> list[UserRecord]:
        """All users, deleted ones included, ordered by name."""

    @abstractmethod
    async def update_user(
        self,
        name: str,
        *,
        role: Role | None = None,
        password_hash: str | None = None,
        deleted: datetime | None = None,
    ) -> UserRecord:
        """Change the given fields (None = leave as is); raise NotFound for unknown users."""

    @abstractmethod
    async def count_users(self) -> int:
        """How many users exist, deleted ones included."""

    # -- access keys ---------------------------------------------------------------------------
    @abstractmethod
    async def create_key(self, key: KeyRecord) -> None:
        """Raise AlreadyExists when the access key id is taken."""

    @abstractmethod
    async def get_key(self, access_key: str) -> KeyRecord | None: ...

    @abstractmethod
    async def list_keys(self, owner: str | None = None) -> list[KeyRecord]:
        """All keys (revoked included), of one owner when given, ordered by creation time."""

    @abstractmethod
    async def revoke_key(self, access_key: str, when: datetime) -> KeyRecord:
        """Mark the key revoked at ``when`` unless it already is (the first time wins).

        Raise NotFound for unknown keys. Returns the record as stored afterwards.
        """

    # -- forms ---------------------------------------------------------------------------------
    @abstractmethod
    async def create_form_version(
        self,
        name: str,
        definition: dict[str, Any],
        created_by: str,
        *,
        created: datetime | None = None,
    ) -> FormRecord:
        """Store ``definition`` as version latest + 1 of form ``name`` (1 for a new form).

        Concurrent callers all succeed, each with its own consecutive version.
        """

    @abstractmethod
    async def get_form(self, name: str, version: int | None = None) -> FormRecord | None:
        """One version of a form (None: the latest)."""

    @abstractmethod
    async def list_forms(self) -> list[FormRecord]:
        """The latest version of every form, ordered by name."""

    @abstractmethod
    async def list_form_versions(self, name: str) -> list[FormRecord]:
        """Every version of one form, oldest first."""

    # -- policy --------------------------------------------------------------------------------
    @abstractmethod
    async def set_policy(
        self,
        document: dict[str, Any],
        source: str,
        created_by: str,
        *,
        created: datetime | None = None,
    ) -> PolicyRecord:
        """Store a new policy version (latest + 1); concurrent callers get distinct versions."""

    @abstractmethod
    async def get_policy(self, version: int | None = None) -> PolicyRecord | None:
        """The policy in force (the latest version), or an older version; None when unset."""

    # -- sessions ------------------------------------------------------------------------------
    @abstractmethod
    async def create_session(self, session: SessionRecord) -> SessionRecord:
        """Store a new session; AlreadyExists when the id is taken. Returns it as stored."""

    @abstractmethod
    async def get_session(self, session_id: str) -> SessionRecord | None: ...

    @abstractmethod
    async def close_session(self, session_id: str, when: datetime, by: str) -> SessionRecord:
        """Close an open session; the first close wins and later ones get it unchanged.

        NotFound for unknown ids. Returns the session as stored afterwards.
        """

    @abstractmethod
    async def extend_session(self, session_id: str, expires: datetime) -> SessionRecord:
        """Move an open session's expiry to ``expires`` (a closed session is returned
        unchanged). NotFound for unknown ids. Returns the session as stored afterwards."""

    @abstractmethod
    async def search_sessions(self, query: SessionQuery) -> SessionPage:
        """One page of the sessions matching ``query`` and how many match in all."""

    # -- writes and object records --------------------------------------------------------------
    @abstractmethod
    async def begin_write(self, intent: WriteIntent) -> None:
        """Record an intent before any byte is stored; AlreadyExists when the id is taken."""

    @abstractmethod
    async def commit_write(self, intent_id: str, record: ObjectRecord) -> ObjectRecord:
        """Make ``record`` the current record of its (bucket, key), add it to the history and
        drop the intent. Idempotent: committing one intent twice stores one history entry.
        Returns the record as stored."""

    @abstractmethod
    async def abort_write(self, intent_id: str) -> None:
        """Drop an intent (the write failed); unknown ids are ignored."""

    async def start_write(self, intent: WriteIntent, *, claim: bool) -> bool:
        """Record ``intent`` and, when ``claim``, claim its key (:meth:`claim_key`); returns
        whether the claim was won (True when no claim was asked for). The intent is recorded
        even when the claim is lost (the caller aborts it). Raises :class:`KeyBusy` (leaving
        nothing behind) while a delete of the key is in progress: the intent goes in first and
        the delete's intent is looked for after, the order :meth:`start_delete` mirrors, so of
        a write and a delete that start together at least one sees the other. If this raises,
        nothing is left behind. Backends that can do it all in one round trip override this."""
        await self.begin_write(intent)
        try:
            if await self.delete_in_progress(intent.bucket, intent.key):
                raise KeyBusy(f"a delete of {intent.bucket}/{intent.key} is in progress")
            if not claim:
                return True
            return await self.claim_key(intent.bucket, intent.key, intent.id)
        except BaseException:
            # a claim that timed out may have been stored all the same: release it too
            with contextlib.suppress(Exception):
                await self.roll_back_write(intent)
            raise

    @abstractmethod
    async def delete_in_progress(self, bucket: str, key: str) -> bool:
        """Whether a delete intent of (bucket, key) is recorded."""

    @abstractmethod
    async def supersede_writes(self, bucket: str, key: str) -> None:
        """Mark every write intent of (bucket, key) superseded (as :meth:`start_delete` does);
        recovery calls it before finishing a dead delete."""

    @abstractmethod
    async def start_delete(self, intent: WriteIntent) -> None:
        """Record a delete intent (``kind == "delete"``) before the object is deleted, then mark
        every write intent of the key as superseded: those writes can no longer commit
        (:meth:`finish_write` refuses them) and roll back; new ones are refused while the delete
        intent stays (:class:`KeyBusy`)."""

    @abstractmethod
    async def finish_write(
        self, intent_id: str, record: ObjectRecord, audit: AuditEvent
    ) -> ObjectRecord:
        """Commit ``record`` (as :meth:`commit_write`) together with its audit event.

        Audit is part of the write (docs/design.md, decision 4): the write is acknowledged only when
        this returns, and it returns only when both the record and ``audit`` are stored. When it
        raises, the caller rolls the write back (:meth:`roll_back_write`, which also removes
        whatever part of this commit did get stored). Returns the record as stored.

        Raises :class:`NotFound` when the intent is gone (recovery rolled the write back),
        :class:`KeyBusy` when a delete of the key superseded it (:meth:`start_delete`)."""

    @abstractmethod
    async def finish_delete(
        self,
        bucket: str,
        key: str,
        audit: AuditEvent,
        intent_id: str | None = None,
        *,
        again: bool = False,
    ) -> bool:
        """After the object store deleted (bucket, key): drop its current record and write-once
        claim (as :meth:`delete_object_record`), mark the key's write intents superseded again
        (writes that started while the delete ran), append ``audit`` and drop the delete intent
        ``intent_id``, all or (as far as the store allows) nothing, the intent last. Returns
        whether a current record existed.

        ``again``: an earlier finish of ``intent_id`` may have stored part or all of itself
        (it failed half way, or succeeded and its answer was lost: the janitor's and
        recovery's finishes). The delete then keeps one audit event, this one, which says the
        client was not told."""

    @abstractmethod
    async def roll_back_write(self, intent: WriteIntent) -> None:
        """Undo everything ``intent`` left in this store: a partly stored commit (its record if
        still current, its history entry, its audit event), its write-once claim and the intent
        itself. Idempotent; the object store's side is the caller's (gateway.usecases.rollback)."""

    @abstractmethod
    async def get_intent(self, intent_id: str) -> WriteIntent | None: ...

    @abstractmethod
    async def stale_intents(self, older_than: datetime, limit: int = MAX_PAGE) -> list[WriteIntent]:
        """Intents started before ``older_than`` (writes that never finished), oldest first."""

    @abstractmethod
    async def list_intents(
        self, *, start_after: str = "", limit: int = MAX_PAGE
    ) -> list[WriteIntent]:
        """Intents with id > ``start_after``, in id order (ids start with the writing process's
        instance id, so one process's intents come together)."""

    @abstractmethod
    async def get_object_record(self, bucket: str, key: str) -> ObjectRecord | None:
        """The current record of an object."""

    @abstractmethod
    async def list_object_history(self, bucket: str, key: str) -> list[ObjectRecord]:
        """Every committed write of (bucket, key), oldest first (overwritten ones included)."""

    @abstractmethod
    async def delete_object_record(self, bucket: str, key: str) -> bool:
        """Drop the current record (the object was deleted) and release the key's write-once
        claim. The history stays. Returns whether a current record existed."""

    @abstractmethod
    async def list_session_objects(
        self, session_id: str, limit: int = MAX_PAGE, cursor: str | None = None
    ) -> tuple[list[ObjectRecord], str | None]:
        """Current records written under a session, by (bucket, key), and the next cursor."""

    @abstractmethod
    async def list_object_records(
        self, bucket: str, *, start_after: str = "", limit: int = MAX_PAGE
    ) -> list[ObjectRecord]:
        """Current records of one bucket with key > ``start_after``, in key order (UTF-8 byte
        order, as S3 lists keys), at most ``limit`` of them. Records of every session and of
        none (scratch areas) alike: reconcile needs all of them to find missing objects."""

    @abstractmethod
    async def set_verified(
        self, bucket: str, key: str, intent_id: str, when: datetime, result: str
    ) -> bool:
        """Keep what ``minimo verify`` found for the current record of (bucket, key) and when.
        Only while that record is still the one committed by ``intent_id`` (a newer write of
        the key must not inherit an older verification); returns whether it was."""

    @abstractmethod
    async def list_record_buckets(
        self, *, start_after: str = "", limit: int = MAX_PAGE
    ) -> list[str]:
        """The names of buckets holding current records, after ``start_after``, in byte order.

        Reconcile walks these (with the object store's buckets) so that a bucket deleted behind
        minimo's back still has its records checked, whether or not a session names it."""

    @abstractmethod
    async def session_usage(self, session_id: str) -> tuple[int, int]:
        """(object count, total bytes) of the session's current records."""

    @abstractmethod
    async def verify_results(self) -> dict[str, int]:
        """How many current records have each last ``minimo verify`` result ("" for records
        never verified): the metrics' view of fixity."""

    @abstractmethod
    async def claim_key(self, bucket: str, key: str, intent_id: str) -> bool:
        """Claim a fresh key for a write-once write: True for exactly one of any number of
        concurrent (or later) claimers, until the claim is released. A committed object keeps
        its claim; :meth:`delete_object_record` releases it."""

    @abstractmethod
    async def release_claim(self, bucket: str, key: str, intent_id: str) -> bool:
        """Release the claim if ``intent_id`` holds it (its write failed); True if it did."""

    @abstractmethod
    async def get_claim(self, bucket: str, key: str) -> str | None:
        """The intent id holding the key's claim, if any (for reconcile)."""

    @abstractmethod
    async def list_claims(
        self, *, start_after: tuple[str, str] = ("", ""), limit: int = MAX_PAGE
    ) -> list[tuple[str, str, str]]:
        """Write-once claims as (bucket, key, intent id), with (bucket, key) > ``start_after``,
        in (bucket, key) order (for reconcile: claims left without intent or record)."""

    # -- multipart uploads ---------------------------------------------------------------------
    @abstractmethod
    async def create_multipart(self, upload: MultipartRecord) -> None:
        """AlreadyExists when the upload id is taken."""

    @abstractmethod
    async def get_multipart(self, upload_id: str) -> MultipartRecord | None: ...

    @abstractmethod
    async def delete_multipart(self, upload_id: str) -> bool:
        """Forget a completed or aborted upload; returns whether it was known."""

    @abstractmethod
    async def list_multiparts(
        self, *, created_before: datetime, limit: int = MAX_PAGE
    ) -> list[MultipartRecord]:
        """Uploads begun before ``created_before``, oldest first (for their expiry)."""

    # -- gateway instances and leases (crash recovery, gateway.usecases.recovery) ------------------
    @abstractmethod
    async def heartbeat_instance(self, instance: InstanceRecord) -> None:
        """Register ``instance`` or refresh its record (the whole record is replaced)."""

    @abstractmethod
    async def list_instances(self) -> list[InstanceRecord]:
        """Every registered instance, by id."""

    @abstractmethod
    async def remove_instance(self, instance_id: str) -> bool:
        """Forget an instance; returns whether it was registered."""

    @abstractmethod
    async def take_lease(self, name: str, term: int, holder: str) -> bool:
        """Take lease ``name`` for ``term`` (a number that grows with time, e.g. the minute):
        an insert under a unique (name, term) index, so exactly one of any number of
        concurrent takers wins each term. Records of terms older than ``term - 100`` are
        purged."""

    # -- ended logins (sign-out of the browser login cookie) ------------------------------------
    @abstractmethod
    async def end_login(self, login_id: str, user: str, expires: datetime) -> None:
        """Record that the login ``login_id`` of ``user`` was signed out; its cookie dies by
        itself at ``expires``, after which the record may be purged. Ending an ended login
        again changes nothing. Each call also purges records whose ``expires`` has passed."""

    @abstractmethod
    async def login_ended(self, login_id: str) -> bool:
        """Whether ``login_id`` was signed out (and its record not yet purged)."""

    # -- audit ---------------------------------------------------------------------------------
    @abstractmethod
    async def append_audit(self, event: AuditEvent) -> AuditEvent:
        """Append an event; returns it as stored."""

    @abstractmethod
    async def list_audit(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        principal: str | None = None,
        action: str | None = None,
        outcome: AuditOutcome | None = None,
        limit: int = 100,
        cursor: str | None = None,
        descending: bool = False,
    ) -> tuple[list[AuditEvent], str | None]:
        """Events with ``since <= time < until``, ordered by time then insertion (oldest first
        unless ``descending``), one page at a time; returns the page and the next cursor."""

    @abstractmethod
    async def list_audit_actions(self) -> list[str]:
        """Every action the audit log holds, sorted (what the audit page offers to filter by)."""
