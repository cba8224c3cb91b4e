#!/usr/bin/env python
"""How fast the metadata browser answers with many sessions, page and JSON API.

    python bench/browse.py                 # sqlite: 100, 10,000, 100,000; mongo: 100, 10,000
    python bench/browse.py --quick         # sqlite 100 and 10,000 only, fewer repeats

For each metadata store and session count it starts one ``minimo serve`` (the local object
store; MongoDB on a FerretDB it starts), writes the known population of
``tests/test_many_sessions.py`` straight into the store, signs in as the admin and times each
scenario, one request after another, as the page (``/_minimo/sessions``) and as its JSON twin
(``/_minimo/api/v1/sessions`` or ``/export``): the time to the last byte of the response,
median and 95th percentile over the repeats. Each median is also given as a ratio to the same
scenario with 100 sessions on the same store in the same run, so machine speed cancels out.
Prints a markdown table (made to be pasted into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make gateway, tests and bench importable
    sys.path.insert(0, str(REPO))

from policy.store import open_metadata_store  # noqa: E402
from tests.api.client import Browser, _send  # noqa: E402
from tests.servers import Gateway, mongo_uri, run_ferretdb, run_gateway  # noqa: E402
from tests.test_many_sessions import planted, populate  # noqa: E402

PAGE = 25
REFERENCE = 100


@dataclass(frozen=True)
class Scenario:
    name: str
    #: the page's query parameters (None: no page); ``page`` may be "last" or "middle"
    page: dict[str, Any] | None
    #: the API path and its parameters (``offset`` may be "last" or "middle")
    api_path: str
    api: dict[str, Any]


SCENARIOS = (
    Scenario("unfiltered, page 1", {}, "/sessions", {"limit": PAGE}),
    Scenario(
        "unfiltered, last page",
        {"page": "last"},
        "/sessions",
        {"limit": PAGE, "offset": "last"},
    ),
    Scenario(
        "1 field condition",
        {"form": "assay", "where": ["operator=Ann"]},
        "/sessions",
        {"form": "assay", "where": ["operator=Ann"], "limit": PAGE},
    ),
    Scenario(
        "2 field conditions",
        {"form": "assay", "where": ["operator=Ann", "samples>=500"]},
        "/sessions",
        {"form": "assay", "where": ["operator=Ann", "samples>=500"], "limit": PAGE},
    ),
    Scenario(
        "field sort, page 2",
        {"form": "assay", "sort": "samples", "page": 2},
        "/sessions",
        {"form": "assay", "sort": "samples", "limit": PAGE, "offset": PAGE},
    ),
    Scenario(
        "owner sort, middle page",
        {"sort": "owner", "page": "middle"},
        "/sessions",
        {"sort": "owner", "limit": PAGE, "offset": "middle"},
    ),
    Scenario(
        "CSV export, 1 condition",
        None,
        "/sessions/export",
        {"format": "csv", "form": "assay", "where": ["operator=Ann"]},
    ),
)  # fmt: skip


@dataclass
class Timing:
    median_ms: float
    p95_ms: float


def _resolve(params: dict[str, Any], count: int, key: str, per_page: int) -> dict[str, Any]:
    """``last`` / ``middle`` as the page number or offset they mean for ``count`` sessions."""
    value = params.get(key)
    if value not in ("last", "middle"):
        return params
    pages = max(1, -(-count // PAGE))
    number = pages if value == "last" else max(1, pages // 2)
    return {**params, key: number if per_page == 1 else (number - 1) * PAGE}


def _time(fetch: Any, repeats: int) -> Timing:
    fetch()  # warm-up: first use of a statement or collection is not what a user waits for
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fetch()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return Timing(statistics.median(samples), p95)


def measure(gw: Gateway, count: int, repeats: int) -> dict[tuple[str, str], Timing]:
    browser = Browser(gw.endpoint)
    if browser.login("admin", gw.admin_password).status != 200:
        raise RuntimeError("cannot sign in as admin")

    def page(params: dict[str, Any]) -> None:
        url = f"{gw.endpoint}/_minimo/sessions?{urlencode(params, doseq=True)}"
        reply = _send(browser.opener, urllib.request.Request(url))
        if reply.status != 200:
            raise RuntimeError(f"page {url}: {reply.status}")

    def api(path: str, params: dict[str, Any]) -> None:
        reply = browser.call("GET", f"{path}?{urlencode(params, doseq=True)}")
        if reply.status != 200:
            raise RuntimeError(f"API {path}: {reply.status} {reply.body}")

    out: dict[tuple[str, str], Timing] = {}
    for s in SCENARIOS:
        if s.page is not None:
            p = _resolve(s.page, count, "page", 1)
            out[(s.name, "page")] = _time(lambda p=p: page(p), repeats)
        a = _resolve(s.api, count, "offset", PAGE)
        out[(s.name, "api")] = _time(lambda a=a, s=s: api(s.api_path, a), repeats)
    return out


_ferretdb: list[str] = []


@contextmanager
def gateway(store: str, work: Path, stack: ExitStack) -> Iterator[Gateway]:
    uri = None
    if store == "mongo":
        if not _ferretdb:  # one FerretDB for the whole run, a fresh database per count
            _ferretdb.append(stack.enter_context(run_ferretdb(work / "ferretdb")))
        uri = mongo_uri(_ferretdb[0], f"browse{time.monotonic_ns()}")
    with run_gateway(work / f"gw-{time.monotonic_ns()}", mongo_uri=uri) as gw:
        yield gw


def run(store: str, count: int, repeats: int, work: Path, stack: ExitStack) -> Any:
    with gateway(store, work, stack) as gw:
        started = time.perf_counter()

        async def fill() -> None:
            meta = await open_metadata_store(gw.data_dir / "minimo.sqlite3", mongo_uri=gw.mongo_uri)
            try:
                await populate(meta, planted(count))
            finally:
                await meta.close()

        asyncio.run(fill())
        fill_s = time.perf_counter() - started
        print(f"  {store} {count:>7,}: written in {fill_s:.1f} s, measuring", file=sys.stderr)
        return fill_s, measure(gw, count, repeats)


def render(results: dict[tuple[str, int], Any], repeats: dict[str, int]) -> str:
    lines = [
        "| store | sessions | scenario | page median | page p95 | API median | API p95 "
        f"| page / {REFERENCE} | API / {REFERENCE} |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (store, count), (_, timings) in sorted(results.items()):
        reference = results.get((store, REFERENCE), (0, {}))[1]
        for s in SCENARIOS:
            cells = []
            ratios = []
            for kind in ("page", "api"):
                t = timings.get((s.name, kind))
                cells += [f"{t.median_ms:.1f} ms", f"{t.p95_ms:.1f} ms"] if t else ["-", "-"]
                ref = reference.get((s.name, kind))
                ok = t is not None and ref is not None and count != REFERENCE
                ratios.append(f"{t.median_ms / ref.median_ms:.1f}" if ok else "-")  # type: ignore[union-attr]
            lines.append(
                f"| {store} | {count:,} | {s.name} | {' | '.join(cells)} | {' | '.join(ratios)} |"
            )
    notes = [
        "",
        f"Repeats per figure: {', '.join(f'{k} {v}' for k, v in repeats.items())} (after one "
        "warm-up request). Time to the last byte, one request at a time.",
        "Written in: "
        + ", ".join(
            f"{store} {count:,} in {fill:.0f} s"
            for (store, count), (fill, _) in sorted(results.items())
        ),
    ]
    return "\n".join(lines + notes)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Metadata browser response times with many sessions.")
    p.add_argument("--quick", action="store_true", help="sqlite 100 and 10,000; 5 repeats")
    p.add_argument("--sqlite-counts", default="100,10000,100000")
    p.add_argument("--mongo-counts", default="100,10000")
    p.add_argument("--repeats", type=int, default=30, help="per figure on sqlite")
    p.add_argument("--mongo-repeats", type=int, default=7, help="per figure on mongo (FerretDB)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan: list[tuple[str, int]] = []
    if args.quick:
        plan = [("sqlite", REFERENCE), ("sqlite", 10_000)]
        args.repeats = 5
    else:
        plan += [("sqlite", int(c)) for c in args.sqlite_counts.split(",") if c]
        plan += [("mongo", int(c)) for c in args.mongo_counts.split(",") if c]
    repeats = {"sqlite": args.repeats, "mongo": args.mongo_repeats}
    started = datetime.now(UTC)
    results: dict[tuple[str, int], Any] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="minimo-browse-") as tmp:
        for store, count in plan:
            results[(store, count)] = run(store, count, repeats[store], Path(tmp), stack)
    minutes = (datetime.now(UTC) - started).total_seconds() / 60
    print(f"### Metadata browser, run of {started:%Y-%m-%d %H:%M} UTC ({minutes:.1f} min)\n")
    print(render(results, {k: v for k, v in repeats.items() if any(s == k for s, _ in plan)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
