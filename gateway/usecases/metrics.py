"""Prometheus metrics: what the gateway counts, and the text ``/_minimo/metrics`` answers.

Two kinds of figures:

- **counted in the process** as requests pass (requests by operation and status, latency,
  bytes in and out, refusals by reason, metadata- and object-store calls and their errors,
  objects verified). Counting is plain dictionary arithmetic on the event loop (about a
  microsecond), not prometheus_client's instruments: those take a lock and a label lookup per
  observation, which measured 5-20 us per call here, and a small PUT makes seven of them.
  With several worker processes (``minimo serve --workers N``) each worker writes its counts
  to ``PROMETHEUS_MULTIPROC_DIR/minimo-PID.json`` every :data:`SHARE_EVERY` seconds (the
  supervisor sets the directory before it forks; a dead worker's last file stays, so totals
  never go down), and a scrape of any worker adds them all up.
- **read from the metadata store** at scrape time (sessions open, write intents pending,
  records by last verify result): the same for every gateway, so they are gauges any one
  gateway may answer, reused for :data:`STORE_GAUGES_TTL` seconds so that a scrape every 15 s
  is not a full scan every 15 s.

prometheus_client writes the text format (its metric families), so the exposition is the
library's.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import inspect
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from policy.store.base import MetadataStore
from policy.store.errors import AlreadyExists, KeyBusy, NotFound
from policy.store.queries import SessionQuery

#: the text format's content type (prometheus_client.CONTENT_TYPE_LATEST)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: the directory the workers of one gateway share their counts in (the name prometheus_client
#: uses for the same purpose, so an operator's habits carry over)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: seconds between a worker's writes of its counts (what a scrape of another worker may lag)
SHARE_EVERY = 1.0
#: how long the figures read from the metadata store are reused
STORE_GAUGES_TTL = 30.0
#: write intents counted at most (more than this many pending means something is badly wrong)
MAX_INTENTS_COUNTED = 10_000

#: request latency buckets, seconds: a 4 KiB request takes ~1 ms, a large transfer minutes
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: store call latency buckets: most calls take well under a millisecond
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


# -- counting ------------------------------------------------------------------------------------
@dataclass(slots=True)
class Histogram:
    """Observations per bucket (not cumulative; the last is above every bound) and their sum."""

    counts: list[int]
    total: float = 0.0

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> Histogram:
        return cls([0] * (len(bounds) + 1))

    def observe(self, bounds: tuple[float, ...], value: float) -> None:
        self.counts[bisect.bisect_left(bounds, value)] += 1
        self.total += value

    def add(self, other: Histogram) -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.total += other.total


#: a series' labels, in the order its family names them
Labels = tuple[str, ...]


@dataclass(slots=True)
class Counts:
    """Everything one process counted since it started."""

    requests: dict[Labels, int] = field(default_factory=dict)  # (operation, status)
    latency: dict[Labels, Histogram] = field(default_factory=dict)  # (operation,)
    received: dict[Labels, int] = field(default_factory=dict)  # (operation,)
    sent: dict[Labels, int] = field(default_factory=dict)  # (operation,)
    refusals: dict[Labels, int] = field(default_factory=dict)  # (reason,)
    store_latency: dict[Labels, Histogram] = field(default_factory=dict)  # (store, call)
    store_errors: dict[Labels, int] = field(default_factory=dict)  # (store, call)
    verified: dict[Labels, int] = field(default_factory=dict)  # (result,)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in _COUNTERS:
            out[name] = [[list(k), v] for k, v in getattr(self, name).items()]
        for name in _HISTOGRAMS:
            out[name] = [[list(k), h.counts, h.total] for k, h in getattr(self, name).items()]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Counts:
        counts = cls()
        for name in _COUNTERS:
            target = getattr(counts, name)
            for labels, value in data.get(name, []):
                target[tuple(labels)] = int(value)
        for name in _HISTOGRAMS:
            target = getattr(counts, name)
            for labels, buckets, total in data.get(name, []):
                target[tuple(labels)] = Histogram(list(buckets), float(total))
        return counts

    def add(self, other: Counts) -> None:
        for name in _COUNTERS:
            mine = getattr(self, name)
            for labels, value in getattr(other, name).items():
                mine[labels] = mine.get(labels, 0) + value
        for name in _HISTOGRAMS:
            mine = getattr(self, name)
            for labels, hist in getattr(other, name).items():
                if labels in mine:
                    mine[labels].add(hist)
                else:
                    mine[labels] = Histogram(list(hist.counts), hist.total)


_COUNTERS = ("requests", "received", "sent", "refusals", "store_errors", "verified")
_HISTOGRAMS = ("latency", "store_latency")

#: this process's counts (a forked worker starts from the supervisor's, which counted nothing)
_counts = Counts()


def observe_request(operation: str, status: int, seconds: float, received: int, sent: int) -> None:
    c = _counts
    key = (operation, str(status))
    c.requests[key] = c.requests.get(key, 0) + 1
    op = (operation,)
    hist = c.latency.get(op)
    if hist is None:
        hist = c.latency[op] = Histogram.empty(LATENCY_BUCKETS)
    hist.observe(LATENCY_BUCKETS, seconds)
    if received:
        c.received[op] = c.received.get(op, 0) + received
    if sent:
        c.sent[op] = c.sent.get(op, 0) + sent


def count_refusal(reason: str) -> None:
    key = (reason,)
    _counts.refusals[key] = _counts.refusals.get(key, 0) + 1


def count_verified(result: str) -> None:
    key = (result,)
    _counts.verified[key] = _counts.verified.get(key, 0) + 1


def _observe_store(key: Labels, seconds: float, failed: bool) -> None:
    c = _counts
    hist = c.store_latency.get(key)
    if hist is None:
        hist = c.store_latency[key] = Histogram.empty(STORE_BUCKETS)
    hist.observe(STORE_BUCKETS, seconds)
    if failed:
        c.store_errors[key] = c.store_errors.get(key, 0) + 1


#: exceptions that are answers, not failures: the metadata store's (policy.store.errors), and
#: a call cancelled because its client went away
_ANSWERS: tuple[type[BaseException], ...] = (
    AlreadyExists,
    NotFound,
    KeyBusy,
    asyncio.CancelledError,
    GeneratorExit,
)


def is_failure(exc: BaseException) -> bool:
    """Whether a store call's exception is a failure of the store (an outage, a timeout, a full
    disk, a bug) rather than its answer (no such key, a precondition that does not hold: the
    object backends' S3 errors below 500)."""
    if isinstance(exc, _ANSWERS):
        return False
    status = getattr(exc, "status", None)
    return not (isinstance(status, int) and status < 500)


def instrument_store(store: object, label: str, *, skip: Iterable[str] = ()) -> None:
    """Time every public coroutine method of ``store`` (one instance, wrapped in place, so
    ``isinstance`` and attributes are untouched) as ``minimo_store_call_duration_seconds
    {store=label, call=name}``, and count the ones that fail."""
    skipped = set(skip)
    for name, _method in inspect.getmembers(type(store), inspect.iscoroutinefunction):
        if name.startswith("_") or name in skipped:
            continue
        setattr(store, name, _timed(getattr(store, name), (label, name)))


def _timed(call: Callable[..., Awaitable[Any]], key: Labels) -> Callable[..., Any]:
    @functools.wraps(call)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await call(*args, **kwargs)
        except BaseException as exc:
            _observe_store(key, time.perf_counter() - started, is_failure(exc))
            raise
        _observe_store(key, time.perf_counter() - started, False)
        return result

    return timed


# -- sharing between the workers of one gateway --------------------------------------------------
def _share_dir() -> Path | None:
    value = os.environ.get(MULTIPROCESS_ENV)
    return Path(value) if value else None


def _own_file(directory: Path) -> Path:
    return directory / f"minimo-{os.getpid()}.json"


def write_share() -> None:
    """Write this process's counts where the other workers read them (atomically: a scrape
    never reads half a file)."""
    directory = _share_dir()
    if directory is None:
        return
    path = _own_file(directory)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_counts.to_json(), separators=(",", ":")))
    tmp.replace(path)


