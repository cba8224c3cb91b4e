"""The shared metadata store: a MongoDB database reached with PyMongo's async client.

Any number of gateway processes and CLI invocations use one database at once. Nothing here
relies on a multi-document transaction (docs/design.md, decision 1: FerretDB has none and MongoDB
needs a replica set for them); uniqueness comes from unique indexes (a duplicate insert fails
with code 11000).

FerretDB 1.x is weaker than MongoDB in one more way that shapes this module: it runs
``update`` and ``findAndModify`` as "query, change in memory, replace the whole document by
_id". A filter such as ``{"revoked": None}`` is therefore *not* a compare-and-set (two
concurrent revocations both match and both write), and two concurrent updates of different
fields of one document can lose one of them. The only atomic primitive both servers share is an
insert under a unique index, so every "first time wins" decision is made by inserting a fact
document (e.g. a key's revocation into ``key_revocations``) and letting the unique index pick
the winner; the main document only caches the winner's value for one-query reads.

Session search: filters on ``values.<field>`` cannot use predeclared indexes (fields are
whatever forms define); the fixed columns (owner, form, bucket, state, created) are indexed.
MongoDB uses those indexes; FerretDB 1.x on SQLite decodes every document of the collection for
nearly any query, so a search over 10,000 sessions takes seconds there (a few ms on sqlite).

Times: BSON dates are UTC milliseconds, so a stored time comes back truncated to the
millisecond; the client decodes them as timezone-aware UTC datetimes.

The Fernet key that encrypts S3 secrets (``DATA_DIR/secret.key``) is not kept here: every
gateway process that shares one database must be given the same key file.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pymongo
from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument, monitoring
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)
from pymongo.uri_parser import parse_uri

from policy.store.base import (
    MAX_PAGE,
    AlreadyExists,
    AuditEvent,
    AuditOutcome,
    FieldFilter,
    FormRecord,
    InstanceRecord,
    KeyBusy,
    KeyRecord,
    MetadataStore,
    MultipartRecord,
    NotFound,
    ObjectRecord,
    PolicyRecord,
    Role,
    SessionPage,
    SessionQuery,
    SessionRecord,
    StoreError,
    StoreFull,
    StoreUnavailable,
    UserRecord,
    WriteIntent,
    decode_cursor,
    encode_cursor,
    translate_errors,
)
from policy.store.mongo_lock_retry import (
    LockRetryingCollection,
    LockRetryingDatabase,
    refused_for_lock,
)

DEFAULT_DATABASE = "minimo"

#: How long an outage takes to be answered (docs/failures.md). With the server gone (killed,
#: refused, host down) an operation waits at most SERVER_SELECTION_TIMEOUT_MS for a server and
#: then fails: requests answer 503 after ~2 s instead of PyMongo's 30 s default. A new
#: connection (and each monitor check) gives up after CONNECT_TIMEOUT_MS. A server that
#: accepts but never answers (stopped, hung) is cut off after SOCKET_TIMEOUT_MS without a
#: byte: long enough that an overloaded but working server is waited for (FerretDB's SQLite
#: handler took over 10 s for single operations under the 64-client soak, and a timed-out
#: operation may still have been done by the server, which costs a rollback). Not PyMongo's
#: timeoutMS: with it set, server selection waits for the whole operation timeout instead of
#: the 2 s above. When the server is back, the next operation finds it (PyMongo re-checks an
#: unknown server at most every 0.5 s while operations wait): no restart is needed.
SERVER_SELECTION_TIMEOUT_MS = 2_000
CONNECT_TIMEOUT_MS = 2_000
SOCKET_TIMEOUT_MS = 30_000
#: ping() must answer before the health probe's own 5 s limit to report a clear error
PING_TIMEOUT_SECONDS = 2.0

USERS = "users"
ACCESS_KEYS = "access_keys"
#: one document per revoked key, never updated: its unique index decides who revoked first
KEY_REVOCATIONS = "key_revocations"
FORMS = "forms"
POLICIES = "policies"
SESSIONS = "sessions"
#: one document per closed session, never updated: its unique index decides who closed first
SESSION_CLOSURES = "session_closures"
WRITE_INTENTS = "write_intents"
#: the current record of each (bucket, key)
OBJECTS = "objects"
#: committed writes recorded by ``commit_write`` (reconcile) and by earlier versions of minimo,
#: append-only, unique by intent id; ``finish_write`` keeps its history entry in its audit
#: event instead (one insert for both: docs/design.md, "MongoDB round trips")
OBJECT_HISTORY = "object_history"
#: write-once claims: the unique (bucket, key) index admits one claimer
KEY_CLAIMS = "key_claims"
MULTIPART_UPLOADS = "multipart_uploads"
AUDIT = "audit"
#: the field of an audit event (a committed write's) that holds the write's history entry
HISTORY_FIELD = "object"
#: one document per signed-out login, unique by login id; purged once the cookie has expired
ENDED_LOGINS = "ended_logins"
#: running gateway processes and their last heartbeat (crash recovery), unique by id
INSTANCES = "instances"
#: one document per (lease name, term), never updated: the unique index picks one holder
LEASES = "leases"

#: how often a versioned insert retries after losing to a concurrent writer; each loss means
#: another writer took a version, so this bounds concurrent editors of one form, not time
VERSION_RETRIES = 100

_PASSWORD_IN_URI = re.compile(r"(://[^:/@]*:)[^@/]*@")


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***``, fit for logs and error messages."""
    return _PASSWORD_IN_URI.sub(r"\1***@", uri)


def database_from_uri(uri: str, default: str = DEFAULT_DATABASE) -> str:
    """The database named in the URI's path (``mongodb://host/NAME``), else ``default``."""
    return parse_uri(uri, validate=False).get("database") or default


