"""The one enforcement decision: may this principal do this S3 operation here, and under which
metadata session (docs/design.md, decisions 4-7)?

:meth:`Enforcer.decide` is asked once per S3 request, with the operation's name and its
:class:`OperationClass` (the gateway's operation table gives it). It answers a
:class:`Decision` (the matching policy rule, the session the write belongs to, the multipart
upload it continues) or raises :class:`Refusal`, whose message teaches: it says why and where to
fix it, with a link to open a session there. Which link is the wiring's choice (a
:data:`SessionLink` passed in; the web UI's new-session page): policy knows no UI path.
Refused writes are audited here;
accepted writes are audited by the write path once they are committed (with their SHA-256).

What it decides, by operation class:

* reads: any user; a session key reads only inside its session's bucket (ListBuckets excepted:
  it names buckets, nothing inside them, and clients probe it before writing).
* CreateBucket / DeleteBucket: admins with a personal key.
* PutObject, CopyObject (the destination), CreateMultipartUpload: the first policy rule matching
  (bucket, key) must exist. ``require_session = false`` makes a scratch area where admins and
  uploaders write without a session; everywhere else the write names an open session, either by
  its session key or by a personal key plus ``x-amz-meta-minimo-session: <id>``. The session
  must be open (not closed, not expired), owned by the key's user (or the user is an admin),
  cover the key (same bucket, key under its prefix) and use a form the rule allows. A session
  key writes only inside its scope, scratch areas included.
* UploadPart(Copy), CompleteMultipartUpload, AbortMultipartUpload: the upload's
  :class:`MultipartRecord` decides: the same user that created it (admins may also abort), the
  same session for a session key, and (except for Abort, which must stay possible) its session
  still open.
* DeleteObject(s): per the rule's ``delete``: deny, owner (the owner of the session the object
  was written under, from its record; the writer for scratch objects) or admin.

Overwrites under write-once rules are not judged here: the write path claims the key
(``claim_key``) so that of two concurrent writers exactly one wins;
:meth:`Enforcer.overwrite_refusal` words the loser's message.

Staleness: sessions and the policy come from their services' 2 s caches, so a session closed
(or a policy changed) anywhere is refused here within 2 s plus one store read; expiry is judged
against the clock at every call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum

from policy.audit import Auditor
from policy.catalog import PolicyService
from policy.principal import Principal, Role
from policy.rules import Policy, Rule
from policy.sessions import SessionService, is_session_id
from policy.store.base import MetadataStore, MultipartRecord, SessionRecord

#: the user metadata key the stamp is stored under (``x-amz-meta-`` removed); the one spelling
#: of the stamp (the write path, rollback, the RO-Crate, reconcile and adopt import it)
SESSION_META = "minimo-session"
#: the header a personal key names its session with (lower-case, as aiohttp looks it up)
SESSION_HEADER = f"x-amz-meta-{SESSION_META}"


class OperationClass(Enum):
    """How the enforcer judges an S3 operation. The gateway gives each operation its class
    (``gateway.s3api.operations.OPERATIONS``) and passes it with the operation's name; the name
    only words messages and the audit log (and marks the two exceptions noted below)."""

    #: reads: any user; a session key only inside its session's bucket
    READ = "read"
    #: writes that create an object (or start one) at (bucket, key): the rule and the session
    CREATE = "create"
    #: writes that continue a multipart upload: the upload's record decides (AbortMultipartUpload
    #: stays possible for admins and after the session closed)
    CONTINUE = "continue"
    #: deletes: the rule's ``delete`` (DeleteObjects is judged key by key by its handler)
    DELETE = "delete"
    #: CreateBucket, DeleteBucket: admins with a personal key
    BUCKET_ADMIN = "bucket admin"


class RefusalCode(StrEnum):
    """How a refusal is answered, named as the S3 error code it becomes. policy may not import
    the gateway's error table, so this is its own small vocabulary; the gateway maps it onto
    that table in one place (``gateway.usecases.writes.REFUSAL_CODES``)."""

    #: the principal may not do this here (the message says why and how to fix it)
    AccessDenied = "AccessDenied"
    #: the multipart upload to continue does not exist (or is not at this bucket and key)
    NoSuchUpload = "NoSuchUpload"


class RefusalReason(StrEnum):
    """Why an operation was refused, in a few words a dashboard can count (the metrics label
    ``reason``); the message says it for people."""

    anonymous = "anonymous"
    reader_role = "reader_role"
    not_admin = "not_admin"
    no_rule = "no_rule"
    no_session = "no_session"
    wrong_form = "wrong_form"
    bad_session_header = "bad_session_header"
    session_unknown = "session_unknown"
    session_closed = "session_closed"
    session_expired = "session_expired"
    not_session_owner = "not_session_owner"
    session_key_scope = "session_key_scope"
    out_of_scope = "out_of_scope"
    unknown_upload = "unknown_upload"
    not_upload_owner = "not_upload_owner"
    delete_denied = "delete_denied"
    not_object_owner = "not_object_owner"
    write_once = "write_once"
    other = "other"


class Refusal(Exception):
    """A refused operation. ``message`` is for people (it becomes the S3 error Message);
    ``code`` says which S3 error it becomes (AccessDenied, or NoSuchUpload for unknown
    uploads)."""

    def __init__(
        self,
        message: str,
        code: RefusalCode = RefusalCode.AccessDenied,
        *,
        reason: RefusalReason = RefusalReason.other,
        outside_rules: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        #: no policy rule covers the target: the gateway answers NoSuchBucket instead when the
        #: bucket does not exist (as S3 does for a write to a missing bucket)
        self.outside_rules = outside_rules


@dataclass(frozen=True, slots=True)
class Decision:
    """An accepted operation: what the write path needs to carry it out."""

    op: str
    principal: Principal | None
    #: the policy rule matching the target (writes and deletes of one key)
    rule: Rule | None = None
    #: the session the write belongs to (None: a read, or a write into a scratch area)
    session: SessionRecord | None = None
    #: the upload a multipart continuation belongs to
    upload: MultipartRecord | None = None

    @property
    def session_id(self) -> str | None:
        return self.session.id if self.session is not None else None

    @property
    def write_once(self) -> bool:
        """Whether an existing object at the target must not be replaced (overwrite = deny)."""
        return self.rule is not None and self.rule.overwrite != "allow"


#: (bucket, prefix) -> the URL where a session for s3://bucket/prefix is opened
SessionLink = Callable[[str, str], str]


def s3_url(bucket: str, key: str = "") -> str:
    return f"s3://{bucket}/{key}"


def folder(key: str) -> str:
    """The "directory" of a key (``2026/run7/a.tif`` -> ``2026/run7/``): what a session's scope
    would be, so a refusal can offer to open exactly that."""
    return key[: key.rfind("/") + 1]


def _when(value: datetime | None) -> str:
    if value is None:
        return "an unknown time"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Enforcer:
    """Makes :meth:`decide`; one per process, shared by all requests."""

    def __init__(
        self,
        policies: PolicyService,
        sessions: SessionService,
        store: MetadataStore,
        auditor: Auditor,
        open_link: SessionLink,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.policies = policies
        self.sessions = sessions
        self.store = store
        self.auditor = auditor
        #: where a refusal tells people to open a session for s3://bucket/prefix
        self.open_link = open_link
        self._clock = clock or (lambda: datetime.now(UTC))

    # -- the decision --------------------------------------------------------------------------
    async def decide(
        self,
        principal: Principal | None,
        op: str,
        op_class: OperationClass,
        bucket: str,
        key: str | None,
        session_header: str | None = None,
        *,
        upload_id: str | None = None,
        audit_unknown_upload: bool = True,
    ) -> Decision:
        """Allow ``op`` (of class ``op_class``) on s3://bucket/key or raise :class:`Refusal`
        (audited unless a read). ``audit_unknown_upload=False`` leaves a NoSuchUpload refusal
        to the caller to audit (a completion retried after it succeeded is no refusal)."""
        key = key or ""
        try:
            return await self._decide(
                principal, op, op_class, bucket, key, session_header, upload_id
            )
        except Refusal as refusal:
            unknown_upload = refusal.code is RefusalCode.NoSuchUpload
            if op_class is not OperationClass.READ and (audit_unknown_upload or not unknown_upload):
                details = {"upload_id": upload_id} if upload_id else {}
                await self.auditor.refused(
                    principal, op, s3_url(bucket, key), refusal.message, **details
                )
            raise

    async def _decide(
        self,
        principal: Principal | None,
        op: str,
        op_class: OperationClass,
        bucket: str,
        key: str,
        header: str | None,
        upload_id: str | None,
    ) -> Decision:
        if principal is None:
            raise Refusal(
                "Anonymous access is not allowed: sign your requests with an access key.",
                reason=RefusalReason.anonymous,
            )
        if op_class is OperationClass.READ:
            await self._check_read(principal, bucket)
            return Decision(op, principal)
        if principal.role == Role.READER:
            raise Refusal(
                f"{op} is a write, and user {principal.user!r} has the role 'reader', which may "
                "only read. Ask an admin for the uploader role.",
                reason=RefusalReason.reader_role,
            )
        if op_class is OperationClass.CREATE:
            return await self._decide_create(principal, op, bucket, key, header)
        if op_class is OperationClass.CONTINUE:
            return await self._decide_continue(principal, op, bucket, key, upload_id)
        if op_class is OperationClass.DELETE:
            if op == "DeleteObjects":
                # The request names its keys in its body: each one is judged by decide_delete.
                if principal.session_id is not None:
                    await self._session_key_session(principal, bucket, None)
                return Decision(op, principal)
            return await self.decide_delete(principal, bucket, key)
        if op_class is OperationClass.BUCKET_ADMIN:
            if principal.role != Role.ADMIN or principal.session_id is not None:
                how = (
                    "a session key writes objects into its session only"
                    if principal.session_id is not None
                    else f"user {principal.user!r} is {principal.role.value}"
                )
                raise Refusal(
                    f"{op} s3://{bucket}: only admins (with a personal key) create and delete "
                    f"buckets, and {how}. Ask an admin.",
                    reason=RefusalReason.not_admin,
                )
            return Decision(op, principal)
        raise Refusal(f"{op} is not allowed.", reason=RefusalReason.other)

    # -- reads ---------------------------------------------------------------------------------
    async def _check_read(self, principal: Principal, bucket: str) -> None:
        if principal.session_id is None or not bucket:
            return
        session = await self.sessions.lookup(principal.session_id)
        if session is None or session.bucket != bucket:
            where = f"s3://{session.bucket}/" if session is not None else "its session's bucket"
            raise Refusal(
                f"This is the key of session {principal.session_id}: it reads only in {where}. "
                "Use your personal key to read elsewhere.",
                reason=RefusalReason.session_key_scope,
            )

    async def check_read(self, principal: Principal | None, bucket: str) -> None:
        """A copy's source is a read: a session key may copy only from its session's bucket."""
        if principal is not None:
            await self._check_read(principal, bucket)

    # -- writes that create an object ----------------------------------------------------------
    async def _rule(self, op: str, bucket: str, key: str) -> tuple[Policy, Rule]:
        policy = await self.policies.current()
        rule = policy.match(bucket, key)
        if rule is None:
            raise Refusal(
                f"No policy rule covers {s3_url(bucket, key)}, so nothing may be written there; "
                "an admin must add one (minimo policy set).",
                outside_rules=True,
                reason=RefusalReason.no_rule,
            )
        return policy, rule

    def _rule_name(self, policy: Policy, rule: Rule) -> str:
        return f"policy rule {policy.rules.index(rule) + 1} (s3://{rule.bucket}/{rule.prefix}*)"

    async def _decide_create(
        self, principal: Principal, op: str, bucket: str, key: str, header: str | None
    ) -> Decision:
        policy, rule = await self._rule(op, bucket, key)
        header = header.strip() if header is not None else None
        if principal.session_id is not None:
            if header and header != principal.session_id:
                raise Refusal(
                    f"This is the key of session {principal.session_id}; it writes into that "
                    f"session only, not into {header}. Drop the header {SESSION_HEADER} or use "
                    "your personal key with it.",
                    reason=RefusalReason.session_key_scope,
                )
            session = await self._session_key_session(principal, bucket, key)
        elif header:
            session = await self._named_session(principal, header, bucket, key)
        elif not rule.require_session:
            return Decision(op, principal, rule)  # scratch area: no session needed
        else:
            where = folder(key)
            raise Refusal(
                f"No open metadata session for {s3_url(bucket, where)}. Open one at "
                f"{self.open_link(bucket, where)} and upload with its key, or send header "
                f"{SESSION_HEADER}: <id>.",
                reason=RefusalReason.no_session,
            )
        if rule.require_session and session.form_name not in rule.forms:
            raise Refusal(
                f"Session {session.id} was filled in with form {session.form_name}, but "
                f"{self._rule_name(policy, rule)} covering {s3_url(bucket, key)} accepts "
                f"{', '.join(rule.forms)}. Open a session with one of those at "
                f"{self.open_link(bucket, folder(key))}.",
                reason=RefusalReason.wrong_form,
            )
        return Decision(op, principal, rule, session)

    async def _session_key_session(
        self, principal: Principal, bucket: str, key: str | None
    ) -> SessionRecord:
        """The session of a session key, open, covering (bucket, key) (bucket only: key None)."""
        assert principal.session_id is not None
        session = await self._open_session(principal.session_id, bucket, key or "")
        self._check_scope(session, bucket, key)
        return session

    async def _named_session(
        self, principal: Principal, session_id: str, bucket: str, key: str
    ) -> SessionRecord:
        """The session a personal key names in the header: open, the user's, covering the key."""
        if not is_session_id(session_id):
            raise Refusal(
                f"{SESSION_HEADER}: {session_id!r} is not a session id (36 characters such as "
                f"the id minimo session open prints). Open a session at "
                f"{self.open_link(bucket, folder(key))}.",
                reason=RefusalReason.bad_session_header,
            )
        session = await self._open_session(session_id, bucket, key)
        if session.owner != principal.user and principal.role != Role.ADMIN:
            raise Refusal(
                f"Session {session.id} belongs to {session.owner}; {principal.user} may write "
                f"only into their own sessions. Open one at "
                f"{self.open_link(bucket, folder(key))}.",
                reason=RefusalReason.not_session_owner,
            )
        self._check_scope(session, bucket, key)
        return session

    async def _open_session(self, session_id: str, bucket: str, key: str) -> SessionRecord:
        session = await self.sessions.lookup(session_id)
        link = self.open_link(bucket, folder(key))
        if session is None:
            raise Refusal(
                f"No session {session_id} exists. Open one at {link}.",
                reason=RefusalReason.session_unknown,
            )
        now = self._clock()
        if session.state == "closed":
            raise Refusal(
                f"Session {session.id} closed at {_when(session.closed)}; open a new one at "
                f"{link}.",
                reason=RefusalReason.session_closed,
            )
        if not session.is_open(now):
            raise Refusal(
                f"Session {session.id} expired at {_when(session.expires)}; open a new one at "
                f"{link}.",
                reason=RefusalReason.session_expired,
            )
        return session

    def _check_scope(self, session: SessionRecord, bucket: str, key: str | None) -> None:
        scope = s3_url(session.bucket, session.prefix)
        if bucket != session.bucket or (key is not None and not key.startswith(session.prefix)):
            target = s3_url(bucket, key or "")
            raise Refusal(
                f"Key {target} is outside session {session.id}'s scope {scope}: write under "
                f"{scope}, or open a session for {s3_url(bucket, folder(key or ''))} at "
                f"{self.open_link(bucket, folder(key or ''))}.",
                reason=RefusalReason.out_of_scope,
            )

    # -- multipart continuations ---------------------------------------------------------------
    async def _decide_continue(
        self, principal: Principal, op: str, bucket: str, key: str, upload_id: str | None
    ) -> Decision:
        upload = await self.store.get_multipart(upload_id) if upload_id else None
        if upload is None and op == "AbortMultipartUpload" and principal.role == Role.ADMIN:
            # An upload the object store has but the metadata store does not: a gateway died
            # between creating it upstream and recording it. Only an admin can name it (it is
            # listed, its owner is unknown), and aborting only frees space; the object store
            # answers NoSuchUpload if it has none either.
            policy = await self.policies.current()
            return Decision(op, principal, policy.match(bucket, key))
        if upload is None or upload.bucket != bucket or upload.key != key:
            raise Refusal(
                "The specified multipart upload does not exist. The upload ID may be invalid, "
                "or the upload may have been aborted or completed.",
                code=RefusalCode.NoSuchUpload,
                reason=RefusalReason.unknown_upload,
            )
        admin_abort = op == "AbortMultipartUpload" and principal.role == Role.ADMIN
        if upload.principal != principal.user and not admin_abort:
            raise Refusal(
                f"Multipart upload {upload_id} to {s3_url(bucket, key)} was started by "
                f"{upload.principal}; only they can continue it.",
                reason=RefusalReason.not_upload_owner,
            )
        if principal.session_id is not None and principal.session_id != upload.session_id:
            raise Refusal(
                f"Multipart upload {upload_id} does not belong to session {principal.session_id}, "
                "the session of this key.",
                reason=RefusalReason.session_key_scope,
            )
        session = None
        if upload.session_id is not None:
            if op == "AbortMultipartUpload":
                # Aborting must stay possible after the session closed: it only frees space.
                session = await self.sessions.lookup(upload.session_id)
            else:
                try:
                    session = await self._open_session(upload.session_id, bucket, key)
                except Refusal as refusal:
                    raise Refusal(
                        f"{refusal.message} Multipart upload {upload_id} belongs to it and can no "
                        "longer be continued or completed; abort it and upload again under an "
                        "open session.",
                        reason=refusal.reason,
                    ) from None
        policy = await self.policies.current()
        return Decision(op, principal, policy.match(bucket, key), session, upload)

    # -- deletes -------------------------------------------------------------------------------
    async def decide_delete(self, principal: Principal, bucket: str, key: str) -> Decision:
        """DeleteObject, and each key of DeleteObjects, per the matching rule's ``delete``."""
        if principal.role == Role.READER:
            raise Refusal(
                f"User {principal.user!r} has the role 'reader', which may only read.",
                reason=RefusalReason.reader_role,
            )
        policy, rule = await self._rule("DeleteObject", bucket, key)
        target = s3_url(bucket, key)
        name = self._rule_name(policy, rule)
        if principal.session_id is not None:
            await self._session_key_session(principal, bucket, key)
        if rule.delete == "deny":
            raise Refusal(
                f"{target} may not be deleted: {name} keeps raw data (delete = deny). An admin "
                "can change the policy (minimo policy set).",
                reason=RefusalReason.delete_denied,
            )
        is_admin = principal.role == Role.ADMIN
        if rule.delete == "admin":
            if not is_admin:
                raise Refusal(
                    f"Only admins may delete {target} ({name} has delete = admin).",
                    reason=RefusalReason.not_admin,
                )
            return Decision("DeleteObject", principal, rule)
        # delete = owner: the owner of the session the object was written under
        if is_admin:
            return Decision("DeleteObject", principal, rule)
        record = await self.store.get_object_record(bucket, key)
        if record is None:
            raise Refusal(
                f"minimo has no record of {target}, so it cannot tell its owner; under {name} "
                "(delete = owner) only an admin may delete it.",
                reason=RefusalReason.not_object_owner,
            )
        owner = record.principal
        session = None
        if record.session_id is not None:
            session = await self.sessions.lookup(record.session_id)
            if session is not None:
                owner = session.owner
        if owner != principal.user:
            via = f"session {record.session_id}" if record.session_id else "its upload"
            raise Refusal(
                f"{target} belongs to {owner} (via {via}); under {name} (delete = owner) only "
                "they or an admin may delete it.",
                reason=RefusalReason.not_object_owner,
            )
        return Decision("DeleteObject", principal, rule, session)

    # -- overwrites ----------------------------------------------------------------------------
    async def overwrite_refusal(self, decision: Decision, bucket: str, key: str) -> Refusal:
        """The refusal for a write-once key that exists (or is being written right now); audited."""
        policy = await self.policies.current()
        rule = decision.rule
        name = (
            self._rule_name(policy, rule)
            if rule is not None and rule in policy.rules
            else ("the policy rule")
        )
        refusal = Refusal(
            f"{s3_url(bucket, key)} already exists (or another upload of it is in progress) and "
            f"{name} is write-once (overwrite = deny). Write under a new key; an admin can allow "
            "overwrites there (minimo policy set).",
            reason=RefusalReason.write_once,
        )
        await self.auditor.refused(
            decision.principal, decision.op, s3_url(bucket, key), refusal.message
        )
        return refusal
