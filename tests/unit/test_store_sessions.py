"""Metadata store contract, issue 3: forms, policies, sessions, session keys, object records,
write-once claims, multipart uploads and the audit log, on both backends.

The fixtures come from ``test_store`` (each test runs against sqlite and against mongo on the
session's FerretDB server).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from cryptography.fernet import Fernet

from policy.crypto import SecretBox
from policy.identity import IdentityService
from policy.store import (
    AlreadyExists,
    AuditEvent,
    FieldFilter,
    KeyBusy,
    KeyRecord,
    MetadataStore,
    MultipartRecord,
    NotFound,
    ObjectRecord,
    SessionQuery,
    SessionRecord,
    WriteIntent,
)
from policy.store.mongo import (
    AUDIT,
    HISTORY_FIELD,
    OBJECT_HISTORY,
    OBJECTS,
    SESSION_CLOSURES,
    MongoMetadataStore,
)
from policy.store.mongo import _audit_doc as _mongo_audit_doc
from policy.store.mongo import _object_doc as _mongo_object_doc
from policy.store.sqlite import MIGRATIONS, SqliteStore
from tests.unit import test_store as contract

# The contract fixtures (each test runs on sqlite and on mongo), shared with test_store.
store_location = contract.store_location
open_store = contract.open_store
with_store = contract.with_store
user = contract.user


def now() -> datetime:
    return contract.now()


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def session(
    sid: str,
    *,
    values: dict[str, Any] | None = None,
    form: str = "imaging",
    owner: str = "alice",
    bucket: str = "raw",
    created: datetime = T0,
    ttl: timedelta = timedelta(days=7),
    access_key: str | None = None,
) -> SessionRecord:
    return SessionRecord(
        id=sid,
        form_name=form,
        form_version=1,
        values=values if values is not None else {"operator": "Ann"},
        bucket=bucket,
        prefix=f"{sid}/",
        owner=owner,
        state="open",
        created=created,
        expires=created + ttl,
        access_key=access_key,
    )


def record(bucket: str, key: str, size: int, session_id: str | None, **kw: Any) -> ObjectRecord:
    return ObjectRecord(
        bucket=bucket,
        key=key,
        size=size,
        etag=kw.get("etag", '"e"'),
        sha256=kw.get("sha256", "0" * 64),
        content_type=kw.get("content_type", "application/octet-stream"),
        session_id=session_id,
        principal=kw.get("principal", "alice"),
        committed=kw.get("committed", now()),
    )


def intent(iid: str, bucket: str = "raw", key: str = "k", sid: str | None = "s1", **kw: Any):
    started = kw.get("started", now())
    return WriteIntent(
        iid, bucket, key, sid, "alice", started, kw.get("upload"), kw.get("kind", "write")
    )


# -- forms ---------------------------------------------------------------------------------------
def test_forms_are_versioned(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        assert await store.get_form("imaging") is None
        assert await store.list_forms() == []
        d1 = {"name": "imaging", "fields": [{"name": "operator", "type": "text"}]}
        # a "$" key and an int/float pair must come back exactly as given
        d2 = {**d1, "title": "Imaging run", "$comment": "x", "n": [1, 1.5, True, None]}
        v1 = await store.create_form_version("imaging", d1, "alice")
        v2 = await store.create_form_version("imaging", d2, "bob", created=T0)
        other = await store.create_form_version("cells", {"name": "cells"}, "alice")
        assert (v1.version, v2.version, other.version) == (1, 2, 1)
        assert v2.definition == d2 and v2.created == T0 and v2.created_by == "bob"
        assert v1.created.tzinfo is not None
        assert await store.get_form("imaging") == v2
        assert await store.get_form("imaging", 1) == v1
        assert await store.get_form("imaging", 3) is None
        assert await store.list_forms() == [other, v2]
        assert await store.list_form_versions("imaging") == [v1, v2]
        assert await store.list_form_versions("nothing") == []

    with_store(body)


def test_concurrent_form_versions_are_distinct(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        made = await asyncio.gather(
            *(store.create_form_version("f", {"i": i}, f"u{i}") for i in range(10))
        )
        assert sorted(r.version for r in made) == list(range(1, 11))
        stored = await store.list_form_versions("f")
        assert [r.version for r in stored] == list(range(1, 11))
        assert sorted(r.definition["i"] for r in stored) == list(range(10))

    with_store(body)


# -- policy --------------------------------------------------------------------------------------
def test_policy_versions(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        assert await store.get_policy() is None
        doc = {"rule": [{"bucket": "raw", "prefix": "*", "forms": ["imaging"]}]}
        p1 = await store.set_policy(doc, '[[rule]]\nbucket = "raw"\n', "admin")
        p2 = await store.set_policy({"rule": []}, "", "root", created=T0)
        assert (p1.version, p2.version) == (1, 2)
        assert p1.document == doc and p1.source.startswith("[[rule]]")
        assert await store.get_policy() == p2
        assert await store.get_policy(1) == p1
        assert await store.get_policy(9) is None
        more = await asyncio.gather(*(store.set_policy({}, "", "x") for _ in range(5)))
        assert sorted(p.version for p in more) == [3, 4, 5, 6, 7]

    with_store(body)


# -- sessions ------------------------------------------------------------------------------------
def test_session_round_trip(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        s = session("s1", values={"operator": "Ann", "temp_c": 21.5, "tags": ["a", "b"]})
        assert await store.create_session(s) == s
        assert await store.get_session("s1") == s
        assert await store.get_session("nope") is None
        with pytest.raises(AlreadyExists):
            await store.create_session(session("s1", owner="bob"))
        assert s.is_open(T0) and not s.is_open(T0 + timedelta(days=8))

    with_store(body)


def test_close_session_first_close_wins(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        await store.create_session(session("s1"))
        t = now()
        closed = await store.close_session("s1", t, "alice")
        assert (closed.state, closed.closed, closed.closed_by) == ("closed", t, "alice")
        again = await store.close_session("s1", t + timedelta(hours=1), "admin")
        assert again == closed == await store.get_session("s1")
        assert not closed.is_open(T0)
        with pytest.raises(NotFound):
            await store.close_session("nope", t, "alice")

    with_store(body)


def test_a_session_keeps_its_title_and_only_an_open_one_is_extended(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        created = await store.create_session(replace(session("s1"), title="M0042 · day1"))
        assert created.title == "M0042 · day1"
        assert (await store.get_session("s1")).title == "M0042 · day1"
        later = created.expires + timedelta(days=1)
        extended = await store.extend_session("s1", later)
        assert extended.expires == later == (await store.get_session("s1")).expires
        assert (await store.search_sessions(SessionQuery(owner="alice"))).sessions == [extended]
        closed = await store.close_session("s1", now(), "alice")
        assert await store.extend_session("s1", later + timedelta(days=1)) == closed
        with pytest.raises(NotFound):
            await store.extend_session("nope", later)

    with_store(body)


def test_concurrent_close_has_one_winner(open_store) -> None:
    """Ten closers on two store instances (two processes): all are told the same winner."""

    async def main() -> None:
        a, b = await open_store(), await open_store()
        try:
            await a.create_session(session("race"))
            t = now()
            results = await asyncio.gather(
                *(
                    (a if i % 2 else b).close_session("race", t + timedelta(seconds=i), f"u{i}")
                    for i in range(10)
                )
            )
            winners = {(r.closed, r.closed_by) for r in results}
            assert len(winners) == 1
            ((closed, by),) = winners
            assert closed == t + timedelta(seconds=int(by[1:]))
            assert await a.get_session("race") == await b.get_session("race") == results[0]
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


SAMPLE = [
    # id, owner, form, bucket, created offset (h), values, state
    (
        "a",
        "alice",
        "imaging",
        "raw",
        0,
        {"operator": "Ann Lee", "temp_c": 20, "ok": True, "day": "2026-03-01", "tags": ["x", "y"]},
    ),
    (
        "b",
        "bob",
        "imaging",
        "raw",
        1,
        {"operator": "Bob", "temp_c": 25.5, "ok": False, "day": "2026-03-05", "tags": ["y"]},
    ),
    (
        "c",
        "alice",
        "cells",
        "lab",
        2,
        {"operator": "ANNA", "temp_c": 37, "ok": True, "day": "2026-04-01"},
    ),
    (
        "d",
        "carol",
        "imaging",
        "lab",
        3,
        {
            "operator": "Dee",
            "temp_c": "7",
            "ok": 1,
            "day": "2026-02-28",
            "at": "2026-03-01T10:00:00Z",
        },
    ),
    ("e", "alice", "imaging", "raw", 4, {"operator": "Eve", "temp_c": 50}),
]


async def _seed(store: MetadataStore) -> None:
    for sid, owner, form, bucket, hours, values in SAMPLE:
        ttl = timedelta(hours=1) if sid == "e" else timedelta(days=30)
        await store.create_session(
            session(
                sid,
                values=values,
                owner=owner,
                form=form,
                bucket=bucket,
                created=T0 + timedelta(hours=hours),
                ttl=ttl,
            )
        )
    await store.close_session("b", T0 + timedelta(hours=5), "bob")


async def _ids(store: MetadataStore, **kw: Any) -> list[str]:
    kw.setdefault("now", T0 + timedelta(days=1))
    page = await store.search_sessions(SessionQuery(**kw))
    assert page.total == len(page.sessions)
    return [s.id for s in page.sessions]


def test_search_by_columns_and_state(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        await _seed(store)
        assert await _ids(store) == ["e", "d", "c", "b", "a"]  # newest first
        assert await _ids(store, descending=False) == ["a", "b", "c", "d", "e"]
        assert await _ids(store, owner="alice") == ["e", "c", "a"]
        assert await _ids(store, form_name="cells") == ["c"]
        assert await _ids(store, bucket="lab") == ["d", "c"]
        assert await _ids(store, state="closed") == ["b"]
        assert await _ids(store, state="expired") == ["e"]  # open, past its expiry
        assert await _ids(store, state="open") == ["d", "c", "a"]
        assert await _ids(store, state="open", now=T0) == ["e", "d", "c", "a"]
        # e expires at T0+5h: still open at that instant, expired just after (as is_open says)
        at = T0 + timedelta(hours=5)
        assert await _ids(store, state="open", now=at) == ["e", "d", "c", "a"]
        assert await _ids(store, state="expired", now=at + timedelta(milliseconds=1)) == ["e"]
        e = await store.get_session("e")
        assert e is not None and e.is_open(at) and not e.is_open(at + timedelta(milliseconds=1))
        assert await _ids(
            store, created_from=T0 + timedelta(hours=1), created_to=T0 + timedelta(hours=3)
        ) == ["d", "c", "b"]
        assert await _ids(store, owner="alice", bucket="raw", state="open") == ["a"]
        assert await _ids(store, owner="nobody") == []

    with_store(body)


def test_search_by_field_values(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        await _seed(store)

        async def where(*filters: tuple[str, str, Any], **kw: Any) -> list[str]:
            fields = tuple(FieldFilter(f, op, v) for f, op, v in filters)
            return await _ids(store, fields=fields, **kw)

        assert await where(("operator", "eq", "Bob")) == ["b"]
        assert await where(("operator", "eq", "bob")) == []  # equality is exact
        assert await where(("temp_c", "eq", 20)) == ["a"]
        assert await where(("temp_c", "eq", 20.0)) == ["a"]  # numbers compare as numbers
        assert await where(("temp_c", "eq", 25.5)) == ["b"]
        assert await where(("ok", "eq", True)) == ["c", "a"]  # not d's integer 1
        assert await where(("ok", "eq", False)) == ["b"]
        assert await where(("tags", "eq", "y")) == ["b", "a"]  # any element of a list
        # numeric ranges, inclusive; d's text "7" is not a number
        assert await where(("temp_c", "min", 25.5)) == ["e", "c", "b"]
        assert await where(("temp_c", "max", 25.5)) == ["b", "a"]
        assert await where(("temp_c", "min", 20), ("temp_c", "max", 37)) == ["c", "b", "a"]
        # ISO dates and datetimes compare as text
        assert await where(("day", "min", "2026-03-01"), ("day", "max", "2026-03-31")) == [
            "b",
            "a",
        ]
        assert await where(("at", "min", "2026-03-01T00:00:00Z")) == ["d"]
        assert await where(("at", "max", "2026-03-01T09:59:59Z")) == []
        # substring, case-insensitive, regex characters taken literally
        assert await where(("operator", "contains", "ann")) == ["c", "a"]
        assert await where(("operator", "contains", "N L")) == ["a"]
        assert await where(("operator", "contains", ".*")) == []
        assert await where(("missing", "eq", "x")) == []
        # combined with column filters
        assert await where(("operator", "contains", "an"), owner="alice", bucket="raw") == ["a"]

    with_store(body)


def test_search_any_of_free_text(with_store) -> None:
    """``any_of``: at least one holds (the metadata browser's free text is a ``contains`` on
    every text field), combined with the conditions that must all hold."""

    async def body(store: MetadataStore) -> None:
        await _seed(store)

        async def anywhere(text: str, *names: str, **kw: Any) -> list[str]:
            any_of = tuple(FieldFilter(name, "contains", text) for name in names)
            return await _ids(store, any_of=any_of, **kw)

        assert await anywhere("ann", "operator", "tags") == ["c", "a"]
        assert await anywhere("y", "operator", "tags") == ["b", "a"]  # a list element matches
        assert await anywhere("BOB", "operator", "tags") == ["b"]
        assert await anywhere("ann", "tags") == []
        assert await anywhere("ann", "operator", "tags", owner="alice", bucket="raw") == ["a"]
        fields = (FieldFilter("operator", "contains", "ann"),)
        assert await anywhere("y", "operator", "tags", fields=fields) == ["a"]

    with_store(body)


def test_search_sort_by_field(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        await _seed(store)
        numbers = [
            s
            for s in await _ids(store, sort_field="temp_c", descending=False)
            if s != "d"  # d's text value sorts by type, differently per backend
        ]
        assert numbers == ["a", "b", "c", "e"]
        assert await _ids(store, sort_field="operator") == ["e", "d", "b", "a", "c"]

    with_store(body)


def test_search_sort_by_column(with_store) -> None:
    """Owner, bucket and form sort either way; ties stay newest first, also across pages."""

    async def body(store: MetadataStore) -> None:
        await _seed(store)
        assert await _ids(store, sort_column="owner", descending=False) == list("ecabd")
        assert await _ids(store, sort_column="owner") == list("dbeca")
        assert await _ids(store, sort_column="bucket", descending=False) == list("dceba")
        assert await _ids(store, sort_column="bucket") == list("ebadc")
        assert await _ids(store, sort_column="form_name", descending=False) == list("cedba")
        assert await _ids(store, sort_column="owner", owner="alice") == list("eca")
        # a page boundary inside a tie (alice's three sessions): the cursor and offsets agree
        walked: list[str] = []
        cursor = None
        while True:
            page = await store.search_sessions(
                SessionQuery(sort_column="owner", descending=False, limit=2, cursor=cursor)
            )
            walked.extend(s.id for s in page.sessions)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert walked == list("ecabd")
        second = await store.search_sessions(
            SessionQuery(sort_column="owner", descending=False, limit=2, offset=2)
        )
        assert [s.id for s in second.sessions] == ["a", "b"] and second.total == 5

    with_store(body)


def test_search_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        FieldFilter("a.b", "eq", "x")
    with pytest.raises(ValueError):
        FieldFilter('a"', "eq", "x")
    with pytest.raises(ValueError):
        FieldFilter("a", "contains", 5)
    with pytest.raises(ValueError):
        FieldFilter("a", "min", True)
    with pytest.raises(ValueError):
        FieldFilter("a", "like", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SessionQuery(sort_field="$where")
    with pytest.raises(ValueError):
        SessionQuery(limit=0)
    with pytest.raises(ValueError):
        SessionQuery(state="gone")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SessionQuery(sort_column="values")  # type: ignore[arg-type]


def test_search_pagination_through_250(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        sessions = [
            session(
                f"s{i:03d}",
                values={"n": i, "even": i % 2 == 0},
                # pairs share a creation time, so the id must break the tie
                created=T0 + timedelta(seconds=i // 2),
                owner="alice" if i % 5 else "bob",
            )
            for i in range(250)
        ]
        for start in range(0, 250, 50):
            await asyncio.gather(*(store.create_session(s) for s in sessions[start : start + 50]))

        async def walk(**kw: Any) -> tuple[list[str], set[int]]:
            seen: list[str] = []
            totals: set[int] = set()
            cursor = None
            while True:
                page = await store.search_sessions(SessionQuery(cursor=cursor, **kw))
                totals.add(page.total)
                seen.extend(s.id for s in page.sessions)
                if page.next_cursor is None:
                    return seen, totals
                cursor = page.next_cursor

        ids = [s.id for s in sessions]
        seen, totals = await walk(limit=40)
        assert seen == ids[::-1] and totals == {250}
        seen, totals = await walk(limit=40, descending=False)
        assert seen == ids and totals == {250}
        seen, totals = await walk(limit=7, owner="bob")
        assert seen == [i for i in ids[::-1] if int(i[1:]) % 5 == 0] and totals == {50}
        even = FieldFilter("even", "eq", True)
        seen, totals = await walk(limit=30, fields=(even, FieldFilter("n", "min", 100)))
        assert seen == [i for i in ids[::-1] if int(i[1:]) % 2 == 0 and int(i[1:]) >= 100]
        assert totals == {75}
        seen, totals = await walk(limit=60, sort_field="n", descending=True)
        assert seen == ids[::-1] and totals == {250}

        # a keyset cursor stays right when newer sessions arrive between pages
        first = await store.search_sessions(SessionQuery(limit=10))
        await store.create_session(session("zz-new", created=T0 + timedelta(days=1)))
        second = await store.search_sessions(SessionQuery(limit=10, cursor=first.next_cursor))
        assert [s.id for s in second.sessions] == ids[::-1][10:20]
        assert second.total == 251

        # offset paging ("page 3")
        page = await store.search_sessions(SessionQuery(limit=10, offset=20, descending=False))
        assert [s.id for s in page.sessions] == ids[20:30]
        # a walk that knows the total may skip counting: same page, total -1
        uncounted = await store.search_sessions(
            SessionQuery(limit=10, offset=20, descending=False, count=False)
        )
        assert uncounted.sessions == page.sessions and uncounted.total == -1

        with pytest.raises(ValueError):
            await store.search_sessions(SessionQuery(cursor="not a cursor"))

    with_store(body)


# -- session keys --------------------------------------------------------------------------------
def test_session_keys(with_store, tmp_path: Path) -> None:
    async def body(store: MetadataStore) -> None:
        await store.create_user(user("alice"))
        box = SecretBox(Fernet.generate_key())
        personal = KeyRecord("MKPERSONAL0000000001", box.encrypt("p" * 40), "alice", now())
        skey = KeyRecord("MKSESSION00000000001", box.encrypt("s" * 40), "alice", now(), None, "s1")
        await store.create_key(personal)
        await store.create_key(skey)
        assert await store.get_key(skey.access_key) == skey
        assert (await store.get_key(personal.access_key)).session_id is None  # type: ignore[union-attr]
        assert await store.list_keys("alice") == [personal, skey]
        revoked = await store.revoke_key(skey.access_key, now())
        assert revoked.session_id == "s1"

        identity = IdentityService(store, box)
        cred = await identity.credential(personal.access_key)
        assert cred is not None and cred.principal.session_id is None
        await store.create_key(
            KeyRecord("MKSESSION00000000002", box.encrypt("t" * 40), "alice", now(), None, "s2")
        )
        cred = await identity.credential("MKSESSION00000000002")
        assert cred is not None and cred.principal.session_id == "s2"
        assert cred.secret_key == "t" * 40

    with_store(body)


# -- writes and object records -------------------------------------------------------------------
def test_write_protocol(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        i1 = intent("i1", key="s1/a.tif")
        await store.begin_write(i1)
        assert await store.get_intent("i1") == i1
        with pytest.raises(AlreadyExists):
            await store.begin_write(i1)
        r1 = record("raw", "s1/a.tif", 100, "s1", sha256="a" * 64)
        assert await store.commit_write("i1", r1) == r1
        assert await store.get_intent("i1") is None
        assert await store.get_object_record("raw", "s1/a.tif") == r1
        assert await store.get_object_record("raw", "other") is None
        assert await store.commit_write("i1", r1) == r1  # repeating a commit is harmless
        assert await store.list_object_history("raw", "s1/a.tif") == [r1]

        # an overwrite (when a rule allows it) replaces the current record, history keeps both
        await store.begin_write(intent("i2", key="s1/a.tif", sid="s2"))
        r2 = record("raw", "s1/a.tif", 7, "s2", committed=r1.committed + timedelta(seconds=1))
        await store.commit_write("i2", r2)
        assert await store.get_object_record("raw", "s1/a.tif") == r2
        assert await store.list_object_history("raw", "s1/a.tif") == [r1, r2]
        assert await store.session_usage("s1") == (0, 0)
        assert await store.session_usage("s2") == (1, 7)

        # an aborted write leaves nothing but what was there
        await store.begin_write(intent("i3", key="s1/b"))
        await store.abort_write("i3")
        await store.abort_write("i3")  # unknown ids are ignored
        assert await store.get_intent("i3") is None
        assert await store.get_object_record("raw", "s1/b") is None

        assert await store.delete_object_record("raw", "s1/a.tif")
        assert not await store.delete_object_record("raw", "s1/a.tif")
        assert await store.get_object_record("raw", "s1/a.tif") is None
        assert await store.list_object_history("raw", "s1/a.tif") == [r1, r2]
        assert await store.session_usage("s2") == (0, 0)

    with_store(body)


def test_session_usage_and_listing(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        assert await store.session_usage("s1") == (0, 0)
        assert await store.list_session_objects("s1") == ([], None)
        keys = [f"s1/f{i:02d}" for i in range(25)]

        async def write(i: int, k: str) -> None:
            await store.begin_write(intent(f"w{i}", key=k))
            await store.commit_write(f"w{i}", record("raw", k, i + 1, "s1"))

        await asyncio.gather(*(write(i, k) for i, k in enumerate(keys)))
        await store.begin_write(intent("o1", key="s2/x", sid="s2"))
        await store.commit_write("o1", record("raw", "s2/x", 1000, "s2"))
        scratch = record("scratch", "tmp/x", 5, None)
        await store.begin_write(intent("o2", bucket="scratch", key="tmp/x", sid=None))
        assert await store.commit_write("o2", scratch) == scratch

        assert await store.session_usage("s1") == (25, sum(range(1, 26)))
        assert await store.session_usage("s2") == (1, 1000)
        seen: list[str] = []
        cursor = None
        while True:
            page, cursor = await store.list_session_objects("s1", limit=10, cursor=cursor)
            assert len(page) <= 10
            seen.extend(r.key for r in page)
            if cursor is None:
                break
        assert seen == keys

    with_store(body)


def test_list_object_records(with_store) -> None:
    """Every current record of one bucket, session or scratch, in UTF-8 byte order, by page."""

    async def body(store: MetadataStore) -> None:
        assert await store.list_object_records("raw") == []
        # Code points past the BMP sort after U+FF5E in UTF-8 (and in Python) but before it in
        # UTF-16, so a store comparing UTF-16 units would get this order wrong.
        keys = ["s1/a", "s1/b", "tmp/\uff5e", "tmp/\U0001f600", "tmp/\u00e9", "Z", "~", "s2/x"]
        sessions = ["s1", "s1", None, None, None, None, None, "s2"]
        for i, (key, sid) in enumerate(zip(keys, sessions, strict=True)):
            await store.begin_write(intent(f"w{i}", key=key, sid=sid))
            await store.commit_write(f"w{i}", record("raw", key, i + 1, sid))
        # neighbours that must not leak in: another bucket, one whose name extends "raw"
        for i, bucket in enumerate(("other", "raw2")):
            await store.begin_write(intent(f"n{i}", bucket=bucket, key="s1/a", sid=None))
            await store.commit_write(f"n{i}", record(bucket, "s1/a", 1, None))
        # an overwrite leaves one current record; a deleted record is gone from the listing
        replaced = record("raw", "s1/a", 99, None, committed=now() + timedelta(seconds=1))
        await store.begin_write(intent("over", key="s1/a", sid=None))
        await store.commit_write("over", replaced)
        assert await store.delete_object_record("raw", "s2/x")

        expected = sorted((k for k in keys if k != "s2/x"), key=lambda k: k.encode())
        listed = await store.list_object_records("raw")
        assert [r.key for r in listed] == expected
        assert {r.bucket for r in listed} == {"raw"}
        assert listed[expected.index("s1/a")] == replaced
        assert [r.session_id for r in listed if r.key.startswith("tmp/")] == [None, None, None]

        seen: list[str] = []
        after = ""
        while True:
            page = await store.list_object_records("raw", start_after=after, limit=3)
            assert len(page) <= 3
            seen.extend(r.key for r in page)
            if len(page) < 3:
                break
            after = page[-1].key
        assert seen == expected
        assert [r.key for r in await store.list_object_records("raw", start_after="s1/b")] == (
            expected[expected.index("s1/b") + 1 :]
        )
        assert await store.list_object_records("raw", start_after=expected[-1]) == []
        assert await store.list_object_records("raw", limit=0) == []
        assert await store.list_object_records("nothing") == []

    with_store(body)


def test_list_record_buckets(with_store) -> None:
    """The buckets holding current records, in byte order, by page; emptied buckets drop out."""

    async def body(store: MetadataStore) -> None:
        assert await store.list_record_buckets() == []
        names = ["raw", "raw2", "a-first", "zz", "cold"]
        for i, bucket in enumerate(names):
            for j in range(3):  # several records per bucket: each bucket is listed once
                await store.begin_write(intent(f"w{i}-{j}", bucket=bucket, key=f"k{j}", sid=None))
                await store.commit_write(f"w{i}-{j}", record(bucket, f"k{j}", 1, None))
        for j in range(3):
            assert await store.delete_object_record("zz", f"k{j}")
        expected = sorted(set(names) - {"zz"})
        assert await store.list_record_buckets() == expected
        seen: list[str] = []
        after = ""
        while True:
            page = await store.list_record_buckets(start_after=after, limit=2)
            assert len(page) <= 2
            seen.extend(page)
            if len(page) < 2:
                break
            after = page[-1]
        assert seen == expected
        assert await store.list_record_buckets(start_after="raw") == ["raw2"]
        assert await store.list_record_buckets(limit=0) == []

    with_store(body)


def test_stale_intents(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        t = now()
        old = [intent(f"old{i}", key=f"k{i}", started=t - timedelta(hours=2 + i)) for i in range(3)]
        fresh = intent("fresh", key="kf", started=t, upload="up-1")
        for i in (*old, fresh):
            await store.begin_write(i)
        assert await store.stale_intents(t - timedelta(hours=1)) == old[::-1]
        assert await store.stale_intents(t - timedelta(hours=1), limit=1) == [old[2]]
        assert await store.stale_intents(t + timedelta(seconds=1)) == [*old[::-1], fresh]
        await store.commit_write("old0", record("raw", "k0", 1, "s1"))
        await store.abort_write("old1")
        assert await store.stale_intents(t) == [old[2]]
        assert (await store.get_intent("fresh")).upload_id == "up-1"  # type: ignore[union-attr]

    with_store(body)


def test_claim_key_race(open_store) -> None:
    """Ten concurrent claimers on two store instances: exactly one wins, then and later."""

    async def main() -> None:
        a, b = await open_store(), await open_store()
        try:
            results = await asyncio.gather(
                *((a if i % 2 else b).claim_key("raw", "k", f"i{i}") for i in range(10))
            )
            assert sum(results) == 1
            winner = f"i{results.index(True)}"
            assert await a.get_claim("raw", "k") == winner
            assert not await b.claim_key("raw", "k", "late")
            # a loser cannot release the winner's claim
            assert not await a.release_claim("raw", "k", "late")
            assert await b.get_claim("raw", "k") == winner
            # the winner's write fails: it releases, and the key is fresh again
            assert await a.release_claim("raw", "k", winner)
            assert not await a.release_claim("raw", "k", winner)
            assert await a.get_claim("raw", "k") is None
            assert await b.claim_key("raw", "k", "second")
            # committed objects keep their claim; deleting the record releases it
            await b.begin_write(intent("second", key="k"))
            await b.commit_write("second", record("raw", "k", 1, "s1"))
            assert not await a.claim_key("raw", "k", "third")
            assert await a.delete_object_record("raw", "k")
            assert await a.claim_key("raw", "k", "third")
            # claims are per bucket and key
            assert await a.claim_key("other", "k", "x")
            assert await a.claim_key("raw", "k2", "y")
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_concurrent_writes_fail_alone(with_store) -> None:
    """Many writes in flight at once (sqlite commits them in groups): a lost claim or a taken
    intent id fails only its own caller, and every awaited commit and audit event is stored."""

    async def body(store: MetadataStore) -> None:
        await store.begin_write(intent("taken", key="other"))
        results = await asyncio.gather(
            *(store.start_write(intent(f"w{i}", key="same"), claim=True) for i in range(8)),
            *(store.start_write(intent(f"f{i}", key=f"f{i}"), claim=False) for i in range(8)),
            store.start_write(intent("taken", key="again"), claim=True),
            return_exceptions=True,
        )
        assert sum(r is True for r in results[:8]) == 1
        assert results[8:16] == [True] * 8
        assert isinstance(results[16], AlreadyExists)
        # the failed start left nothing behind: no claim on its key, the first intent intact
        assert await store.get_claim("raw", "again") is None
        assert (await store.get_intent("taken")).key == "other"  # type: ignore[union-attr]
        winner = f"w{results.index(True)}"
        assert await store.get_claim("raw", "same") == winner

        def event(key: str) -> AuditEvent:
            return AuditEvent(now(), "alice", "PutObject", f"s3://raw/{key}", "allowed", None, {})

        done = await asyncio.gather(
            *(
                store.finish_write(f"f{i}", record("raw", f"f{i}", i, "s1"), event(f"f{i}"))
                for i in range(8)
            ),
            store.finish_write(winner, record("raw", "same", 1, "s1"), event("same")),
        )
        assert [r.size for r in done] == [*range(8), 1]
        for i in range(8):
            assert await store.get_intent(f"f{i}") is None
            assert (await store.get_object_record("raw", f"f{i}")).size == i  # type: ignore[union-attr]
        events, _ = await store.list_audit(action="PutObject")
        assert sorted(e.target for e in events) == sorted(
            [*(f"s3://raw/f{i}" for i in range(8)), "s3://raw/same"]
        )

    with_store(body)


def _event(key: str, action: str = "PutObject") -> AuditEvent:
    return AuditEvent(now(), "alice", action, f"s3://raw/{key}", "allowed", None, {})


async def _targets(store: MetadataStore, action: str) -> list[str]:
    events, _ = await store.list_audit(action=action, limit=1000)
    return sorted(e.target for e in events)


def test_finish_write_and_delete_carry_their_audit_event(with_store) -> None:
    """A write's record and its audit event are stored by one call (decision 4), as are a
    delete's record removal, claim release and audit event."""

    async def body(store: MetadataStore) -> None:
        assert await store.start_write(intent("w1", key="a"), claim=True)
        stored = await store.finish_write("w1", record("raw", "a", 3, "s1"), _event("a"))
        assert stored.intent_id == "w1" and stored.size == 3
        assert (await store.get_object_record("raw", "a")).intent_id == "w1"  # type: ignore[union-attr]
        assert await store.get_intent("w1") is None
        assert await _targets(store, "PutObject") == ["s3://raw/a"]

        assert await store.finish_delete("raw", "a", _event("a", "DeleteObject"))
        assert await store.get_object_record("raw", "a") is None
        assert await store.get_claim("raw", "a") is None  # the key is writable again
        # deleting what has no record still records the (acknowledged) delete
        assert not await store.finish_delete("raw", "a", _event("a", "DeleteObject"))
        assert await _targets(store, "DeleteObject") == ["s3://raw/a", "s3://raw/a"]

    with_store(body)


