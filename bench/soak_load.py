"""The soak benchmark's client: signed aiohttp requests, deterministic bodies and the mixed load.

Kept light because it shares the machine's cores with the gateway it measures: aiohttp on
uvloop, SigV4 with ``UNSIGNED-PAYLOAD`` (``gateway.protocol.sigv4.sign_request``), bodies made of
one
seeded 64 KiB random block, rotated by an offset derived from the key and repeated up to the
object's size. The client keeps each acknowledged object's SHA-256 and size, never its bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from bench.client import REGION, Endpoint
from gateway.protocol.sigv4 import UNSIGNED_PAYLOAD, canonical_query, sign_request

BLOCK = 64 * 1024
MIN_SIZE = 1024
MAX_SIZE = 4 * 1024 * 1024
#: the mix of operations (percent) the issue describes
MIX = {
    "put_session": 30,
    "put_scratch": 10,
    "get": 30,
    "head": 10,
    "list": 10,
    "delete": 10,
}
OPS = tuple(MIX)
#: size classes the distribution is printed in (upper bounds, bytes)
SIZE_CLASSES = (4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20)
_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")


def size_class(size: int) -> str:
    low = MIN_SIZE
    for high in SIZE_CLASSES:
        if size <= high:
            return f"{_human(low)}-{_human(high)}"
        low = high
    return f">{_human(SIZE_CLASSES[-1])}"


def _human(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


class Signer:
    """Signs requests for one set of credentials (UNSIGNED-PAYLOAD, so bodies are never hashed
    for the signature)."""

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep

    def url_and_headers(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]] = (),
        extra: dict[str, str] | None = None,
    ) -> tuple[URL, dict[str, str]]:
        pairs = list(query)
        headers = sign_request(
            method=method,
            raw_path=path,
            query=pairs,
            headers=dict(extra or {}),
            payload_hash=UNSIGNED_PAYLOAD,
            access_key=self.ep.access_key,
            secret_key=self.ep.secret_key,
            region=REGION,
            host=self.ep.host,
        )
        # The canonical query string is also a valid encoded query for the request line.
        qs = canonical_query(pairs)
        return URL(self.ep.url + path + (f"?{qs}" if qs else ""), encoded=True), headers


class Bodies:
    """Object bodies from one seeded block: key -> (rotation of the block) repeated to size."""

    def __init__(self, seed: int) -> None:
        rnd = random.Random(seed)
        self._rnd = random.Random(seed + 1)
        self._double = memoryview(rnd.randbytes(BLOCK) * 2)

    def size(self) -> int:
        """Log-uniform between MIN_SIZE and MAX_SIZE: most objects small, some large."""
        return int(math.exp(self._rnd.uniform(math.log(MIN_SIZE), math.log(MAX_SIZE))))

    def chunks(self, key: str, size: int) -> Iterable[memoryview]:
        offset = zlib.crc32(key.encode()) % BLOCK
        pattern = self._double[offset : offset + BLOCK]
        full, rest = divmod(size, BLOCK)
        for _ in range(full):
            yield pattern
        if rest:
            yield pattern[:rest]

    def sha256(self, key: str, size: int) -> bytes:
        h = hashlib.sha256()
        for chunk in self.chunks(key, size):
            h.update(chunk)
        return h.digest()


@dataclass(slots=True)
class Outcome:
    """One request's answer: HTTP status (0: no answer), S3 error code (or exception name)."""

    status: int
    code: str = ""
    start: float = 0.0
    end: float = 0.0
    nbytes: int = 0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


async def _error_code(resp: aiohttp.ClientResponse) -> str:
    if resp.method == "HEAD":
        return "-"
    body = await resp.content.read(4096)
    found = _CODE.search(body)
    return found.group(1).decode(errors="replace") if found else "-"


