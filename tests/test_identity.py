"""The identity service on a real SQLite store: hashing, encryption at rest, keys, revocation."""

from __future__ import annotations

import asyncio
import os
import re
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from policy.crypto import SecretBox, SecretKeyError
from policy.identity import (
    ACCESS_KEY_LENGTH,
    SECRET_KEY_LENGTH,
    IdentityError,
    IdentityService,
)
from policy.principal import Role
from policy.store import open_metadata_store

Body = Callable[[IdentityService], Awaitable[None]]


def db_bytes(data_dir: Path) -> bytes:
    """Every byte SQLite keeps for the store: main file, write-ahead log and shared memory."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("minimo.sqlite3*")))


async def open_service(data_dir: Path, **kwargs: float) -> IdentityService:
    box = SecretBox.from_file(data_dir / "secret.key")
    store = await open_metadata_store(data_dir / "minimo.sqlite3")
    return IdentityService(store, box, **kwargs)


@pytest.fixture
def with_identity(tmp_path: Path) -> Callable[[Body], None]:
    def run(body: Body) -> None:
        async def main() -> None:
            service = await open_service(tmp_path)
            try:
                await body(service)
            finally:
                await service.store.close()

        asyncio.run(main())

    return run


def test_passwords_are_argon2id(with_identity) -> None:
    async def body(ident: IdentityService) -> None:
        user, password = await ident.add_user("alice", "uploader", "correct horse battery")
        assert password == "correct horse battery"
        assert user.password_hash.startswith("$argon2id$")
        stored = await ident.get_user("alice")
        assert stored is not None and stored.password_hash.startswith("$argon2id$")
        ok = await ident.authenticate("alice", "correct horse battery")
        assert ok is not None and (ok.user, ok.role) == ("alice", Role.UPLOADER)
        assert await ident.authenticate("alice", "wrong password!") is None
        assert await ident.authenticate("nobody", "correct horse battery") is None

    with_identity(body)


def test_generated_password_works(with_identity) -> None:
    async def body(ident: IdentityService) -> None:
        _, password = await ident.add_user("bob", Role.READER)
        assert len(password) >= 16
        assert await ident.authenticate("bob", password) is not None
        await ident.set_password("bob", "a brand new password")
        assert await ident.authenticate("bob", password) is None
        assert await ident.authenticate("bob", "a brand new password") is not None

    with_identity(body)


def test_management_errors_are_clear(with_identity) -> None:
    async def body(ident: IdentityService) -> None:
        await ident.add_user("alice", "admin")
        with pytest.raises(IdentityError, match="already exists"):
            await ident.add_user("alice", "reader")
        with pytest.raises(IdentityError, match="unknown role"):
            await ident.add_user("carol", "boss")
        with pytest.raises(IdentityError, match="invalid user name"):
            await ident.add_user("../etc", "reader")
        with pytest.raises(IdentityError, match="at least"):
            await ident.add_user("dave", "reader", "short")
        with pytest.raises(IdentityError, match="no user"):
            await ident.create_key("nobody")
        with pytest.raises(IdentityError, match="no access key"):
            await ident.revoke_key("MKNOSUCHKEY000000000")
        with pytest.raises(IdentityError, match="no user"):
            await ident.set_role("nobody", "reader")

    with_identity(body)


def test_keys_look_like_aws_keys(with_identity) -> None:
    async def body(ident: IdentityService) -> None:
        await ident.add_user("alice", "uploader")
        cred = await ident.create_key("alice")
        assert re.fullmatch(r"MK[A-Z0-9]{18}", cred.access_key)
        assert len(cred.access_key) == ACCESS_KEY_LENGTH
        assert re.fullmatch(r"[A-Za-z0-9_-]{40}", cred.secret_key)
        assert len(cred.secret_key) == SECRET_KEY_LENGTH
        assert (cred.principal.user, cred.principal.role) == ("alice", Role.UPLOADER)
        assert cred.principal.access_key == cred.access_key
        other = await ident.create_key("alice")
        assert other.access_key != cred.access_key and other.secret_key != cred.secret_key

    with_identity(body)


def test_credential_lookup(with_identity) -> None:
    async def body(ident: IdentityService) -> None:
        await ident.add_user("alice", "admin")
        created = await ident.create_key("alice")
        found = await ident.credential(created.access_key)
        assert found == created
        assert await ident.credential("MKUNKNOWN00000000000") is None
        assert await ident.credential("") is None

    with_identity(body)


def test_secrets_are_encrypted_at_rest(tmp_path: Path, with_identity) -> None:
    creds = []

    async def body(ident: IdentityService) -> None:
        _, password = await ident.add_user("alice", "admin")
        creds.append(password)
        for _ in range(3):
            creds.append((await ident.create_key("alice")).secret_key)

    with_identity(body)
    raw = db_bytes(tmp_path)
    assert b"MK" in raw  # the ids are there (sanity: we are reading the right files)
    for secret in creds:
        assert secret.encode() not in raw


def test_secret_key_file_is_private_and_reused(tmp_path: Path, with_identity) -> None:
    keys: list[str] = []

    async def body(ident: IdentityService) -> None:
        await ident.add_user("alice", "admin")
        keys.append((await ident.create_key("alice")).access_key)

    with_identity(body)
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    before = key_file.read_bytes()

    async def reopen(ident: IdentityService) -> None:
        cred = await ident.credential(keys[0])
        assert cred is not None and len(cred.secret_key) == SECRET_KEY_LENGTH

    with_identity(reopen)
    assert key_file.read_bytes() == before


def test_wrong_secret_key_file_is_a_clear_error(tmp_path: Path, with_identity) -> None:
    keys: list[str] = []

    async def body(ident: IdentityService) -> None:
        await ident.add_user("alice", "admin")
        keys.append((await ident.create_key("alice")).access_key)

    with_identity(body)
    (tmp_path / "secret.key").unlink()

    async def reopen(ident: IdentityService) -> None:
        with pytest.raises(SecretKeyError, match="does not decrypt"):
            await ident.credential(keys[0])

    with_identity(reopen)


def test_revoked_keys_and_deleted_users_have_no_credential(with_identity) -> None:
    async def body(ident: IdentityService) -> None:
        await ident.add_user("alice", "uploader")
        await ident.add_user("bob", "uploader")
        a = await ident.create_key("alice")
        b = await ident.create_key("bob")
        assert await ident.credential(a.access_key) is not None
        revoked = await ident.revoke_key(a.access_key)
        assert revoked.revoked is not None
        assert await ident.credential(a.access_key) is None
        assert [k.active for k in await ident.list_keys("alice")] == [False]
        assert await ident.credential(b.access_key) is not None
        await ident.delete_user("bob")
        assert await ident.credential(b.access_key) is None
        with pytest.raises(IdentityError):
            await ident.create_key("bob")
        assert await ident.authenticate("bob", "whatever-password") is None

    with_identity(body)


def test_revocation_elsewhere_reaches_a_caching_process(tmp_path: Path) -> None:
    """Another process (here: another service on the same files) revokes; caches bound it."""

    async def main() -> None:
        admin = await open_service(tmp_path)
        uncached = await open_service(tmp_path, cache_seconds=0)
        cached = await open_service(tmp_path, cache_seconds=3600)
        try:
            await admin.add_user("alice", "uploader")
            cred = await admin.create_key("alice")
            # A key created elsewhere works at once: unknown keys are never cached.
            assert await cached.credential(cred.access_key) == cred
            assert await uncached.credential(cred.access_key) == cred
            await admin.revoke_key(cred.access_key)
            assert await uncached.credential(cred.access_key) is None
            # Within its cache lifetime a process may still answer from memory...
            assert await cached.credential(cred.access_key) == cred
            # ...and asks the store again once the entry is gone.
            cached.forget(cred.access_key)
            assert await cached.credential(cred.access_key) is None
        finally:
            for s in (admin, uncached, cached):
                await s.store.close()

    asyncio.run(main())


def test_unknown_key_then_created_is_usable_at_once(tmp_path: Path) -> None:
    async def main() -> None:
        server = await open_service(tmp_path)
        cli = await open_service(tmp_path)
        try:
            await cli.add_user("alice", "uploader")
            probe = await server.credential("MKNOTYET000000000000")
            assert probe is None
            cred = await cli.create_key("alice")
            assert await server.credential(cred.access_key) == cred
        finally:
            await server.store.close()
            await cli.store.close()

    asyncio.run(main())


def test_initial_admin_is_created_once(tmp_path: Path) -> None:
    async def main() -> None:
        services = [await open_service(tmp_path) for _ in range(3)]
        try:
            results = await asyncio.gather(*(s.ensure_initial_admin() for s in services))
            created = [r for r in results if r is not None]
            assert len(created) == 1
            admin = created[0]
            assert admin.user == "admin"
            cred = await services[0].credential(admin.access_key)
            assert cred is not None and cred.secret_key == admin.secret_key
            assert cred.principal.role is Role.ADMIN
            assert await services[0].authenticate("admin", admin.password) is not None
            assert await services[1].ensure_initial_admin() is None
            assert [u.name for u in await services[2].list_users()] == ["admin"]
        finally:
            for s in services:
                await s.store.close()

    asyncio.run(main())


def test_no_initial_admin_when_users_exist(with_identity) -> None:
    async def body(ident: IdentityService) -> None:
        await ident.add_user("ops", "admin")
        assert await ident.ensure_initial_admin() is None
        assert [u.name for u in await ident.list_users()] == ["ops"]

    with_identity(body)


def test_secret_key_file_created_concurrently_is_one_key(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "secret.key"

    async def main() -> list[bytes]:
        from policy.crypto import load_or_create_key

        return await asyncio.gather(
            *(asyncio.to_thread(load_or_create_key, path) for _ in range(8))
        )

    keys = asyncio.run(main())
    assert len(set(keys)) == 1
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]
