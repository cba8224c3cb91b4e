"""Users, roles and personal access keys.

:class:`IdentityService` sits between the metadata store (records only) and everything that
needs identities: SigV4 verification asks it for a key's secret on every request, the CLI and
(later) the UI manage users and keys through it. Passwords are argon2id hashes, secrets are
Fernet-encrypted before they reach the store.

Staleness bound (docs/design.md, decision 2): :meth:`IdentityService.credential` caches each answer
for at most ``CREDENTIAL_CACHE_SECONDS`` (2 s) per process. A key revoked or a user deleted
anywhere (CLI, another gateway process) therefore stops working on every process within 5 s
(2 s of cache plus the time for in-flight lookups to finish). Unknown keys are never cached, so
a key created by ``minimo key create`` works immediately.

Outage grace (docs/failures.md): when the metadata store is unavailable, a key this process
confirmed active within the last ``CREDENTIAL_GRACE_SECONDS`` (5 min) still authenticates, with
``Principal.stale`` set; the gateway lets such a principal read objects and never write. The
grace is used only when the lookup failed because the store is unavailable, and it never
outlives what this process saw: a lookup that found the key revoked (or its user deleted or
gone), a revocation or user deletion made through this process, all drop it. A key revoked in
another process just before this one lost the store can therefore read for at most the grace
period after this process last confirmed it.
"""

from __future__ import annotations

import re
import secrets
import string
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from policy.crypto import SecretBox
from policy.expiring import ExpiringCache
from policy.passwords import (
    MIN_PASSWORD_LENGTH,
    generate_password,
    hash_password_async,
    verify_password_async,
)
from policy.principal import Credential, Principal, Role
from policy.store.base import (
    AlreadyExists,
    KeyRecord,
    MetadataStore,
    NotFound,
    StoreUnavailable,
    UserRecord,
)

#: how long one process trusts a looked-up credential (see the module docstring)
CREDENTIAL_CACHE_SECONDS = 2.0
#: how long after its last confirmation a key may still read while the store is unavailable
CREDENTIAL_GRACE_SECONDS = 300.0

ACCESS_KEY_PREFIX = "MK"
ACCESS_KEY_LENGTH = 20
SECRET_KEY_LENGTH = 40
_ACCESS_KEY_ALPHABET = string.ascii_uppercase + string.digits
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

INITIAL_ADMIN = "admin"
#: how long a key's label may be (it is a name for people, shown in a table)
MAX_KEY_LABEL = 64
#: what a label may not hold: control characters (line breaks among them) and lone surrogates
#: (text that is no valid Unicode cannot be stored)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class Identity(Protocol):
    async def credential(self, access_key: str) -> Credential | None:
        """The active key's secret and principal, or None for unknown/revoked keys."""
        ...


class IdentityError(Exception):
    """A management request that cannot be done; the message is meant for people."""


class WrongPassword(IdentityError):
    """The current password given to change it was wrong."""


@dataclass(frozen=True, slots=True)
class InitialAdmin:
    """What the first start created; shown once, never stored in plaintext by minimo."""

    user: str
    password: str
    access_key: str
    secret_key: str


def new_access_key() -> str:
    """An AWS-shaped key id: 20 upper-case letters and digits, starting with ``MK``."""
    body = "".join(
        secrets.choice(_ACCESS_KEY_ALPHABET)
        for _ in range(ACCESS_KEY_LENGTH - len(ACCESS_KEY_PREFIX))
    )
    return ACCESS_KEY_PREFIX + body


def new_secret_key() -> str:
    """40 url-safe random characters (240 bits)."""
    return secrets.token_urlsafe(30)[:SECRET_KEY_LENGTH]


def check_user_name(name: str) -> str:
    if not _USER_NAME.fullmatch(name):
        raise IdentityError(
            f"invalid user name {name!r}: use 1-64 letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit"
        )
    return name


