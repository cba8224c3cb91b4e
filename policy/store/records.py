"""The records a metadata store keeps: users (and their roles), keys, forms, policies, sessions,
write intents, object records, multipart uploads, gateway instances and audit events.

Frozen dataclasses with timezone-aware UTC times; the stores read and write them and nothing
else (the interface is :class:`policy.store.base.MetadataStore`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal


class Role(StrEnum):
    """What a user may do (``policy.principal`` names it for everyone above the stores): the
    stores keep it on each user record, so it is store vocabulary."""

    ADMIN = "admin"
    UPLOADER = "uploader"
    READER = "reader"


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    role: Role
    #: argon2id hash in PHC string form (``$argon2id$...``)
    password_hash: str
    created: datetime
    #: set when the user was deleted; a deleted user's keys stop working
    deleted: datetime | None = None

    @property
    def active(self) -> bool:
        return self.deleted is None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    access_key: str
    #: the secret, encrypted (Fernet token); the store never sees the plaintext
    secret_encrypted: str
    owner: str
    created: datetime
    revoked: datetime | None = None
    #: set for a session key: the session it writes into (None for a personal key)
    session_id: str | None = None
    #: what the owner calls it ("laptop", "analysis cluster"): shown beside the key, never used
    #: to decide anything
    label: str | None = None
    #: a read-only key reads, whatever its owner's role (policy.identity gives its principal the
    #: reader role): every key a reader creates, and any key its owner asked to be read-only
    read_only: bool = False

    @property
    def active(self) -> bool:
        return self.revoked is None


@dataclass(frozen=True, slots=True)
class FormRecord:
    """One version of a form; ``definition`` is the form file as JSON-able data."""

    name: str
    version: int
    definition: dict[str, Any]
    created: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """One version of the policy: its parsed ``document`` and the TOML ``source`` it came from."""

    version: int
    document: dict[str, Any]
    source: str
    created: datetime
    created_by: str


SessionState = Literal["open", "closed"]


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    form_name: str
    form_version: int
    #: the validated field values (JSON-able: str, int, float, bool, lists of str; dates as
    #: ISO text as the form normalised them)
    values: dict[str, Any]
    bucket: str
    prefix: str
    owner: str
    state: SessionState
    created: datetime
    expires: datetime
    closed: datetime | None = None
    closed_by: str | None = None
    #: the session key minted at open
    access_key: str | None = None
    #: the name people know it by, made once at open (policy.sessions.make_title); "" for
    #: sessions opened before titles existed (policy.sessions.title_of falls back then)
    title: str = ""

    def is_open(self, now: datetime) -> bool:
        """Open and not expired at ``now`` (expired means ``expires < now``, as in searches)."""
        return self.state == "open" and now <= self.expires


IntentKind = Literal["write", "delete"]


@dataclass(frozen=True, slots=True)
class WriteIntent:
    """A write in progress (docs/design.md, decision 4): recorded before the first byte is
    stored."""

    id: str
    bucket: str
    key: str
    #: None for a write into a scratch area (``require_session: false``)
    session_id: str | None
    #: the user name behind the request
    principal: str
    started: datetime
    #: set for CompleteMultipartUpload
    upload_id: str | None = None
    #: "delete": a DeleteObject in progress, held while the object is deleted so that no write
    #: of the key commits across it (docs/write-protocol.md, "Writes beside deletes")
    kind: IntentKind = "write"


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """A committed write: what the object store holds at (bucket, key) and who put it there."""

    bucket: str
    key: str
    size: int
    etag: str
    #: hex SHA-256 of the stored bytes
    sha256: str
    content_type: str | None
    session_id: str | None
    principal: str
    committed: datetime
    #: when the bytes were last modified before minimo recorded them, for data linked in by
    #: adopt (the object store's Last-Modified before the stamping copy); None for a client's
    #: write, whose bytes are as old as ``committed``
    modified: datetime | None = None
    #: the write intent that committed it (set on records read back from a store); not part of
    #: a record's value, only how rollback tells "this write's record" from another's
    intent_id: str | None = field(default=None, compare=False)
    #: when ``minimo verify`` last re-read the stored bytes, and what it found (a
    #: ``gateway.usecases.verify`` result: "ok", "changed", "missing", ...); None until then. A new
    #: commit of the key starts unverified. Like ``intent_id``, not part of the write's value.
    verified: datetime | None = field(default=None, compare=False)
    verify_result: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class MultipartRecord:
    """A multipart upload in flight, so any gateway process can take its parts."""

    upload_id: str
    bucket: str
    key: str
    session_id: str | None
    principal: str
    created: datetime


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """A running gateway process, so recovery can tell a dead writer's intents from a live
    one's (gateway.usecases.recovery). ``id`` is the process's intent id prefix: every intent id the
    process makes starts with it."""

    id: str
    #: where the process runs: host name, kernel boot id and PID namespace, so a process on the
    #: same host (and namespace) can check whether ``process`` still exists
    host: str
    #: ``PID:START`` (START: the process's start time in clock ticks since boot, from
    #: /proc/PID/stat), so a reused PID is not mistaken for the same process
    process: str
    started: datetime
    #: the last heartbeat
    heartbeat: datetime
    #: seconds between heartbeats: the instance counts as dead once several are missed
    every: float


AuditOutcome = Literal["allowed", "refused", "ok", "error"]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    time: datetime
    #: user name (or "-" when unauthenticated)
    principal: str
    #: e.g. "PutObject", "session.open", "form.create"
    action: str
    #: e.g. "s3://bucket/key", "session:ID", "form:NAME"
    target: str
    outcome: AuditOutcome
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