def test_linked_data_keeps_its_modification_time(with_store) -> None:
    """A record of linked data (adopt) carries when its bytes last changed, in the current record
    and its history; a client's write carries none (its bytes are as old as the write)."""

    async def body(store: MetadataStore) -> None:
        modified = datetime(2019, 3, 14, 15, 9, 26, tzinfo=UTC)
        await store.start_write(intent("linked", key="old"), claim=True)
        linked = replace(record("raw", "old", 5, "s1"), modified=modified)
        stored = await store.finish_write("linked", linked, _event("old"))
        assert stored.modified == modified
        current = await store.get_object_record("raw", "old")
        assert current is not None and current.modified == modified
        (history,) = await store.list_object_history("raw", "old")
        assert history.modified == modified
        await store.start_write(intent("plain", key="new"), claim=True)
        await store.finish_write("plain", record("raw", "new", 1, "s1"), _event("new"))
        plain = await store.get_object_record("raw", "new")
        assert plain is not None and plain.modified is None

    with_store(body)


def test_roll_back_write(with_store) -> None:
    """Rolling back drops the intent and its claim (the key is free again), and leaves the
    records and claims of other writes alone. Idempotent."""

    async def body(store: MetadataStore) -> None:
        await store.start_write(intent("old", key="b"), claim=False)
        await store.finish_write("old", record("raw", "b", 1, "s1"), _event("b"))
        failed = intent("failed", key="c")
        assert await store.start_write(failed, claim=True)
        await store.roll_back_write(failed)
        await store.roll_back_write(failed)
        assert await store.get_intent("failed") is None
        assert await store.get_claim("raw", "c") is None
        assert await store.claim_key("raw", "c", "next")
        # a rollback of an intent that never committed leaves another write's record alone
        other = intent("other", key="b")
        await store.begin_write(other)
        await store.roll_back_write(other)
        assert (await store.get_object_record("raw", "b")).intent_id == "old"  # type: ignore[union-attr]
        assert await _targets(store, "PutObject") == ["s3://raw/b"]
        # a writer taken for dead and rolled back by recovery cannot commit afterwards: its
        # finish fails, and rolling back again (what the writer then does) leaves nothing
        late = intent("late", key="e")
        assert await store.start_write(late, claim=True)
        await store.roll_back_write(late)
        with pytest.raises(NotFound):
            await store.finish_write("late", record("raw", "e", 2, "s1"), _event("e"))
        await store.roll_back_write(late)
        assert await store.get_object_record("raw", "e") is None
        assert await store.list_object_history("raw", "e") == []
        assert await _targets(store, "PutObject") == ["s3://raw/b"]

    with_store(body)