def check_key_label(label: str | None) -> str | None:
    """A key's label, trimmed (None when empty); refused when too long or not one line."""
    label = (label or "").strip()
    if len(label) > MAX_KEY_LABEL:
        raise IdentityError(f"the label must be at most {MAX_KEY_LABEL} characters")
    if _CONTROL.search(label):
        raise IdentityError("the label must be one line, without control characters")
    return label or None


def key_role(key: KeyRecord, user_role: Role) -> Role:
    """The role requests signed with ``key`` act with: a read-only key only ever reads."""
    return Role.READER if key.read_only else user_role


def parse_role(role: str | Role) -> Role:
    try:
        return Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise IdentityError(f"unknown role {role!r}: choose one of {choices}") from None


class IdentityService:
    """The :class:`Identity` SigV4 uses, plus user and key management."""

    def __init__(
        self,
        store: MetadataStore,
        box: SecretBox,
        *,
        cache_seconds: float = CREDENTIAL_CACHE_SECONDS,
        grace_seconds: float = CREDENTIAL_GRACE_SECONDS,
    ) -> None:
        self.store = store
        self._box = box
        self._cache: ExpiringCache[str, Credential | None] = ExpiringCache(cache_seconds)
        #: the last credential each active key was confirmed with (see the module docstring)
        self._last_good: ExpiringCache[str, Credential] = ExpiringCache(grace_seconds)

    # -- what every S3 request asks ------------------------------------------------------------
    async def credential(self, access_key: str) -> Credential | None:
        read_at = time.monotonic()
        hit, cached = self._cache.get(access_key)
        if hit:
            return cached
        try:
            known, credential = await self._lookup(access_key)
        except StoreUnavailable:
            hit, good = self._last_good.get(access_key)
            if hit and good is not None:
                return replace(good, principal=replace(good.principal, stale=True))
            raise
        if known:
            self._cache.put(access_key, credential, read_at=read_at)
        else:
            self._cache.forget(access_key)
        if credential is not None:
            self._last_good.put(access_key, credential, read_at=read_at)
        else:
            self._last_good.forget(access_key)
        return credential

    async def _lookup(self, access_key: str) -> tuple[bool, Credential | None]:
        """(whether the key exists, its credential when usable)."""
        key = await self.store.get_key(access_key)
        if key is None:
            return False, None
        if not key.active:
            return True, None
        user = await self.store.get_user(key.owner)
        if user is None or not user.active:
            return True, None
        principal = Principal(
            user=user.name,
            role=key_role(key, user.role),
            access_key=key.access_key,
            session_id=key.session_id,
        )
        return True, Credential(key.access_key, self._box.decrypt(key.secret_encrypted), principal)

    def forget(self, access_key: str | None = None) -> None:
        """Drop this process's cached answer for one key (or all), e.g. after revoking here."""
        self._cache.forget(access_key)
        self._last_good.forget(access_key)

    # -- users ---------------------------------------------------------------------------------
    async def add_user(
        self, name: str, role: str | Role, password: str | None = None
    ) -> tuple[UserRecord, str]:
        """Create a user; returns it and its password (generated when none is given)."""
        check_user_name(name)
        role = parse_role(role)
        if password is None:
            password = generate_password()
        elif len(password) < MIN_PASSWORD_LENGTH:
            raise IdentityError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
        user = UserRecord(
            name=name,
            role=role,
            password_hash=await hash_password_async(password),
            created=datetime.now(UTC),
        )
        try:
            await self.store.create_user(user)
        except AlreadyExists:
            raise IdentityError(f"user {name!r} already exists") from None
        return user, password

    async def get_user(self, name: str) -> UserRecord | None:
        return await self.store.get_user(name)

    async def list_users(self) -> list[UserRecord]:
        return await self.store.list_users()

    async def set_role(self, name: str, role: str | Role) -> UserRecord:
        return await self._update_user(name, role=parse_role(role))

    async def set_password(self, name: str, password: str) -> UserRecord:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise IdentityError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
        return await self._update_user(name, password_hash=await hash_password_async(password))

    async def change_own_password(self, name: str, old: str, new: str) -> UserRecord:
        """A user's own change: the old password must be right (WrongPassword otherwise), the
        new one follows the store's rules (IdentityError). Every login made with the old
        password ends (its cookie carries the old hash's fingerprint); keys are not touched."""
        if await self.authenticate(name, old) is None:
            raise WrongPassword("the current password is wrong")
        if new == old:
            raise IdentityError("the new password must differ from the current one")
        return await self.set_password(name, new)

    async def delete_user(self, name: str) -> UserRecord:
        """Soft-delete: the name stays taken (records keep pointing at it), keys stop working."""
        user = await self._update_user(name, deleted=datetime.now(UTC))
        self.forget()
        return user

    async def _update_user(self, name: str, **changes: object) -> UserRecord:
        try:
            return await self.store.update_user(name, **changes)  # type: ignore[arg-type]
        except NotFound:
            raise IdentityError(f"no user {name!r}") from None

    async def authenticate(self, name: str, password: str) -> Principal | None:
        """The user's principal when the password is right and the user active (UI login)."""
        user = await self.store.get_user(name)
        if user is None or not user.active:
            return None
        if not await verify_password_async(user.password_hash, password):
            return None
        return Principal(user=user.name, role=user.role)

    # -- access keys ---------------------------------------------------------------------------
    async def create_key(
        self,
        owner: str,
        *,
        session_id: str | None = None,
        label: str | None = None,
        read_only: bool = False,
    ) -> Credential:
        """A new key for an active user; the only time its secret is shown.

        With ``session_id`` it is that session's key (policy.sessions mints it when the session
        opens): its writes belong to the session. A reader's personal keys are always read-only
        (a later promotion does not make them write); others' are read-only when asked.
        """
        user = await self.store.get_user(owner)
        if user is None or not user.active:
            raise IdentityError(f"no user {owner!r}")
        label = check_key_label(label)
        read_only = read_only or (user.role is Role.READER and session_id is None)
        secret = new_secret_key()
        encrypted = self._box.encrypt(secret)
        # A collision among 36^18 ids is all but impossible; retrying costs nothing.
        for _ in range(5):
            key = KeyRecord(
                new_access_key(),
                encrypted,
                owner,
                datetime.now(UTC),
                session_id=session_id,
                label=label,
                read_only=read_only,
            )
            try:
                await self.store.create_key(key)
            except AlreadyExists:
                continue
            except NotFound:
                raise IdentityError(f"no user {owner!r}") from None
            principal = Principal(
                user=user.name,
                role=key_role(key, user.role),
                access_key=key.access_key,
                session_id=session_id,
            )
            return Credential(key.access_key, secret, principal)
        raise IdentityError("could not allocate a unique access key id")

    async def list_keys(self, owner: str | None = None) -> list[KeyRecord]:
        return await self.store.list_keys(owner)

    async def revoke_key(self, access_key: str) -> KeyRecord:
        try:
            key = await self.store.revoke_key(access_key, datetime.now(UTC))
        except NotFound:
            raise IdentityError(f"no access key {access_key!r}") from None
        self.forget(access_key)
        return key

    # -- first start ---------------------------------------------------------------------------
    async def ensure_initial_admin(self) -> InitialAdmin | None:
        """Create ``admin`` with a random password and a key when no user exists yet.

        Returns None when users exist (or another process created the admin first).
        """
        if await self.store.count_users() > 0:
            return None
        try:
            user, password = await self.add_user(INITIAL_ADMIN, Role.ADMIN)
        except IdentityError:
            return None  # lost the race to a concurrent first start
        credential = await self.create_key(user.name)
        return InitialAdmin(user.name, password, credential.access_key, credential.secret_key)
