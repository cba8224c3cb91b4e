"""Prometheus metrics: what the gateway counts, and the text ``/_minimo/metrics`` answers.

Two kinds of figures:

- **counted in the process** as requests pass (requests by operation and status, latency,
  bytes in and out, refusals by reason, metadata- and object-store calls and their errors,
  objects verified). With several worker processes (``minimo serve --workers N``) each worker
  counts in its own files under ``PROMETHEUS_MULTIPROC_DIR`` (set by the supervisor before it
  forks) and a scrape of any worker adds them all up (prometheus_client's multiprocess mode).
- **read from the metadata store** at scrape time (sessions open, write intents pending,
  records by last verify result): the same for every gateway, so they are gauges that any
  one gateway may answer. They are cached for :data:`STORE_GAUGES_TTL` seconds, since a scrape
  every 15 s must not become a full scan every 15 s.

The instruments are made on first use, in the process that uses them, because
prometheus_client picks its storage (memory or the multiprocess files) when they are made: the
supervisor never makes them, so a forked worker makes its own.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from policy.store.base import MetadataStore
from policy.store.errors import AlreadyExists, KeyBusy, NotFound
from policy.store.queries import SessionQuery

#: the one content type of the text format (prometheus_client.CONTENT_TYPE_LATEST, without
#: importing the library before a worker is forked)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: how long the figures read from the metadata store are reused
STORE_GAUGES_TTL = 30.0
#: write intents counted at most (more than this many pending means something is badly wrong)
MAX_INTENTS_COUNTED = 10_000

#: request latency buckets, seconds: a 4 KiB request takes ~1 ms, a large transfer minutes
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: store call latency buckets: most calls take well under a millisecond
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass(frozen=True, slots=True)
class Instruments:
    requests: Any
    latency: Any
    received: Any
    sent: Any
    refusals: Any
    store_latency: Any
    store_errors: Any
    verified: Any
    registry: Any


_made: Instruments | None = None
_made_in: int | None = None


def instruments() -> Instruments:
    """This process's instruments (made again in a forked child, whose parent's are not its)."""
    global _made, _made_in
    if _made is None or _made_in != os.getpid():
        _made = _make()
        _made_in = os.getpid()
    return _made


def _make() -> Instruments:
    from prometheus_client import CollectorRegistry, Counter, Histogram, values

    # The value class decides memory or multiprocess files; prometheus_client picks it when
    # imported, which may have been before the supervisor set the directory.
    values.ValueClass = values.get_value_class()
    registry = CollectorRegistry(auto_describe=True)
    return Instruments(
        requests=Counter(
            "minimo_requests",
            "S3 requests answered, by operation and HTTP status.",
            ["operation", "status"],
            registry=registry,
        ),
        latency=Histogram(
            "minimo_request_duration_seconds",
            "Time from a request's arrival to its answer's last byte, by operation.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        received=Counter(
            "minimo_received_bytes",
            "Request body bytes received, by operation.",
            ["operation"],
            registry=registry,
        ),
        sent=Counter(
            "minimo_sent_bytes",
            "Response body bytes sent, by operation.",
            ["operation"],
            registry=registry,
        ),
        refusals=Counter(
            "minimo_refusals",
            "Operations policy refused, by reason.",
            ["reason"],
            registry=registry,
        ),
        store_latency=Histogram(
            "minimo_store_call_duration_seconds",
            "Calls to the metadata store and the object store, by store and call.",
            ["store", "call"],
            buckets=STORE_BUCKETS,
            registry=registry,
        ),
        store_errors=Counter(
            "minimo_store_call_errors",
            "Store calls that failed (outages, timeouts, full disks; not 'no such key'), by "
            "store and call.",
            ["store", "call"],
            registry=registry,
        ),
        verified=Counter(
            "minimo_verified_objects",
            "Objects this gateway re-read and checked (minimo verify from the web UI), by result.",
            ["result"],
            registry=registry,
        ),
        registry=registry,
    )


# -- counting ------------------------------------------------------------------------------------
def observe_request(operation: str, status: int, seconds: float, received: int, sent: int) -> None:
    made = instruments()
    made.requests.labels(operation, str(status)).inc()
    made.latency.labels(operation).observe(seconds)
    if received:
        made.received.labels(operation).inc(received)
    if sent:
        made.sent.labels(operation).inc(sent)


def count_refusal(reason: str) -> None:
    instruments().refusals.labels(reason).inc()


def count_verified(result: str) -> None:
    instruments().verified.labels(result).inc()


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
        setattr(store, name, _timed(getattr(store, name), label, name))


def _timed(call: Callable[..., Awaitable[Any]], label: str, name: str) -> Callable[..., Any]:
    @functools.wraps(call)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call(*args, **kwargs)
        except BaseException as exc:
            if is_failure(exc):
                instruments().store_errors.labels(label, name).inc()
            raise
        finally:
            instruments().store_latency.labels(label, name).observe(time.perf_counter() - started)

    return timed


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


async def exposition(store: MetadataStore) -> bytes:
    """The Prometheus text of every figure (all workers' counts added up)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    figures = await _store_figures(store)
    made = instruments()
    if os.environ.get(MULTIPROCESS_ENV):
        from prometheus_client import multiprocess

        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)
    else:
        counted = made.registry

    class FromStore:
        def collect(self) -> Iterable[Any]:
            yield GaugeMetricFamily(
                "minimo_sessions_open", "Metadata sessions open now.", value=figures.sessions_open
            )
            yield GaugeMetricFamily(
                "minimo_write_intents_pending",
                "Writes and deletes begun and not finished (crash recovery repairs those of "
                f"dead gateways; counted up to {MAX_INTENTS_COUNTED}).",
                value=figures.intents_pending,
            )
            by_result = GaugeMetricFamily(
                "minimo_objects_by_verify_result",
                "Current object records by the result of their last minimo verify "
                "(never: not verified yet).",
                labels=["result"],
            )
            for result, count in sorted(figures.verify_results.items()):
                by_result.add_metric([result or "never"], count)
            yield by_result

    from_store = CollectorRegistry()
    from_store.register(FromStore())  # type: ignore[arg-type]
    return generate_latest(counted) + generate_latest(from_store)
