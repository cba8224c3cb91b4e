"""The local store's part layouts (gateway/backends/local/partlayout.py): a multipart object's
part sizes and part checksums kept in its xattr when small, else in a sidecar under
``.minimo/layouts``, which lives and dies with its object: written before the object is
visible, removed by the overwrite or delete that removes the object, recovered after a crash
and found by reconcile when a race left it unnamed. Local only (an S3 upstream keeps parts its
own way)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from gateway.backends.base import KeepChecksum, WriteMeta
from gateway.backends.local import XATTR, LocalObjectStore, multipart, partlayout
from gateway.protocol.checksums import checksum_b64
from tests.contract.helpers import Bytes, MiB, get, pattern, put, raises

BUCKET = "b"
REPO = Path(__file__).resolve().parents[2]


def run_local(tmp_path: Path, fn: Callable[[LocalObjectStore, Path], Awaitable[None]]) -> None:
    async def main() -> None:
        store = LocalObjectStore(tmp_path / "objects")
        await store.start()
        try:
            await store.create_bucket(BUCKET)
            await fn(store, tmp_path / "objects")
        finally:
            await store.close()

    asyncio.run(main())


async def upload(store: LocalObjectStore, key: str, parts: list[bytes], algorithm: str) -> str:
    up = await store.create_multipart_upload(
        BUCKET, key, WriteMeta(), checksum=(algorithm, "COMPOSITE")
    )
    listed, sums = [], {}
    for number, data in enumerate(parts, start=1):
        value = checksum_b64(algorithm, data)
        keep = KeepChecksum(algorithm, lambda v=value: v)
        listed.append(
            (number, await store.upload_part(BUCKET, key, up, number, Bytes(data), checksum=keep))
        )
        sums[number] = (algorithm, value)
    return await store.complete_multipart_upload(BUCKET, key, up, listed, part_checksums=sums)


def xattr(root: Path, key: str) -> dict:
    return json.loads(os.getxattr(root / BUCKET / key, XATTR))


def layouts(root: Path) -> list[str]:
    where = root / ".minimo" / "layouts"
    return sorted(os.listdir(where)) if where.exists() else []


def tmp_entries(root: Path) -> list[str]:
    return sorted(os.listdir(root / ".minimo" / "tmp"))


async def check_parts(
    store: LocalObjectStore, key: str, parts: list[bytes], algorithm: str
) -> None:
    start = 0
    for number, data in enumerate(parts, start=1):
        _, span = await store.part_range(BUCKET, key, number)
        assert span is not None and (span.start, span.length) == (start, len(data))
        start += len(data)
    _, page = await store.object_parts(BUCKET, key)
    assert page is not None and page.parts is not None
    assert [(p.number, p.size) for p in page.parts] == [(n, len(d)) for n, d in enumerate(parts, 1)]
    assert [p.checksum.value for p in page.parts if p.checksum] == [
        checksum_b64(algorithm, d) for d in parts
    ]


def test_many_part_checksums_go_to_a_sidecar(tmp_path: Path) -> None:
    """22 SHA-256 part checksums do not fit beside the user's metadata: a sidecar holds them;
    a small layout stays in the xattr."""
    parts = [pattern(5 * MiB, seed=n) for n in range(21)] + [pattern(12345, seed=77)]

    async def t(store: LocalObjectStore, root: Path) -> None:
        await upload(store, "big", parts, "sha256")
        record = xattr(root, "big")
        assert "psz" not in record and layouts(root) == [record["pl"]]
        assert tmp_entries(root) == []
        sidecar = json.loads((root / ".minimo" / "layouts" / record["pl"]).read_text())
        assert (sidecar["bucket"], sidecar["key"], sidecar["etag"]) == (
            BUCKET,
            "big",
            record["etag"],
        )
        await check_parts(store, "big", parts, "sha256")
        small = parts[:1] + parts[-1:]
        await upload(store, "small", small, "sha256")
        assert "pl" not in xattr(root, "small") and xattr(root, "small")["psz"]
        await check_parts(store, "small", small, "sha256")
        assert len(layouts(root)) == 1

    run_local(tmp_path, t)


@pytest.fixture
def sidecars_always(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every layout to a sidecar, so small objects show its life cycle."""
    monkeypatch.setattr(partlayout, "INLINE_BYTES", 0)


PARTS = [pattern(5 * MiB, seed=1), pattern(1000, seed=2)]


@pytest.mark.usefixtures("sidecars_always")
def test_overwrite_and_delete_take_the_sidecar_with_them(tmp_path: Path) -> None:
    async def t(store: LocalObjectStore, root: Path) -> None:
        await upload(store, "k", PARTS, "crc32")
        first = xattr(root, "k")["pl"]
        assert layouts(root) == [first]
        await upload(store, "k", PARTS, "crc32")  # a multipart overwrite: its own sidecar
        second = xattr(root, "k")["pl"]
        assert second != first and layouts(root) == [second]
        await check_parts(store, "k", PARTS, "crc32")
        await put(store, BUCKET, "k", b"now one part")  # a plain overwrite: none
        assert layouts(root) == []
        _, page = await store.object_parts(BUCKET, "k")
        assert page is None
        await upload(store, "d/k", PARTS, "crc32")
        assert len(layouts(root)) == 1
        await store.delete_object(BUCKET, "d/k")
        assert layouts(root) == [] and tmp_entries(root) == []

    run_local(tmp_path, t)


