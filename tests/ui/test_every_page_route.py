"""Every page route under /_minimo/ enforces sign-in, its role and CSRF, checked for all of them.

The routes come from the real pages application (the router ``setup_pages`` builds), and each
route's role (and whether static/*.js calls it) from the pages' own route tables
(``ui.pages.all_pages()``, the lists the guard is built from), so a page added later is swept
without anyone remembering it. A POST also needs a line in ``CALLS`` (a body that would change
something), and the first test fails until it has one. Then, against a real ``minimo serve`` and
with plain HTTP as a browser sends it:

* signed out, a GET is sent to the login page (``next=`` that page) and a POST is refused
  (``next=`` the page the form was on, never its POST-only target);
* signed in with the role just below the route's, the answer is a friendly 403 page that still
  names the user and offers Sign out;
* a POST with a valid login but a missing, made-up or another login's CSRF token gets a 403;
* whatever a refused POST carried, nothing changed (users, forms, policy, keys, sessions), and
  the control: the same bodies with token and role do change what they should;
* the wrong method is a friendly 405 page;
* every answer carries the hardening headers, and nothing in the sweep is a 5xx.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from aiohttp import web

from gateway.config import Config
from gateway.usecases.appkeys import CONFIG
from tests.api.client import Browser
from tests.api.conftest import POLICY, RUN_FORM
from tests.servers import Gateway, read_initial_admin, run_gateway
from tests.ui.helpers import prepare, s3
from ui import setup_ui
from ui.pages import all_pages

PAGES = "/_minimo"
PASSWORD = "correct horse battery"
#: who is one step too weak for each role ("reader" is any signed-in user: none is weaker)
BELOW = {"public": None, "reader": None, "uploader": "reader", "admin": "uploader"}
WRONG_TOKEN = "x" * 43
WHO = {"reader": "rita", "uploader": "ulla"}
#: stands for the real admin password in a body (known once the gateway runs)
ADMIN_PASSWORD = "<the admin's password>"

#: a rule more, so a saved policy differs from the one in force and still lets runs open
EXTRA_RULE = """
[[rule]]
bucket = "more"
prefix = ""
require_session = false
"""
#: a 1x1 GIF, for the image preview
TINY_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
#: a form whose saving the CSRF and role checks must prevent
PROBE_FORM = {"name": "probe", "title": "Probe", "fields": [{"name": "x", "type": "text"}]}


@dataclass(frozen=True)
class Call:
    """How to call a route for real, beyond a bare request of its method."""

    query: str = ""
    #: a POST body that would change something if the checks let it through
    body: dict[str, str] = field(default_factory=dict)
    json_body: dict[str, Any] | None = None
    #: more bodies the same route takes (other actions of one form target), refused alike
    variants: tuple[dict[str, str], ...] = ()
    #: what the admin's API shows changed once the POST is let through (see Site.state)
    changes: str = ""


@dataclass(frozen=True)
class Need(Call):
    """What a route legitimately needs: its minimum role (from the route tables), and how to
    call it for real."""

    role: str = "public"
    #: answered to static/*.js fetch calls: the X-CSRF-Token header (and maybe JSON errors)
    fetch: bool = False
    #: read by programs, not people (/_minimo/metrics): signed out is a 401, refusals JSON
    machine: bool = False


#: (method, route as the router spells it) -> how to call it. Every POST needs a line (the first
#: test says which is missing); a GET without one is called bare. No roles here: those are the
#: route tables' (ui.pages).
CALLS: dict[tuple[str, str], Call] = {
    ("POST", "/_minimo/login"): Call(body={"user": "admin", "password": ADMIN_PASSWORD}),
    ("POST", "/_minimo/logout"): Call(),
    ("GET", "/_minimo/data/{bucket}/object"): Call(query="key=old/a.txt"),
    ("GET", "/_minimo/download/{bucket}"): Call(query="key=old/a.txt"),
    ("GET", "/_minimo/preview/{bucket}"): Call(query="key=old/dot.gif"),
    ("POST", "/_minimo/data/"): Call(body={"name": "probe-bucket"}, changes="/buckets"),
    ("POST", "/_minimo/sessions/new"): Call(
        body={"_bucket": "raw", "_prefix": "probe/", "_form": "run", "sample": "S9"},
        changes="/sessions?limit=200",
    ),
    ("POST", "/_minimo/sessions/{id}/close"): Call(
        body={"ro_crate": "on"}, changes="/sessions?limit=200"
    ),
    ("POST", "/_minimo/sessions/{id}/verify"): Call(),
    # (no "changes": the sweep goes in path order, so the session is closed by then and the
    # extend is refused; tests/ui/test_sessions_findable.py extends an open one)
    ("POST", "/_minimo/sessions/{id}/extend"): Call(body={"by": "1h"}),
    ("POST", "/_minimo/sessions/several"): Call(
        body={
            "_bucket": "raw",
            "_folder": "probe-day/",
            "_form": "run",
            "_count": "1",
            "e1-folder": "m1",
            "e1-sample": "S9",
        },
        changes="/sessions?limit=200",
    ),
    ("POST", "/_minimo/sessions/{id}/upload-urls"): Call(
        json_body={"files": [{"path": "a.bin", "size": 1}]}
    ),
    ("POST", "/_minimo/keys"): Call(body={"action": "create"}, changes="/keys"),
    # a wrong current password: let through, the page refuses it next to the field (a right
    # one would end the other logins of the user the later checks sign in with)
    ("POST", "/_minimo/account"): Call(
        body={
            "old_password": "not the password",
            "new_password": "a new long password",
            "confirm_password": "a new long password",
        }
    ),
    ("GET", "/_minimo/data/{bucket}/adopt"): Call(query="prefix=old/"),
    ("POST", "/_minimo/data/{bucket}/adopt"): Call(
        # (scratch has no unlinked object here: the page checks this body, changes nothing)
        body={"_prefix": "old/", "_form": "run", "sample": "S0"},
    ),
    ("POST", "/_minimo/admin/forms"): Call(
        body={"action": "save", "definition": json.dumps(PROBE_FORM)}, changes="/forms"
    ),
    ("POST", "/_minimo/admin/forms/preview"): Call(body={"definition": json.dumps(PROBE_FORM)}),
    ("POST", "/_minimo/admin/users"): Call(
        body={"action": "add", "name": "mallory", "role": "admin"},
        # reset-password would end rita's login, checked after the refusals
        variants=(
            {"action": "reset", "name": "rita"},
            {"action": "role", "name": "rita", "role": "admin"},
            {"action": "delete", "name": "rita"},
        ),
        changes="/users",
    ),
    ("POST", "/_minimo/admin/policy"): Call(body={"toml": POLICY + EXTRA_RULE}, changes="/policy"),
}


def declared_needs() -> dict[tuple[str, str], Need]:
    """Every route the route tables declare, with its role from there and its CALLS line."""
    # the static files are a directory, not a page handler: no table line, and anyone may
    needs = {("GET", PAGES + "/static"): Need(role="public")}
    for page in all_pages():
        key = (page.method, PAGES + page.path)
        call = CALLS.get(key, Call())
        how = {f.name: getattr(call, f.name) for f in fields(Call)}
        needs[key] = Need(
            **how,
            role=page.access,
            fetch=page.csrf == "header",
            machine=page.method == "GET" and page.refusals == "json",
        )
    return needs


NEEDS = declared_needs()
_PARAM = re.compile(r"\{(\w+)[^}]*\}")
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def page_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the pages sub-app serves, read from its router.

    HEAD is aiohttp's twin of each GET (same handler): the GET's line covers it.
    """
    app = web.Application()
    app[CONFIG] = Config()
    setup_ui(app)
    (pages,) = [
        r._app for r in app.router.resources() if getattr(r, "_app", None) and r.canonical == PAGES
    ]
    routes = set()
    for route in pages.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info()
        routes.add((route.method, info.get("path") or info.get("formatter") or info["prefix"]))
    return routes


