"""Metadata store contract for ended logins (sign-out), on both backends.

The fixtures come from ``test_store`` (each test runs against sqlite and against mongo on the
session's FerretDB server).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from policy.logins import LoginService, new_login_id
from policy.store import MetadataStore
from tests.unit import test_store as contract

# The contract fixtures (each test runs on sqlite and on mongo), shared with test_store.
store_location = contract.store_location
open_store = contract.open_store
with_store = contract.with_store
RunStoreTest = Callable[[contract.StoreTest], None]


def login_id() -> str:
    return secrets.token_urlsafe(24)


def later(hours: float = 12) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def test_an_ended_login_is_ended_and_others_are_not(with_store: RunStoreTest) -> None:
    async def body(store: MetadataStore) -> None:
        mine, other = login_id(), login_id()
        assert not await store.login_ended(mine)
        await store.end_login(mine, "alice", later())
        assert await store.login_ended(mine)
        assert not await store.login_ended(other)

    with_store(body)


def test_ending_a_login_twice_is_harmless(with_store: RunStoreTest) -> None:
    async def body(store: MetadataStore) -> None:
        mine = login_id()
        await store.end_login(mine, "alice", later())
        await store.end_login(mine, "alice", later(1))
        assert await store.login_ended(mine)

    with_store(body)


def test_concurrent_ends_of_one_login_all_succeed(with_store: RunStoreTest) -> None:
    async def body(store: MetadataStore) -> None:
        mine = login_id()
        await asyncio.gather(*(store.end_login(mine, "alice", later()) for _ in range(5)))
        assert await store.login_ended(mine)

    with_store(body)


def test_records_past_their_expiry_are_purged(with_store: RunStoreTest) -> None:
    async def body(store: MetadataStore) -> None:
        old, recent = login_id(), login_id()
        await store.end_login(old, "alice", datetime.now(UTC) - timedelta(seconds=1))
        # The next end purges what has expired (the cookie itself is dead by then anyway).
        await store.end_login(recent, "bob", later())
        assert not await store.login_ended(old)
        assert await store.login_ended(recent)

    with_store(body)


def test_another_process_sees_an_ended_login(
    open_store: contract.Opener, with_store: RunStoreTest
) -> None:
    async def body(store: MetadataStore) -> None:
        mine = login_id()
        await store.end_login(mine, "alice", later())
        other = await open_store()
        try:
            assert await other.login_ended(mine)
        finally:
            await other.close()

    with_store(body)


def test_the_login_service_ends_at_once_here_and_caches_not_ended_briefly(
    open_store: contract.Opener, with_store: RunStoreTest
) -> None:
    async def body(store: MetadataStore) -> None:
        here = LoginService(store)
        other_store = await open_store()
        try:
            # another process that trusts "not ended" for an hour, to see the cache at work
            patient = LoginService(other_store, cache_seconds=3600)
            eager = LoginService(other_store, cache_seconds=0)
            mine = new_login_id()
            assert len(mine) >= 22  # >= 128 bits of url-safe base64
            assert not await here.is_ended(mine)
            assert not await patient.is_ended(mine)
            await here.end(mine, "alice")
            await here.end(mine, "alice")  # twice: harmless
            # the process that ended it forgets its cached "not ended" at once
            assert await here.is_ended(mine)
            # another process re-reads the store once its cached answer is too old
            assert await eager.is_ended(mine)
            assert not await patient.is_ended(mine)
        finally:
            await other_store.close()

    with_store(body)