async def share_while_running() -> None:
    """Write this worker's counts every :data:`SHARE_EVERY` seconds until cancelled (a task the
    server runs when ``PROMETHEUS_MULTIPROC_DIR`` is set), and once more at the end."""
    if _share_dir() is None:
        return
    try:
        while True:
            with contextlib.suppress(OSError):
                write_share()
            await asyncio.sleep(SHARE_EVERY)
    finally:
        with contextlib.suppress(OSError):
            write_share()


def gathered() -> Counts:
    """This process's counts, plus every other worker's last written ones."""
    total = Counts()
    total.add(_counts)
    directory = _share_dir()
    if directory is None:
        return total
    own = _own_file(directory)
    for path in sorted(directory.glob("minimo-*.json")):
        if path == own:
            continue
        try:
            total.add(Counts.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue  # being replaced this instant, or not ours: the next scrape has it
    return total


# -- answering a scrape --------------------------------------------------------------------------
@dataclass(slots=True)
class _StoreFigures:
    at: float
    sessions_open: int
    intents_pending: int
    verify_results: dict[str, int]


_figures: _StoreFigures | None = None


async def _store_figures(store: MetadataStore) -> _StoreFigures:
    global _figures
    now = time.monotonic()
    if _figures is not None and now - _figures.at < STORE_GAUGES_TTL:
        return _figures
    page = await store.search_sessions(SessionQuery(state="open", limit=1))
    intents = await store.stale_intents(datetime.now(UTC), limit=MAX_INTENTS_COUNTED)
    results = await store.verify_results()
    _figures = _StoreFigures(now, page.total, len(intents), results)
    return _figures


#: name, help, label names, field of Counts
_COUNTER_FAMILIES = (
    (
        "minimo_requests",
        "S3 requests answered, by operation and HTTP status.",
        ("operation", "status"),
        "requests",
    ),
    ("minimo_received_bytes", "Request body bytes read, by operation.", ("operation",), "received"),
    ("minimo_sent_bytes", "Response body bytes sent, by operation.", ("operation",), "sent"),
    ("minimo_refusals", "Operations policy refused, by reason.", ("reason",), "refusals"),
    (
        "minimo_store_call_errors",
        "Store calls that failed (outages, timeouts, full disks; not 'no such key'), by store "
        "and call.",
        ("store", "call"),
        "store_errors",
    ),
    (
        "minimo_verified_objects",
        "Objects this gateway re-read and checked (a verify started from the web UI), by result.",
        ("result",),
        "verified",
    ),
)
_HISTOGRAM_FAMILIES = (
    (
        "minimo_request_duration_seconds",
        "Time from a request's arrival to its answer, by operation.",
        ("operation",),
        "latency",
        LATENCY_BUCKETS,
    ),
    (
        "minimo_store_call_duration_seconds",
        "Calls to the metadata store and the object store, by store and call.",
        ("store", "call"),
        "store_latency",
        STORE_BUCKETS,
    ),
)


def _families(counts: Counts, figures: _StoreFigures) -> Iterator[Any]:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )
    from prometheus_client.utils import floatToGoString

    for name, doc, labels, attr in _COUNTER_FAMILIES:
        family = CounterMetricFamily(name, doc, labels=list(labels))
        for key, value in sorted(getattr(counts, attr).items()):
            family.add_metric(list(key), value)
        yield family
    for name, doc, labels, attr, bounds in _HISTOGRAM_FAMILIES:
        family = HistogramMetricFamily(name, doc, labels=list(labels))
        for key, hist in sorted(getattr(counts, attr).items()):
            cumulative, running = [], 0
            # (a file of another minimo version with other buckets would be cut to ours)
            labels_of_bounds = (*map(floatToGoString, bounds), "+Inf")
            for bound, n in zip(labels_of_bounds, hist.counts, strict=False):
                running += n
                cumulative.append((bound, running))
            family.add_metric(list(key), cumulative, hist.total)
        yield family
    yield GaugeMetricFamily(
        "minimo_sessions_open", "Metadata sessions open now.", value=figures.sessions_open
    )
    yield GaugeMetricFamily(
        "minimo_write_intents_pending",
        "Writes and deletes begun and not finished (crash recovery repairs those of dead "
        f"gateways; counted up to {MAX_INTENTS_COUNTED}).",
        value=figures.intents_pending,
    )
    by_result = GaugeMetricFamily(
        "minimo_objects_by_verify_result",
        "Current object records by the result of their last minimo verify (never: not yet).",
        labels=["result"],
    )
    for result, count in sorted(figures.verify_results.items()):
        by_result.add_metric([result or "never"], count)
    yield by_result


async def exposition(store: MetadataStore) -> bytes:
    """The Prometheus text of every figure (all workers' counts added up)."""
    from prometheus_client import CollectorRegistry, generate_latest

    figures = await _store_figures(store)
    counts = gathered()

    class Collector:
        def collect(self) -> Iterator[Any]:
            return _families(counts, figures)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())  # type: ignore[arg-type]
    return generate_latest(registry)