def test_writes_beside_a_delete(with_store) -> None:
    """A delete intent keeps writes of its key from committing across the delete: a write in
    flight when the delete starts (or one that slips in before it ends) cannot commit, and a
    write that starts while it runs is refused with nothing left behind. Other keys are free."""

    async def body(store: MetadataStore) -> None:
        assert await store.start_write(intent("early", key="k"), claim=False)
        assert await store.start_write(intent("other", key="k2"), claim=False)
        deleting = intent("del", key="k", kind="delete")
        await store.start_delete(deleting)
        assert (await store.get_intent("del")).kind == "delete"  # type: ignore[union-attr]
        assert await store.delete_in_progress("raw", "k")
        assert not await store.delete_in_progress("raw", "k2")
        # the write that was in flight is superseded: its finish fails, its rollback is clean
        with pytest.raises(KeyBusy):
            await store.finish_write("early", record("raw", "k", 1, "s1"), _event("k"))
        await store.roll_back_write(intent("early", key="k"))
        assert await store.get_object_record("raw", "k") is None
        assert await _targets(store, "PutObject") == []
        # a write that starts now is refused and leaves no intent or claim
        for claim in (False, True):
            with pytest.raises(KeyBusy):
                await store.start_write(intent(f"late{claim}", key="k"), claim=claim)
            assert await store.get_intent(f"late{claim}") is None
        assert await store.get_claim("raw", "k") is None
        # another key is not held up
        await store.finish_write("other", record("raw", "k2", 2, "s1"), _event("k2"))
        # finishing the delete drops its intent: writes of the key go through again
        assert not await store.finish_delete("raw", "k", _event("k", "DeleteObject"), "del")
        assert await store.get_intent("del") is None
        assert not await store.delete_in_progress("raw", "k")
        assert await store.start_write(intent("after", key="k"), claim=True)
        await store.finish_write("after", record("raw", "k", 3, "s1"), _event("k"))
        assert (await store.get_object_record("raw", "k")).intent_id == "after"  # type: ignore[union-attr]
        # a write that started before the delete's finish (but after its start was refused
        # to others) is marked again by the finish: here one begun by a store-level caller
        await store.begin_write(intent("sneaky", key="k"))
        await store.start_delete(intent("del2", key="k", kind="delete"))
        await store.finish_delete("raw", "k", _event("k", "DeleteObject"), "del2")
        with pytest.raises(KeyBusy):
            await store.finish_write("sneaky", record("raw", "k", 4, "s1"), _event("k"))

    with_store(body)