class Client:
    """The requests the soak sends, each with a timeout, each returning an :class:`Outcome`."""

    def __init__(self, session: aiohttp.ClientSession, bodies: Bodies, bucket: str) -> None:
        self.http = session
        self.bodies = bodies
        self.bucket = bucket

    async def _send(
        self,
        signer: Signer,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]] = (),
        *,
        data: Any = None,
        extra: dict[str, str] | None = None,
        sink: Any = None,
    ) -> Outcome:
        url, headers = signer.url_and_headers(method, path, query, extra)
        start = time.monotonic()
        try:
            async with self.http.request(method, url, data=data, headers=headers) as resp:
                if 200 <= resp.status < 300:
                    n = 0
                    async for chunk in resp.content.iter_chunked(256 * 1024):
                        n += len(chunk)
                        if sink is not None:
                            sink.update(chunk)
                    return Outcome(resp.status, "", start, time.monotonic(), n)
                code = await _error_code(resp)
                return Outcome(resp.status, code, start, time.monotonic())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Outcome(0, type(exc).__name__, start, time.monotonic())

    async def put(self, signer: Signer, key: str, size: int) -> tuple[Outcome, bytes]:
        """PUT ``size`` generated bytes; returns the outcome and the SHA-256 of what was sent."""
        h = hashlib.sha256()

        async def body() -> AsyncIterator[memoryview]:
            for chunk in self.bodies.chunks(key, size):
                h.update(chunk)
                yield chunk

        extra = {"content-type": "application/octet-stream"}
        out = await self._send(
            signer,
            "PUT",
            f"/{self.bucket}/{key}",
            data=body(),
            extra={**extra, "content-length": str(size)},
        )
        return out, h.digest()

    async def get(self, signer: Signer, key: str) -> tuple[Outcome, bytes]:
        h = hashlib.sha256()
        out = await self._send(signer, "GET", f"/{self.bucket}/{key}", sink=h)
        return out, h.digest()

    async def head(self, signer: Signer, key: str) -> Outcome:
        return await self._send(signer, "HEAD", f"/{self.bucket}/{key}")

    async def list(self, signer: Signer, prefix: str, max_keys: int = 100) -> Outcome:
        query = [("list-type", "2"), ("prefix", prefix), ("max-keys", str(max_keys))]
        return await self._send(signer, "GET", f"/{self.bucket}", query)

    async def delete(self, signer: Signer, key: str) -> Outcome:
        return await self._send(signer, "DELETE", f"/{self.bucket}/{key}")


class KeyPool:
    """Keys with O(1) random pick and removal."""

    def __init__(self) -> None:
        self._keys: list[str] = []
        self._where: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> None:
        if key not in self._where:
            self._where[key] = len(self._keys)
            self._keys.append(key)

    def discard(self, key: str) -> None:
        i = self._where.pop(key, None)
        if i is None:
            return
        last = self._keys.pop()
        if i < len(self._keys):
            self._keys[i] = last
            self._where[last] = i

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def pick(self, rnd: random.Random) -> str | None:
        return self._keys[rnd.randrange(len(self._keys))] if self._keys else None


@dataclass(slots=True)
class Window:
    """An injected outage: from the kill to the restart plus a grace for recovery."""

    what: str
    killed: float
    restarted: float | None = None
    grace: float = 0.0
    #: first acknowledged write after the restart (seconds after the restart)
    first_write_after: float | None = None

    def covers(self, start: float, end: float) -> bool:
        until = (self.restarted if self.restarted is not None else math.inf) + self.grace
        return start <= until and end >= self.killed


@dataclass
class Ledger:
    """What the clients were told: the basis of the integrity check."""

    #: key -> (sha256, size) of every acknowledged PUT not since deleted with an acknowledged DELETE
    acked: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    #: keys whose PUT got an error answer (or none) and was not acknowledged later
    failed_puts: set[str] = field(default_factory=set)
    #: keys removed by an acknowledged DELETE
    deleted: set[str] = field(default_factory=set)
    #: keys whose DELETE got an error (or no) answer: present or absent, both are possible
    delete_failed: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    #: acknowledged operations by kind (the audit log must hold as many "allowed" events)
    acked_ops: Counter = field(default_factory=Counter)
    #: GETs during the load whose bytes did not hash to what was PUT
    get_mismatches: list[str] = field(default_factory=list)


@dataclass
class Stats:
    ops: Counter = field(default_factory=Counter)
    ok: Counter = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPS})
    #: (op, status, code, "outage" | "outside") -> count
    errors: Counter = field(default_factory=Counter)
    bytes_put: int = 0
    bytes_got: int = 0
    sizes: Counter = field(default_factory=Counter)
    sizes_bytes: Counter = field(default_factory=Counter)
    #: GET/HEAD 404s of scratch keys a concurrent DELETE removed (not errors)
    raced_404: int = 0
    #: (status, code) of PUT retries of keys whose first PUT failed
    retries: Counter = field(default_factory=Counter)
    #: "put_session" / "put_scratch" -> PUTs answered 403 (retries included): refusals, which
    #: the audit log records as "refused" events
    refused_puts: Counter = field(default_factory=Counter)


