"""SessionService on the real metadata stores (sqlite; mongo on FerretDB)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from policy.audit import Auditor
from policy.catalog import FormService, PolicyService
from policy.crypto import SecretBox
from policy.forms import Form, FormValidationError
from policy.identity import IdentityService
from policy.principal import Principal, Role
from policy.sessions import (
    SessionError,
    SessionInvalid,
    SessionNotAllowed,
    SessionNotFound,
    SessionService,
    is_session_id,
    new_session_id,
    next_prefix,
    normalise_prefix,
    parse_where,
    session_status,
    title_of,
)
from policy.store import open_metadata_store
from policy.store.base import FieldFilter, ObjectRecord, UserRecord, WriteIntent
from tests.servers import mongo_uri

ALL_TYPES = {
    "name": "run",
    "title": "A run",
    "fields": [
        {"name": "operator", "type": "text", "required": True, "pattern": "^[a-z]+$"},
        {"name": "notes", "type": "textarea", "max_length": 10},
        {"name": "objective", "type": "choice", "choices": ["10x", "63x"]},
        {"name": "stains", "type": "multichoice", "choices": ["dapi", "gfp"], "max": 1},
        {"name": "count", "type": "integer", "min": 1},
        {"name": "temp_c", "type": "number", "min": 0, "max": 50},
        {"name": "repeat", "type": "boolean"},
        {"name": "day", "type": "date", "min": "2026-01-01"},
        {"name": "started", "type": "datetime"},
    ],
}
POLICY = """
[[rule]]
bucket = "raw"
prefix = "private/"
forms = ["run"]
open_sessions = ["alice"]

[[rule]]
bucket = "raw"
forms = ["run"]
session_ttl = "1d"
max_session_ttl = "3d"