# -- the site: a gateway, one user per role, a real session, bucket, object and form ------------
@dataclass
class Site:
    gw: Gateway
    admin_api: Browser
    people: dict[str, requests.Session]
    session_id: str
    samples: dict[str, str]

    def url(self, path: str, need: Need) -> str:
        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            assert name in self.samples, f"no sample value for path parameter {{{name}}}"
            return self.samples[name]

        concrete = _PARAM.sub(fill, path)
        if concrete.endswith("/static"):
            concrete += "/minimo.css"
        return self.gw.endpoint + concrete + (f"?{need.query}" if need.query else "")

    def state(self) -> dict[str, Any]:
        """What any of the POSTs would change, as the admin's API shows it."""
        paths = ("/users", "/forms", "/policy", "/keys", "/sessions?limit=200", "/buckets")
        replies = {path: self.admin_api.call("GET", path) for path in paths}
        assert all(r.status == 200 for r in replies.values()), replies
        return {path: reply.body for path, reply in replies.items()}


def signed_in(gw: Gateway, user: str, password: str) -> requests.Session:
    """A browser's cookie jar after the login page, carrying its CSRF token as ``.csrf``."""
    browser = requests.Session()
    page = browser.get(gw.endpoint + "/_minimo/login")
    token = _CSRF_FIELD.search(page.text)
    assert token, page.text
    reply = browser.post(
        gw.endpoint + "/_minimo/login",
        data={"user": user, "password": password, "csrf_token": token.group(1)},
        allow_redirects=False,
    )
    assert reply.status_code == 303, reply.text
    home = browser.get(gw.endpoint + "/_minimo/")
    assert home.status_code == 200 and user in home.text
    browser.csrf = _CSRF_FIELD.search(home.text).group(1)  # type: ignore[attr-defined]
    return browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with run_gateway(tmp_path_factory.mktemp("page-routes")) as gw:
        prepare(
            gw,
            buckets=["raw", "scratch"],
            forms=[RUN_FORM],
            policy=POLICY,
            uploaders=[("ulla", PASSWORD)],
        )
        gw.cli("user", "add", "rita", "--role", "reader", "--password-stdin",
               input=PASSWORD + "\n")  # fmt: skip
        s3(gw).put_object(Bucket="scratch", Key="old/a.txt", Body=b"an old file")
        s3(gw).put_object(Bucket="scratch", Key="old/dot.gif", Body=TINY_GIF)
        admin_name = read_initial_admin(gw.data_dir)["user"]
        admin_api = Browser(gw.endpoint)
        assert admin_api.login(admin_name, gw.admin_password).status == 200
        uploader_api = Browser(gw.endpoint)
        assert uploader_api.login("ulla", PASSWORD).status == 200
        opened = uploader_api.call(
            "POST", "/sessions", {"form": "run", "bucket": "raw", "values": {"sample": "S1"}}
        )
        assert opened.status == 201, opened.body
        people = {
            "reader": signed_in(gw, "rita", PASSWORD),
            "uploader": signed_in(gw, "ulla", PASSWORD),
            "admin": signed_in(gw, admin_name, gw.admin_password),
        }
        session_id = opened.body["session"]["id"]
        samples = {"id": session_id, "bucket": "scratch", "name": "run", "form": "run"}
        yield Site(gw, admin_api, people, session_id, samples)


