"""The metadata browser with 10,000 sessions, on SQLite and on MongoDB (FerretDB), issue 4.

The sessions are written straight into the gateway's metadata store (in batches, as a bulk import
would), with values drawn from known distributions, so every expected answer is computed here
from the same list. Everything checked then goes through the real gateway: the page a user reads
(``/_minimo/sessions``) and its JSON twin (``/_minimo/api/v1/sessions`` and ``/export``).

``populate`` and ``planted`` are shared with ``bench/browse.py``.
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import re
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from policy.forms import parse_form
from policy.store import MetadataStore, SessionRecord, open_metadata_store
from tests.api.client import Browser, _send
from tests.servers import Gateway, mongo_uri, run_gateway

#: sessions per store. FerretDB 1.x pushes no filter, sort or limit down to its SQLite (its
#: explain says so): every count and every page decodes the whole collection, 1-2 s per request
#: at 10,000 sessions. Measured for this module's mongo half, on a loaded 2-core machine:
#: 10,000 sessions 94-116 s (31-43 s of it writing), 5,000 sessions 30 s. So FerretDB gets
#: 5,000 (a multiple of 125 keeps the first owner's last session on a page boundary); MongoDB
#: itself would use the indexes.
COUNTS = {"sqlite": 10_000, "mongo": 5_000}
PAGE = 25  # the page's page size (ui.pages.sessions.PAGE_SIZE)
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
OWNERS = ("ada", "bob", "cyd", "dee", "eli")
BUCKETS = ("raw", "lab", "cold", "share")
OPERATORS = ("Ann", "Ben", "Cleo", "Dan", "Ema", "Finn", "Gus")
FORMS: dict[str, dict[str, Any]] = {
    "assay": {
        "name": "assay",
        "title": "Plate assay",
        "fields": [
            {"name": "operator", "label": "Operator", "type": "text", "required": True},
            {"name": "samples", "label": "Samples", "type": "integer", "required": True},
            {"name": "plate", "type": "choice", "choices": ["A", "B", "C"]},
        ],
    },
    "imaging": {
        "name": "imaging",
        "title": "Imaging run",
        "fields": [
            {"name": "operator", "label": "Operator", "type": "text", "required": True},
            {"name": "samples", "label": "Samples", "type": "integer", "required": True},
            {"name": "objective", "type": "choice", "choices": ["10x", "40x", "63x"]},
        ],
    },
}


def planted(n: int) -> list[SessionRecord]:
    """Session i (0 = oldest, one minute apart): owner i%5, bucket i%4, form assay when i is
    even, operator i%7, samples (37*i)%1000 (each value equally often), every 10th closed."""
    sessions = []
    for i in range(n):
        form = "assay" if i % 2 == 0 else "imaging"
        values: dict[str, Any] = {"operator": OPERATORS[i % 7], "samples": (37 * i) % 1000}
        if form == "assay":
            values["plate"] = "ABC"[i % 3]
        else:
            values["objective"] = ("10x", "40x", "63x")[i % 3]
        created = T0 + timedelta(minutes=i)
        closed = i % 10 == 0
        sessions.append(
            SessionRecord(
                id=f"m{i:06d}",
                form_name=form,
                form_version=1,
                values=values,
                bucket=BUCKETS[i % 4],
                prefix=f"m{i:06d}/",
                owner=OWNERS[i % 5],
                state="closed" if closed else "open",
                created=created,
                expires=created + timedelta(days=3650),
                closed=created + timedelta(hours=1) if closed else None,
                closed_by=OWNERS[i % 5] if closed else None,
            )
        )
    return sessions


async def populate(store: MetadataStore, sessions: list[SessionRecord], batch: int = 250) -> None:
    """The two forms and ``sessions``, written ``batch`` at a time concurrently."""
    for definition in FORMS.values():
        if await store.get_form(definition["name"]) is None:
            form = parse_form(definition).to_dict()
            form.pop("version", None)
            await store.create_form_version(form["name"], form, "bulk-import")
    for start in range(0, len(sessions), batch):
        await asyncio.gather(*(store.create_session(s) for s in sessions[start : start + batch]))


def newest_first(sessions: list[SessionRecord]) -> list[SessionRecord]:
    return sorted(sessions, key=lambda s: (s.created, s.id), reverse=True)


def sorted_by(sessions: list[SessionRecord], key: Callable[[SessionRecord], Any]) -> list[str]:
    """Ids ordered by ``key`` ascending, ties newest first (what the stores promise)."""
    return [s.id for s in sorted(newest_first(sessions), key=key)]  # sorted() is stable


@dataclass
class Site:
    gw: Gateway
    sessions: list[SessionRecord]
    browser: Browser

    def page(self, **params: Any) -> str:
        """The metadata browser page's HTML for these query parameters."""
        url = f"{self.gw.endpoint}/_minimo/sessions?{urlencode(params, doseq=True)}"
        reply = _send(self.browser.opener, urllib.request.Request(url))
        assert reply.status == 200, reply.body
        return str(reply.body)

    def api(self, path: str, **params: Any) -> Any:
        reply = self.browser.call("GET", f"{path}?{urlencode(params, doseq=True)}")
        assert reply.status == 200, reply.body
        return reply.body