LEFTOVERS = """
import asyncio, json, sys
from pathlib import Path
from gateway.backends.local import LocalObjectStore

async def main():
    store = LocalObjectStore(Path(sys.argv[1]))
    await store.start()
    found = await store.leftovers(lambda owner, age: True, repair=True, thorough=sys.argv[2] == "1")
    print(json.dumps([[f.kind, f.name, f.repaired] for f in found]))
    await store.close()

asyncio.run(main())
"""


def other_process_leftovers(root: Path, thorough: bool = False) -> list[list]:
    """Recovery as another gateway runs it, this test's process counting as dead."""
    out = subprocess.run(
        [sys.executable, "-c", LEFTOVERS, str(root), "1" if thorough else "0"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


@pytest.mark.usefixtures("sidecars_always")
def test_a_crash_after_placing_keeps_the_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between placing the object and moving its sidecar: the object is readable by
    part at once, and recovery moves the sidecar into place instead of removing it."""
    monkeypatch.setattr(multipart, "settle_sidecar", lambda *args: None)

    async def t(store: LocalObjectStore, root: Path) -> None:
        await upload(store, "k", PARTS, "crc32")
        name = xattr(root, "k")["pl"]
        assert tmp_entries(root) == [name] and layouts(root) == []
        await check_parts(store, "k", PARTS, "crc32")
        found = other_process_leftovers(root)
        assert found == [["temp_file", f".minimo/tmp/{name}", True]]
        assert layouts(root) == [name] and tmp_entries(root) == []
        await check_parts(store, "k", PARTS, "crc32")

    run_local(tmp_path, t)


@pytest.mark.usefixtures("sidecars_always")
def test_a_crash_before_placing_leaves_nothing(tmp_path: Path) -> None:
    """Killed after writing the sidecar, before placing the object: no object names it, so
    recovery removes it (and the object in place keeps its own)."""

    async def t(store: LocalObjectStore, root: Path) -> None:
        await upload(store, "k", PARTS, "crc32")
        kept = xattr(root, "k")["pl"]
        stray = "layout-" + "d" * 16 + "-7"
        (root / ".minimo" / "tmp" / stray).write_text(
            json.dumps({"bucket": BUCKET, "key": "k", "etag": "x", "psz": [[1, 1]]})
        )
        assert other_process_leftovers(root) == [["temp_file", f".minimo/tmp/{stray}", True]]
        assert tmp_entries(root) == [] and layouts(root) == [kept]
        await check_parts(store, "k", PARTS, "crc32")

    run_local(tmp_path, t)


@pytest.mark.usefixtures("sidecars_always")
def test_reconcile_removes_sidecars_no_object_names(tmp_path: Path) -> None:
    """Two writers replacing one key at once can leave a sidecar unnamed: the thorough walk
    (minimo reconcile) removes it and keeps every sidecar its object names."""

    async def t(store: LocalObjectStore, root: Path) -> None:
        await upload(store, "k", PARTS, "crc32")
        kept = xattr(root, "k")["pl"]
        for name, key in (
            ("layout-" + "e" * 16 + "-1", "k"),
            ("layout-" + "e" * 16 + "-2", "gone"),
        ):
            (root / ".minimo" / "layouts" / name).write_text(
                json.dumps({"bucket": BUCKET, "key": key, "etag": "x", "psz": [[1, 1]]})
            )
        assert other_process_leftovers(root) == []  # recovery's quick pass leaves layouts alone
        found = other_process_leftovers(root, thorough=True)
        assert sorted(f[1] for f in found) == [
            f".minimo/layouts/layout-{'e' * 16}-1",
            f".minimo/layouts/layout-{'e' * 16}-2",
        ]
        assert layouts(root) == [kept]
        await check_parts(store, "k", PARTS, "crc32")

    run_local(tmp_path, t)


def test_objects_completed_before_keep_working(tmp_path: Path) -> None:
    """An xattr with inline sizes (as written before) still answers; one whose layout is
    unknown answers NotImplemented with a Message that says to use Range."""

    async def t(store: LocalObjectStore, root: Path) -> None:
        await upload(store, "old", PARTS, "crc32")
        path = root / BUCKET / "old"
        record = xattr(root, "old")
        record.pop("pck", None)
        os.setxattr(path, XATTR, json.dumps(record).encode())
        _, span = await store.part_range(BUCKET, "old", 2)
        assert span is not None and span.length == 1000
        record.pop("psz")
        os.setxattr(path, XATTR, json.dumps(record).encode())
        async with raises("NotImplemented") as caught:
            await store.part_range(BUCKET, "old", 1)
        assert "Range" in caught[0].message
        assert await get(store, BUCKET, "old", range_header="bytes=0-9") == PARTS[0][:10]
        _, page = await store.object_parts(BUCKET, "old")
        assert page is not None and page.count == 2 and page.parts is None

    run_local(tmp_path, t)