class Load:
    """The mixed load: ``clients`` workers until ``end`` (monotonic seconds)."""

    def __init__(
        self,
        client: Client,
        session_signer: Signer,
        admin_signer: Signer,
        session_prefix: str,
        scratch_prefix: str,
        seed: int,
        windows: list[Window],
        retry: bool,
    ) -> None:
        self.c = client
        self.session_signer = session_signer
        self.admin = admin_signer
        self.session_prefix = session_prefix
        self.scratch_prefix = scratch_prefix
        self.rnd = random.Random(seed)
        self.windows = windows
        self.retry = retry
        self.ledger = Ledger()
        self.stats = Stats()
        self.session_keys = KeyPool()
        self.scratch_live = KeyPool()
        self._next = 0
        self._weights = [MIX[op] for op in OPS]

    def new_key(self, prefix: str) -> str:
        self._next += 1
        return f"{prefix}o{self._next:07d}"

    def _window(self, out: Outcome) -> str:
        return "outage" if any(w.covers(out.start, out.end) for w in self.windows) else "outside"

    def _count(self, op: str, out: Outcome) -> None:
        self.stats.ops[op] += 1
        self.stats.latencies[op].append(out.end - out.start)
        if out.ok:
            self.stats.ok[op] += 1
        else:
            self.stats.errors[(op, out.status, out.code, self._window(out))] += 1

    def _note_recovery(self, out: Outcome) -> None:
        for w in self.windows:
            if w.restarted is not None and w.first_write_after is None and out.start > w.restarted:
                w.first_write_after = out.end - w.restarted

    async def put(self, kind: str, *, count: bool = True) -> bool:
        """One PUT of a fresh key (``kind``: session or scratch); True when acknowledged."""
        prefix = self.session_prefix if kind == "session" else self.scratch_prefix
        signer = self.session_signer if kind == "session" else self.admin
        key = self.new_key(prefix)
        size = self.c.bodies.size()
        self.stats.sizes[size_class(size)] += 1
        self.stats.sizes_bytes[size_class(size)] += size
        out, digest = await self.c.put(signer, key, size)
        if count:
            self._count(f"put_{kind}", out)
        self.stats.refused_puts[f"put_{kind}"] += out.status == 403
        if not out.ok and self.retry and (out.status == 0 or out.status >= 500):
            # what a client does next: the same key again, once, a moment later
            await asyncio.sleep(0.2)
            out, digest = await self.c.put(signer, key, size)
            self.stats.retries[(out.status, out.code or "-")] += 1
            self.stats.refused_puts[f"put_{kind}"] += out.status == 403
        if out.ok:
            self.stats.bytes_put += size
            self.ledger.acked[key] = (digest, size)
            self.ledger.acked_ops[f"put_{kind}"] += 1
            (self.session_keys if kind == "session" else self.scratch_live).add(key)
            self._note_recovery(out)
            return True
        self.ledger.failed_puts.add(key)
        return False

    def _pick_readable(self) -> str | None:
        # two thirds session keys (never deleted), one third scratch keys
        if self.scratch_live and (not self.session_keys or self.rnd.random() < 1 / 3):
            return self.scratch_live.pick(self.rnd)
        return self.session_keys.pick(self.rnd)

    def _raced(self, key: str, out: Outcome) -> bool:
        """A 404 of a scratch key a concurrent DELETE took away is no error."""
        return (
            out.status == 404
            and key.startswith(self.scratch_prefix)
            and key not in self.scratch_live
        )

    async def get(self) -> None:
        key = self._pick_readable()
        if key is None:
            await self.put("session")
            return
        out, digest = await self.c.get(self.admin, key)
        if self._raced(key, out):
            self.stats.raced_404 += 1
            return
        self._count("get", out)
        if out.ok:
            self.stats.bytes_got += out.nbytes
            expected = self.ledger.acked.get(key)
            if expected is not None and expected[0] != digest:
                self.ledger.get_mismatches.append(key)

    async def head(self) -> None:
        key = self._pick_readable()
        if key is None:
            await self.put("session")
            return
        out = await self.c.head(self.admin, key)
        if self._raced(key, out):
            self.stats.raced_404 += 1
            return
        self._count("head", out)

    async def list(self) -> None:
        prefix = self.session_prefix if self.rnd.random() < 0.75 else self.scratch_prefix
        self._count("list", await self.c.list(self.admin, prefix))

    async def delete(self) -> None:
        key = self.scratch_live.pick(self.rnd)
        if key is None:
            await self.put("scratch")
            return
        self.scratch_live.discard(key)
        out = await self.c.delete(self.admin, key)
        self._count("delete", out)
        if out.ok:
            self.ledger.acked.pop(key, None)
            self.ledger.deleted.add(key)
            self.ledger.acked_ops["delete"] += 1
        else:
            known = self.ledger.acked.pop(key, None)
            if known is not None:
                self.ledger.delete_failed[key] = known

    async def one(self) -> None:
        op = self.rnd.choices(OPS, self._weights)[0]
        if op == "put_session":
            await self.put("session")
        elif op == "put_scratch":
            await self.put("scratch")
        else:
            await getattr(self, op)()

    async def run(self, clients: int, end: float) -> None:
        async def worker() -> None:
            while time.monotonic() < end:
                await self.one()

        await asyncio.gather(*(worker() for _ in range(clients)))