[[rule]]
bucket = "scratch"
require_session = false
"""

ADMIN = Principal("admin", Role.ADMIN)
ALICE = Principal("alice", Role.UPLOADER)
BOB = Principal("bob", Role.UPLOADER)
RITA = Principal("rita", Role.READER)


class World:
    def __init__(self, store, identity: IdentityService) -> None:
        self.store = store
        self.identity = identity
        self.auditor = Auditor(store, strict=True)
        self.forms = FormService(store, self.auditor)
        self.policies = PolicyService(store, self.forms, self.auditor)
        self.sessions = SessionService(
            store, identity, self.policies, self.forms, self.auditor, cache_seconds=0.3
        )

    async def audit(self, action: str) -> list[tuple[str, str, str | None]]:
        events, _ = await self.auditor.events(action=action)
        return [(e.principal, e.outcome, e.reason) for e in events]


Body = Callable[[World], Awaitable[None]]


@pytest.fixture(params=["sqlite", "mongo"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Body], None]:
    location: str | Path = tmp_path / "minimo.sqlite3"
    if request.param == "mongo":
        location = mongo_uri(request.getfixturevalue("ferretdb"), f"t_{secrets.token_hex(6)}")

    def runner(body: Body) -> None:
        async def main() -> None:
            store = await open_metadata_store(location)
            try:
                identity = IdentityService(store, SecretBox.from_file(tmp_path / "secret.key"))
                for p in (ADMIN, ALICE, BOB, RITA):
                    # Straight into the store: argon2 hashing would dominate these tests.
                    await store.create_user(UserRecord(p.user, p.role, "-", datetime.now(UTC)))
                world = World(store, identity)
                await world.forms.create(ALL_TYPES, "admin")
                await world.policies.set(POLICY, "admin")
                await body(world)
            finally:
                await store.close()

        asyncio.run(main())

    return runner


GOOD = {"operator": "alice", "temp_c": "21.5", "started": "2026-11-25T14:30+01:00"}


def test_session_ids() -> None:
    first = new_session_id(datetime(2026, 1, 1, tzinfo=UTC))
    later = new_session_id(datetime(2026, 1, 2, tzinfo=UTC))
    assert len(first) == 36 and is_session_id(first) and first < later
    assert len({new_session_id() for _ in range(1000)}) == 1000
    assert not is_session_id("../etc") and not is_session_id(first.upper())


def test_open_mints_a_session_key(run) -> None:
    async def body(w: World) -> None:
        record, credential = await w.sessions.open(BOB, "run", "raw", None, GOOD, None)
        assert is_session_id(record.id) and record.prefix == f"{record.id}/"
        assert record.owner == "bob" and record.form_version == 1 and record.state == "open"
        assert record.values == {
            "operator": "alice",
            "temp_c": 21.5,
            "started": "2026-11-25T13:30:00Z",
            "repeat": False,  # a boolean left out is "no", as an unticked checkbox
        }
        assert record.expires - record.created == timedelta(days=1)  # the rule's session_ttl
        assert record.access_key == credential.access_key
        assert credential.principal.session_id == record.id
        # SigV4 finds the key, and its principal names the session.
        found = await w.identity.credential(credential.access_key)
        assert found is not None and found.secret_key == credential.secret_key
        assert found.principal == Principal("bob", Role.UPLOADER, credential.access_key, record.id)
        assert (await w.store.get_key(credential.access_key)).session_id == record.id
        assert await w.sessions.get(record.id) == record
        assert await w.sessions.lookup(record.id) == record
        assert session_status(record) == "open"
        assert await w.audit("session.open") == [("bob", "ok", None)]

    run(body)


def test_open_prefix_ttl_and_latest_version(run) -> None:
    async def body(w: World) -> None:
        record, _ = await w.sessions.open(ALICE, "run", "raw", "private/run7", GOOD, "2d")
        assert record.prefix == "private/run7/"
        assert record.expires - record.created == timedelta(days=2)
        for bad, message in [
            ("", "prefix: must not be empty"),
            ("/x/", "must not start with '/'"),
        ]:
            with pytest.raises(SessionError, match=message):
                await w.sessions.open(ALICE, "run", "raw", bad, GOOD, None)
        with pytest.raises(SessionInvalid, match="ttl: 4d is longer than the 3d policy rule 2"):
            await w.sessions.open(BOB, "run", "raw", None, GOOD, "4d")
        with pytest.raises(SessionError, match="ttl: bad duration"):
            await w.sessions.open(BOB, "run", "raw", None, GOOD, "1 week")
        # A new version of the form: new sessions use it, old ones keep theirs.
        await w.forms.update({**ALL_TYPES, "title": "A run, v2"}, "admin")
        newer, _ = await w.sessions.open(BOB, "run", "raw", None, GOOD, None)
        assert (newer.form_version, record.form_version) == (2, 1)
        assert (await w.sessions.get(record.id)).form_version == 1

    run(body)


@pytest.mark.parametrize(
    ("values", "errors"),
    [
        ({"operator": " "}, {"operator": ["is required"]}),
        ({"operator": "Al"}, {"operator": ["must match the pattern ^[a-z]+$"]}),
        ({"notes": "x" * 11}, {"notes": ["must be at most 10 characters long"]}),
        ({"objective": "5x"}, {"objective": ["must be one of 10x, 63x"]}),
        ({"stains": "dapi,gfp"}, {"stains": ["choose at most 1"]}),
        ({"stains": "cy5"}, {"stains": ["'cy5' is not one of dapi, gfp"]}),
        ({"count": "1.5"}, {"count": ["must be a whole number"]}),
        ({"count": "0"}, {"count": ["must be at least 1"]}),
        ({"temp_c": "warm"}, {"temp_c": ["must be a number"]}),
        ({"temp_c": "60"}, {"temp_c": ["must be at most 50"]}),
        ({"repeat": "maybe"}, {"repeat": ["must be true or false (yes/no, on/off, 1/0)"]}),
        ({"day": "25.11.2026"}, {"day": ["must be a date in the form YYYY-MM-DD"]}),
        ({"day": "2025-12-31"}, {"day": ["must be on or after 2026-01-01"]}),
        ({"started": "2026-11-25T14:30"}, {"started": ["must be an ISO 8601 date-time"]}),
        ({"colour": "red"}, {"colour": ["is not a field of form run v1"]}),
    ],
)
def test_each_field_type_failing(run, values: dict, errors: dict) -> None:
    async def body(w: World) -> None:
        with pytest.raises(FormValidationError) as refused:
            await w.sessions.open(BOB, "run", "raw", None, {"operator": "bob", **values}, None)
        got = refused.value.errors
        assert set(got) == set(errors)
        for name, messages in errors.items():
            assert got[name][0].startswith(messages[0]), got
        [(who, outcome, reason)] = await w.audit("session.open")
        assert (who, outcome) == ("bob", "refused") and next(iter(errors)) in reason
        assert (await w.sessions.search()).total == 0
        assert await w.identity.list_keys("bob") == []  # no key minted for a refusal

    run(body)


def test_refusals_by_policy(run) -> None:
    async def body(w: World) -> None:
        cases = [
            (
                BOB,
                "raw",
                "private/x/",
                "bob (uploader) may not open sessions at "
                "s3://raw/private/x/: policy rule 1 lets alice open them",
                SessionNotAllowed,
            ),
            (RITA, "raw", None, "rita (reader) may not open sessions", SessionNotAllowed),
            (
                BOB,
                "other",
                None,
                "no policy rule covers s3://other/<session id>/",
                SessionInvalid,
            ),
            (
                BOB,
                "scratch",
                None,
                "s3://scratch/<session id>/ is a scratch area",
                SessionInvalid,
            ),
            (BOB, "Bad_Bucket", None, "invalid bucket name", SessionInvalid),
        ]
        for who, bucket, prefix, message, kind in cases:
            with pytest.raises(kind) as refused:
                await w.sessions.open(who, "run", bucket, prefix, GOOD, None)
            assert message in str(refused.value)
        await w.forms.create({"name": "other", "fields": [{"name": "a", "type": "text"}]}, "x")
        with pytest.raises(SessionInvalid, match="form other is not allowed at s3://raw/"):
            await w.sessions.open(BOB, "other", "raw", None, {}, None)
        key_principal = Principal("bob", Role.UPLOADER, "MKX", new_session_id())
        with pytest.raises(SessionNotAllowed, match="a session key cannot open sessions"):
            await w.sessions.open(key_principal, "run", "raw", None, GOOD, None)
        outcomes = [o for _, o, _ in await w.audit("session.open")]
        assert outcomes == ["refused"] * 7
        # Admins may open anywhere a rule lists the form, even where open_sessions omits them.
        record, _ = await w.sessions.open(ADMIN, "run", "raw", "private/a/", GOOD, None)
        assert record.owner == "admin"

    run(body)


def test_allowed_forms_follow_the_rules_open_checks(run) -> None:
    """What the new-session and link-data pages offer: the forms opening would accept there,
    or the reason there are none."""

    async def body(w: World) -> None:
        forms, problem = await w.sessions.allowed_forms(BOB, "raw", "2026/")
        assert [f.name for f in forms] == ["run"] and problem is None
        cases = [
            (BOB, "raw", "private/x/", "bob may not open sessions at s3://raw/private/x/."),
            (RITA, "raw", "2026/", "rita may not open sessions at s3://raw/2026/."),
            (BOB, "other", "", "No policy rule covers s3://other/, so no session"),
            (BOB, "scratch", "a/", "s3://scratch/a/ is a scratch area: its rule names no form"),
        ]
        for who, bucket, prefix, message in cases:
            forms, problem = await w.sessions.allowed_forms(who, bucket, prefix)
            assert forms == [] and problem is not None and problem.startswith(message), problem

    run(body)


def test_close(run) -> None:
    async def body(w: World) -> None:
        record, credential = await w.sessions.open(BOB, "run", "raw", None, GOOD, None)
        assert await w.sessions.lookup(record.id) is not None
        with pytest.raises(SessionNotAllowed, match="only bob \\(the owner\\) or an admin"):
            await w.sessions.close(ALICE, record.id)
        closed = await w.sessions.close(BOB, record.id)
        assert closed.state == "closed" and closed.closed_by == "bob"
        assert session_status(closed) == "closed"
        assert await w.identity.credential(credential.access_key) is None
        # Idempotent: a second close (by an admin) changes nothing.
        again = await w.sessions.close(ADMIN, record.id)
        assert again.closed == closed.closed and again.closed_by == "bob"
        with pytest.raises(SessionNotFound, match="no session"):
            await w.sessions.close(ADMIN, new_session_id())
        assert [(p, o) for p, o, _ in await w.audit("session.close")] == [
            ("alice", "refused"),
            ("bob", "ok"),
            ("admin", "refused"),
        ]

    run(body)


def test_lookup_cache_is_bounded(run) -> None:
    async def body(w: World) -> None:
        record, _ = await w.sessions.open(BOB, "run", "raw", None, GOOD, None)
        other = SessionService(
            w.store, w.identity, w.policies, w.forms, w.auditor, cache_seconds=0.3
        )
        assert (await other.lookup(record.id)).state == "open"
        await w.sessions.close(BOB, record.id)
        assert (await w.sessions.lookup(record.id)).state == "closed"  # closed here: at once
        assert (await other.lookup(record.id)).state == "open"  # elsewhere: within the bound
        await asyncio.sleep(0.35)
        assert (await other.lookup(record.id)).state == "closed"
        assert await other.lookup("nope") is None

    run(body)


def test_search(run) -> None:
    async def body(w: World) -> None:
        opened = []
        for who, values in [
            (BOB, {"operator": "bob", "temp_c": "10", "objective": "10x", "day": "2026-03-01"}),
            (ALICE, {"operator": "alice", "temp_c": "30", "objective": "63x", "repeat": "yes"}),
            (BOB, {"operator": "bobby", "temp_c": "45", "day": "2026-06-01"}),
        ]:
            record, _ = await w.sessions.open(who, "run", "raw", None, values, None)
            opened.append(record)
        await w.sessions.close(ADMIN, opened[0].id)
        form = await w.forms.get("run")

        async def ids(**filters) -> list[str]:
            page = await w.sessions.search(**filters)
            return [[o.id for o in opened].index(r.id) for r in page.sessions]

        assert await ids() == [2, 1, 0]  # newest first
        assert await ids(owner="bob") == [2, 0]
        assert await ids(state="open") == [2, 1]
        assert await ids(state="closed") == [0]
        assert await ids(bucket="raw", form_name="run") == [2, 1, 0]
        assert await ids(form_name="other") == []
        assert await ids(created_from=opened[1].created) == [2, 1]
        where = lambda *texts: tuple(parse_where(t, form) for t in texts)  # noqa: E731
        assert await ids(fields=where("temp_c>=30")) == [2, 1]
        assert await ids(fields=where("temp_c>=20", "temp_c<=40")) == [1]
        assert await ids(fields=where("operator~BOB")) == [2, 0]
        assert await ids(fields=where("objective=63x")) == [1]
        assert await ids(fields=where("repeat=true")) == [1]
        assert await ids(fields=where("day>=2026-05-01")) == [2]
        page = await w.sessions.search(limit=2)
        assert page.total == 3 and len(page.sessions) == 2 and page.next_cursor
        rest = await w.sessions.search(limit=2, cursor=page.next_cursor)
        assert [r.id for r in rest.sessions] == [opened[0].id]

    run(body)


def test_objects_and_usage(run) -> None:
    async def body(w: World) -> None:
        record, _ = await w.sessions.open(BOB, "run", "raw", None, GOOD, None)
        now = datetime.now(UTC)
        for n, size in enumerate((5, 7)):
            key = f"{record.prefix}f{n}"
            await w.store.begin_write(WriteIntent(f"i{n}", "raw", key, record.id, "bob", now))
            await w.store.commit_write(
                f"i{n}",
                ObjectRecord("raw", key, size, "etag", "0" * 64, None, record.id, "bob", now),
            )
        assert await w.sessions.usage(record.id) == (2, 12)
        objects, cursor = await w.sessions.objects(record.id)
        assert [o.key for o in objects] == [f"{record.prefix}f0", f"{record.prefix}f1"]
        assert cursor is None

    run(body)


def test_parse_where() -> None:
    form = Form.from_dict(ALL_TYPES)
    assert parse_where("temp_c>=5", form) == FieldFilter("temp_c", "min", 5)
    assert parse_where("count<=2.5", form) == FieldFilter("count", "max", 2.5)
    assert parse_where("repeat=no", form) == FieldFilter("repeat", "eq", False)
    assert parse_where("operator=007", form) == FieldFilter("operator", "eq", "007")
    assert parse_where("started>=2026-11-25T14:30+01:00", form) == FieldFilter(
        "started", "min", "2026-11-25T13:30:00Z"
    )
    assert parse_where("notes~ drift ", form) == FieldFilter("notes", "contains", "drift")
    assert parse_where("anything=7") == FieldFilter("anything", "eq", 7)
    assert parse_where("anything=yes") == FieldFilter("anything", "eq", "yes")
    for bad, message in [
        ("temp_c>>5", "bad condition"),
        ("colour=red", "form run has no field 'colour'"),
        ("temp_c>=warm", "is not a number"),
    ]:
        with pytest.raises(SessionInvalid, match=message):
            parse_where(bad, form)


# -- titles, extending, places ---------------------------------------------------------------------
TITLED = {
    "name": "mouse",
    "title": "Mouse imaging",
    "session_title": ["mouse_id", "day"],
    "fields": [
        {"name": "mouse_id", "type": "text", "required": True},
        {"name": "day", "type": "text"},
    ],
}


def test_a_session_is_titled_by_its_forms_fields_or_form_and_prefix(run) -> None:
    async def body(w: World) -> None:
        await w.forms.create(TITLED, "admin")
        await w.policies.set(POLICY.replace('forms = ["run"]', 'forms = ["run", "mouse"]'), "a")
        titled, _ = await w.sessions.open(BOB, "mouse", "raw", "m/day1", {"mouse_id": "M0042"})
        assert titled.title == "M0042" and titled.prefix == "m/day1/"
        both, _ = await w.sessions.open(
            BOB, "mouse", "raw", "m/day2", {"mouse_id": "M0042", "day": "day2"}
        )
        assert both.title == "M0042 · day2"
        plain, _ = await w.sessions.open(BOB, "run", "raw", "2026/run7/", GOOD)
        assert plain.title == "run · 2026/run7"
        # stored: what the store reads back is what was made at open
        stored = await w.sessions.require(both.id)
        assert stored.title == "M0042 · day2" and title_of(stored) == "M0042 · day2"

    run(body)


def test_extend_within_the_rules_maximum(run) -> None:
    async def body(w: World) -> None:
        record, _ = await w.sessions.open(BOB, "run", "raw", "x/", GOOD)  # 1d of at most 3d
        longer = await w.sessions.extend(BOB, record.id, "1d")
        assert longer.expires - record.expires == timedelta(days=1)
        assert (await w.sessions.require(record.id)).expires == longer.expires
        default = await w.sessions.extend(ADMIN, record.id)  # by the rule's session_ttl
        assert default.expires - record.created == timedelta(days=3)
        with pytest.raises(SessionInvalid, match="already lives as long as it may, 3d"):
            await w.sessions.extend(BOB, record.id, "1h")
        with pytest.raises(SessionNotAllowed, match="only bob"):
            await w.sessions.extend(ALICE, record.id, "1h")
        assert [o for _, o, _ in await w.audit("session.extend")].count("ok") == 2

    run(body)


def test_extend_past_the_maximum_says_how_far_it_may_go(run) -> None:
    async def body(w: World) -> None:
        record, _ = await w.sessions.open(BOB, "run", "raw", "x/", GOOD)
        with pytest.raises(SessionInvalid, match=r"by at most 2d") as refused:
            await w.sessions.extend(BOB, record.id, "5d")
        assert "policy rule 2" in str(refused.value)
        assert (await w.sessions.require(record.id)).expires == record.expires
        with pytest.raises(SessionInvalid, match="by: "):
            await w.sessions.extend(BOB, record.id, "soon")
        await w.sessions.close(BOB, record.id)
        with pytest.raises(SessionInvalid, match="is closed"):
            await w.sessions.extend(BOB, record.id, "1h")
        with pytest.raises(SessionNotFound):
            await w.sessions.extend(BOB, new_session_id(), "1h")

    run(body)


def test_places_are_where_the_user_may_open_sessions(run) -> None:
    async def body(w: World) -> None:
        assert [(p.bucket, p.prefix) for p in await w.sessions.places(ALICE, [])] == [
            ("raw", "private/"),
            ("raw", ""),
        ]
        assert [(p.bucket, p.prefix) for p in await w.sessions.places(BOB, [])] == [("raw", "")]
        assert await w.sessions.places(RITA, ["raw"]) == []

    run(body)


@pytest.mark.parametrize(
    ("typed", "saved"),
    [("day1", "day1/"), ("2026/run7/", "2026/run7/"), ("a b/c", "a b/c/")],
)
def test_prefixes_are_folders(typed: str, saved: str) -> None:
    assert normalise_prefix(typed) == saved


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("/2026//x/../y", "must not start with '/'"),
        ("2026//x", "'//'"),
        ("2026/x/../y", "'..'"),
        ("./y", "'.'"),
        ("", "must not be empty"),
    ],
)
def test_bad_prefixes_are_refused(typed: str, message: str) -> None:
    with pytest.raises(SessionInvalid, match=message):
        normalise_prefix(typed)


@pytest.mark.parametrize(
    ("prefix", "proposed"),
    [
        ("day1/", "day2/"),
        ("2026/run-007/", "2026/run-008/"),
        ("run-099/", "run-100/"),
        ("mouse/", "mouse-2/"),
        ("2026/x/", "2026/x-2/"),
    ],
)
def test_open_another_proposes_the_next_prefix(prefix: str, proposed: str) -> None:
    assert next_prefix(prefix) == proposed