def test_mongo_roll_back_of_a_partly_stored_commit(ferretdb: str) -> None:
    """Without transactions a finish can stop half way (the store went away between its
    steps): rolling the intent back removes its audit event, history entry and record."""

    async def main() -> None:
        store = MongoMetadataStore(ferretdb, f"t_{secrets.token_hex(6)}")
        await store.open()
        try:
            failed = intent("half", key="d")
            assert await store.start_write(failed, claim=True)
            # what finish_write stores before dropping the intent, without that last step
            # (the audit event holds the history entry; commit_write and earlier versions kept
            # it in the history collection: both are removed)
            await store.db[AUDIT].insert_one(
                {
                    **_mongo_audit_doc(_event("d")),
                    "intent_id": "half",
                    HISTORY_FIELD: _mongo_object_doc(record("raw", "d", 5, "s1"), "half"),
                }
            )
            await store.db[OBJECT_HISTORY].insert_one(
                _mongo_object_doc(record("raw", "d", 5, "s1"), "half")
            )
            await store.db[OBJECTS].insert_one(
                _mongo_object_doc(record("raw", "d", 5, "s1"), "half")
            )
            await store.roll_back_write(failed)
            assert await store.get_object_record("raw", "d") is None
            assert await store.list_object_history("raw", "d") == []
            assert await _targets(store, "PutObject") == []
            assert await store.get_claim("raw", "d") is None
            assert await store.get_intent("half") is None
        finally:
            await store.close()

    asyncio.run(main())