def sweep(method: str, variants: bool = True) -> list[tuple[str, Need]]:
    """The routes of ``method``, each POST once per body it takes (unless ``variants`` is off)."""
    calls = []
    for (m, path), need in sorted(NEEDS.items()):
        if m == method:
            calls.append((path, need))
            if variants:
                calls += [(path, replace(need, body=body)) for body in need.variants]
    return calls


def send(
    browser: requests.Session,
    method: str,
    url: str,
    need: Need,
    token: str | None,
    referer: str | None = None,
) -> requests.Response:
    """The request a page (form post) or static/*.js (fetch) makes, with ``token`` as CSRF."""
    headers = {"Referer": referer} if referer else {}
    data: dict[str, str] | None = None
    password = getattr(browser, "admin_password", None)
    body: bytes | None = None
    if method == "POST":
        if need.fetch:
            if token is not None:
                headers["X-CSRF-Token"] = token
            if need.json_body is not None:
                body = json.dumps(need.json_body).encode()
                headers["Content-Type"] = "application/json"
            else:
                data = dict(need.body)
        else:
            data = {k: password if v == ADMIN_PASSWORD and password else v
                    for k, v in need.body.items()}  # fmt: skip
            if token is not None:
                data["csrf_token"] = token
    reply = browser.request(
        method, url, data=data if body is None else body, headers=headers, allow_redirects=False
    )
    check_answer(reply, method, url)
    return reply


def check_answer(reply: requests.Response, method: str, url: str) -> None:
    """What every answer of the sweep must have, whoever asked."""
    assert reply.status_code < 500, (method, url, reply.status_code, reply.text[:500])
    assert "Traceback" not in reply.text, (method, url)
    headers = reply.headers
    assert "default-src 'none'" in headers.get("Content-Security-Policy", ""), (method, url)
    assert headers.get("X-Content-Type-Options") == "nosniff", (method, url)
    if "/_minimo/static/" not in url:
        assert headers.get("Cache-Control") == "no-store", (method, url, dict(headers))