def listed(page_html: str) -> list[str]:
    """The session ids in the page's result table, top to bottom."""
    return re.findall(r'<tr data-session="(m\d{6})">', page_html)


def total_shown(page_html: str) -> int:
    match = re.search(r'<span id="total">(\d+)</span>', page_html)
    assert match is not None, page_html[:2000]
    return int(match.group(1))


@pytest.fixture(scope="module", params=sorted(COUNTS))
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    kind = request.param
    uri = mongo_uri(request.getfixturevalue("ferretdb"), "many") if kind == "mongo" else None
    data_dir = tmp_path_factory.mktemp(f"many-{kind}")
    with run_gateway(data_dir, mongo_uri=uri) as gw:
        sessions = planted(COUNTS[kind])

        async def fill() -> None:
            store = await open_metadata_store(Path(data_dir) / "minimo.sqlite3", mongo_uri=uri)
            try:
                await populate(store, sessions)
            finally:
                await store.close()

        asyncio.run(fill())
        browser = Browser(gw.endpoint)
        assert browser.login("admin", gw.admin_password).status == 200
        yield Site(gw, sessions, browser)


def test_pages_of_all_sessions(site: Site) -> None:
    everything = [s.id for s in newest_first(site.sessions)]
    n = len(everything)
    first = site.page()
    assert total_shown(first) == n
    assert listed(first) == everything[:PAGE]
    assert f"page 1 of {n // PAGE}" in first
    middle = n // PAGE // 2
    assert listed(site.page(page=middle)) == everything[(middle - 1) * PAGE : middle * PAGE]
    last = site.page(page=n // PAGE)
    assert listed(last) == everything[-PAGE:] and everything[-1] == "m000000"
    reply = site.api("/sessions", limit=PAGE)
    assert reply["total"] == n and [s["id"] for s in reply["sessions"]] == everything[:PAGE]


def test_two_field_conditions(site: Site) -> None:
    wanted = [
        s.id
        for s in newest_first(site.sessions)
        if s.form_name == "assay" and s.values["operator"] == "Ann" and s.values["samples"] >= 500
    ]
    assert 2 * PAGE < len(wanted) < len(site.sessions) // 10  # selective, yet two pages
    conditions = {"form": "assay", "where": ["operator=Ann", "samples>=500"]}
    first = site.page(**conditions)
    assert total_shown(first) == len(wanted)
    assert listed(first) == wanted[:PAGE]
    # the "next" link keeps both conditions
    assert "where=operator%3DAnn&amp;where=samples%3E%3D500&amp;page=2" in first
    assert listed(site.page(**conditions, page=2)) == wanted[PAGE : 2 * PAGE]
    # the condition rows a form submits mean the same
    rows = {"where_field": ["operator", "samples"], "where_op": ["=", ">="]}
    submitted = site.page(form="assay", **rows, where_value=["Ann", "500"])
    assert total_shown(submitted) == len(wanted) and listed(submitted) == wanted[:PAGE]
    reply = site.api("/sessions", **conditions, limit=PAGE)
    assert reply["total"] == len(wanted)
    assert [s["id"] for s in reply["sessions"]] == wanted[:PAGE]


def test_sort_by_numeric_field_across_pages(site: Site) -> None:
    assays = [s for s in site.sessions if s.form_name == "assay"]
    ascending = sorted_by(assays, lambda s: s.values["samples"])
    # ties: every value occurs several times, so page boundaries fall inside ties
    assert len({s.values["samples"] for s in assays}) < len(assays)
    page1 = site.page(form="assay", sort="samples")
    page2 = site.page(form="assay", sort="samples", page=2)
    assert listed(page1) + listed(page2) == ascending[: 2 * PAGE]
    descending = sorted_by(assays, lambda s: -s.values["samples"])
    reply = site.api("/sessions", form="assay", sort="-samples", offset=990, limit=20)
    assert [s["id"] for s in reply["sessions"]] == descending[990:1010]


def test_sort_by_owner_across_an_owner_boundary(site: Site) -> None:
    by_owner = sorted_by(site.sessions, lambda s: s.owner)
    first_owner_count = sum(1 for s in site.sessions if s.owner == OWNERS[0])
    assert first_owner_count % PAGE == 0  # so the page after this one starts the next owner
    boundary_page = first_owner_count // PAGE
    shown = listed(site.page(sort="owner", page=boundary_page))
    shown += listed(site.page(sort="owner", page=boundary_page + 1))
    start = (boundary_page - 1) * PAGE
    assert shown == by_owner[start : start + 2 * PAGE]
    reply = site.api("/sessions", sort="owner", offset=first_owner_count - 10, limit=20)
    owners = [s["owner"] for s in reply["sessions"]]
    assert owners == [OWNERS[0]] * 10 + [OWNERS[1]] * 10
    assert [s["id"] for s in reply["sessions"]] == by_owner[
        first_owner_count - 10 : first_owner_count + 10
    ]


def test_csv_export_of_a_filtered_set(site: Site) -> None:
    wanted = [
        s
        for s in newest_first(site.sessions)
        if s.form_name == "imaging"
        and s.owner == "bob"
        and s.values["samples"] <= 300
        and s.values["operator"] in ("Cleo",)
    ]
    assert wanted
    page = site.page(form="imaging", owner="bob", where=["samples<=300", "operator~cle"])
    assert total_shown(page) == len(wanted)
    match = re.search(r'href="([^"]+)" id="export-csv"', page)
    assert match is not None
    href = html.unescape(match.group(1))
    reply = _send(site.browser.opener, urllib.request.Request(site.gw.endpoint + href))
    assert reply.status == 200
    rows = list(csv.DictReader(io.StringIO(str(reply.body))))
    assert [r["id"] for r in rows] == [s.id for s in wanted]
    assert {(r["operator"], r["owner"], r["form"]) for r in rows} == {("Cleo", "bob", "imaging")}
    assert [int(r["samples"]) for r in rows] == [s.values["samples"] for s in wanted]


def test_bad_search_input_is_explained(site: Site) -> None:
    too_many = site.browser.call(
        "GET", "/sessions?" + urlencode({"where": ["samples>=1"] * 21}, doseq=True)
    )
    assert too_many.status == 400 and "where" in too_many.error["fields"]
    for sort in ("-", "values.", "sessions;drop"):
        bad = site.browser.call("GET", "/sessions?" + urlencode({"sort": sort}))
        assert bad.status == 400 and "sort" in bad.error["fields"], (sort, bad.body)
    # on the page: the bad row says why beside itself, the good one
    # stays, nothing is listed
    page = site.page(form="assay", where_field=["samples", "operator"], where_op=[">=", "="],
                     where_value=["lots", "Ann"])  # fmt: skip
    assert re.search(r'class="condition-error" role="alert">&#39;lots&#39; is not a number', page)
    # an invalid search lists nothing and counts nothing (no "0 sessions match")
    assert 'value="Ann"' in page and '<span id="total">' not in page and listed(page) == []
    # a field sort the chosen form cannot do falls back to newest first, and says so
    page = site.page(form="assay", sort="objective")
    assert "Form assay has no field &#39;objective&#39; to sort by." in page
    assert total_shown(page) == len(site.sessions) // 2