def test_mongo_delete_finished_again_keeps_one_audit_event(ferretdb: str) -> None:
    """Without transactions a delete's finish can stop after its audit event, or do it all and
    lose its answer: the client heard 503, and the janitor (or recovery) finishes the delete
    again with its event marked not acknowledged. The log then holds that one event, not the
    first as well (a soak with FerretDB killed under load counted one delete twice)."""

    async def main() -> None:
        store = MongoMetadataStore(ferretdb, f"t_{secrets.token_hex(6)}")
        await store.open()
        try:
            assert await store.start_write(intent("w", key="k"), claim=True)
            await store.finish_write("w", record("raw", "k", 1, "s1"), _event("k"))
            await store.start_delete(intent("del", key="k", kind="delete"))
            told = _event("k", "DeleteObject")
            assert await store.finish_delete("raw", "k", told, "del")
            not_told = replace(told, details={"acknowledged": False})
            assert not await store.finish_delete("raw", "k", not_told, "del", again=True)
            events, _ = await store.list_audit(action="DeleteObject", limit=100)
            assert [(e.target, e.details) for e in events] == [
                ("s3://raw/k", {"acknowledged": False})
            ]
            # another delete of the key is another event
            await store.start_delete(intent("del2", key="k", kind="delete"))
            assert not await store.finish_delete("raw", "k", told, "del2")
            assert await _targets(store, "DeleteObject") == ["s3://raw/k", "s3://raw/k"]
            assert await store.get_intent("del") is None and await store.get_intent("del2") is None
        finally:
            await store.close()

    asyncio.run(main())