def goes_to_login(reply: requests.Response) -> bool:
    location = reply.headers.get("Location", "")
    return reply.status_code in (302, 303) and location.startswith("/_minimo/login")


def friendly_403(reply: requests.Response, need: Need, who: str) -> None:
    """The site's error page saying who is signed in and which role the page needs."""
    assert reply.status_code == 403, (reply.url, reply.status_code, reply.text[:300])
    if (need.fetch or need.machine) and reply.headers["Content-Type"].startswith(
        "application/json"
    ):
        assert reply.json()["error"]
        return
    assert reply.headers["Content-Type"].startswith("text/html")
    assert "Not allowed" in reply.text
    assert f"You are signed in as {who}" in reply.text
    assert f"needs the {need.role} role" in reply.text
    # still the site around it: the header names the user and offers Sign out and the pages
    assert f'<span class="who">{who} (' in reply.text
    assert 'action="/_minimo/logout"' in reply.text


# -- the tests ----------------------------------------------------------------------------------
def test_every_page_route_has_a_decided_role() -> None:
    served = page_routes()
    missing = sorted(served - NEEDS.keys())
    gone = sorted(NEEDS.keys() - served)
    assert not missing, f"page routes the route tables do not declare: {missing}"
    assert not gone, f"route tables name routes the pages do not serve: {gone}"
    assert {need.role for need in NEEDS.values()} <= BELOW.keys()
    uncalled = sorted(key for key in NEEDS if key[0] == "POST" and key not in CALLS)
    assert not uncalled, f"POST routes without a line in CALLS (a body to try): {uncalled}"
    assert not CALLS.keys() - served, f"CALLS names routes not served: {CALLS.keys() - served}"
    assert len(served) >= 25


def next_of(location: str) -> str | None:
    (value,) = parse_qs(urlsplit(location).query).get("next", [None])
    return value


def test_signed_out_gets_the_login_page_or_a_refusal(site: Site) -> None:
    stranger = requests.Session()
    form_page_path = f"/_minimo/sessions/{site.session_id}"
    form_page = site.gw.endpoint + form_page_path
    before = site.state()
    checked = 0
    for method in ("GET", "POST"):
        for path, need in sweep(method):
            if need.role == "public":
                continue
            url = site.url(path, need)
            reply = send(stranger, method, url, need, token=None, referer=form_page)
            location = reply.headers.get("Location", "")
            if method == "GET" and need.machine:
                assert reply.status_code == 401, (path, reply.status_code)
            elif method == "GET":
                assert goes_to_login(reply), (path, reply.status_code)
                assert next_of(location) == url.removeprefix(site.gw.endpoint), location
            elif need.fetch:
                assert reply.status_code == 401 or goes_to_login(reply), (path, reply.status_code)
            else:
                assert goes_to_login(reply), (path, reply.status_code)
                # signed in again, the user is back on the page the form was on: the form's
                # target itself answers POST only (a GET of it would be a 405 page)
                assert next_of(location) in (form_page_path, None), (path, location)
            checked += 1
    # no Referer (a privacy setting): the start page, still not the form's target
    close = NEEDS[("POST", "/_minimo/sessions/{id}/close")]
    url = site.url("/_minimo/sessions/{id}/close", close)
    reply = send(stranger, "POST", url, close, token=None)
    assert goes_to_login(reply) and next_of(reply.headers["Location"]) == "/_minimo/"
    assert site.state() == before
    assert checked >= 20


def test_one_role_too_weak_gets_a_friendly_403(site: Site) -> None:
    before = site.state()
    checked = 0
    for method in ("GET", "POST"):
        for path, need in sweep(method):
            weaker = BELOW[need.role]
            if weaker is None:
                continue
            browser = site.people[weaker]
            # a valid CSRF token: what refuses the request must be the role
            reply = send(browser, method, site.url(path, need), need, token=browser.csrf)
            friendly_403(reply, need, WHO[weaker])
            checked += 1
    assert site.state() == before
    assert checked >= 15


