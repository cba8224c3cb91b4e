"""The metadata store contract for crash recovery (gateway.usecases.recovery): instances and their
heartbeats, the recovery lease, intents by id, claims and multipart uploads for their expiry.

Every test runs against ``sqlite`` and ``mongo`` (FerretDB), with the fixtures of test_store.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from policy.store import InstanceRecord, MetadataStore, MultipartRecord
from tests.unit import test_store as contract
from tests.unit.test_store_sessions import intent, now, record

store_location = contract.store_location
open_store = contract.open_store
with_store = contract.with_store


def instance(iid: str, **kw: object) -> InstanceRecord:
    t = now()
    return InstanceRecord(
        id=iid,
        host=str(kw.get("host", "h|boot|pid:[1]")),
        process=str(kw.get("process", "123:456")),
        started=kw.get("started", t),  # type: ignore[arg-type]
        heartbeat=kw.get("heartbeat", t),  # type: ignore[arg-type]
        every=float(kw.get("every", 10.0)),  # type: ignore[arg-type]
    )


def test_instances_register_refresh_and_go(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        assert await store.list_instances() == []
        a = instance("aaaa000000000000")
        b = instance("bbbb000000000000", every=1.5)
        await store.heartbeat_instance(b)
        await store.heartbeat_instance(a)
        assert await store.list_instances() == [a, b]
        later = instance("aaaa000000000000", heartbeat=a.heartbeat + timedelta(seconds=10))
        await store.heartbeat_instance(later)  # a refresh replaces the record, adds none
        assert await store.list_instances() == [later, b]
        assert await store.remove_instance("aaaa000000000000")
        assert not await store.remove_instance("aaaa000000000000")
        assert await store.list_instances() == [b]

    with_store(body)


def test_lease_one_holder_per_term(open_store) -> None:
    """Concurrent takers on two store instances: exactly one wins each term."""

    async def main() -> None:
        a, b = await open_store(), await open_store()
        try:
            results = await asyncio.gather(
                *((a if i % 2 else b).take_lease("recovery", 100, f"h{i}") for i in range(8))
            )
            assert sum(results) == 1
            assert not await a.take_lease("recovery", 100, "late")
            assert await b.take_lease("recovery", 101, "next")
            assert await a.take_lease("other", 100, "x")  # leases are per name
            # old terms are purged, so a term far back can be taken again (never happens in
            # practice: terms only grow)
            assert await a.take_lease("recovery", 500, "later")
            assert await b.take_lease("recovery", 100, "again")
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_list_intents_by_id(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        ids = [f"{p}{n:016x}" for p in ("b" * 16, "a" * 16) for n in range(3)]
        for i in ids:
            await store.begin_write(intent(i, key=i))
        assert [i.id for i in await store.list_intents()] == sorted(ids)
        seen: list[str] = []
        after = ""
        while True:
            page = await store.list_intents(start_after=after, limit=4)
            seen.extend(i.id for i in page)
            if len(page) < 4:
                break
            after = page[-1].id
        assert seen == sorted(ids)
        await store.commit_write(ids[0], record("raw", ids[0], 1, "s1"))
        assert ids[0] not in [i.id for i in await store.list_intents()]
        assert await store.list_intents(limit=0) == []

    with_store(body)


def test_list_claims(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        assert await store.list_claims() == []
        claims = [("raw", "b", "i1"), ("raw", "a", "i2"), ("cold", "z", "i3"), ("raw", "a/", "i4")]
        for bucket, key, holder in claims:
            assert await store.claim_key(bucket, key, holder)
        expected = sorted(claims)
        assert await store.list_claims() == expected
        seen: list[tuple[str, str, str]] = []
        after = ("", "")
        while True:
            page = await store.list_claims(start_after=after, limit=3)
            seen.extend(page)
            if len(page) < 3:
                break
            after = (page[-1][0], page[-1][1])
        assert seen == expected
        assert await store.list_claims(start_after=("raw", "a")) == [
            ("raw", "a/", "i4"),
            ("raw", "b", "i1"),
        ]
        assert await store.release_claim("raw", "b", "i1")
        assert ("raw", "b", "i1") not in await store.list_claims()

    with_store(body)


def test_list_multiparts_by_age(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        t = now()
        uploads = [
            MultipartRecord(f"u{i}", "raw", f"k{i}", "s1", "alice", t - timedelta(days=i))
            for i in range(5)
        ]
        for upload in uploads:
            await store.create_multipart(upload)
        old = await store.list_multiparts(created_before=t - timedelta(days=2))
        assert [u.upload_id for u in old] == ["u4", "u3"]  # the days before, oldest first
        assert old[0] == uploads[4]
        assert [
            u.upload_id
            for u in await store.list_multiparts(created_before=t - timedelta(hours=1), limit=2)
        ] == ["u4", "u3"]
        await store.delete_multipart("u4")
        assert [u.upload_id for u in await store.list_multiparts(created_before=t)] == [
            "u3",
            "u2",
            "u1",
        ]

    with_store(body)