def test_reads_and_deletes_interleaved_with_group_commits(with_store) -> None:
    """Reads, record deletes and batched writes in flight at once. On sqlite a statement left
    open across an await used to collide with the group commit ("cannot open savepoint - SQL
    statements in progress") and fail unrelated writes."""

    async def body(store: MetadataStore) -> None:
        n = 60

        async def writer(i: int) -> None:
            assert await store.start_write(intent(f"x{i}", key=f"x{i}"), claim=True)
            await store.finish_write(f"x{i}", record("raw", f"x{i}", i, "s1"), _event(f"x{i}"))

        async def deleter(i: int) -> None:
            await store.finish_delete("raw", f"x{i}", _event(f"x{i}", "DeleteObject"))

        async def reader(i: int) -> None:
            await store.get_object_record("raw", f"x{i}")
            await store.list_object_records("raw", limit=20)
            await store.list_audit(limit=20)

        await asyncio.gather(*(writer(i) for i in range(n)))
        await asyncio.gather(
            *(deleter(i) for i in range(0, n, 2)),
            *(reader(i) for i in range(n)),
            *(writer(i) for i in range(n, 2 * n)),
        )
        left = {r.key for r in await store.list_object_records("raw", limit=1000)}
        assert left == {f"x{i}" for i in range(1, 2 * n) if i >= n or i % 2}
        assert len(await _targets(store, "PutObject")) == 2 * n
        assert len(await _targets(store, "DeleteObject")) == n // 2

    with_store(body)


