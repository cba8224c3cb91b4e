"""Metadata sessions: open (validate values against a form and the policy), close, look up, search.

A session fixes one annotation: a form version, validated values, a scope (bucket + key prefix),
an owner and an expiry. Opening one mints a *session key* (an S3 access key whose KeyRecord names
the session), so a client can upload with nothing but that key.

Decisions:

* Ids are 36 characters of lowercase Crockford base32: 10 for the creation time in milliseconds
  (so ids sort by time, which keeps prefixes like ``<id>/`` in creation order in listings) and 26
  for 130 random bits (unguessable: a session id in a header is a capability check's input, never
  its proof, but it must not be enumerable either).
* The session's scope must be matched by a policy rule as a key prefix ("the rule for
  s3://raw/2026/run7/"); that rule must list the form and let the owner open sessions.
* Values are validated against the form's latest version, which the session records forever.
* A session key cannot open sessions: it is a write credential for one scope, and opening one
  needs a user (personal key, UI login, or the CLI operator). It may close its own session
  (its principal is the owner), so a client can finish what it started.
* Closing is idempotent: closing a closed session again succeeds and changes nothing (the first
  close wins, see the store), and revokes the session key again in case an earlier close stopped
  between the two steps.

Staleness bound (docs/design.md, decision 2): :meth:`SessionService.lookup` (what the write path
asks) keeps each found session for at most ``SESSION_CACHE_SECONDS`` (2 s) per process, so a session
closed anywhere is refused on every process within 2 s plus one store read; expiry is judged
against the clock at each call, so it is exact. Unknown ids are never cached, so a session opened
on another process is usable at once. :meth:`SessionService.get` always reads the store.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from policy.audit import Auditor
from policy.catalog import FormService, PolicyService
from policy.durations import DurationError, format_duration, parse_duration
from policy.expiring import ExpiringCache
from policy.field_types import BadSearchValue, SearchOp, finite_number
from policy.forms import Form, FormValidationError, validate_values
from policy.identity import IdentityError, IdentityService
from policy.principal import Credential, Principal, Role
from policy.rules import Rule
from policy.store.base import (
    AlreadyExists,
    FieldFilter,
    FieldValue,
    MetadataStore,
    NotFound,
    ObjectRecord,
    SessionPage,
    SessionQuery,
    SessionRecord,
)

#: how long one process trusts a looked-up session (see the module docstring)
SESSION_CACHE_SECONDS = 2.0

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_TIME_CHARS = 10  # 50 bits: milliseconds until the year 37648
_RANDOM_CHARS = 26  # 130 bits
SESSION_ID = re.compile(rf"[{_CROCKFORD}]{{{_TIME_CHARS + _RANDOM_CHARS}}}")
# S3's rules for new bucket names; policy rules cannot match anything else either.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
#: keys are at most 1024 bytes; leave room below the prefix for the file names
MAX_PREFIX_BYTES = 512

SessionStatus = Literal["open", "closed", "expired"]

__all__ = [
    "FormValidationError",
    "Place",
    "SessionError",
    "SessionInvalid",
    "SessionNotAllowed",
    "SessionNotFound",
    "SessionService",
    "in_scope",
    "is_session_id",
    "make_title",
    "new_session_id",
    "next_prefix",
    "normalise_prefix",
    "parse_where",
    "session_status",
    "title_of",
]


class SessionError(Exception):
    """A session request that cannot be done; the message is meant for people.

    Raise one of the subclasses, which say *why* (callers such as the JSON API pick a status
    from the type, never from the words); ``except SessionError`` catches them all.
    """


class SessionNotFound(SessionError):
    """Something the request names as its target (a session, a bucket) does not exist."""


class SessionNotAllowed(SessionError):
    """Refused because of who asks (role, ownership, policy's open_sessions), not what they sent."""


class SessionInvalid(SessionError):
    """What was sent cannot be done: a bad name, prefix, ttl, condition, or a form or scope that
    policy does not offer there."""


def _base32(value: int, chars: int) -> str:
    out = []
    for _ in range(chars):
        value, digit = divmod(value, 32)
        out.append(_CROCKFORD[digit])
    return "".join(reversed(out))


def new_session_id(now: datetime | None = None) -> str:
    """A new id: creation time (ms) then 130 random bits, lowercase Crockford base32."""
    millis = int((now or datetime.now(UTC)).timestamp() * 1000)
    return _base32(millis, _TIME_CHARS) + _base32(secrets.randbits(130), _RANDOM_CHARS)


def is_session_id(text: str) -> bool:
    """Whether ``text`` could be a session id (cheap check before any store lookup)."""
    return isinstance(text, str) and SESSION_ID.fullmatch(text) is not None


def session_status(session: SessionRecord, now: datetime | None = None) -> SessionStatus:
    if session.state == "closed":
        return "closed"
    return "open" if session.is_open(now or datetime.now(UTC)) else "expired"


def in_scope(session: SessionRecord, bucket: str, key: str) -> bool:
    """Whether a write to ``bucket``/``key`` falls inside the session's scope."""
    return bucket == session.bucket and key.startswith(session.prefix)


def scope_url(bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{prefix}"


#: what joins the parts of a session's title
TITLE_SEPARATOR = " · "
_TITLE_LIMIT = 200


def _title_part(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def make_title(form: Form, values: Mapping[str, Any], prefix: str) -> str:
    """The name people know a session by: the values of the form's ``session_title`` fields
    ("M0042 · day1"), or, when it names none or none is filled in, "form name · prefix"."""
    parts = [
        _title_part(values[name])
        for name in form.session_title
        if values.get(name) not in (None, "", [])
    ]
    if not parts:
        parts = [form.name, prefix.rstrip("/")]
    return TITLE_SEPARATOR.join(parts)[:_TITLE_LIMIT]


def title_of(session: SessionRecord) -> str:
    """The session's stored title; sessions opened before titles existed get the fallback."""
    return session.title or TITLE_SEPARATOR.join([session.form_name, session.prefix.rstrip("/")])


def normalise_prefix(prefix: str) -> str:
    """A session's scope as it will be saved: a folder, so ``day1`` becomes ``day1/``.

    Refused (SessionInvalid, the message names the prefix): empty, a leading ``/``, empty
    segments (``a//b``), ``.`` or ``..`` segments (S3 keeps them literally, every file browser
    reads them as moves), control characters, and more than MAX_PREFIX_BYTES.
    """
    if not isinstance(prefix, str) or not prefix.strip("/").strip():
        raise SessionInvalid("prefix: must not be empty (leave it out for '<session id>/')")
    if prefix.startswith("/"):
        raise SessionInvalid("prefix: must not start with '/' (keys are relative to the bucket)")
    if not prefix.endswith("/"):
        # A scope is a folder: "run7" must not also cover "run70/...".
        prefix += "/"
    segments = prefix[:-1].split("/")
    if "" in segments:
        raise SessionInvalid("prefix: must not contain '//' (an empty folder name)")
    if any(segment in (".", "..") for segment in segments):
        raise SessionInvalid("prefix: must not contain '.' or '..' as a folder name")
    if len(prefix.encode()) > MAX_PREFIX_BYTES:
        raise SessionInvalid(f"prefix: must be at most {MAX_PREFIX_BYTES} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in prefix):
        raise SessionInvalid("prefix: must not contain control characters")
    return prefix


_TRAILING_NUMBER = re.compile(r"(.*?)(\d+)")


def next_prefix(prefix: str) -> str:
    """The prefix "open another like this" proposes: the last folder's trailing number plus one,
    keeping its zero padding (``day1/`` -> ``day2/``, ``2026/run-007/`` -> ``2026/run-008/``),
    otherwise ``-2`` appended (``mouse/`` -> ``mouse-2/``)."""
    parent, _, last = prefix.rstrip("/").rpartition("/")
    match = _TRAILING_NUMBER.fullmatch(last)
    if match is None:
        last += "-2"
    else:
        number = str(int(match[2]) + 1).zfill(len(match[2]))
        last = match[1] + number
    return f"{parent}/{last}/" if parent else f"{last}/"


#: a search condition: FIELD, an operator, the value (the metadata page splits rows with it too)
WHERE_CONDITION = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|=|~)(.*)", re.DOTALL)
_OPS: dict[str, SearchOp] = {
    "=": "eq",
    ">=": "min",
    "<=": "max",
    "~": "contains",
}


def parse_where(text: str, form: Form | None = None) -> FieldFilter:
    """``FIELD=VALUE``, ``FIELD>=V``, ``FIELD<=V`` or ``FIELD~TEXT`` as a search condition.

    The value gets the type of the form's field when a form is given (its type's
    ``search_value``: a number for integer and number fields, a boolean for booleans,
    normalised UTC text for date-times), because stored
    values are typed and a text "7" never equals the number 7. Without a form, a value that reads
    as a number is a number, ``true``/``false`` a boolean, anything else text. ``~`` is always a
    case-insensitive substring.
    """
    match = WHERE_CONDITION.fullmatch(text)
    if match is None:
        raise SessionInvalid(
            f"bad condition {text!r}: use FIELD=VALUE, FIELD>=VALUE, FIELD<=VALUE or FIELD~TEXT"
        )
    name, symbol, raw = match.group(1), match.group(2), match.group(3).strip()
    op = _OPS[symbol]
    value: FieldValue = raw
    field = form.field(name) if form is not None else None
    if form is not None and field is None:
        raise SessionInvalid(f"form {form.name} has no field {name!r}")
    if field is not None and op not in field.field_type.search_operators:
        raise SessionInvalid(f"{name}: {symbol} does not apply to a {field.type} field")
    if op == "contains":
        pass
    elif field is not None:
        try:
            value = field.field_type.search_value(field, op, raw)
        except BadSearchValue as exc:
            raise SessionInvalid(f"{name}: {exc}") from None
    else:
        number = finite_number(raw)
        if number is not None:
            value = number
        elif op == "eq" and raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
    try:
        return FieldFilter(name, op, value)
    except ValueError as exc:
        raise SessionInvalid(f"bad condition {text!r}: {exc}") from None


_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True, slots=True)
class Place:
    """Somewhere a user may open sessions: a bucket, the fixed start of a rule's prefix (what
    the new-session page proposes; the user may go deeper) and the forms offered there."""

    bucket: str
    prefix: str
    forms: tuple[str, ...]


def _fixed_start(glob: str) -> str:
    """The part of a prefix glob before its first wildcard, cut back to a whole folder."""
    match = _GLOB_CHARS.search(glob)
    if match is None:
        return glob
    head = glob[: match.start()].rpartition("/")[0]
    return f"{head}/" if head else ""


class SessionService:
    def __init__(
        self,
        store: MetadataStore,
        identity: IdentityService,
        policies: PolicyService,
        forms: FormService,
        auditor: Auditor,
        *,
        cache_seconds: float = SESSION_CACHE_SECONDS,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.identity = identity
        self.policies = policies
        self.forms = forms
        self.auditor = auditor
        self._cache: ExpiringCache[str, SessionRecord] = ExpiringCache(cache_seconds)
        self._clock = clock or (lambda: datetime.now(UTC))

    # -- open ----------------------------------------------------------------------------------
    async def open(
        self,
        principal: Principal,
        form: str,
        bucket: str,
        prefix: str | None = None,
        values: Mapping[str, Any] | None = None,
        ttl: str | timedelta | None = None,
    ) -> tuple[SessionRecord, Credential]:
        """Open a session owned by ``principal``'s user and mint its session key.

        Raises SessionError (refusals, with a reason meant for people) or FormValidationError
        (``.errors``: field -> messages). Every refusal is audited as refused.
        """
        now = self._clock()
        session_id = new_session_id(now)
        # A default scope is named by its shape: the fresh id would only puzzle the reader.
        target = scope_url(bucket, prefix if prefix else "<session id>/")
        try:
            scope, rule, latest, clean, lifetime = await self._check_open(
                principal, form, bucket, prefix, values or {}, ttl, session_id
            )
        except (SessionError, FormValidationError) as exc:
            await self.auditor.refused(principal, "session.open", target, str(exc), form=form)
            raise
        try:
            credential = await self.identity.create_key(principal.user, session_id=session_id)
        except IdentityError as exc:
            await self.auditor.refused(principal, "session.open", target, str(exc), form=form)
            raise SessionInvalid(str(exc)) from None
        record = SessionRecord(
            id=session_id,
            form_name=latest.name,
            form_version=latest.version,
            values=clean,
            bucket=bucket,
            prefix=scope,
            owner=principal.user,
            state="open",
            created=now,
            expires=now + lifetime,
            access_key=credential.access_key,
            title=make_title(latest, clean, scope),
        )
        try:
            record = await self.store.create_session(record)
        except BaseException as exc:
            # A key whose session was never stored must not linger as a usable credential.
            # Best effort: the original error is the one to report.
            with contextlib.suppress(Exception):
                await self.identity.revoke_key(credential.access_key)
            if isinstance(exc, AlreadyExists):
                raise SessionInvalid("session id collision; try again") from None
            raise
        await self.auditor.ok(
            principal,
            "session.open",
            f"session:{record.id}",
            form=record.form_name,
            form_version=record.form_version,
            scope=scope_url(record.bucket, record.prefix),
            owner=record.owner,
            session_key=credential.access_key,
            rule=rule.to_dict(),
        )
        return record, credential

    async def places(self, principal: Principal, buckets: list[str]) -> list[Place]:
        """Where ``principal`` may open sessions, by the policy in force, in rule order: each
        rule that takes sessions with forms and lets them open; a bucket glob is spelled out
        with the existing ``buckets`` it matches."""
        if principal.role == Role.READER:
            return []
        found: list[Place] = []
        for rule in (await self.policies.current()).rules:
            if not rule.forms or not rule.may_open(principal.user, principal.role):
                continue
            names = (
                [rule.bucket] if not _GLOB_CHARS.search(rule.bucket)
                else [b for b in buckets if fnmatch.fnmatchcase(b, rule.bucket)]
            )  # fmt: skip
            prefix = _fixed_start(rule.prefix)
            for name in names:
                place = Place(name, prefix, rule.forms)
                if place not in found:
                    found.append(place)
        return found

    async def check_open(
        self,
        principal: Principal,
        form: str,
        bucket: str,
        prefix: str,
        values: Mapping[str, Any],
        ttl: str | timedelta | None = None,
    ) -> dict[str, Any]:
        """What :meth:`open` would judge, without opening anything or auditing: the clean values,
        or the SessionError / FormValidationError that ``open`` would raise. For opening
        several sessions all or none (policy.several)."""
        checked = await self._check_open(
            principal, form, bucket, prefix, values, ttl, new_session_id(self._clock())
        )
        return checked[3]

    async def allowed_forms(
        self, principal: Principal, bucket: str, prefix: str
    ) -> tuple[list[Form], str | None]:
        """The forms ``principal`` may open a session with at bucket/prefix, or why there are
        none (a sentence for people): what the new-session and link-data pages offer, by the
        same rule :meth:`_check_open` enforces."""
        rule = (await self.policies.current()).match(bucket, prefix)
        where = scope_url(bucket, prefix)
        if rule is None:
            return [], f"No policy rule covers {where}, so no session can be opened there."
        if not rule.may_open(principal.user, principal.role):
            return [], f"{principal.user} may not open sessions at {where}."
        forms = [f for name in rule.forms if (f := await self.forms.find(name)) is not None]
        if not forms:
            scratch = "its rule names no form, so there is none to fill"
            return [], f"{where} is a scratch area: {scratch}."
        return forms, None

    async def _check_open(
        self,
        principal: Principal,
        form_name: str,
        bucket: str,
        prefix: str | None,
        values: Mapping[str, Any],
        ttl: str | timedelta | None,
        session_id: str,
    ) -> tuple[str, Rule, Form, dict[str, Any], timedelta]:
        if principal.session_id is not None:
            raise SessionNotAllowed(
                "a session key cannot open sessions: use your personal key or the web UI"
            )
        if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket):
            raise SessionInvalid(
                f"invalid bucket name {bucket!r}: 3-63 lowercase letters, digits, '.' and '-'"
            )
        scope = self._scope(prefix, session_id)
        where = scope_url(bucket, scope if prefix is not None else "<session id>/")
        policy = await self.policies.current()
        rule = policy.match(bucket, scope)
        if rule is None:
            hint = (
                "give a prefix that a rule covers, or ask an admin to add a rule"
                if prefix is None and any(r.matches(bucket, r.prefix) for r in policy.rules)
                else "an admin can add one with minimo policy set"
            )
            raise SessionInvalid(
                f"no policy rule covers {where}, so nothing can be written there; {hint}"
            )
        number = policy.rules.index(rule) + 1
        if not rule.may_open(principal.user, principal.role):
            allowed = ", ".join(rule.open_sessions) or "admins only"
            raise SessionNotAllowed(
                f"{principal.user} ({principal.role.value}) may not open sessions at {where}: "
                f"policy rule {number} lets {allowed} open them"
            )
        if form_name not in rule.forms:
            if not rule.require_session and not rule.forms:
                raise SessionInvalid(
                    f"{where} is a scratch area (policy rule {number}: require_session = false): "
                    "upload there without a session"
                )
            raise SessionInvalid(
                f"form {form_name} is not allowed at {where}: policy rule {number} allows "
                f"{', '.join(rule.forms) or 'no forms'}"
            )
        latest = await self.forms.find(form_name)
        if latest is None:
            # named in the request's body, not its target: a bad request rather than a 404
            raise SessionInvalid(f"no form {form_name}")
        lifetime = rule.session_ttl
        if ttl is not None:
            try:
                lifetime = ttl if isinstance(ttl, timedelta) else parse_duration(ttl)
            except DurationError as exc:
                raise SessionInvalid(f"ttl: {exc}") from None
            if lifetime <= timedelta(0):
                raise SessionInvalid("ttl: must be longer than zero")
            if lifetime > rule.max_session_ttl:
                raise SessionInvalid(
                    f"ttl: {_duration(lifetime)} is longer than the "
                    f"{format_duration(rule.max_session_ttl)} policy rule {number} allows at "
                    f"{where}"
                )
        clean = validate_values(latest, values)
        return scope, rule, latest, clean, lifetime

    @staticmethod
    def _scope(prefix: str | None, session_id: str) -> str:
        return f"{session_id}/" if prefix is None else normalise_prefix(prefix)

    # -- extend --------------------------------------------------------------------------------
    async def extend(
        self, principal: Principal, session_id: str, by: str | timedelta | None = None
    ) -> SessionRecord:
        """Move an open session's expiry ``by`` later (default: its rule's ``session_ttl``),
        owner or admin only, never past ``created + max_session_ttl`` of the rule in force at
        its scope. Every refusal says why and is audited."""
        target = f"session:{session_id}"
        try:
            session, expires = await self._check_extend(principal, session_id, by)
        except SessionError as exc:
            await self.auditor.refused(principal, "session.extend", target, str(exc))
            raise
        try:
            session = await self.store.extend_session(session_id, expires)
        except NotFound:
            raise SessionNotFound(f"no session {session_id}") from None
        self._cache.forget(session_id)
        if session.state != "open":  # a close won the race
            reason = f"session {session_id} was closed meanwhile"
            await self.auditor.refused(principal, "session.extend", target, reason)
            raise SessionInvalid(reason)
        await self.auditor.ok(
            principal, "session.extend", target, expires=expires.isoformat(), owner=session.owner
        )
        return session

    async def _check_extend(
        self, principal: Principal, session_id: str, by: str | timedelta | None
    ) -> tuple[SessionRecord, datetime]:
        session = await self.get(session_id)
        if session is None:
            raise SessionNotFound(f"no session {session_id}")
        if principal.role != Role.ADMIN and principal.user != session.owner:
            raise SessionNotAllowed(
                f"only {session.owner} (the owner) or an admin may extend session {session_id}"
            )
        now = self._clock()
        if session.state == "closed":
            raise SessionInvalid(f"session {session_id} is closed: open another like it")
        if not session.is_open(now):
            raise SessionInvalid(f"session {session_id} has expired: open another like it")
        policy = await self.policies.current()
        rule = policy.match(session.bucket, session.prefix)
        where = scope_url(session.bucket, session.prefix)
        if rule is None:
            raise SessionInvalid(f"no policy rule covers {where} any more; it cannot be extended")
        try:
            step = (
                rule.session_ttl if by is None
                else by if isinstance(by, timedelta)
                else parse_duration(by)
            )  # fmt: skip
        except DurationError as exc:
            raise SessionInvalid(f"by: {exc}") from None
        if step <= timedelta(0):
            raise SessionInvalid("by: must be longer than zero")
        latest = session.created + rule.max_session_ttl
        expires = session.expires + step
        if expires > latest:
            number = policy.rules.index(rule) + 1
            limit = f"{format_duration(rule.max_session_ttl)} (policy rule {number} at {where})"
            if session.expires >= latest:
                raise SessionInvalid(
                    f"by: this session already lives as long as it may, {limit}: it ends "
                    f"{latest:%Y-%m-%d %H:%M} UTC; open another like it to go on"
                )
            raise SessionInvalid(
                f"by: a session may live at most {limit}, so this one can be extended until "
                f"{latest:%Y-%m-%d %H:%M} UTC at the latest, by at most "
                f"{_duration(latest - session.expires)}"
            )
        return session, expires

    # -- close ---------------------------------------------------------------------------------
    async def close(self, principal: Principal, session_id: str) -> SessionRecord:
        """Close a session (owner or admin only) and revoke its key. Idempotent."""
        target = f"session:{session_id}"
        session = await self.get(session_id)
        if session is None:
            await self.auditor.refused(principal, "session.close", target, "no such session")
            raise SessionNotFound(f"no session {session_id}")
        if principal.role != Role.ADMIN and principal.user != session.owner:
            reason = f"only {session.owner} (the owner) or an admin may close session {session_id}"
            await self.auditor.refused(principal, "session.close", target, reason)
            raise SessionNotAllowed(reason)
        was_closed = session.state == "closed"
        try:
            session = await self.store.close_session(session_id, self._clock(), principal.user)
        except NotFound:
            raise SessionNotFound(f"no session {session_id}") from None
        self._cache.forget(session_id)
        if session.access_key is not None:
            # IdentityError: the key was never stored (an open that failed halfway).
            with contextlib.suppress(IdentityError):
                await self.identity.revoke_key(session.access_key)
        if not was_closed:
            await self.auditor.ok(principal, "session.close", target, owner=session.owner)
        return session

    # -- look-ups ------------------------------------------------------------------------------
    async def get(self, session_id: str) -> SessionRecord | None:
        """The stored session, read now (None for unknown or malformed ids)."""
        if not is_session_id(session_id):
            return None
        return await self.store.get_session(session_id)

    async def require(self, session_id: str) -> SessionRecord:
        session = await self.get(session_id)
        if session is None:
            raise SessionNotFound(f"no session {session_id}")
        return session

    async def lookup(self, session_id: str) -> SessionRecord | None:
        """The session for the write path: cached for at most ``cache_seconds`` (see the module
        docstring). Judge openness with ``session.is_open(now)``."""
        read_at = time.monotonic()
        hit, cached = self._cache.get(session_id)
        if hit:
            return cached
        session = await self.get(session_id)
        if session is None:
            self._cache.forget(session_id)
            return None
        self._cache.put(session_id, session, read_at=read_at)
        return session

    def forget(self, session_id: str | None = None) -> None:
        self._cache.forget(session_id)

    async def search(self, query: SessionQuery | None = None, **filters: Any) -> SessionPage:
        """One page of matching sessions: pass a SessionQuery, or its fields as keywords."""
        if query is None:
            try:
                query = SessionQuery(**filters)
            except (TypeError, ValueError) as exc:
                raise SessionInvalid(str(exc)) from None
        elif filters:
            raise TypeError("pass either a SessionQuery or keyword filters, not both")
        try:
            return await self.store.search_sessions(query)
        except ValueError as exc:  # e.g. a cursor from another backend
            raise SessionInvalid(str(exc)) from None

    async def objects(
        self, session_id: str, limit: int = 1000, cursor: str | None = None
    ) -> tuple[list[ObjectRecord], str | None]:
        """The current object records written under a session, and the next page's cursor."""
        return await self.store.list_session_objects(session_id, limit, cursor)

    async def usage(self, session_id: str) -> tuple[int, int]:
        """(object count, total bytes) written under a session."""
        return await self.store.session_usage(session_id)


def _duration(value: timedelta) -> str:
    try:
        return format_duration(value)
    except DurationError:
        return str(value)
