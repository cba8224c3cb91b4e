"""Contract: ListObjects order, prefix, delimiter and pagination, on every backend."""

from __future__ import annotations

from gateway.backends.base import ObjectStore
from tests.contract.helpers import all_keys, contract, md5, put

# chosen so that a directory-per-segment store must sort "a/" between "a-b" and "a0"
# (a directory sorts as its name plus "/"), and so that non-ASCII keys sort by UTF-8 bytes
KEYS = [
    "A",
    "a-b",
    "a/b",
    "a/c/d",
    "a/c/e",
    "a0",
    "b",
    "z~",
    "~",
    "¡",
    "ä/x",
    "é",
    "日本",
    "😀",
]


async def _fill(store: ObjectStore, bucket: str, keys: list[str]) -> None:
    for key in keys:
        await put(store, bucket, key, key.encode())


@contract
async def test_utf8_byte_order(store: ObjectStore, bucket: str) -> None:
    await _fill(store, bucket, list(reversed(KEYS)))
    page = await store.list_objects(bucket)
    assert [o.key for o in page.objects] == sorted(KEYS, key=lambda k: k.encode())
    assert page.prefixes == [] and not page.truncated
    first = page.objects[0]
    assert first.size == len(first.key.encode()) and first.etag == md5(first.key.encode())
    assert first.last_modified.tzinfo is not None


@contract
async def test_pagination_visits_every_key_once(store: ObjectStore, bucket: str) -> None:
    await _fill(store, bucket, KEYS)
    expected = sorted(KEYS, key=lambda k: k.encode())
    for size in (1, 2, 3, 5):
        assert await all_keys(store, bucket, max_keys=size) == expected
    page = await store.list_objects(bucket, max_keys=3)
    assert page.truncated and page.next_marker == expected[2]
    assert len(page.objects) == 3


@contract
async def test_start_after(store: ObjectStore, bucket: str) -> None:
    await _fill(store, bucket, KEYS)
    expected = sorted(KEYS, key=lambda k: k.encode())
    page = await store.list_objects(bucket, start_after="a/b")
    assert [o.key for o in page.objects] == expected[expected.index("a/b") + 1 :]
    # a start_after that is not itself a key still works
    page = await store.list_objects(bucket, start_after="a/c")
    assert [o.key for o in page.objects][:2] == ["a/c/d", "a/c/e"]
    page = await store.list_objects(bucket, start_after="\U0010ffff")
    assert page.objects == [] and not page.truncated


@contract
async def test_prefix(store: ObjectStore, bucket: str) -> None:
    await _fill(store, bucket, KEYS)
    assert [o.key for o in (await store.list_objects(bucket, prefix="a/")).objects] == [
        "a/b",
        "a/c/d",
        "a/c/e",
    ]
    assert [o.key for o in (await store.list_objects(bucket, prefix="a")).objects] == [
        "a-b",
        "a/b",
        "a/c/d",
        "a/c/e",
        "a0",
    ]
    assert [o.key for o in (await store.list_objects(bucket, prefix="a/c/d")).objects] == ["a/c/d"]
    assert (await store.list_objects(bucket, prefix="nothing/")).objects == []
    assert (await store.list_objects(bucket, prefix="a/b/")).objects == []


@contract
async def test_delimiter_slash(store: ObjectStore, bucket: str) -> None:
    await _fill(store, bucket, KEYS)
    page = await store.list_objects(bucket, delimiter="/")
    assert page.prefixes == ["a/", "ä/"]
    assert [o.key for o in page.objects] == [
        k for k in sorted(KEYS, key=lambda k: k.encode()) if "/" not in k
    ]
    page = await store.list_objects(bucket, prefix="a/", delimiter="/")
    assert [o.key for o in page.objects] == ["a/b"] and page.prefixes == ["a/c/"]
    page = await store.list_objects(bucket, prefix="a", delimiter="/")
    assert [o.key for o in page.objects] == ["a-b", "a0"] and page.prefixes == ["a/"]


@contract
async def test_delimiter_pagination_skips_whole_prefix(store: ObjectStore, bucket: str) -> None:
    keys = ["p/1", "p/2", "p/3", "q", "r/1/x", "r/2", "s"]
    await _fill(store, bucket, keys)
    seen: list[str] = []
    after = ""
    while True:
        page = await store.list_objects(bucket, delimiter="/", start_after=after, max_keys=1)
        entries = [o.key for o in page.objects] + page.prefixes
        assert len(entries) <= 1  # max_keys counts keys and prefixes together
        seen += entries
        if not page.truncated:
            break
        assert page.next_marker == entries[-1]
        after = page.next_marker
    assert seen == ["p/", "q", "r/", "s"]


@contract
async def test_other_delimiters(store: ObjectStore, bucket: str) -> None:
    keys = ["2024-01/a", "2024-02/b", "2024", "2025-x", "x-y-z"]
    await _fill(store, bucket, keys)
    page = await store.list_objects(bucket, delimiter="-")
    assert page.prefixes == ["2024-", "2025-", "x-"]
    assert [o.key for o in page.objects] == ["2024"]
    page = await store.list_objects(bucket, prefix="2024-", delimiter="/")
    assert page.prefixes == ["2024-01/", "2024-02/"] and page.objects == []
    page = await store.list_objects(bucket, prefix="x-", delimiter="-z")
    assert page.prefixes == ["x-y-z"] and page.objects == []


@contract
async def test_max_keys_zero_returns_nothing(store: ObjectStore, bucket: str) -> None:
    await _fill(store, bucket, ["k1", "k2"])
    page = await store.list_objects(bucket, max_keys=0)
    assert page.objects == [] and page.prefixes == []


@contract
async def test_deleted_directories_do_not_linger(store: ObjectStore, bucket: str) -> None:
    await _fill(store, bucket, ["d1/d2/d3/k", "d1/other", "top"])
    await store.delete_object(bucket, "d1/d2/d3/k")
    page = await store.list_objects(bucket, delimiter="/")
    assert page.prefixes == ["d1/"]
    page = await store.list_objects(bucket, prefix="d1/", delimiter="/")
    assert page.prefixes == [] and [o.key for o in page.objects] == ["d1/other"]
    await store.delete_object(bucket, "d1/other")
    page = await store.list_objects(bucket, delimiter="/")
    assert page.prefixes == [] and [o.key for o in page.objects] == ["top"]
