"""The metadata store contract for ``minimo verify`` (gateway.usecases.verify): each current
record keeps when its bytes were last verified and the result, only for the write verified.

Every test runs against ``sqlite`` and ``mongo`` (FerretDB), with the fixtures of test_store.
"""

from __future__ import annotations

from datetime import timedelta

from policy.store import MetadataStore
from tests.unit import test_store as contract
from tests.unit.test_store_sessions import intent, now, record

store_location = contract.store_location
open_store = contract.open_store
with_store = contract.with_store


def test_verified_time_and_result_kept_on_the_current_record(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        await store.begin_write(intent("i1", key="a/1"))
        committed = await store.commit_write("i1", record("raw", "a/1", 5, "s1"))
        assert committed.verified is None and committed.verify_result is None
        fresh = await store.get_object_record("raw", "a/1")
        assert fresh is not None and fresh.verified is None and fresh.verify_result is None

        when = now()
        assert await store.set_verified("raw", "a/1", "i1", when, "ok")
        got = await store.get_object_record("raw", "a/1")
        assert got is not None
        assert got.verify_result == "ok"
        assert got.verified is not None and abs(got.verified - when) < timedelta(milliseconds=1)
        assert got.verified.utcoffset() == timedelta(0)
        # every way a record is read carries it
        [listed] = await store.list_object_records("raw")
        assert (listed.verified, listed.verify_result) == (got.verified, "ok")
        [in_session], _ = await store.list_session_objects("s1")
        assert (in_session.verified, in_session.verify_result) == (got.verified, "ok")
        # still the same write: the verification does not change the record's value
        assert got == committed

        later = when + timedelta(hours=1)
        assert await store.set_verified("raw", "a/1", "i1", later, "changed")
        got = await store.get_object_record("raw", "a/1")
        assert got is not None and got.verify_result == "changed"

    with_store(body)


def test_a_new_write_starts_unverified_and_old_results_stay_off_it(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        await store.begin_write(intent("i1", key="k"))
        await store.commit_write("i1", record("raw", "k", 5, "s1"))
        assert await store.set_verified("raw", "k", "i1", now(), "ok")
        await store.begin_write(intent("i2", key="k"))
        await store.commit_write("i2", record("raw", "k", 7, "s1", etag='"f"'))
        got = await store.get_object_record("raw", "k")
        assert got is not None and got.size == 7
        assert got.verified is None and got.verify_result is None
        # a verify that read the first write must not stamp the second
        assert not await store.set_verified("raw", "k", "i1", now(), "changed")
        got = await store.get_object_record("raw", "k")
        assert got is not None and got.verify_result is None
        # no record at all: nothing to keep
        assert not await store.set_verified("raw", "nothing", "i1", now(), "missing")
        # the history is the writes only
        history = await store.list_object_history("raw", "k")
        assert [r.size for r in history] == [5, 7]
        assert all(r.verified is None for r in history)

    with_store(body)