# -- multipart uploads ---------------------------------------------------------------------------
def test_multipart_records(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        up = MultipartRecord("up-1", "raw", "s1/big.bin", "s1", "alice", now())
        await store.create_multipart(up)
        with pytest.raises(AlreadyExists):
            await store.create_multipart(up)
        scratch = MultipartRecord("up-2", "scratch", "x", None, "bob", now())
        await store.create_multipart(scratch)
        assert await store.get_multipart("up-1") == up
        assert await store.get_multipart("up-2") == scratch
        assert await store.get_multipart("nope") is None
        assert await store.delete_multipart("up-1")
        assert not await store.delete_multipart("up-1")
        assert await store.get_multipart("up-1") is None

    with_store(body)


# -- audit ---------------------------------------------------------------------------------------
def test_audit_log(with_store) -> None:
    async def body(store: MetadataStore) -> None:
        assert await store.list_audit() == ([], None)
        events = []
        for i in range(12):
            # three events per time: insertion order must break the tie
            event = AuditEvent(
                time=T0 + timedelta(seconds=i // 3),
                principal="alice" if i % 2 else "bob",
                action="PutObject" if i % 3 else "session.open",
                target=f"s3://raw/k{i}",
                outcome="refused" if i == 5 else "ok",
                reason="no session" if i == 5 else None,
                details={"i": i, "x-amz-meta.odd": "$v"},
            )
            events.append(await store.append_audit(event))
        assert events[0].details == {"i": 0, "x-amz-meta.odd": "$v"}
        got, cursor = await store.list_audit()
        assert got == events and cursor is None
        got, _ = await store.list_audit(principal="alice", action="PutObject")
        assert got == [e for e in events if e.principal == "alice" and e.action == "PutObject"]
        got, _ = await store.list_audit(
            since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3)
        )
        assert got == events[3:9]
        got, _ = await store.list_audit(descending=True, limit=100)
        assert got == events[::-1]
        # "refused only", and the actions the log holds (the audit page's filters)
        got, _ = await store.list_audit(outcome="refused")
        assert got == [events[5]]
        got, _ = await store.list_audit(outcome="refused", action="session.open")
        assert got == []
        assert await store.list_audit_actions() == ["PutObject", "session.open"]

        for descending in (False, True):
            seen: list[AuditEvent] = []
            cursor = None
            while True:
                page, cursor = await store.list_audit(limit=5, cursor=cursor, descending=descending)
                seen.extend(page)
                if cursor is None:
                    break
            assert seen == (events[::-1] if descending else events)

        with pytest.raises(ValueError):
            await store.list_audit(cursor="garbage")

    with_store(body)


# -- mongo specifics -----------------------------------------------------------------------------
def test_mongo_close_interrupted_before_copy(ferretdb: str) -> None:
    """A closer that died after recording its closure but before marking the session: the
    closure is the truth, reads report it and a later close keeps it."""

    async def main() -> None:
        store = MongoMetadataStore(ferretdb, f"t_{secrets.token_hex(6)}")
        await store.open()
        try:
            await store.create_session(session("s1"))
            t = now()
            await store.db[SESSION_CLOSURES].insert_one(
                {"session_id": "s1", "closed": t, "by": "alice"}
            )
            got = await store.get_session("s1")
            assert got is not None and (got.state, got.closed, got.closed_by) == (
                "closed",
                t,
                "alice",
            )
            again = await store.close_session("s1", t + timedelta(hours=1), "admin")
            assert again == got
            page = await store.search_sessions(SessionQuery(state="closed"))
            assert [x.id for x in page.sessions] == ["s1"]
        finally:
            await store.close()

    asyncio.run(main())


# -- sqlite specifics ----------------------------------------------------------------------------
def test_sqlite_upgrade_keeps_keys(tmp_path: Path) -> None:
    """A file made by the first schema version (users and keys only) upgrades in place."""
    path = tmp_path / "old.sqlite3"

    async def main() -> None:
        async with aiosqlite.connect(path) as db:
            await db.execute(
                "CREATE TABLE schema_version (version INTEGER NOT NULL PRIMARY KEY,"
                " applied TEXT NOT NULL)"
            )
            for statement in MIGRATIONS[0]:
                await db.execute(statement)
            await db.execute("INSERT INTO schema_version VALUES (1, '2026-01-01')")
            await db.execute(
                "INSERT INTO users VALUES ('alice', 'uploader', 'h', ?, NULL)",
                (T0.isoformat(),),
            )
            await db.execute(
                "INSERT INTO access_keys VALUES ('MKOLD', 'enc', 'alice', ?, NULL)",
                (T0.isoformat(),),
            )
            await db.commit()
        store = SqliteStore(path)
        await store.open()
        try:
            assert await store.schema_version() == len(MIGRATIONS)
            old = await store.get_key("MKOLD")
            assert old is not None and old.session_id is None and old.created == T0
            await store.create_session(session("s1"))
            assert (await store.get_session("s1")) is not None
        finally:
            await store.close()

    asyncio.run(main())


def test_sqlite_search_uses_indexes(tmp_path: Path) -> None:
    """The default listing walks the created index instead of sorting the table."""

    async def main() -> None:
        store = SqliteStore(tmp_path / "m.sqlite3")
        await store.open()
        try:
            async with store.db.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM sessions AS s ORDER BY s.created DESC,"
                " s.id DESC LIMIT 10"
            ) as cur:
                plan = " ".join(str(row[-1]) for row in await cur.fetchall())
            assert "sessions_by_created" in plan and "TEMP B-TREE" not in plan
        finally:
            await store.close()

    asyncio.run(main())


