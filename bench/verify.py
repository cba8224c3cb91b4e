#!/usr/bin/env python
"""How fast ``minimo verify`` re-reads and hashes stored objects, against ``sha256sum`` of the
same files (the limit; target at least 0.8 of it).

    python bench/verify.py                  # 256 MiB in 16 MiB files: well under a minute
    python bench/verify.py --gib 5          # the 5 GiB set
    python bench/verify.py --parallel 1 2 4 # verify with several worker counts

It makes a local object store and a sqlite metadata store in a temporary directory, writes the
set through the backend with records committed as a write commits them (random bytes, so no
file compresses or dedupes), then times, ``--repeats`` times each and keeping the best:

- ``sha256sum`` of every file of the set, in one process (what the disk and one core allow);
- the verify use case (:class:`gateway.usecases.verify.Verifier`, what ``minimo verify`` runs)
  over the whole bucket, for each ``--parallel`` value, results kept on the records.

Both read through the page cache: a set smaller than free memory is timed warm (the first
repeat of the first tool pays the disk), so compare figures of one run, and use a set larger
than memory (``--gib``) to time the disk. Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make gateway and policy importable
    sys.path.insert(0, str(REPO))

from gateway.backends.base import WriteMeta  # noqa: E402
from gateway.backends.local import LocalObjectStore  # noqa: E402
from gateway.usecases.verify import Scope, Verifier  # noqa: E402
from policy.store import MetadataStore, open_metadata_store  # noqa: E402
from policy.store.base import ObjectRecord, WriteIntent  # noqa: E402

BUCKET = "bench-verify"
MiB = 1024 * 1024
_CHUNK = 4 * MiB


class _Random:
    """``size`` random bytes as an upload body, hashed on the way."""

    def __init__(self, size: int) -> None:
        self.size: int | None = size
        self.digest = hashlib.sha256()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        left = self.size or 0
        while left:
            chunk = os.urandom(min(_CHUNK, left))
            self.digest.update(chunk)
            left -= len(chunk)
            yield chunk


async def _commit(metadata: MetadataStore, key: str, size: int, etag: str, sha: str) -> None:
    intent_id = secrets.token_hex(16)
    now = datetime.now(UTC)
    await metadata.begin_write(WriteIntent(intent_id, BUCKET, key, None, "bench", now))
    record = ObjectRecord(BUCKET, key, size, etag, sha, None, None, "bench", now)
    await metadata.commit_write(intent_id, record)


async def write_set(data_dir: Path, files: int, size: int) -> None:
    metadata = await open_metadata_store(data_dir / "minimo.sqlite3")
    objects = LocalObjectStore(data_dir / "objects")
    await objects.start()
    try:
        await objects.create_bucket(BUCKET)
        for i in range(files):
            key = f"set/file-{i:05d}.bin"
            body = _Random(size)
            etag = await objects.put_object(BUCKET, key, body, WriteMeta())
            await _commit(metadata, key, size, etag, body.digest.hexdigest())
    finally:
        await objects.close()
        await metadata.close()


async def time_verify(data_dir: Path, parallel: int) -> tuple[float, int]:
    """(seconds, bytes read) of one verify of the whole set."""
    metadata = await open_metadata_store(data_dir / "minimo.sqlite3")
    objects = LocalObjectStore(data_dir / "objects")
    await objects.start()
    try:
        verifier = Verifier(objects, metadata, Scope(bucket=BUCKET), parallel=parallel)
        started = time.perf_counter()
        summary = await verifier.run()
        seconds = time.perf_counter() - started
    finally:
        await objects.close()
        await metadata.close()
    if not summary.all_ok:
        raise SystemExit(f"verify found problems in a fresh set: {summary.as_json()}")
    return seconds, summary.bytes_read


def time_command(command: list[str], paths: list[Path]) -> float:
    started = time.perf_counter()
    subprocess.run([*command, *map(str, paths)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


#: the baselines: sha256sum (the limit), and openssl's SHA-256 where installed: coreutils
#: may be built without the CPU's SHA instructions that OpenSSL (and so Python's hashlib) uses,
#: which makes sha256sum the slower of the two and the comparison flattering
BASELINES = (("sha256sum", ["sha256sum"]), ("openssl dgst -sha256", ["openssl", "dgst", "-sha256"]))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="minimo verify throughput vs sha256sum.")
    p.add_argument("--gib", type=float, default=0.25, help="size of the set (default 0.25)")
    p.add_argument("--file-mib", type=int, default=16, help="size of each file (default 16)")
    p.add_argument(
        "--parallel", type=int, nargs="+", default=[4], help="verify worker counts (default 4)"
    )
    p.add_argument("--repeats", type=int, default=3, help="timings per tool; the best is kept")
    p.add_argument("--dir", type=Path, help="where to make the set (default: a temp dir)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = args.file_mib * MiB
    files = max(1, round(args.gib * 1024 / args.file_mib))
    work = Path(tempfile.mkdtemp(prefix="bench-verify-", dir=args.dir))
    try:
        data_dir = work / "data"
        t0 = time.perf_counter()
        asyncio.run(write_set(data_dir, files, size))
        print(
            f"wrote {files} x {args.file_mib} MiB in {time.perf_counter() - t0:.1f}s",
            file=sys.stderr,
        )
        paths = sorted((data_dir / "objects" / BUCKET / "set").iterdir())
        total_mib = files * size / MiB
        sums = min(time_command(["sha256sum"], paths) for _ in range(args.repeats))
        rows = [f"| sha256sum | 1 | {sums:.2f} | {total_mib / sums:.0f} | 1.00 |"]
        if shutil.which("openssl"):
            best = min(time_command(BASELINES[1][1], paths) for _ in range(args.repeats))
            rows.append(
                f"| {BASELINES[1][0]} | 1 | {best:.2f} | {total_mib / best:.0f} | "
                f"{sums / best:.2f} |"
            )
        for parallel in args.parallel:
            best = min(asyncio.run(time_verify(data_dir, parallel))[0] for _ in range(args.repeats))
            ratio = sums / best
            rows.append(
                f"| minimo verify | {parallel} | {best:.2f} | {total_mib / best:.0f} | "
                f"{ratio:.2f} |"
            )
        cpus = os.cpu_count()
        print(f"Set: {files} files of {args.file_mib} MiB ({total_mib:.0f} MiB), {cpus} CPUs")
        print()
        print("| tool | parallel | seconds (best) | MiB/s | of sha256sum |")
        print("|---|---|---|---|---|")
        print("\n".join(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
