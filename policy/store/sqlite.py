"""The embedded metadata store: one SQLite file, shared by the server and the CLI.

Several processes (any number of ``minimo serve`` plus CLI invocations) open the same file at
once. WAL lets readers run beside a writer, ``busy_timeout`` makes a writer wait for the lock
instead of failing, and every operation is one statement in autocommit mode, so no correctness
rests on a transaction spanning processes. The only multi-statement transaction is a schema
migration, taken with ``BEGIN IMMEDIATE`` so concurrent openers apply each migration once.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

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

#: how long a statement waits for another process's write lock before failing
BUSY_TIMEOUT_MS = 10_000
#: how long open() keeps retrying a file other processes are configuring at the same time
OPEN_DEADLINE_S = 20.0
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
#: finish_write of an intent that recovery rolled back (its writer was taken for dead)
_INTENT_GONE = "write intent {} is gone: the write was rolled back"
#: finish_write of an intent that a delete of its key overtook
_INTENT_SUPERSEDED = "write intent {} was superseded by a delete of its key: the write is undone"
_T = TypeVar("_T")

#: Migrations in order; a migration's version is its index + 1. Append, never edit.
MIGRATIONS: list[Sequence[str]] = [
    (
        """CREATE TABLE users (
            name TEXT NOT NULL PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('admin', 'uploader', 'reader')),
            password_hash TEXT NOT NULL,
            created TEXT NOT NULL,
            deleted TEXT
        )""",
        """CREATE TABLE access_keys (
            access_key TEXT NOT NULL PRIMARY KEY,
            secret_encrypted TEXT NOT NULL,
            owner TEXT NOT NULL REFERENCES users (name),
            created TEXT NOT NULL,
            revoked TEXT
        )""",
        "CREATE INDEX access_keys_by_owner ON access_keys (owner, created)",
    ),
    (
        # session keys: NULL for personal keys
        "ALTER TABLE access_keys ADD COLUMN session_id TEXT",
        """CREATE TABLE forms (
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            definition TEXT NOT NULL,
            created TEXT NOT NULL,
            created_by TEXT NOT NULL,
            PRIMARY KEY (name, version)
        )""",
        """CREATE TABLE policies (
            version INTEGER NOT NULL PRIMARY KEY,
            document TEXT NOT NULL,
            source TEXT NOT NULL,
            created TEXT NOT NULL,
            created_by TEXT NOT NULL
        )""",
        # No foreign keys to users or access_keys: the mongo backend has none either, and
        # sessions must outlive anything they point at.
        """CREATE TABLE sessions (
            id TEXT NOT NULL PRIMARY KEY,
            form_name TEXT NOT NULL,
            form_version INTEGER NOT NULL,
            field_values TEXT NOT NULL,
            bucket TEXT NOT NULL,
            prefix TEXT NOT NULL,
            owner TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('open', 'closed')),
            created TEXT NOT NULL,
            expires TEXT NOT NULL,
            closed TEXT,
            closed_by TEXT,
            access_key TEXT
        )""",
        # the default listing (newest first) and its keyset cursor walk this index
        "CREATE INDEX sessions_by_created ON sessions (created, id)",
        "CREATE INDEX sessions_by_owner ON sessions (owner, created)",
        "CREATE INDEX sessions_by_form ON sessions (form_name, created)",
        "CREATE INDEX sessions_by_bucket ON sessions (bucket, created)",
        "CREATE INDEX sessions_by_state ON sessions (state, expires)",
        """CREATE TABLE write_intents (
            id TEXT NOT NULL PRIMARY KEY,
            bucket TEXT NOT NULL,
            object_key TEXT NOT NULL,
            session_id TEXT,
            principal TEXT NOT NULL,
            started TEXT NOT NULL,
            upload_id TEXT
        )""",
        "CREATE INDEX write_intents_by_started ON write_intents (started)",
        """CREATE TABLE objects (
            bucket TEXT NOT NULL,
            object_key TEXT NOT NULL,
            size INTEGER NOT NULL,
            etag TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            content_type TEXT,
            session_id TEXT,
            principal TEXT NOT NULL,
            committed TEXT NOT NULL,
            intent_id TEXT NOT NULL,
            PRIMARY KEY (bucket, object_key)
        )""",
        "CREATE INDEX objects_by_session ON objects (session_id, bucket, object_key)",
        # append-only: one row per committed write, never updated or deleted
        """CREATE TABLE object_history (
            intent_id TEXT NOT NULL PRIMARY KEY,
            bucket TEXT NOT NULL,
            object_key TEXT NOT NULL,
            size INTEGER NOT NULL,
            etag TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            content_type TEXT,
            session_id TEXT,
            principal TEXT NOT NULL,
            committed TEXT NOT NULL
        )""",
        "CREATE INDEX object_history_by_key ON object_history (bucket, object_key, committed)",
        "CREATE INDEX object_history_by_session ON object_history (session_id, committed)",
        """CREATE TABLE key_claims (
            bucket TEXT NOT NULL,
            object_key TEXT NOT NULL,
            intent_id TEXT NOT NULL,
            PRIMARY KEY (bucket, object_key)
        )""",
        """CREATE TABLE multipart_uploads (
            upload_id TEXT NOT NULL PRIMARY KEY,
            bucket TEXT NOT NULL,
            object_key TEXT NOT NULL,
            session_id TEXT,
            principal TEXT NOT NULL,
            created TEXT NOT NULL
        )""",
        # seq: insertion order, the tie-breaker between events of one time
        """CREATE TABLE audit (
            seq INTEGER NOT NULL PRIMARY KEY,
            time TEXT NOT NULL,
            principal TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            outcome TEXT NOT NULL,
            reason TEXT,
            details TEXT NOT NULL
        )""",
        "CREATE INDEX audit_by_time ON audit (time, seq)",
        "CREATE INDEX audit_by_principal ON audit (principal, time, seq)",
        "CREATE INDEX audit_by_action ON audit (action, time, seq)",
    ),
    # The metadata browser sorts by owner, bucket or form with ties newest first. An index on
    # (column, created, id) walked backwards gives "column descending, newest first"; one on
    # (column, created DESC, id DESC) walked forwards gives "column ascending, newest first".
    # Without them SQLite sorted each run of equal values at every page (a late page of 100,000
    # sessions sorted by owner took 140-270 ms; see docs/benchmarks.md).
    tuple(
        statement
        for column, name in (("owner", "owner"), ("bucket", "bucket"), ("form_name", "form"))
        for statement in (
            f"DROP INDEX sessions_by_{name}",
            f"CREATE INDEX sessions_by_{name} ON sessions ({column}, created, id)",
            f"CREATE INDEX sessions_by_{name}_newest ON sessions ({column}, created DESC, id DESC)",
        )
    ),
    # Signed-out logins: a copied login cookie is refused once its login id is here. Rows are
    # purged once the cookie would have expired anyway (the index makes that purge cheap).
    (
        """CREATE TABLE ended_logins (
            login_id TEXT NOT NULL PRIMARY KEY,
            user TEXT NOT NULL,
            expires TEXT NOT NULL
        )""",
        "CREATE INDEX ended_logins_by_expires ON ended_logins (expires)",
    ),
    # Crash recovery (gateway.usecases.recovery): running gateway processes and their heartbeats,
    # the
    # lease that lets one of them run recovery per period, and uploads by age for their expiry.
    (
        """CREATE TABLE instances (
            id TEXT NOT NULL PRIMARY KEY,
            host TEXT NOT NULL,
            process TEXT NOT NULL,
            started TEXT NOT NULL,
            heartbeat TEXT NOT NULL,
            every REAL NOT NULL
        )""",
        """CREATE TABLE leases (
            name TEXT NOT NULL,
            term INTEGER NOT NULL,
            holder TEXT NOT NULL,
            PRIMARY KEY (name, term)
        )""",
        "CREATE INDEX multipart_uploads_by_created ON multipart_uploads (created, upload_id)",
    ),
    # Writes beside deletes (docs/write-protocol.md): a DeleteObject holds a delete intent while
    # it runs, and marks the key's write intents superseded so none of them commits across it.
    (
        "ALTER TABLE write_intents ADD COLUMN kind TEXT NOT NULL DEFAULT 'write'",
        "ALTER TABLE write_intents ADD COLUMN superseded INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX write_intents_by_key ON write_intents (bucket, object_key)",
    ),
    # minimo verify (gateway.usecases.verify): when each current record's bytes were last
    # re-read and what was found. A new commit replaces the row, so it starts unverified.
    (
        "ALTER TABLE objects ADD COLUMN verified TEXT",
        "ALTER TABLE objects ADD COLUMN verify_result TEXT",
    ),
    # Self-service keys carry a label and may be read-only (policy.identity); linked data keeps
    # the time its bytes were last modified before minimo recorded them (gateway.usecases.adopt).
    (
        "ALTER TABLE access_keys ADD COLUMN label TEXT",
        "ALTER TABLE access_keys ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE objects ADD COLUMN modified TEXT",
        "ALTER TABLE object_history ADD COLUMN modified TEXT",
    ),
    # A session's human title (policy.sessions.make_title); older sessions have none.
    ("ALTER TABLE sessions ADD COLUMN title TEXT NOT NULL DEFAULT ''",),
    # write_intents holds only the writes in flight, so recovery's and the metrics' look at
    # the oldest ones reads a few rows without an index, while every PUT paid for keeping it:
    # one more B-tree to update twice and one more page in each group commit's WAL frames.
    ("DROP INDEX write_intents_by_started",),
]

_USER_COLUMNS = "name, role, password_hash, created, deleted"
_KEY_COLUMNS = "access_key, secret_encrypted, owner, created, revoked, session_id, label, read_only"
_FORM_COLUMNS = "name, version, definition, created, created_by"
_POLICY_COLUMNS = "version, document, source, created, created_by"
_SESSION_COLUMNS = (
    "id, form_name, form_version, field_values, bucket, prefix, owner, state, created, expires,"
    " closed, closed_by, access_key, title"
)
#: the same, qualified with the alias the search gives the table
_SESSION_COLUMNS_S = ", ".join("s." + c.strip() for c in _SESSION_COLUMNS.split(","))
_INTENT_COLUMNS = "id, bucket, object_key, session_id, principal, started, upload_id, kind"
_OBJECT_COLUMNS = (
    "bucket, object_key, size, etag, sha256, content_type, session_id, principal, committed,"
    " modified"
)
#: a current record's columns: the write, its intent and its last verification
_CURRENT_COLUMNS = f"{_OBJECT_COLUMNS}, intent_id, verified, verify_result"
_MULTIPART_COLUMNS = "upload_id, bucket, object_key, session_id, principal, created"
_AUDIT_COLUMNS = "time, principal, action, target, outcome, reason, details"


def _ts(value: datetime | None) -> str | None:
    # One fixed format (UTC, microseconds) so text order is time order.
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _user(row: Any) -> UserRecord:
    return UserRecord(
        name=row[0],
        role=Role(row[1]),
        password_hash=row[2],
        created=datetime.fromisoformat(row[3]),
        deleted=_dt(row[4]),
    )


def _key(row: Any) -> KeyRecord:
    return KeyRecord(
        access_key=row[0],
        secret_encrypted=row[1],
        owner=row[2],
        created=datetime.fromisoformat(row[3]),
        revoked=_dt(row[4]),
        session_id=row[5],
        label=row[6],
        read_only=bool(row[7]),
    )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _form(row: Any) -> FormRecord:
    return FormRecord(row[0], row[1], json.loads(row[2]), datetime.fromisoformat(row[3]), row[4])


def _policy(row: Any) -> PolicyRecord:
    return PolicyRecord(row[0], json.loads(row[1]), row[2], datetime.fromisoformat(row[3]), row[4])


def _session(row: Any) -> SessionRecord:
    return SessionRecord(
        id=row[0],
        form_name=row[1],
        form_version=row[2],
        values=json.loads(row[3]),
        bucket=row[4],
        prefix=row[5],
        owner=row[6],
        state=row[7],
        created=datetime.fromisoformat(row[8]),
        expires=datetime.fromisoformat(row[9]),
        closed=_dt(row[10]),
        closed_by=row[11],
        access_key=row[12],
        title=row[13],
    )


def _intent(row: Any) -> WriteIntent:
    return WriteIntent(
        row[0], row[1], row[2], row[3], row[4], datetime.fromisoformat(row[5]), row[6], row[7]
    )


def _object(row: Any) -> ObjectRecord:
    # history rows end at modified; current rows add intent_id, verified and verify_result
    intent_id = row[10] if len(row) > 10 else None
    verified, result = (_dt(row[11]), row[12]) if len(row) > 12 else (None, None)
    return ObjectRecord(
        *row[:8],
        committed=datetime.fromisoformat(row[8]),
        modified=_dt(row[9]),
        intent_id=intent_id,
        verified=verified,
        verify_result=result,
    )


def _multipart(row: Any) -> MultipartRecord:
    return MultipartRecord(*row[:5], created=datetime.fromisoformat(row[5]))


def _instance(row: Any) -> InstanceRecord:
    return InstanceRecord(
        row[0],
        row[1],
        row[2],
        datetime.fromisoformat(row[3]),
        datetime.fromisoformat(row[4]),
        float(row[5]),
    )


_INSTANCE_COLUMNS = "id, host, process, started, heartbeat, every"


def _audit(row: Any) -> AuditEvent:
    return AuditEvent(
        datetime.fromisoformat(row[0]), row[1], row[2], row[3], row[4], row[5], json.loads(row[6])
    )


def _casefold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


def _field_condition(f: FieldFilter) -> tuple[str, list[Any]]:
    """SQL for one filter on ``field_values``, and its parameters.

    json_each over the field's path yields the value itself for a scalar and each element for
    a list, so a multichoice list matches when any element does (as MongoDB does). Checking
    the JSON type first keeps text from comparing with numbers (SQLite orders all numbers
    before all text, so a text "7" would otherwise pass ``min 5``).
    """
    path = f'$."{f.field}"'
    value: object = f.value
    if isinstance(value, bool):
        # JSON true/false read back as 1/0: only the type tells them from numbers
        kind, test, value = "j.type = ?", "1", "true" if value else "false"
    else:
        kind = "j.type = 'text'" if isinstance(value, str) else "j.type IN ('integer', 'real')"
        if f.op == "eq":
            test = "j.value = ?"
        elif f.op == "min":
            test = "j.value >= ?"
        elif f.op == "max":
            test = "j.value <= ?"
        else:  # contains: casefold in Python, as SQLite's lower() only knows ASCII
            test, value = "instr(minimo_casefold(j.value), ?) > 0", str(value).casefold()
    sql = f"EXISTS (SELECT 1 FROM json_each(s.field_values, ?) AS j WHERE {kind} AND {test})"
    return sql, [path, value]


# SQLite's primary result codes (the low byte of an extended code)
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_IOERR, _SQLITE_FULL = 5, 6, 10, 13
_SQLITE_CANTOPEN, _SQLITE_PROTOCOL = 14, 15
_UNAVAILABLE_CODES = frozenset(
    {_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_IOERR, _SQLITE_CANTOPEN, _SQLITE_PROTOCOL}
)
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def translate_sqlite_error(exc: Exception) -> StoreError | None:
    """A sqlite3 (or OS) exception as the store error it means (the one translation point of
    this backend, applied to every operation by ``translate_errors``), or None to pass it on.

    SQLITE_FULL (disk or quota full) is "full"; a lock still held by another process after
    ``busy_timeout`` (SQLITE_BUSY/LOCKED), I/O errors and a file that cannot be opened are
    "unavailable". Everything else (constraints, misuse, a corrupt file) passes unchanged.
    """
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        text = str(exc).lower()
        if primary == _SQLITE_FULL or "database or disk is full" in text:
            return StoreFull(f"SQLite: {exc}")
        if primary in _UNAVAILABLE_CODES or text.startswith(
            ("database is locked", "disk i/o error", "unable to open database")
        ):
            return StoreUnavailable(f"SQLite: {exc}")
        return None
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        if exc.errno in _FULL_ERRNOS:
            return StoreFull(f"SQLite file system: {exc}")
        if exc.errno == errno.EIO:
            return StoreUnavailable(f"SQLite file system: {exc}")
    return None


@translate_errors(translate_sqlite_error)
class SqliteStore(MetadataStore):
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the metadata store is not open")
        return self._db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(self.path)
        # isolation_level=None: autocommit; each statement is its own atomic transaction.
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await self._configure_and_migrate()
        except BaseException:
            # A connection left open keeps its (non-daemon) thread alive and the process with it.
            db, self._db = self._db, None
            await db.close()
            raise

    async def _configure_and_migrate(self) -> None:
        # Several processes opening a fresh file at once (workers, a CLI beside a server): the
        # switch to WAL needs the file to itself and does not wait on the busy timeout, so a
        # loser is told "locked" at once. Trying again a moment later finds it done; under load
        # that moment can be long, so the retries run to a deadline, not a count.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OPEN_DEADLINE_S
        delay = 0.02
        while True:
            try:
                await self._call(_configure)
                await self._migrate()
                return
            except sqlite3.OperationalError as exc:
                # raw here: translate_errors maps driver errors at the public methods only
                if "locked" not in str(exc) or loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.25)

    async def close(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None and flusher.get_loop() is asyncio.get_running_loop():
            await asyncio.gather(flusher, return_exceptions=True)
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def ping(self) -> None:
        await self._one("SELECT 1")

    async def schema_version(self) -> int:
        row = await self._one("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        await self._call(_migrate)

    # -- users ---------------------------------------------------------------------------------
    async def create_user(self, user: UserRecord) -> None:
        try:
            await self._exec(
                f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (
                    user.name,
                    user.role.value,
                    user.password_hash,
                    _ts(user.created),
                    _ts(user.deleted),
                ),
            )
        except aiosqlite.IntegrityError as exc:
            raise AlreadyExists(f"user {user.name!r} already exists") from exc

    async def get_user(self, name: str) -> UserRecord | None:
        row = await self._one(f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", (name,))
        return _user(row) if row else None

    async def list_users(self) -> list[UserRecord]:
        rows = await self._all(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name")
        return [_user(row) for row in rows]

    async def update_user(
        self,
        name: str,
        *,
        role: Role | None = None,
        password_hash: str | None = None,
        deleted: datetime | None = None,
    ) -> UserRecord:
        changes: dict[str, str] = {}
        if role is not None:
            changes["role"] = Role(role).value
        if password_hash is not None:
            changes["password_hash"] = password_hash
        if deleted is not None:
            changes["deleted"] = _ts(deleted) or ""
        if not changes:
            user = await self.get_user(name)
            if user is None:
                raise NotFound(f"no user {name!r}")
            return user
        # Column names come from the fixed set above, never from input.
        assignments = ", ".join(f"{column} = ?" for column in changes)
        row = await self._one(
            f"UPDATE users SET {assignments} WHERE name = ? RETURNING {_USER_COLUMNS}",
            (*changes.values(), name),
        )
        if row is None:
            raise NotFound(f"no user {name!r}")
        return _user(row)

    async def count_users(self) -> int:
        row = await self._one("SELECT COUNT(*) FROM users")
        return int(row[0]) if row else 0

    # -- access keys ---------------------------------------------------------------------------
    async def create_key(self, key: KeyRecord) -> None:
        try:
            await self._exec(
                f"INSERT INTO access_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.access_key,
                    key.secret_encrypted,
                    key.owner,
                    _ts(key.created),
                    _ts(key.revoked),
                    key.session_id,
                    key.label,
                    int(key.read_only),
                ),
            )
        except aiosqlite.IntegrityError as exc:
            # The foreign key also lands here; say which one failed.
            if await self.get_user(key.owner) is None:
                raise NotFound(f"no user {key.owner!r}") from exc
            raise AlreadyExists(f"access key {key.access_key!r} already exists") from exc

    async def get_key(self, access_key: str) -> KeyRecord | None:
        row = await self._one(
            f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE access_key = ?", (access_key,)
        )
        return _key(row) if row else None

    async def list_keys(self, owner: str | None = None) -> list[KeyRecord]:
        sql = f"SELECT {_KEY_COLUMNS} FROM access_keys"
        params: tuple[str, ...] = ()
        if owner is not None:
            sql += " WHERE owner = ?"
            params = (owner,)
        return [_key(row) for row in await self._all(sql + " ORDER BY created, access_key", params)]

    async def revoke_key(self, access_key: str, when: datetime) -> KeyRecord:
        # COALESCE keeps the first revocation time when two processes revoke at once.
        row = await self._one(
            "UPDATE access_keys SET revoked = COALESCE(revoked, ?) WHERE access_key = ?"
            f" RETURNING {_KEY_COLUMNS}",
            (_ts(when), access_key),
        )
        if row is None:
            raise NotFound(f"no access key {access_key!r}")
        return _key(row)

    # -- the one path to the connection -------------------------------------------------------
    # Every statement runs inside one function call on aiosqlite's thread, cursor opened, read
    # to the end and closed there. A statement left open across an await (aiosqlite's
    # ``execute`` then ``fetchone`` are two thread calls) lets a group commit start in between,
    # which SQLite refuses ("cannot open savepoint - SQL statements in progress"): under mixed
    # load that failed unrelated writes after their bytes had landed.
    async def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        # aiosqlite has no public "run this function on the connection's thread"; its queue
        # entry point is stable since 0.17 and is what its own methods use.
        db = self.db
        return cast(_T, await db._execute(fn, db._conn))

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return await self._call(lambda conn: _fetch_one(conn, sql, params))

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self._call(lambda conn: _fetch_all(conn, sql, params))

    async def _exec(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._call(lambda conn: conn.execute(sql, params).close())

    # -- forms ---------------------------------------------------------------------------------
    async def create_form_version(
        self,
        name: str,
        definition: dict[str, Any],
        created_by: str,
        *,
        created: datetime | None = None,
    ) -> FormRecord:
        # One statement: SQLite holds the write lock from reading MAX to the insert, so the
        # next version is taken atomically even across processes (no retry needed here).
        row = await self._one(
            f"INSERT INTO forms ({_FORM_COLUMNS})"
            " SELECT ?, COALESCE(MAX(version), 0) + 1, ?, ?, ? FROM forms WHERE name = ?"
            f" RETURNING {_FORM_COLUMNS}",
            (name, _json(definition), _ts(created or datetime.now(UTC)), created_by, name),
        )
        return _form(row)

    async def get_form(self, name: str, version: int | None = None) -> FormRecord | None:
        if version is None:
            row = await self._one(
                f"SELECT {_FORM_COLUMNS} FROM forms WHERE name = ? ORDER BY version DESC LIMIT 1",
                (name,),
            )
        else:
            row = await self._one(
                f"SELECT {_FORM_COLUMNS} FROM forms WHERE name = ? AND version = ?",
                (name, version),
            )
        return _form(row) if row else None

    async def list_forms(self) -> list[FormRecord]:
        rows = await self._all(
            f"SELECT {_FORM_COLUMNS} FROM forms AS f"
            " WHERE version = (SELECT MAX(version) FROM forms WHERE name = f.name)"
            " ORDER BY name"
        )
        return [_form(row) for row in rows]

    async def list_form_versions(self, name: str) -> list[FormRecord]:
        rows = await self._all(
            f"SELECT {_FORM_COLUMNS} FROM forms WHERE name = ? ORDER BY version", (name,)
        )
        return [_form(row) for row in rows]

    # -- policy --------------------------------------------------------------------------------
    async def set_policy(
        self,
        document: dict[str, Any],
        source: str,
        created_by: str,
        *,
        created: datetime | None = None,
    ) -> PolicyRecord:
        row = await self._one(
            f"INSERT INTO policies ({_POLICY_COLUMNS})"
            " SELECT COALESCE(MAX(version), 0) + 1, ?, ?, ?, ? FROM policies"
            f" RETURNING {_POLICY_COLUMNS}",
            (_json(document), source, _ts(created or datetime.now(UTC)), created_by),
        )
        return _policy(row)

    async def get_policy(self, version: int | None = None) -> PolicyRecord | None:
        if version is None:
            row = await self._one(
                f"SELECT {_POLICY_COLUMNS} FROM policies ORDER BY version DESC LIMIT 1"
            )
        else:
            row = await self._one(
                f"SELECT {_POLICY_COLUMNS} FROM policies WHERE version = ?", (version,)
            )
        return _policy(row) if row else None

    # -- sessions ------------------------------------------------------------------------------
    async def create_session(self, session: SessionRecord) -> SessionRecord:
        try:
            row = await self._one(
                f"INSERT INTO sessions ({_SESSION_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                f" RETURNING {_SESSION_COLUMNS}",
                (
                    session.id,
                    session.form_name,
                    session.form_version,
                    _json(session.values),
                    session.bucket,
                    session.prefix,
                    session.owner,
                    session.state,
                    _ts(session.created),
                    _ts(session.expires),
                    _ts(session.closed),
                    session.closed_by,
                    session.access_key,
                    session.title,
                ),
            )
        except aiosqlite.IntegrityError as exc:
            raise AlreadyExists(f"session {session.id!r} already exists") from exc
        return _session(row)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        row = await self._one(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
        )
        return _session(row) if row else None

    async def close_session(self, session_id: str, when: datetime, by: str) -> SessionRecord:
        # One statement; the SET expressions see the old row, so a closed session keeps its
        # first closer and time (concurrent closers serialize on the write lock).
        row = await self._one(
            "UPDATE sessions SET"
            " closed = CASE WHEN state = 'open' THEN ? ELSE closed END,"
            " closed_by = CASE WHEN state = 'open' THEN ? ELSE closed_by END,"
            " state = 'closed'"
            f" WHERE id = ? RETURNING {_SESSION_COLUMNS}",
            (_ts(when), by, session_id),
        )
        if row is None:
            raise NotFound(f"no session {session_id!r}")
        return _session(row)

    async def extend_session(self, session_id: str, expires: datetime) -> SessionRecord:
        # only an open session moves its expiry: a close that wins the race keeps it closed
        row = await self._one(
            "UPDATE sessions SET expires = CASE WHEN state = 'open' THEN ? ELSE expires END"
            f" WHERE id = ? RETURNING {_SESSION_COLUMNS}",
            (_ts(expires), session_id),
        )
        if row is None:
            raise NotFound(f"no session {session_id!r}")
        return _session(row)

    async def search_sessions(self, query: SessionQuery) -> SessionPage:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("form_name", query.form_name),
            ("owner", query.owner),
            ("bucket", query.bucket),
        ):
            if value is not None:
                where.append(f"s.{column} = ?")
                params.append(value)
        now = _ts(query.now or datetime.now(UTC))
        if query.state == "open":
            where.append("s.state = 'open' AND s.expires >= ?")
            params.append(now)
        elif query.state == "expired":
            where.append("s.state = 'open' AND s.expires < ?")
            params.append(now)
        elif query.state == "closed":
            where.append("s.state = 'closed'")
        if query.created_from is not None:
            where.append("s.created >= ?")
            params.append(_ts(query.created_from))
        if query.created_to is not None:
            where.append("s.created <= ?")
            params.append(_ts(query.created_to))
        for f in query.fields:
            sql, more = _field_condition(f)
            where.append(sql)
            params.extend(more)
        if query.any_of:
            alternatives = [_field_condition(f) for f in query.any_of]
            where.append("(" + " OR ".join(sql for sql, _ in alternatives) + ")")
            params.extend(p for _, more in alternatives for p in more)

        base = " FROM sessions AS s"
        filters = (" WHERE " + " AND ".join(where)) if where else ""
        total = -1
        if query.count:
            total_row = await self._one("SELECT COUNT(*)" + base + filters, params)
            total = int(total_row[0]) if total_row else 0

        order = "DESC" if query.descending else "ASC"
        page_where = list(where)
        page_params = list(params)
        order_params: list[Any] = []
        offset = query.offset
        keyset = query.sort_field is None and query.sort_column == "created"
        if keyset:
            # Keyset paging on (created, id): pages stay right while sessions are added.
            if query.cursor is not None:
                mark = _cursor_fields(query.cursor, "k")
                page_where.append(f"(s.created, s.id) {'<' if query.descending else '>'} (?, ?)")
                page_params.extend(mark)
                offset = 0
            order_by = f"s.created {order}, s.id {order}"
        else:
            # Another column or a field of values: offset paging, ties newest first.
            if query.cursor is not None:
                offset = _cursor_fields(query.cursor, "o")[0]
            if query.sort_field is None:
                # sort_column is one of SORT_COLUMNS (checked by SessionQuery): safe to splice
                sort_by = f"s.{query.sort_column}"
            else:
                sort_by = "json_extract(s.field_values, ?)"
                order_params.append(f'$."{query.sort_field}"')
            order_by = f"{sort_by} {order}, s.created DESC, s.id DESC"
        page_filters = (" WHERE " + " AND ".join(page_where)) if page_where else ""
        rows = await self._all(
            f"SELECT {_SESSION_COLUMNS_S}{base}{page_filters} ORDER BY {order_by} LIMIT ? OFFSET ?",
            [*page_params, *order_params, query.limit + 1, offset],
        )
        sessions = [_session(row) for row in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            if keyset:
                last = sessions[-1]
                next_cursor = encode_cursor({"k": [_ts(last.created), last.id]})
            else:
                next_cursor = encode_cursor({"o": [offset + query.limit]})
        return SessionPage(sessions, total, next_cursor)

    # -- writes and object records --------------------------------------------------------------
    # Writes on the PUT path go through a group commit: requests queue their statements and one
    # flusher runs everything queued so far in one transaction, in one call on aiosqlite's
    # thread. Each statement group runs under its own SAVEPOINT, so a failing one (a lost
    # unique-index race, a constraint) fails only its own caller; every caller's future is
    # resolved only after COMMIT returned, so an awaited write is as durable as before. Under
    # concurrency this replaces several thread hops and WAL commits per PUT by a share of one.
    async def _batched(self, op: Callable[[sqlite3.Connection], _T]) -> _T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((op, future))
        flusher = self._flusher
        # (a flusher of another, finished event loop never runs again: start a new one)
        if flusher is None or flusher.done() or flusher.get_loop() is not loop:
            self._flusher = asyncio.create_task(self._flush())
        return cast(_T, await future)

    async def _flush(self) -> None:
        while self._pending:
            # One more turn of the event loop first: the requests that are ready now queue
            # their statements too, and share this transaction (each commit writes every page
            # it touched to the WAL, which costs the same for one write or for twenty).
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:  # (the loop is shutting down) nobody's write ran
                batch, self._pending = self._pending, []
                for _, future in batch:
                    future.cancel()
                raise
            batch, self._pending = self._pending, []
            ops = [op for op, _ in batch]
            try:
                results = await self._call(functools.partial(_run_batch, ops=ops))
            except BaseException as exc:  # BEGIN/COMMIT failed: nobody's write is durable
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), (ok, value) in zip(batch, results, strict=True):
                if future.done():  # the caller went away (cancelled); its write still happened
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    async def begin_write(self, intent: WriteIntent) -> None:
        await self._batched(lambda conn: _insert_intent(conn, intent))

    async def start_write(self, intent: WriteIntent, *, claim: bool) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            # (raising undoes this request's savepoint: the intent is not kept)
            if not _insert_intent(conn, intent, unless_deleting=True):
                raise KeyBusy(f"a delete of {intent.bucket}/{intent.key} is in progress")
            return _claim(conn, intent.bucket, intent.key, intent.id) if claim else True

        return await self._batched(op)

    async def delete_in_progress(self, bucket: str, key: str) -> bool:
        return await self._call(lambda conn: _deleting(conn, bucket, key))

    async def supersede_writes(self, bucket: str, key: str) -> None:
        await self._batched(lambda conn: _supersede_writes(conn, bucket, key))

    async def start_delete(self, intent: WriteIntent) -> None:
        def op(conn: sqlite3.Connection) -> None:
            _insert_intent(conn, intent)
            _supersede_writes(conn, intent.bucket, intent.key)

        await self._batched(op)

    async def commit_write(self, intent_id: str, record: ObjectRecord) -> ObjectRecord:
        return await self._batched(lambda conn: _commit(conn, intent_id, record))

    async def finish_write(
        self, intent_id: str, record: ObjectRecord, audit: AuditEvent
    ) -> ObjectRecord:
        # One transaction on one database (decision 1 allows it): the record, its history, the
        # intent's removal and the audit event become durable together, or none of them does.
        def op(conn: sqlite3.Connection) -> ObjectRecord:
            # The intent goes first, in the statement that reads it (raising below undoes this
            # request's savepoint, so a superseded intent stays for the rollback to find).
            sql = "DELETE FROM write_intents WHERE id = ? RETURNING superseded"
            row = _fetch_one(conn, sql, (intent_id,))
            if row is None:
                raise NotFound(_INTENT_GONE.format(intent_id))
            if row[0]:
                raise KeyBusy(_INTENT_SUPERSEDED.format(intent_id))
            stored = _commit(conn, intent_id, record, drop_intent=False)
            _insert_audit(conn, audit, returning=False)
            return stored

        return await self._batched(op)

    async def finish_delete(
        self,
        bucket: str,
        key: str,
        audit: AuditEvent,
        intent_id: str | None = None,
        *,
        again: bool = False,
    ) -> bool:
        # one transaction: a finish that failed stored nothing, so one run again adds the
        # delete's only event (``again`` changes nothing here)
        def op(conn: sqlite3.Connection) -> bool:
            existed = _delete_record(conn, bucket, key)
            _supersede_writes(conn, bucket, key)
            _insert_audit(conn, audit, returning=False)
            if intent_id is not None:
                conn.execute("DELETE FROM write_intents WHERE id = ?", (intent_id,))
            return existed

        return await self._batched(op)

    async def roll_back_write(self, intent: WriteIntent) -> None:
        # finish_write is one transaction here, so a rolled-back write never has a record; the
        # record and history deletes only matter for a store written by another backend's rules.
        def op(conn: sqlite3.Connection) -> None:
            where = (intent.bucket, intent.key, intent.id)
            conn.execute(
                "DELETE FROM objects WHERE bucket = ? AND object_key = ? AND intent_id = ?", where
            )
            conn.execute("DELETE FROM object_history WHERE intent_id = ?", (intent.id,))
            conn.execute(
                "DELETE FROM key_claims WHERE bucket = ? AND object_key = ? AND intent_id = ?",
                where,
            )
            conn.execute("DELETE FROM write_intents WHERE id = ?", (intent.id,))

        await self._batched(op)

    async def abort_write(self, intent_id: str) -> None:
        await self._batched(
            lambda conn: conn.execute("DELETE FROM write_intents WHERE id = ?", (intent_id,))
        )

    async def get_intent(self, intent_id: str) -> WriteIntent | None:
        row = await self._one(
            f"SELECT {_INTENT_COLUMNS} FROM write_intents WHERE id = ?", (intent_id,)
        )
        return _intent(row) if row else None

    async def stale_intents(self, older_than: datetime, limit: int = MAX_PAGE) -> list[WriteIntent]:
        rows = await self._all(
            f"SELECT {_INTENT_COLUMNS} FROM write_intents WHERE started < ?"
            " ORDER BY started, id LIMIT ?",
            (_ts(older_than), limit),
        )
        return [_intent(row) for row in rows]

    async def list_intents(
        self, *, start_after: str = "", limit: int = MAX_PAGE
    ) -> list[WriteIntent]:
        rows = await self._all(
            f"SELECT {_INTENT_COLUMNS} FROM write_intents WHERE id > ? ORDER BY id LIMIT ?",
            (start_after, limit),
        )
        return [_intent(row) for row in rows]

    async def get_object_record(self, bucket: str, key: str) -> ObjectRecord | None:
        row = await self._one(
            f"SELECT {_CURRENT_COLUMNS} FROM objects WHERE bucket = ? AND object_key = ?",
            (bucket, key),
        )
        return _object(row) if row else None

    async def list_object_history(self, bucket: str, key: str) -> list[ObjectRecord]:
        rows = await self._all(
            f"SELECT {_OBJECT_COLUMNS} FROM object_history WHERE bucket = ? AND object_key = ?"
            " ORDER BY committed, rowid",
            (bucket, key),
        )
        return [_object(row) for row in rows]

    async def delete_object_record(self, bucket: str, key: str) -> bool:
        return await self._batched(lambda conn: _delete_record(conn, bucket, key))

    async def list_session_objects(
        self, session_id: str, limit: int = MAX_PAGE, cursor: str | None = None
    ) -> tuple[list[ObjectRecord], str | None]:
        sql = f"SELECT {_CURRENT_COLUMNS} FROM objects WHERE session_id = ?"
        params: list[Any] = [session_id]
        if cursor is not None:
            sql += " AND (bucket, object_key) > (?, ?)"
            params.extend(_cursor_fields(cursor, "b"))
        rows = await self._all(sql + " ORDER BY bucket, object_key LIMIT ?", [*params, limit + 1])
        records = [_object(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor({"b": [records[-1].bucket, records[-1].key]})
        return records, next_cursor

    async def list_object_records(
        self, bucket: str, *, start_after: str = "", limit: int = MAX_PAGE
    ) -> list[ObjectRecord]:
        # TEXT columns use BINARY collation, i.e. UTF-8 byte order: the order S3 lists keys
        # in, and a range scan of the (bucket, object_key) primary key.
        rows = await self._all(
            f"SELECT {_CURRENT_COLUMNS} FROM objects WHERE bucket = ? AND object_key > ?"
            " ORDER BY object_key LIMIT ?",
            (bucket, start_after, limit),
        )
        return [_object(row) for row in rows]

    async def set_verified(
        self, bucket: str, key: str, intent_id: str, when: datetime, result: str
    ) -> bool:
        row = await self._one(
            "UPDATE objects SET verified = ?, verify_result = ?"
            " WHERE bucket = ? AND object_key = ? AND intent_id = ? RETURNING 1",
            (_ts(when), result, bucket, key, intent_id),
        )
        return row is not None

    async def list_record_buckets(
        self, *, start_after: str = "", limit: int = MAX_PAGE
    ) -> list[str]:
        # One primary-key seek per bucket ("the first bucket after X"), not a DISTINCT over
        # every record: the cost follows the number of buckets, not of objects.
        buckets: list[str] = []
        after = start_after
        while len(buckets) < limit:
            row = await self._one(
                "SELECT bucket FROM objects WHERE bucket > ? ORDER BY bucket LIMIT 1", (after,)
            )
            if row is None:
                break
            after = row[0]
            buckets.append(after)
        return buckets

    async def session_usage(self, session_id: str) -> tuple[int, int]:
        row = await self._one(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM objects WHERE session_id = ?",
            (session_id,),
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)

    async def verify_results(self) -> dict[str, int]:
        rows = await self._all(
            "SELECT COALESCE(verify_result, ''), COUNT(*) FROM objects GROUP BY 1"
        )
        return {str(result): int(count) for result, count in rows}

    async def claim_key(self, bucket: str, key: str, intent_id: str) -> bool:
        return await self._batched(lambda conn: _claim(conn, bucket, key, intent_id))

    async def release_claim(self, bucket: str, key: str, intent_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "DELETE FROM key_claims WHERE bucket = ? AND object_key = ? AND intent_id = ?"
                " RETURNING 1",
                (bucket, key, intent_id),
            ).fetchone()
            return row is not None

        return await self._batched(op)

    async def get_claim(self, bucket: str, key: str) -> str | None:
        row = await self._one(
            "SELECT intent_id FROM key_claims WHERE bucket = ? AND object_key = ?", (bucket, key)
        )
        return row[0] if row else None

    async def list_claims(
        self, *, start_after: tuple[str, str] = ("", ""), limit: int = MAX_PAGE
    ) -> list[tuple[str, str, str]]:
        rows = await self._all(
            "SELECT bucket, object_key, intent_id FROM key_claims"
            " WHERE (bucket, object_key) > (?, ?) ORDER BY bucket, object_key LIMIT ?",
            (*start_after, limit),
        )
        return [(row[0], row[1], row[2]) for row in rows]

    # -- multipart uploads ---------------------------------------------------------------------
    async def create_multipart(self, upload: MultipartRecord) -> None:
        try:
            await self._exec(
                f"INSERT INTO multipart_uploads ({_MULTIPART_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    upload.upload_id,
                    upload.bucket,
                    upload.key,
                    upload.session_id,
                    upload.principal,
                    _ts(upload.created),
                ),
            )
        except aiosqlite.IntegrityError as exc:
            raise AlreadyExists(f"upload {upload.upload_id!r} already exists") from exc

    async def get_multipart(self, upload_id: str) -> MultipartRecord | None:
        row = await self._one(
            f"SELECT {_MULTIPART_COLUMNS} FROM multipart_uploads WHERE upload_id = ?",
            (upload_id,),
        )
        return _multipart(row) if row else None

    async def delete_multipart(self, upload_id: str) -> bool:
        row = await self._one(
            "DELETE FROM multipart_uploads WHERE upload_id = ? RETURNING 1", (upload_id,)
        )
        return row is not None

    async def list_multiparts(
        self, *, created_before: datetime, limit: int = MAX_PAGE
    ) -> list[MultipartRecord]:
        rows = await self._all(
            f"SELECT {_MULTIPART_COLUMNS} FROM multipart_uploads WHERE created < ?"
            " ORDER BY created, upload_id LIMIT ?",
            (_ts(created_before), limit),
        )
        return [_multipart(row) for row in rows]

    # -- gateway instances and leases ------------------------------------------------------------
    async def heartbeat_instance(self, instance: InstanceRecord) -> None:
        await self._batched(
            lambda conn: conn.execute(
                f"INSERT OR REPLACE INTO instances ({_INSTANCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    instance.id,
                    instance.host,
                    instance.process,
                    _ts(instance.started),
                    _ts(instance.heartbeat),
                    instance.every,
                ),
            ).close()
        )

    async def list_instances(self) -> list[InstanceRecord]:
        rows = await self._all(f"SELECT {_INSTANCE_COLUMNS} FROM instances ORDER BY id")
        return [_instance(row) for row in rows]

    async def remove_instance(self, instance_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "DELETE FROM instances WHERE id = ? RETURNING 1", (instance_id,)
            ).fetchone()
            return row is not None

        return await self._batched(op)

    async def take_lease(self, name: str, term: int, holder: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM leases WHERE name = ? AND term < ?", (name, term - 100))
            row = conn.execute(
                "INSERT INTO leases (name, term, holder) VALUES (?, ?, ?)"
                " ON CONFLICT (name, term) DO NOTHING RETURNING 1",
                (name, term, holder),
            ).fetchone()
            return row is not None

        return await self._batched(op)

    # -- ended logins --------------------------------------------------------------------------
    async def end_login(self, login_id: str, user: str, expires: datetime) -> None:
        await self._exec("DELETE FROM ended_logins WHERE expires < ?", (_ts(datetime.now(UTC)),))
        await self._exec(
            "INSERT INTO ended_logins (login_id, user, expires) VALUES (?, ?, ?)"
            " ON CONFLICT (login_id) DO NOTHING",
            (login_id, user, _ts(expires)),
        )

    async def login_ended(self, login_id: str) -> bool:
        row = await self._one("SELECT 1 FROM ended_logins WHERE login_id = ?", (login_id,))
        return row is not None

    # -- audit ---------------------------------------------------------------------------------
    async def append_audit(self, event: AuditEvent) -> AuditEvent:
        return await self._batched(lambda conn: _insert_audit(conn, event))

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
        where: list[str] = []
        params: list[Any] = []
        if since is not None:
            where.append("time >= ?")
            params.append(_ts(since))
        if until is not None:
            where.append("time < ?")
            params.append(_ts(until))
        if principal is not None:
            where.append("principal = ?")
            params.append(principal)
        if action is not None:
            where.append("action = ?")
            params.append(action)
        if outcome is not None:
            where.append("outcome = ?")
            params.append(outcome)
        if cursor is not None:
            where.append(f"(time, seq) {'<' if descending else '>'} (?, ?)")
            params.extend(_cursor_fields(cursor, "a"))
        order = "DESC" if descending else "ASC"
        sql = f"SELECT {_AUDIT_COLUMNS}, seq FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self._all(
            sql + f" ORDER BY time {order}, seq {order} LIMIT ?", [*params, limit + 1]
        )
        events = [_audit(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor({"a": [last[0], last[7]]})
        return events, next_cursor

    async def list_audit_actions(self) -> list[str]:
        # read off the index audit_by_action, not the table
        rows = await self._all("SELECT DISTINCT action FROM audit ORDER BY action", [])
        return [str(row[0]) for row in rows]


def _cursor_fields(cursor: str, kind: str) -> list[Any]:
    """The values a cursor of ``kind`` carries; ValueError for a cursor of another kind."""
    data = decode_cursor(cursor)
    if not isinstance(data, dict) or not isinstance(data.get(kind), list):
        raise ValueError("invalid page cursor")
    return list(data[kind])


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only (it holds password hashes)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}").close()
    # Reading the mode first spares the exclusive lock that setting it takes, even to WAL
    # again: once one opener has switched the file, the others never contend for it.
    if str(_fetch_one(conn, "PRAGMA journal_mode", ())[0]).lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL").close()
    for pragma in (
        # NORMAL is durable across application crashes in WAL mode and much cheaper than FULL.
        "PRAGMA synchronous = NORMAL",
        "PRAGMA foreign_keys = ON",
    ):
        conn.execute(pragma).close()
    conn.create_function("minimo_casefold", 1, _casefold, deterministic=True)


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER NOT NULL PRIMARY KEY, applied TEXT NOT NULL)"
    )

    def current() -> int:
        row = _fetch_one(conn, "SELECT COALESCE(MAX(version), 0) FROM schema_version", ())
        return int(row[0]) if row else 0

    if current() >= len(MIGRATIONS):
        return  # the common case: no write lock needed
    # IMMEDIATE takes the write lock first, so two processes opening a fresh file at once
    # cannot both apply the same migration; the loser re-reads the version under the lock.
    conn.execute("BEGIN IMMEDIATE")
    try:
        for version in range(current() + 1, len(MIGRATIONS) + 1):
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied) VALUES (?, ?)",
                (version, _ts(datetime.now(UTC))),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _fetch_one(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
    cur = conn.execute(sql, params)
    try:
        return cur.fetchone()
    finally:
        cur.close()  # resets the statement: a DELETE ... RETURNING runs to its end here


def _fetch_all(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    cur = conn.execute(sql, params)
    try:
        return cur.fetchall()
    finally:
        cur.close()


def _run_batch(
    conn: sqlite3.Connection, ops: list[Callable[[sqlite3.Connection], Any]]
) -> list[tuple[bool, Any]]:
    """Run queued statement groups in one transaction, each under its own savepoint (runs on
    aiosqlite's thread). Returns (True, result) or (False, exception) per group.

    A failure of the transaction itself (BEGIN after the busy timeout, COMMIT on a full disk or
    an I/O error) would fail every group batched with the one that caused it: then each group
    is run again alone, so unrelated writes succeed or fail on their own account."""
    try:
        return _transaction(conn, ops)
    except sqlite3.Error as exc:
        # Another process holding the write lock past the busy timeout is nobody's fault in
        # the batch: trying each group alone would only wait that long again for each.
        primary = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF  # extended codes -> primary
        if len(ops) == 1 or primary in _BUSY_CODES:
            raise
    results: list[tuple[bool, Any]] = []
    for op in ops:
        try:
            results.extend(_transaction(conn, [op]))
        except sqlite3.Error as exc:
            results.append((False, exc))
    return results


def _transaction(
    conn: sqlite3.Connection, ops: list[Callable[[sqlite3.Connection], Any]]
) -> list[tuple[bool, Any]]:
    results: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                results.append((True, op(conn)))
            except Exception as exc:  # only this group is undone; the others go on
                conn.execute("ROLLBACK TO op")
                results.append((False, exc))
            conn.execute("RELEASE op")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return results


#: a write intent's row, unless a delete of its key is in progress (one statement, not a
#: SELECT then an INSERT: every statement is a share of the SQLite thread's time per PUT)
_INSERT_UNLESS_DELETING = (
    f"INSERT INTO write_intents ({_INTENT_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?"
    " WHERE NOT EXISTS (SELECT 1 FROM write_intents"
    " WHERE bucket = ? AND object_key = ? AND kind = 'delete')"
)


def _insert_intent(
    conn: sqlite3.Connection, intent: WriteIntent, *, unless_deleting: bool = False
) -> bool:
    """Store ``intent``; with ``unless_deleting``, only when no delete of its key is in
    progress. Returns whether it was stored."""
    values: tuple[Any, ...] = (
        intent.id,
        intent.bucket,
        intent.key,
        intent.session_id,
        intent.principal,
        _ts(intent.started),
        intent.upload_id,
        intent.kind,
    )
    if unless_deleting:
        sql = _INSERT_UNLESS_DELETING
        values += (intent.bucket, intent.key)
    else:
        sql = f"INSERT INTO write_intents ({_INTENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    try:
        cur = conn.execute(sql, values)
    except sqlite3.IntegrityError as exc:
        raise AlreadyExists(f"write intent {intent.id!r} already exists") from exc
    stored = cur.rowcount == 1
    cur.close()
    return stored


def _deleting(conn: sqlite3.Connection, bucket: str, key: str) -> bool:
    sql = (
        "SELECT 1 FROM write_intents WHERE bucket = ? AND object_key = ? AND kind = 'delete'"
        " LIMIT 1"
    )
    return _fetch_one(conn, sql, (bucket, key)) is not None


def _supersede_writes(conn: sqlite3.Connection, bucket: str, key: str) -> None:
    conn.execute(
        "UPDATE write_intents SET superseded = 1"
        " WHERE bucket = ? AND object_key = ? AND kind = 'write'",
        (bucket, key),
    )


def _claim(conn: sqlite3.Connection, bucket: str, key: str, intent_id: str) -> bool:
    # The primary key admits one claim per (bucket, key); the loser's insert is ignored.
    row = conn.execute(
        "INSERT INTO key_claims (bucket, object_key, intent_id) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        (bucket, key, intent_id),
    ).fetchone()
    return row is not None


def _commit(
    conn: sqlite3.Connection, intent_id: str, record: ObjectRecord, *, drop_intent: bool = True
) -> ObjectRecord:
    values = (
        record.bucket,
        record.key,
        record.size,
        record.etag,
        record.sha256,
        record.content_type,
        record.session_id,
        record.principal,
        _ts(record.committed),
        _ts(record.modified),
        intent_id,
    )
    # History first (idempotent on the intent id), then the current record, then the intent;
    # all in the caller's transaction, so they become durable together.
    conn.execute(
        f"INSERT OR IGNORE INTO object_history ({_OBJECT_COLUMNS}, intent_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        values,
    )
    row = conn.execute(
        f"INSERT OR REPLACE INTO objects ({_OBJECT_COLUMNS}, intent_id)"
        f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_OBJECT_COLUMNS}, intent_id",
        values,
    ).fetchone()
    if drop_intent:
        conn.execute("DELETE FROM write_intents WHERE id = ?", (intent_id,))
    return _object(row)


def _delete_record(conn: sqlite3.Connection, bucket: str, key: str) -> bool:
    row = _fetch_one(
        conn, "DELETE FROM objects WHERE bucket = ? AND object_key = ? RETURNING 1", (bucket, key)
    )
    conn.execute("DELETE FROM key_claims WHERE bucket = ? AND object_key = ?", (bucket, key))
    return row is not None


def _insert_audit(
    conn: sqlite3.Connection, event: AuditEvent, *, returning: bool = True
) -> AuditEvent:
    """Store ``event``; returns it as stored, or (``returning=False``, for a caller that drops
    the answer: the write path) as given, without reading the row back."""
    values = (
        _ts(event.time),
        event.principal,
        event.action,
        event.target,
        event.outcome,
        event.reason,
        _json(event.details),
    )
    sql = f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    if not returning:
        conn.execute(sql, values).close()
        return event
    return _audit(conn.execute(f"{sql} RETURNING {_AUDIT_COLUMNS}", values).fetchone())