def test_sqlite_column_sorts_and_filters_use_indexes(tmp_path: Path) -> None:
    """The metadata browser's column sorts walk an index of the column, either way, ties newest
    first, without sorting; a form filter sorted by creation time is a range scan."""

    async def plan(store: SqliteStore, sql: str, params: tuple[Any, ...] = ()) -> str:
        async with store.db.execute("EXPLAIN QUERY PLAN " + sql, params) as cur:
            return " ".join(str(row[-1]) for row in await cur.fetchall())

    async def main() -> None:
        store = SqliteStore(tmp_path / "m.sqlite3")
        await store.open()
        try:
            for column in ("owner", "bucket", "form_name"):
                index = "sessions_by_form" if column == "form_name" else f"sessions_by_{column}"
                for order, walked in (("ASC", f"{index}_newest"), ("DESC", f"{index} ")):
                    text = await plan(
                        store,
                        f"SELECT * FROM sessions AS s ORDER BY s.{column} {order},"
                        " s.created DESC, s.id DESC LIMIT 25 OFFSET 5000",
                    )
                    assert f"{walked}" in text + " " and "TEMP B-TREE" not in text, text
            text = await plan(
                store,
                "SELECT id FROM sessions AS s WHERE s.form_name = ? ORDER BY s.created DESC,"
                " s.id DESC LIMIT 25",
                ("assay",),
            )
            assert "INDEX sessions_by_form" in text and "(form_name=?)" in text, text
            assert "TEMP B-TREE" not in text, text
        finally:
            await store.close()

    asyncio.run(main())


def test_sqlite_bucket_listing_uses_primary_key(tmp_path: Path) -> None:
    """Reconcile pages through a bucket's records: a range scan, not a sort of the table."""

    async def main() -> None:
        store = SqliteStore(tmp_path / "m.sqlite3")
        await store.open()
        try:
            async with store.db.execute(
                "EXPLAIN QUERY PLAN SELECT object_key FROM objects WHERE bucket = ?"
                " AND object_key > ? ORDER BY object_key LIMIT ?",
                ("raw", "", 10),
            ) as cur:
                plan = " ".join(str(row[-1]) for row in await cur.fetchall())
            assert "(bucket=? AND object_key>?)" in plan and "TEMP B-TREE" not in plan
        finally:
            await store.close()

    asyncio.run(main())