def test_posts_without_a_valid_csrf_token_are_refused_and_change_nothing(site: Site) -> None:
    before = site.state()
    checked = 0
    for path, need in sweep("POST"):
        browser = requests.Session() if need.role == "public" else site.people[need.role]
        browser.admin_password = site.gw.admin_password  # type: ignore[attr-defined]
        # none, a made-up one, and a real one of someone else's login
        other = site.people["reader" if need.role == "admin" else "admin"].csrf
        for token in (None, WRONG_TOKEN, other):
            reply = send(browser, "POST", site.url(path, need), need, token=token)
            assert reply.status_code == 403, (path, token, reply.status_code, reply.text[:300])
            if not need.fetch:
                assert "CSRF" in reply.text, path
            checked += 1
    assert site.state() == before
    # the refused logout did not end anyone's login
    for role, browser in site.people.items():
        assert browser.get(site.gw.endpoint + "/_minimo/").status_code == 200, role
    session = site.admin_api.call("GET", f"/sessions/{site.session_id}")
    assert session.body["state"] == "open", session.body
    assert checked >= 20


def test_every_get_answers_its_own_role_without_an_error(site: Site) -> None:
    for path, need in sweep("GET"):
        browser = site.people.get(need.role, site.people["reader"])
        reply = send(browser, "GET", site.url(path, need), need, token=None)
        assert reply.status_code in (200, 302), (path, reply.status_code, reply.text[:300])


def test_the_same_posts_with_the_token_and_role_do_their_work(site: Site) -> None:
    """The control for the refusals above: each body really changes what its line says, so
    "nothing changed" there was the checks' doing. Fresh logins and a fresh session, so the
    other tests' users and session are left as they were."""
    uploader_api = Browser(site.gw.endpoint)
    assert uploader_api.login("ulla", PASSWORD).status == 200
    fresh = uploader_api.call(
        "POST", "/sessions", {"form": "run", "bucket": "raw", "values": {"sample": "S2"}}
    )
    assert fresh.status == 201, fresh.body
    fresh_id = fresh.body["session"]["id"]
    names = {
        "reader": "rita",
        "uploader": "ulla",
        "admin": read_initial_admin(site.gw.data_dir)["user"],
    }
    for path, need in sweep("POST", variants=False):
        if need.role == "public":
            browser = requests.Session()
            page = browser.get(site.gw.endpoint + "/_minimo/login")
            browser.csrf = _CSRF_FIELD.search(page.text).group(1)  # type: ignore[attr-defined]
        else:
            password = site.gw.admin_password if need.role == "admin" else PASSWORD
            browser = signed_in(site.gw, names[need.role], password)
        browser.admin_password = site.gw.admin_password  # type: ignore[attr-defined]
        before = site.state()
        url = site.url(path, need).replace(site.session_id, fresh_id)
        reply = send(browser, "POST", url, need, token=browser.csrf)
        # past the sign-in, role and CSRF checks: the route looked at the body itself
        assert reply.status_code not in (401, 403), (path, reply.status_code)
        home = browser.get(site.gw.endpoint + "/_minimo/", allow_redirects=False)
        if path.endswith("/logout"):
            assert goes_to_login(reply) and goes_to_login(home), "the login did not end"
        else:
            assert not goes_to_login(reply) and home.status_code == 200, path
        if need.changes:
            after = site.state()
            assert after[need.changes] != before[need.changes], path


def test_the_wrong_method_is_a_friendly_405_for_every_route(site: Site) -> None:
    """A GET of a form's target (a reloaded or bookmarked POST result) or a POST to a page."""
    methods: dict[str, set[str]] = {}
    for method, path in NEEDS:
        methods.setdefault(path, set()).add(method)
    checked = 0
    for path, served in sorted(methods.items()):
        for method in {"GET", "POST"} - served:
            need = Need(role="admin", query=NEEDS[(next(iter(served)), path)].query)
            reply = send(site.people["admin"], method, site.url(path, need), need, token=None)
            assert reply.status_code == 405, (method, path, reply.status_code)
            assert reply.headers["Content-Type"].startswith("text/html"), (method, path)
            assert set(served) <= set(reply.headers["Allow"].split(",")), (method, path)
            checked += 1
    assert checked >= 15


def test_the_bare_prefix_and_an_unknown_page_are_hardened_too(site: Site) -> None:
    """Two answers outside the router's routes: ``/_minimo`` (what people type; the gateway
    app sends it home) and a page that does not exist."""
    bare = requests.get(site.gw.endpoint + "/_minimo", allow_redirects=False)
    check_answer(bare, "GET", bare.url)
    assert bare.status_code == 302 and bare.headers["Location"] == "/_minimo/"
    nothing = site.people["reader"].get(site.gw.endpoint + "/_minimo/no-such-page")
    check_answer(nothing, "GET", nothing.url)
    assert (
        nothing.status_code == 404 and "There is no page at /_minimo/no-such-page" in nothing.text
    )