def _utc(value: datetime | None) -> datetime | None:
    """``value`` as BSON will store it: UTC, whole milliseconds (so returned == read back)."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _user_doc(user: UserRecord) -> dict[str, Any]:
    return {
        "name": user.name,
        "role": user.role.value,
        "password_hash": user.password_hash,
        "created": _utc(user.created),
        "deleted": _utc(user.deleted),
    }


def _user(doc: dict[str, Any]) -> UserRecord:
    return UserRecord(
        name=doc["name"],
        role=Role(doc["role"]),
        password_hash=doc["password_hash"],
        created=doc["created"],
        deleted=doc.get("deleted"),
    )


def _key_doc(key: KeyRecord) -> dict[str, Any]:
    return {
        "access_key": key.access_key,
        "secret_encrypted": key.secret_encrypted,
        "owner": key.owner,
        "created": _utc(key.created),
        "revoked": _utc(key.revoked),
        "session_id": key.session_id,
        "label": key.label,
        "read_only": key.read_only,
    }


def _key(doc: dict[str, Any]) -> KeyRecord:
    return KeyRecord(
        access_key=doc["access_key"],
        secret_encrypted=doc["secret_encrypted"],
        owner=doc["owner"],
        created=doc["created"],
        revoked=doc.get("revoked"),
        session_id=doc.get("session_id"),
        label=doc.get("label"),
        read_only=bool(doc.get("read_only", False)),
    )


# Form definitions, policy documents and audit details are kept as JSON text: they are never
# queried inside, and text round-trips exactly what was given (keys with "$" or ".", which BSON
# field names may not carry everywhere, and the int/float distinction).
def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _form(doc: dict[str, Any]) -> FormRecord:
    return FormRecord(
        doc["name"],
        doc["version"],
        json.loads(doc["definition"]),
        doc["created"],
        doc["created_by"],
    )


def _policy(doc: dict[str, Any]) -> PolicyRecord:
    return PolicyRecord(
        doc["version"],
        json.loads(doc["document"]),
        doc["source"],
        doc["created"],
        doc["created_by"],
    )


def _session_doc(session: SessionRecord) -> dict[str, Any]:
    # values stay a subdocument: searches filter and sort on values.<field>
    return {
        "id": session.id,
        "form_name": session.form_name,
        "form_version": session.form_version,
        "values": session.values,
        "bucket": session.bucket,
        "prefix": session.prefix,
        "owner": session.owner,
        "state": session.state,
        "created": _utc(session.created),
        "expires": _utc(session.expires),
        "closed": _utc(session.closed),
        "closed_by": session.closed_by,
        "access_key": session.access_key,
        "title": session.title,
    }


def _session(doc: dict[str, Any]) -> SessionRecord:
    return SessionRecord(
        id=doc["id"],
        form_name=doc["form_name"],
        form_version=doc["form_version"],
        values=doc["values"],
        bucket=doc["bucket"],
        prefix=doc["prefix"],
        owner=doc["owner"],
        state=doc["state"],
        created=doc["created"],
        expires=doc["expires"],
        closed=doc.get("closed"),
        closed_by=doc.get("closed_by"),
        access_key=doc.get("access_key"),
        title=doc.get("title", ""),
    )


def _intent_doc(intent: WriteIntent) -> dict[str, Any]:
    return {
        "id": intent.id,
        "bucket": intent.bucket,
        "key": intent.key,
        "session_id": intent.session_id,
        "principal": intent.principal,
        "started": _utc(intent.started),
        "upload_id": intent.upload_id,
        "kind": intent.kind,
    }


def _intent(doc: dict[str, Any]) -> WriteIntent:
    return WriteIntent(
        doc["id"],
        doc["bucket"],
        doc["key"],
        doc.get("session_id"),
        doc["principal"],
        doc["started"],
        doc.get("upload_id"),
        doc.get("kind", "write"),
    )


def _object_doc(record: ObjectRecord, intent_id: str) -> dict[str, Any]:
    return {
        "bucket": record.bucket,
        "key": record.key,
        "bytes": record.size,
        "etag": record.etag,
        "sha256": record.sha256,
        "content_type": record.content_type,
        "session_id": record.session_id,
        "principal": record.principal,
        "committed": _utc(record.committed),
        "modified": _utc(record.modified),
        "intent_id": intent_id,
    }


def _object(doc: dict[str, Any]) -> ObjectRecord:
    return ObjectRecord(
        bucket=doc["bucket"],
        key=doc["key"],
        size=doc["bytes"],
        etag=doc["etag"],
        sha256=doc["sha256"],
        content_type=doc.get("content_type"),
        session_id=doc.get("session_id"),
        principal=doc["principal"],
        committed=doc["committed"],
        modified=doc.get("modified"),
        intent_id=doc.get("intent_id"),
        verified=doc.get("verified"),
        verify_result=doc.get("verify_result"),
    )


def _multipart(doc: dict[str, Any]) -> MultipartRecord:
    return MultipartRecord(
        doc["upload_id"],
        doc["bucket"],
        doc["key"],
        doc.get("session_id"),
        doc["principal"],
        doc["created"],
    )


def _audit_doc(event: AuditEvent) -> dict[str, Any]:
    return {
        "time": _utc(event.time),
        "principal": event.principal,
        "action": event.action,
        "target": event.target,
        "outcome": event.outcome,
        "reason": event.reason,
        "details": _json(event.details),
    }


def _audit(doc: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        doc["time"],
        doc["principal"],
        doc["action"],
        doc["target"],
        doc["outcome"],
        doc.get("reason"),
        json.loads(doc["details"]),
    )


_REGEX_SPECIAL = frozenset("\\.^$|?*+()[]{}")


def _regex_literal(text: str) -> str:
    """``text`` as a regular expression matching itself.

    Not re.escape: it also escapes characters such as space, '-' and '#', which PCRE (MongoDB)
    and Go's RE2 (FerretDB) read differently; these are the metacharacters both agree on.
    """
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in text)


def _field_condition(f: FieldFilter) -> dict[str, Any]:
    """A filter on one value. MongoDB compares only within a type (a text "7" is not >= 5)
    and matches a list when any element does; the sqlite backend does the same by hand."""
    path = f"values.{f.field}"
    if f.op == "eq":
        return {path: f.value}
    if f.op == "min":
        return {path: {"$gte": f.value}}
    if f.op == "max":
        return {path: {"$lte": f.value}}
    return {path: {"$regex": _regex_literal(str(f.value)), "$options": "i"}}


def _cursor_fields(cursor: str, kind: str) -> list[Any]:
    """The values a cursor of ``kind`` carries; ValueError for a cursor of another kind."""
    data = decode_cursor(cursor)
    if not isinstance(data, dict) or not isinstance(data.get(kind), list):
        raise ValueError("invalid page cursor")
    return list(data[kind])


def _after(fields: tuple[str, str], values: list[Any], descending: bool) -> dict[str, Any]:
    """Keyset condition: documents strictly after ``values`` in (fields[0], fields[1]) order."""
    op = "$lt" if descending else "$gt"
    first, second = fields
    return {
        "$or": [
            {first: {op: values[0]}},
            {first: values[0], second: {op: values[1]}},
        ]
    }


#: server error codes that mean "not now" (a failover, a shutdown, a network or time limit),
#: as MongoDB names them: HostUnreachable, HostNotFound, NetworkTimeout, ShutdownInProgress,
#: MaxTimeMSExpired, PrimarySteppedDown, ExceededTimeLimit, SocketException, NotWritablePrimary,
#: InterruptedAtShutdown, InterruptedDueToReplStateChange, NotPrimaryNoSecondaryOk,
#: NotPrimaryOrSecondary
_UNAVAILABLE_CODES = frozenset(
    {6, 7, 89, 91, 50, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
)
#: OutOfDiskSpace
_FULL_CODES = frozenset({14031})
#: what FerretDB (on SQLite or PostgreSQL) says when its disk is full; it has no code for it
_FULL_TEXT = ("disk is full", "no space left", "could not extend file")
#: FerretDB's answer (InternalError, code 1) to an operation its shutdown or a time limit cut
#: short: Go's context errors. The operation may or may not have happened, as after a lost
#: connection, so it is an outage like one (seen on SIGTERM under write load: a 500 otherwise)
_CUT_SHORT_TEXT = ("context canceled", "context deadline exceeded")


def translate_mongo_error(exc: Exception) -> StoreError | None:
    """A PyMongo exception as the store error it means (the one translation point of this
    backend, applied to every operation by ``translate_errors``), or None to pass it on.

    Unavailable: every ConnectionFailure (AutoReconnect, NetworkTimeout,
    ServerSelectionTimeoutError, NotPrimaryError, WaitQueueTimeoutError), server-side time
    limits (ExecutionTimeout, WTimeoutError), the failover and shutdown codes, FerretDB's
    operations cut short by its shutdown or refused its SQLite lock, anything labelled
    retryable, and any error PyMongo marks as a timeout (client-side timeoutMS).
    """
    if isinstance(exc, OperationFailure):
        if exc.code in _FULL_CODES or any(t in str(exc).lower() for t in _FULL_TEXT):
            return StoreFull(f"the MongoDB server is out of space: {exc}")
        if (
            isinstance(exc, ExecutionTimeout | WTimeoutError)
            or exc.code in _UNAVAILABLE_CODES
            or (exc.code == 1 and any(t in str(exc) for t in _CUT_SHORT_TEXT))
            # SQLite's lock not had, still so after policy.store.mongo_lock_retry's tries:
            # nothing done, and an outage like this project's own SQLite store locked too long
            or refused_for_lock(exc)
            or exc.has_error_label("RetryableWriteError")
            or exc.timeout
        ):
            return StoreUnavailable(f"MongoDB operation failed: {type(exc).__name__}: {exc}")
        return None
    if isinstance(exc, ConnectionFailure) or (isinstance(exc, PyMongoError) and exc.timeout):
        return StoreUnavailable(f"MongoDB unreachable: {type(exc).__name__}: {exc}")
    return None


# Documents are read without ``_id``: it is an internal ObjectId no record carries. (Not on
# find_one_and_update: FerretDB 1.x rejects a projection there; the converters ignore ``_id``.)
_NO_ID = {"_id": False}


@translate_errors(translate_mongo_error)
class MongoMetadataStore(MetadataStore):
    kind = "mongo"

    def __init__(
        self,
        uri: str,
        database: str = DEFAULT_DATABASE,
        *,
        event_listeners: Sequence[monitoring.CommandListener] = (),
    ) -> None:
        self.uri = uri
        self.database_name = database
        #: PyMongo listeners for the client (command monitoring: the round-trip test counts
        #: the commands of a write with one)
        self.event_listeners = list(event_listeners)
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        #: commands FerretDB's SQLite handler refused for its lock are sent again
        #: (policy.store.mongo_lock_retry)
        self._db: LockRetryingDatabase | None = None

    def __repr__(self) -> str:
        return f"MongoMetadataStore({redact_uri(self.uri)!r}, database={self.database_name!r})"

    @property
    def db(self) -> LockRetryingDatabase:
        if self._db is None:
            raise RuntimeError("the metadata store is not open")
        return self._db

    @property
    def users(self) -> LockRetryingCollection:
        return self.db[USERS]

    @property
    def keys(self) -> LockRetryingCollection:
        return self.db[ACCESS_KEYS]

    @property
    def key_revocations(self) -> LockRetryingCollection:
        return self.db[KEY_REVOCATIONS]

    async def open(self) -> None:
        self._client = AsyncMongoClient(
            self.uri,
            tz_aware=True,
            tzinfo=UTC,
            serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
            connectTimeoutMS=CONNECT_TIMEOUT_MS,
            socketTimeoutMS=SOCKET_TIMEOUT_MS,
            appname="minimo",
            event_listeners=self.event_listeners,
        )
        self._db = LockRetryingDatabase(self._client[self.database_name])
        await self._ensure_indexes()

    async def _ensure_indexes(self) -> None:
        # create_index is idempotent, so every process may run this at every start; the unique
        # indexes are what make concurrent creates of one name safe across processes.
        await self.users.create_index([("name", ASCENDING)], unique=True, name="name_unique")
        await self.keys.create_index(
            [("access_key", ASCENDING)], unique=True, name="access_key_unique"
        )
        await self.keys.create_index(
            [("owner", ASCENDING), ("created", ASCENDING)], name="owner_created"
        )
        await self.keys.create_index([("created", ASCENDING)], name="created")
        await self.key_revocations.create_index(
            [("access_key", ASCENDING)], unique=True, name="access_key_unique"
        )
        db = self.db
        await db[FORMS].create_index(
            [("name", ASCENDING), ("version", ASCENDING)], unique=True, name="name_version_unique"
        )
        await db[POLICIES].create_index(
            [("version", ASCENDING)], unique=True, name="version_unique"
        )
        sessions = db[SESSIONS]
        await sessions.create_index([("id", ASCENDING)], unique=True, name="id_unique")
        await sessions.create_index([("created", ASCENDING), ("id", ASCENDING)], name="created")
        for name in ("owner", "form_name", "bucket"):
            await sessions.create_index(
                [(name, ASCENDING), ("created", ASCENDING)], name=f"{name}_created"
            )
            # The metadata browser's column sorts, ties newest first, without an in-memory sort
            # on MongoDB: walked forwards this one is "ascending, newest first", the next one
            # walked backwards "descending, newest first". (FerretDB 1.x uses neither.)
            await sessions.create_index(
                [(name, ASCENDING), ("created", DESCENDING), ("id", DESCENDING)],
                name=f"{name}_newest",
            )
            await sessions.create_index(
                [(name, ASCENDING), ("created", ASCENDING), ("id", ASCENDING)],
                name=f"{name}_created_id",
            )
        await sessions.create_index(
            [("state", ASCENDING), ("expires", ASCENDING)], name="state_expires"
        )
        # values.<field> cannot be indexed ahead of time: fields are whatever forms define.
        await db[SESSION_CLOSURES].create_index(
            [("session_id", ASCENDING)], unique=True, name="session_id_unique"
        )
        await db[WRITE_INTENTS].create_index([("id", ASCENDING)], unique=True, name="id_unique")
        await db[WRITE_INTENTS].create_index([("started", ASCENDING)], name="started")
        await db[WRITE_INTENTS].create_index(
            [("bucket", ASCENDING), ("key", ASCENDING)], name="bucket_key"
        )
        await db[OBJECTS].create_index(
            [("bucket", ASCENDING), ("key", ASCENDING)], unique=True, name="bucket_key_unique"
        )
        await db[OBJECTS].create_index(
            [("session_id", ASCENDING), ("bucket", ASCENDING), ("key", ASCENDING)],
            name="session_bucket_key",
        )
        await db[OBJECT_HISTORY].create_index(
            [("intent_id", ASCENDING)], unique=True, name="intent_id_unique"
        )
        await db[OBJECT_HISTORY].create_index(
            [("bucket", ASCENDING), ("key", ASCENDING), ("committed", ASCENDING)],
            name="bucket_key_committed",
        )
        await db[KEY_CLAIMS].create_index(
            [("bucket", ASCENDING), ("key", ASCENDING)], unique=True, name="bucket_key_unique"
        )
        await db[MULTIPART_UPLOADS].create_index(
            [("upload_id", ASCENDING)], unique=True, name="upload_id_unique"
        )
        await db[MULTIPART_UPLOADS].create_index(
            [("created", ASCENDING), ("upload_id", ASCENDING)], name="created"
        )
        await db[INSTANCES].create_index([("id", ASCENDING)], unique=True, name="id_unique")
        await db[LEASES].create_index(
            [("name", ASCENDING), ("term", ASCENDING)], unique=True, name="name_term_unique"
        )
        await db[ENDED_LOGINS].create_index(
            [("login_id", ASCENDING)], unique=True, name="login_id_unique"
        )
        # Purged by end_login rather than a TTL index: FerretDB on SQLite has no TTL monitor to
        # rely on, and the purge is one indexed delete.
        await db[ENDED_LOGINS].create_index([("expires", ASCENDING)], name="expires")
        await db[AUDIT].create_index([("time", ASCENDING), ("_id", ASCENDING)], name="time")
        # the events of a write's finish, which a rollback of that write removes
        await db[AUDIT].create_index([("intent_id", ASCENDING)], name="intent_id")
        # the history entries that finish_write keeps in its audit event
        await db[AUDIT].create_index(
            [
                (f"{HISTORY_FIELD}.bucket", ASCENDING),
                (f"{HISTORY_FIELD}.key", ASCENDING),
                (f"{HISTORY_FIELD}.committed", ASCENDING),
            ],
            name="history_bucket_key_committed",
        )
        for name in ("principal", "action"):
            await db[AUDIT].create_index(
                [(name, ASCENDING), ("time", ASCENDING)], name=f"{name}_time"
            )

    async def close(self) -> None:
        if self._client is not None:
            client, self._client, self._db = self._client, None, None
            await client.close()

    async def ping(self) -> None:
        # CSOT: one deadline for server selection, connecting and the command together.
        with pymongo.timeout(PING_TIMEOUT_SECONDS):
            await self.db.command("ping")

    # -- users ---------------------------------------------------------------------------------
    async def create_user(self, user: UserRecord) -> None:
        try:
            await self.users.insert_one(_user_doc(user))
        except DuplicateKeyError as exc:
            raise AlreadyExists(f"user {user.name!r} already exists") from exc

    async def get_user(self, name: str) -> UserRecord | None:
        doc = await self.users.find_one({"name": name}, _NO_ID)
        return _user(doc) if doc else None

    async def list_users(self) -> list[UserRecord]:
        cursor = self.users.find({}, _NO_ID).sort("name", ASCENDING)
        return [_user(doc) async for doc in cursor]

    async def update_user(
        self,
        name: str,
        *,
        role: Role | None = None,
        password_hash: str | None = None,
        deleted: datetime | None = None,
    ) -> UserRecord:
        changes: dict[str, Any] = {}
        if role is not None:
            changes["role"] = Role(role).value
        if password_hash is not None:
            changes["password_hash"] = password_hash
        if deleted is not None:
            changes["deleted"] = _utc(deleted)
        if not changes:
            user = await self.get_user(name)
            if user is None:
                raise NotFound(f"no user {name!r}")
            return user
        # Last write wins. On FerretDB two concurrent updates of one user (say set-role and
        # delete, from two admins within milliseconds) can lose one of them; see the module
        # docstring. Admin edits of a single user are rare enough to accept that for now.
        doc = await self.users.find_one_and_update(
            {"name": name},
            {"$set": changes},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise NotFound(f"no user {name!r}")
        return _user(doc)

    async def count_users(self) -> int:
        return await self.users.count_documents({})

    # -- access keys ---------------------------------------------------------------------------
    async def create_key(self, key: KeyRecord) -> None:
        # No foreign keys here: check the owner first. Users are only ever soft-deleted, so a
        # user seen here cannot vanish before the insert (no race to close with a transaction).
        if await self.users.count_documents({"name": key.owner}, limit=1) == 0:
            raise NotFound(f"no user {key.owner!r}")
        try:
            await self.keys.insert_one(_key_doc(key))
        except DuplicateKeyError as exc:
            raise AlreadyExists(f"access key {key.access_key!r} already exists") from exc

    async def get_key(self, access_key: str) -> KeyRecord | None:
        doc = await self.keys.find_one({"access_key": access_key}, _NO_ID)
        return _key(doc) if doc else None

    async def list_keys(self, owner: str | None = None) -> list[KeyRecord]:
        query = {} if owner is None else {"owner": owner}
        cursor = self.keys.find(query, _NO_ID).sort(
            [("created", ASCENDING), ("access_key", ASCENDING)]
        )
        return [_key(doc) async for doc in cursor]

    async def revoke_key(self, access_key: str, when: datetime) -> KeyRecord:
        key = await self.get_key(access_key)
        if key is None:
            raise NotFound(f"no access key {access_key!r}")
        if key.revoked is not None:
            return key
        # The unique index on key_revocations.access_key admits one insert: that revoker's time
        # wins, every later or concurrent one reads it back (see the module docstring for why
        # a filtered update cannot decide this on FerretDB).
        revoked = _utc(when)
        try:
            await self.key_revocations.insert_one({"access_key": access_key, "revoked": revoked})
        except DuplicateKeyError:
            winner = await self.key_revocations.find_one({"access_key": access_key}, _NO_ID)
            if winner is None:  # cannot happen: revocations are never removed
                raise
            revoked = winner["revoked"]
        # Copy the winner's time onto the key so reads stay one query. Concurrent revokers all
        # write the same value, so FerretDB's whole-document replace cannot store a wrong one.
        # Should this process die before the copy, revoking again completes it.
        await self.keys.update_one({"access_key": access_key}, {"$set": {"revoked": revoked}})
        return replace(key, revoked=revoked)

    # -- forms ---------------------------------------------------------------------------------
    async def _insert_next_version(
        self, collection: str, scope: dict[str, Any], doc: dict[str, Any]
    ) -> dict[str, Any]:
        """Insert ``doc`` as version latest + 1 within ``scope``.

        The unique index on the version decides between concurrent writers: the losers read
        the new latest and try the next number (see the module docstring for why no counter).
        """
        coll = self.db[collection]
        for _ in range(VERSION_RETRIES):
            latest = await coll.find_one(
                scope, {"version": True, "_id": False}, sort=[("version", DESCENDING)]
            )
            version = (latest["version"] if latest else 0) + 1
            attempt = {**doc, **scope, "version": version}
            try:
                await coll.insert_one(attempt)
            except DuplicateKeyError:
                continue
            attempt.pop("_id", None)
            return attempt
        raise AlreadyExists(f"too many concurrent new versions in {collection}")

    async def create_form_version(
        self,
        name: str,
        definition: dict[str, Any],
        created_by: str,
        *,
        created: datetime | None = None,
    ) -> FormRecord:
        doc = await self._insert_next_version(
            FORMS,
            {"name": name},
            {
                "definition": _json(definition),
                "created": _utc(created or datetime.now(UTC)),
                "created_by": created_by,
            },
        )
        return _form(doc)

    async def get_form(self, name: str, version: int | None = None) -> FormRecord | None:
        if version is None:
            doc = await self.db[FORMS].find_one(
                {"name": name}, _NO_ID, sort=[("version", DESCENDING)]
            )
        else:
            doc = await self.db[FORMS].find_one({"name": name, "version": version}, _NO_ID)
        return _form(doc) if doc else None

    async def list_forms(self) -> list[FormRecord]:
        # Forms number in the dozens: pick each name's first (= latest) version here rather
        # than rely on $group accumulators FerretDB 1.x may not all have.
        cursor = (
            self.db[FORMS].find({}, _NO_ID).sort([("name", ASCENDING), ("version", DESCENDING)])
        )
        latest: dict[str, FormRecord] = {}
        async for doc in cursor:
            latest.setdefault(doc["name"], _form(doc))
        return list(latest.values())

    async def list_form_versions(self, name: str) -> list[FormRecord]:
        cursor = self.db[FORMS].find({"name": name}, _NO_ID).sort("version", ASCENDING)
        return [_form(doc) async for doc in cursor]

    # -- policy --------------------------------------------------------------------------------
    async def set_policy(
        self,
        document: dict[str, Any],
        source: str,
        created_by: str,
        *,
        created: datetime | None = None,
    ) -> PolicyRecord:
        doc = await self._insert_next_version(
            POLICIES,
            {},
            {
                "document": _json(document),
                "source": source,
                "created": _utc(created or datetime.now(UTC)),
                "created_by": created_by,
            },
        )
        return _policy(doc)

    async def get_policy(self, version: int | None = None) -> PolicyRecord | None:
        if version is None:
            doc = await self.db[POLICIES].find_one({}, _NO_ID, sort=[("version", DESCENDING)])
        else:
            doc = await self.db[POLICIES].find_one({"version": version}, _NO_ID)
        return _policy(doc) if doc else None

    # -- sessions ------------------------------------------------------------------------------
    async def create_session(self, session: SessionRecord) -> SessionRecord:
        doc = _session_doc(session)
        try:
            await self.db[SESSIONS].insert_one(doc)
        except DuplicateKeyError as exc:
            raise AlreadyExists(f"session {session.id!r} already exists") from exc
        return _session(doc)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        doc = await self.db[SESSIONS].find_one({"id": session_id}, _NO_ID)
        if doc is None:
            return None
        session = _session(doc)
        if session.state == "open":
            # A closer that died between its closure insert and the copy onto the session
            # leaves the session looking open: the closure is the truth, so finish the copy.
            closure = await self.db[SESSION_CLOSURES].find_one({"session_id": session_id}, _NO_ID)
            if closure is not None:
                return await self._mark_closed(session, closure)
        return session

    async def _mark_closed(self, session: SessionRecord, closure: dict[str, Any]) -> SessionRecord:
        # Every writer copies the same winning closure, so FerretDB's whole-document replace
        # cannot store a wrong one; sessions change in no other way after creation
        # except their expiry (extend_session), which a closed session never takes.
        changes = {"state": "closed", "closed": closure["closed"], "closed_by": closure["by"]}
        await self.db[SESSIONS].update_one({"id": session.id}, {"$set": changes})
        return replace(session, state="closed", closed=closure["closed"], closed_by=closure["by"])

    async def close_session(self, session_id: str, when: datetime, by: str) -> SessionRecord:
        session = await self.get_session(session_id)
        if session is None:
            raise NotFound(f"no session {session_id!r}")
        if session.state == "closed":
            return session
        closure = {"session_id": session_id, "closed": _utc(when), "by": by}
        try:
            await self.db[SESSION_CLOSURES].insert_one(closure)
        except DuplicateKeyError:
            winner = await self.db[SESSION_CLOSURES].find_one({"session_id": session_id}, _NO_ID)
            if winner is None:  # cannot happen: closures are never removed
                raise
            closure = winner
        return await self._mark_closed(session, closure)

    async def extend_session(self, session_id: str, expires: datetime) -> SessionRecord:
        # The filter keeps a closed session's expiry; a close racing this update is healed by
        # get_session (the closure document is the truth), so the answer is read back after.
        await self.db[SESSIONS].update_one(
            {"id": session_id, "state": "open"}, {"$set": {"expires": _utc(expires)}}
        )
        session = await self.get_session(session_id)
        if session is None:
            raise NotFound(f"no session {session_id!r}")
        return session

    async def search_sessions(self, query: SessionQuery) -> SessionPage:
        conditions: list[dict[str, Any]] = []
        for name, value in (
            ("form_name", query.form_name),
            ("owner", query.owner),
            ("bucket", query.bucket),
        ):
            if value is not None:
                conditions.append({name: value})
        now = _utc(query.now or datetime.now(UTC))
        if query.state == "open":
            conditions.append({"state": "open", "expires": {"$gte": now}})
        elif query.state == "expired":
            conditions.append({"state": "open", "expires": {"$lt": now}})
        elif query.state == "closed":
            conditions.append({"state": "closed"})
        created: dict[str, Any] = {}
        if query.created_from is not None:
            created["$gte"] = _utc(query.created_from)
        if query.created_to is not None:
            created["$lte"] = _utc(query.created_to)
        if created:
            conditions.append({"created": created})
        conditions.extend(_field_condition(f) for f in query.fields)
        if query.any_of:
            conditions.append({"$or": [_field_condition(f) for f in query.any_of]})

        coll = self.db[SESSIONS]
        # The count command, not count_documents: the latter is an aggregation that FerretDB
        # 1.x runs by decoding every document (3x slower at 10,000 sessions). Exact here: the
        # metadata database is never sharded.
        total = -1
        if query.count:
            counted = await self.db.command(
                "count", SESSIONS, query={"$and": conditions} if conditions else {}
            )
            total = int(counted["n"])

        direction = DESCENDING if query.descending else ASCENDING
        offset = query.offset
        keyset = query.sort_field is None and query.sort_column == "created"
        if keyset:
            # Keyset paging on (created, id): pages stay right while sessions are added.
            if query.cursor is not None:
                stamp, last_id = _cursor_fields(query.cursor, "k")
                mark = [datetime.fromisoformat(stamp), last_id]
                conditions.append(_after(("created", "id"), mark, query.descending))
                offset = 0
            sort = [("created", direction), ("id", direction)]
        else:
            # Another column or a field of values: offset paging, ties newest first.
            if query.cursor is not None:
                offset = _cursor_fields(query.cursor, "o")[0]
            key = query.sort_column if query.sort_field is None else f"values.{query.sort_field}"
            sort = [(key, direction), ("created", DESCENDING), ("id", DESCENDING)]
        cursor = (
            coll.find({"$and": conditions} if conditions else {}, _NO_ID)
            .sort(sort)
            .skip(offset)
            .limit(query.limit + 1)
        )
        docs = [doc async for doc in cursor]
        sessions = [_session(doc) for doc in docs[: query.limit]]
        next_cursor = None
        if len(docs) > query.limit:
            if keyset:
                last = sessions[-1]
                next_cursor = encode_cursor({"k": [last.created.isoformat(), last.id]})
            else:
                next_cursor = encode_cursor({"o": [offset + query.limit]})
        return SessionPage(sessions, total, next_cursor)

    # -- writes and object records --------------------------------------------------------------
    async def begin_write(self, intent: WriteIntent) -> None:
        try:
            await self.db[WRITE_INTENTS].insert_one(_intent_doc(intent))
        except DuplicateKeyError as exc:
            raise AlreadyExists(f"write intent {intent.id!r} already exists") from exc

    async def commit_write(self, intent_id: str, record: ObjectRecord) -> ObjectRecord:
        stored, _ = await self._commit(intent_id, record)
        return stored

    async def delete_in_progress(self, bucket: str, key: str) -> bool:
        found = await self.db[WRITE_INTENTS].find_one(
            {"bucket": bucket, "key": key, "kind": "delete"}, {"_id": 1}
        )
        return found is not None

    async def start_delete(self, intent: WriteIntent) -> None:
        # The delete intent first, then the marks (the mirror of start_write's order): a write
        # that did not see this intent had recorded its own before, so it gets marked here.
        await self.begin_write(intent)
        await self.supersede_writes(intent.bucket, intent.key)

    async def supersede_writes(self, bucket: str, key: str) -> None:
        await self.db[WRITE_INTENTS].update_many(
            {"bucket": bucket, "key": key, "kind": {"$ne": "delete"}},
            {"$set": {"superseded": True}},
        )

    async def _store_record(self, intent_id: str, record: ObjectRecord) -> dict[str, Any]:
        """Make ``record`` the current record of its key (the last commit wins); returns it as
        stored."""
        doc = _object_doc(record, intent_id)
        where = {"bucket": record.bucket, "key": record.key}
        try:
            await self.db[OBJECTS].replace_one(where, doc, upsert=True)
        except DuplicateKeyError:
            # Two first commits of one key raced to insert: the record exists now, so replace
            # it (the last commit wins, as on any overwrite).
            await self.db[OBJECTS].replace_one(where, doc)
        return doc

    async def _drop_intent(self, intent_id: str, *, unless_superseded: bool) -> bool:
        """Drop the intent; whether it was there (with ``unless_superseded``, only an intent no
        delete marked counts, and a marked one stays for the caller's rollback)."""
        which: dict[str, Any] = {"id": intent_id}
        if unless_superseded:
            which["superseded"] = {"$ne": True}
        dropped = await self.db[WRITE_INTENTS].delete_one(which)
        return dropped.deleted_count > 0

    async def _commit(self, intent_id: str, record: ObjectRecord) -> tuple[ObjectRecord, bool]:
        """commit_write, and whether the intent was still there to drop."""
        # History first (idempotent on the intent id), then the current record, then the
        # intent: an interruption leaves the intent behind for reconcile, never a current
        # record missing from the history.
        # A repeated commit of one intent: the history keeps its first entry.
        with contextlib.suppress(DuplicateKeyError):
            await self.db[OBJECT_HISTORY].insert_one(_object_doc(record, intent_id))
        doc = await self._store_record(intent_id, record)
        return _object(doc), await self._drop_intent(intent_id, unless_superseded=False)

    async def finish_write(
        self, intent_id: str, record: ObjectRecord, audit: AuditEvent
    ) -> ObjectRecord:
        # Three commands, no multi-document transaction (decision 1): (1) the audit event, which
        # also holds the write's history entry and is tagged with the intent; (2) the current
        # record; (3) the intent's removal. Until (3) the intent is there, so an interrupted
        # finish is rolled back as a whole (roll_back_write removes the tagged event, and with
        # it the history entry, and the record).
        await self.db[AUDIT].insert_one(
            {
                **_audit_doc(audit),
                "intent_id": intent_id,
                HISTORY_FIELD: _object_doc(record, intent_id),
            }
        )
        doc = await self._store_record(intent_id, record)
        # When there was no intent to drop, recovery rolled this write back meanwhile (its
        # writer was taken for dead) and what was just stored describes an object that is gone;
        # the caller's rollback removes it again (by intent id), so the write fails as a whole
        # instead of leaving a record behind. A delete of the key that began meanwhile marked
        # the intent superseded: the delete may have removed this write's object, so the write
        # fails the same way.
        if not await self._drop_intent(intent_id, unless_superseded=True):
            if await self.db[WRITE_INTENTS].find_one({"id": intent_id}, {"_id": 1}):
                raise KeyBusy(f"write intent {intent_id} was superseded by a delete of its key")
            raise NotFound(f"write intent {intent_id} is gone: the write was rolled back")
        return _object(doc)

    async def finish_delete(
        self,
        bucket: str,
        key: str,
        audit: AuditEvent,
        intent_id: str | None = None,
        *,
        again: bool = False,
    ) -> bool:
        # The delete intent goes last: until then a new write of the key is refused, and an
        # interrupted finish is found (and finished) by recovery.
        await self.supersede_writes(bucket, key)
        existed = await self.delete_object_record(bucket, key)
        if intent_id is None:
            await self.append_audit(audit)
            return existed
        # The event carries the delete's intent. These are separate commands, so a finish can
        # stop after the event (the store went away), or do everything and lose its answer;
        # the client then heard 503 and the finish is run again (the janitor, or recovery)
        # with an event marked not acknowledged. That one replaces the first, so the log holds
        # one event per delete, saying what its client was told. Only a finish run again
        # looks the event up: FerretDB's SQLite handler reads a whole collection per filter.
        doc = {**_audit_doc(audit), "intent_id": intent_id}
        if again:
            await self.db[AUDIT].update_one(
                {"intent_id": intent_id},
                {"$set": doc, "$setOnInsert": {"_id": ObjectId()}},
                upsert=True,
            )
        else:
            await self.db[AUDIT].insert_one(doc)
        await self.abort_write(intent_id)
        return existed

    async def roll_back_write(self, intent: WriteIntent) -> None:
        # The record first: while the intent exists a later run can still find all of this.
        await self.db[OBJECTS].delete_one(
            {"bucket": intent.bucket, "key": intent.key, "intent_id": intent.id}
        )
        await self.db[OBJECT_HISTORY].delete_many({"intent_id": intent.id})
        # the audit event of a partly stored finish, and the history entry it holds
        await self.db[AUDIT].delete_many({"intent_id": intent.id})
        await self.release_claim(intent.bucket, intent.key, intent.id)
        await self.abort_write(intent.id)

    async def abort_write(self, intent_id: str) -> None:
        await self._drop_intent(intent_id, unless_superseded=False)

    async def get_intent(self, intent_id: str) -> WriteIntent | None:
        doc = await self.db[WRITE_INTENTS].find_one({"id": intent_id}, _NO_ID)
        return _intent(doc) if doc else None

    async def stale_intents(self, older_than: datetime, limit: int = MAX_PAGE) -> list[WriteIntent]:
        cursor = (
            self.db[WRITE_INTENTS]
            .find({"started": {"$lt": _utc(older_than)}}, _NO_ID)
            .sort([("started", ASCENDING), ("id", ASCENDING)])
            .limit(limit)
        )
        return [_intent(doc) async for doc in cursor]

    async def list_intents(
        self, *, start_after: str = "", limit: int = MAX_PAGE
    ) -> list[WriteIntent]:
        if limit <= 0:
            return []
        cursor = (
            self.db[WRITE_INTENTS]
            .find({"id": {"$gt": start_after}}, _NO_ID)
            .sort([("id", ASCENDING)])
            .limit(limit)
        )
        return [_intent(doc) async for doc in cursor]

    async def get_object_record(self, bucket: str, key: str) -> ObjectRecord | None:
        doc = await self.db[OBJECTS].find_one({"bucket": bucket, "key": key}, _NO_ID)
        return _object(doc) if doc else None

    async def list_object_history(self, bucket: str, key: str) -> list[ObjectRecord]:
        # Entries live in two places: the audit events of finish_write, and the history
        # collection (commit_write, and every write of an earlier version). An intent has one
        # entry; should both places hold one, the first stored counts. _id (an ObjectId) breaks
        # ties between commits of one millisecond in insertion order.
        entries: list[tuple[datetime, ObjectId, dict[str, Any]]] = []
        in_history = self.db[OBJECT_HISTORY].find({"bucket": bucket, "key": key})
        entries.extend([(d["committed"], d["_id"], d) async for d in in_history])
        in_audit = self.db[AUDIT].find(
            {f"{HISTORY_FIELD}.bucket": bucket, f"{HISTORY_FIELD}.key": key},
            {HISTORY_FIELD: True},
        )
        entries.extend(
            [(d[HISTORY_FIELD]["committed"], d["_id"], d[HISTORY_FIELD]) async for d in in_audit]
        )
        entries.sort(key=lambda entry: (entry[0], entry[1]))
        seen: set[str | None] = set()
        history: list[ObjectRecord] = []
        for _, _, doc in entries:
            if doc.get("intent_id") in seen:
                continue
            seen.add(doc.get("intent_id"))
            history.append(_object(doc))
        return history

    async def delete_object_record(self, bucket: str, key: str) -> bool:
        result = await self.db[OBJECTS].delete_one({"bucket": bucket, "key": key})
        await self.db[KEY_CLAIMS].delete_one({"bucket": bucket, "key": key})
        return result.deleted_count > 0

    async def list_session_objects(
        self, session_id: str, limit: int = MAX_PAGE, cursor: str | None = None
    ) -> tuple[list[ObjectRecord], str | None]:
        conditions: list[dict[str, Any]] = [{"session_id": session_id}]
        if cursor is not None:
            conditions.append(_after(("bucket", "key"), _cursor_fields(cursor, "b"), False))
        found = (
            self.db[OBJECTS]
            .find({"$and": conditions}, _NO_ID)
            .sort([("bucket", ASCENDING), ("key", ASCENDING)])
            .limit(limit + 1)
        )
        docs = [doc async for doc in found]
        records = [_object(doc) for doc in docs[:limit]]
        next_cursor = None
        if len(docs) > limit:
            next_cursor = encode_cursor({"b": [records[-1].bucket, records[-1].key]})
        return records, next_cursor

    async def list_object_records(
        self, bucket: str, *, start_after: str = "", limit: int = MAX_PAGE
    ) -> list[ObjectRecord]:
        if limit <= 0:
            return []  # a Mongo limit of 0 means "no limit"
        # BSON compares strings by their UTF-8 bytes (no collation is set), so this is S3's
        # key order; the bucket_key_unique index serves the range and the sort.
        found = (
            self.db[OBJECTS]
            .find({"bucket": bucket, "key": {"$gt": start_after}}, _NO_ID)
            .sort([("key", ASCENDING)])
            .limit(limit)
        )
        return [_object(doc) async for doc in found]

    async def set_verified(
        self, bucket: str, key: str, intent_id: str, when: datetime, result: str
    ) -> bool:
        # A commit replaces the whole document (without these fields), so a new write of the
        # key starts unverified; the intent id keeps an old result off a newer write.
        done = await self.db[OBJECTS].update_one(
            {"bucket": bucket, "key": key, "intent_id": intent_id},
            {"$set": {"verified": _utc(when), "verify_result": result}},
        )
        return done.matched_count > 0

    async def list_record_buckets(
        self, *, start_after: str = "", limit: int = MAX_PAGE
    ) -> list[str]:
        if limit <= 0:
            return []
        # distinct answers from the bucket_key_unique index on MongoDB; the list is as long as
        # the number of buckets, which S3 keeps small.
        names = await self.db[OBJECTS].distinct("bucket", {"bucket": {"$gt": start_after}})
        return sorted((str(n) for n in names), key=lambda n: n.encode())[:limit]

    async def session_usage(self, session_id: str) -> tuple[int, int]:
        # Two queries, not one $group with two accumulators: FerretDB 1.24 fills in only the
        # first accumulator of a $group (the second comes back 0). Under concurrent commits
        # the pair may straddle one, which is fine for a usage display.
        where = {"session_id": session_id}
        pipeline: list[dict[str, Any]] = [
            {"$match": where},
            {"$group": {"_id": None, "total": {"$sum": "$bytes"}}},
        ]
        total = 0
        async for doc in await self.db[OBJECTS].aggregate(pipeline):
            total = int(doc["total"])
        count = await self.db[OBJECTS].count_documents(where)
        return count, total if count else 0

    async def verify_results(self) -> dict[str, int]:
        pipeline: list[dict[str, Any]] = [
            {"$group": {"_id": "$verify_result", "count": {"$sum": 1}}},
        ]
        found: dict[str, int] = {}
        async for doc in await self.db[OBJECTS].aggregate(pipeline):
            result = doc["_id"] or ""
            found[result] = found.get(result, 0) + int(doc["count"])
        return found

    async def claim_key(self, bucket: str, key: str, intent_id: str) -> bool:
        try:
            await self.db[KEY_CLAIMS].insert_one(
                {"bucket": bucket, "key": key, "intent_id": intent_id}
            )
        except DuplicateKeyError:
            return False
        return True

    async def release_claim(self, bucket: str, key: str, intent_id: str) -> bool:
        result = await self.db[KEY_CLAIMS].delete_one(
            {"bucket": bucket, "key": key, "intent_id": intent_id}
        )
        return result.deleted_count > 0

    async def get_claim(self, bucket: str, key: str) -> str | None:
        doc = await self.db[KEY_CLAIMS].find_one({"bucket": bucket, "key": key}, _NO_ID)
        return doc["intent_id"] if doc else None

    async def list_claims(
        self, *, start_after: tuple[str, str] = ("", ""), limit: int = MAX_PAGE
    ) -> list[tuple[str, str, str]]:
        if limit <= 0:
            return []
        found = (
            self.db[KEY_CLAIMS]
            .find(_after(("bucket", "key"), list(start_after), False), _NO_ID)
            .sort([("bucket", ASCENDING), ("key", ASCENDING)])
            .limit(limit)
        )
        return [(doc["bucket"], doc["key"], doc["intent_id"]) async for doc in found]

    # -- multipart uploads ---------------------------------------------------------------------
    async def create_multipart(self, upload: MultipartRecord) -> None:
        doc = {
            "upload_id": upload.upload_id,
            "bucket": upload.bucket,
            "key": upload.key,
            "session_id": upload.session_id,
            "principal": upload.principal,
            "created": _utc(upload.created),
        }
        try:
            await self.db[MULTIPART_UPLOADS].insert_one(doc)
        except DuplicateKeyError as exc:
            raise AlreadyExists(f"upload {upload.upload_id!r} already exists") from exc

    async def get_multipart(self, upload_id: str) -> MultipartRecord | None:
        doc = await self.db[MULTIPART_UPLOADS].find_one({"upload_id": upload_id}, _NO_ID)
        return _multipart(doc) if doc else None

    async def delete_multipart(self, upload_id: str) -> bool:
        result = await self.db[MULTIPART_UPLOADS].delete_one({"upload_id": upload_id})
        return result.deleted_count > 0

    async def list_multiparts(
        self, *, created_before: datetime, limit: int = MAX_PAGE
    ) -> list[MultipartRecord]:
        if limit <= 0:
            return []
        found = (
            self.db[MULTIPART_UPLOADS]
            .find({"created": {"$lt": _utc(created_before)}}, _NO_ID)
            .sort([("created", ASCENDING), ("upload_id", ASCENDING)])
            .limit(limit)
        )
        return [_multipart(doc) async for doc in found]

    # -- gateway instances and leases ------------------------------------------------------------
    async def heartbeat_instance(self, instance: InstanceRecord) -> None:
        doc = {
            "id": instance.id,
            "host": instance.host,
            "process": instance.process,
            "started": _utc(instance.started),
            "heartbeat": _utc(instance.heartbeat),
            "every": float(instance.every),
        }
        # Only the instance itself writes its document, so there is no race to lose; a
        # duplicate on the first upsert can only be its own earlier attempt.
        try:
            await self.db[INSTANCES].replace_one({"id": instance.id}, doc, upsert=True)
        except DuplicateKeyError:
            await self.db[INSTANCES].replace_one({"id": instance.id}, doc)

    async def list_instances(self) -> list[InstanceRecord]:
        found = self.db[INSTANCES].find({}, _NO_ID).sort([("id", ASCENDING)])
        return [
            InstanceRecord(
                doc["id"],
                doc["host"],
                doc["process"],
                doc["started"],
                doc["heartbeat"],
                float(doc["every"]),
            )
            async for doc in found
        ]

    async def remove_instance(self, instance_id: str) -> bool:
        result = await self.db[INSTANCES].delete_one({"id": instance_id})
        return result.deleted_count > 0

    async def take_lease(self, name: str, term: int, holder: str) -> bool:
        leases = self.db[LEASES]
        await leases.delete_many({"name": name, "term": {"$lt": term - 100}})
        try:
            await leases.insert_one({"name": name, "term": term, "holder": holder})
        except DuplicateKeyError:
            return False
        return True

    # -- ended logins --------------------------------------------------------------------------
    async def end_login(self, login_id: str, user: str, expires: datetime) -> None:
        logins = self.db[ENDED_LOGINS]
        await logins.delete_many({"expires": {"$lt": datetime.now(UTC)}})
        # An upsert that only sets on insert: ending an ended login again changes nothing. Two
        # processes upserting at once may both try to insert; the loser's duplicate is the same
        # fact, so it is not an error.
        with contextlib.suppress(DuplicateKeyError):
            await logins.update_one(
                {"login_id": login_id},
                {"$setOnInsert": {"login_id": login_id, "user": user, "expires": _utc(expires)}},
                upsert=True,
            )

    async def login_ended(self, login_id: str) -> bool:
        return await self.db[ENDED_LOGINS].find_one({"login_id": login_id}, _NO_ID) is not None

    # -- audit ---------------------------------------------------------------------------------
    async def append_audit(self, event: AuditEvent) -> AuditEvent:
        # The client-made ObjectId orders events of one millisecond by insertion within a
        # process (its counter); across processes such ties are ordered arbitrarily.
        doc = _audit_doc(event)
        await self.db[AUDIT].insert_one(doc)
        return _audit(doc)

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
        conditions: list[dict[str, Any]] = []
        span: dict[str, Any] = {}
        if since is not None:
            span["$gte"] = _utc(since)
        if until is not None:
            span["$lt"] = _utc(until)
        if span:
            conditions.append({"time": span})
        if principal is not None:
            conditions.append({"principal": principal})
        if action is not None:
            conditions.append({"action": action})
        if outcome is not None:
            conditions.append({"outcome": outcome})
        if cursor is not None:
            stamp, last_id = _cursor_fields(cursor, "a")
            try:
                mark = [datetime.fromisoformat(stamp), ObjectId(last_id)]
            except (InvalidId, TypeError) as exc:
                raise ValueError("invalid page cursor") from exc
            conditions.append(_after(("time", "_id"), mark, descending))
        direction = DESCENDING if descending else ASCENDING
        found = (
            self.db[AUDIT]
            .find({"$and": conditions} if conditions else {})
            .sort([("time", direction), ("_id", direction)])
            .limit(limit + 1)
        )
        docs = [doc async for doc in found]
        events = [_audit(doc) for doc in docs[:limit]]
        next_cursor = None
        if len(docs) > limit:
            last = docs[limit - 1]
            next_cursor = encode_cursor({"a": [last["time"].isoformat(), str(last["_id"])]})
        return events, next_cursor

    async def list_audit_actions(self) -> list[str]:
        return sorted(str(a) for a in await self.db[AUDIT].distinct("action"))
