"""Signing out ends the login on the server, not only in the browser that signed out.

A copy of the login cookie taken before sign-out (another tab's jar, a stolen cookie) is refused
afterwards like an expired one: 401 from the API, a redirect to the login page from the pages.
Other logins of the same user carry on. With two gateways sharing one store, a login ended on
one is refused by the other too (its cache of "not ended" lasts at most 2 s).
"""

from __future__ import annotations

import secrets
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.client import Browser, Reply
from tests.servers import Gateway, mongo_uri, run_gateway

PASSWORD = "correct horse battery staple"
PAGES = "/_minimo/"


def copy_of(browser: Browser) -> Browser:
    """Another client holding the same login cookie (and CSRF token), as a thief would."""
    twin = Browser(browser.endpoint, csrf=browser.csrf)
    for cookie in browser.jar:
        twin.jar.set_cookie(cookie)
    return twin


def on(endpoint: str, browser: Browser) -> Browser:
    """The same cookies sent to another gateway (cookies are per host, not per port)."""
    twin = copy_of(browser)
    twin.endpoint = endpoint
    return twin


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def open_page(browser: Browser, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
    """GET (or POST ``form`` to) a page with the browser's cookies; (status, Location)."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(browser.jar), _NoRedirects()
    )
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with opener.open(browser.endpoint + path, data, timeout=30) as resp:
            return resp.status, resp.headers.get("Location", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location", "")


def signed_in_user(admin: Browser, role: str = "reader") -> tuple[str, Browser]:
    name = f"lo_{secrets.token_hex(4)}"
    made = admin.call("POST", "/users", {"name": name, "role": role, "password": PASSWORD})
    assert made.status == 201, made.body
    browser = Browser(admin.endpoint)
    assert browser.login(name, PASSWORD).status == 200
    return name, browser


def refused(reply: Reply) -> bool:
    return reply.status == 401 and reply.error["code"] == "unauthenticated"


def test_a_copied_cookie_is_refused_after_logout(admin: Browser) -> None:
    name, browser = signed_in_user(admin)
    stolen = copy_of(browser)
    assert stolen.call("GET", "/me").body["user"] == name
    assert open_page(stolen, PAGES)[0] == 200

    out = browser.call("POST", "/logout")
    assert out.status == 200 and out.body == {"logged_out": True}

    assert refused(browser.call("GET", "/me"))
    assert refused(stolen.call("GET", "/me"))
    # a state change with the copy (and its CSRF token) is refused the same way
    assert refused(stolen.call("POST", "/logout"))
    status, location = open_page(stolen, PAGES)
    assert status == 302 and location.startswith(PAGES + "login")
    # the sign-out is in the audit log, once
    events = admin.call("GET", f"/audit?action=logout&user={name}").body["events"]
    assert [e["outcome"] for e in events] == ["ok"]


def test_another_login_of_the_same_user_stays_valid(admin: Browser) -> None:
    name, laptop = signed_in_user(admin)
    phone = Browser(admin.endpoint)
    assert phone.login(name, PASSWORD).status == 200
    assert laptop.call("POST", "/logout").status == 200
    assert refused(laptop.call("GET", "/me"))
    assert phone.call("GET", "/me").body["user"] == name
    assert open_page(phone, PAGES)[0] == 200
    # and signing in again after signing out gives a fresh, working login
    assert laptop.login(name, PASSWORD).status == 200
    assert laptop.call("GET", "/me").body["user"] == name


def test_logging_out_twice_is_harmless(admin: Browser) -> None:
    _, browser = signed_in_user(admin)
    stolen = copy_of(browser)
    assert browser.call("POST", "/logout").status == 200
    # the browser's cookie is gone and the copy's login is ended: both are simply not signed in
    again = browser.call("POST", "/logout")
    assert again.status == 401 and again.body["error"]["code"] == "unauthenticated"
    assert refused(stolen.call("POST", "/logout"))
    assert refused(stolen.call("POST", "/logout"))
    # the page's Sign out, pressed again in a tab left open, lands on the login page, no error
    status, location = open_page(browser, PAGES + "logout", {"csrf_token": browser.csrf or ""})
    assert status == 303 and location == PAGES + "login"


def test_the_page_sign_out_ends_the_login_everywhere(admin: Browser) -> None:
    name, browser = signed_in_user(admin)
    stolen = copy_of(browser)
    status, location = open_page(browser, PAGES + "logout", {"csrf_token": browser.csrf or ""})
    assert status == 303 and location == PAGES + "login"
    assert refused(stolen.call("GET", "/me"))
    status, location = open_page(stolen, PAGES)
    assert status == 302 and location.startswith(PAGES + "login")
    events = admin.call("GET", f"/audit?action=logout&user={name}").body["events"]
    assert [e["outcome"] for e in events] == ["ok"]


# -- two gateways sharing one store ----------------------------------------------------------------
@pytest.fixture
def two_gateways(tmp_path: Path, ferretdb: str) -> Iterator[tuple[Gateway, Gateway]]:
    uri = mongo_uri(ferretdb, f"logout_{secrets.token_hex(6)}")
    dir_a, dir_b = tmp_path / "a", tmp_path / "b"
    with run_gateway(dir_a, mongo_uri=uri) as a:
        # B shares A's secret key (so it accepts A's cookies) and the admin A created.
        dir_b.mkdir()
        shutil.copy2(dir_a / "secret.key", dir_b / "secret.key")
        shutil.copy2(dir_a / "initial-admin.txt", dir_b / "initial-admin.txt")
        with run_gateway(dir_b, mongo_uri=uri) as b:
            yield a, b


def test_a_login_ended_on_one_gateway_is_refused_by_the_other(
    two_gateways: tuple[Gateway, Gateway],
) -> None:
    a, b = two_gateways
    on_a = Browser(a.endpoint)
    assert on_a.login("admin", a.admin_password).status == 200
    on_b = on(b.endpoint, on_a)
    # B accepts A's login, and now has "not ended" cached for it
    assert on_b.call("GET", "/me").body["user"] == "admin"
    other = on(b.endpoint, Browser(a.endpoint))
    assert other.login("admin", a.admin_password).status == 200

    assert on_a.call("POST", "/logout").status == 200
    deadline = time.monotonic() + 5
    while not refused(on_b.call("GET", "/me")):
        assert time.monotonic() < deadline, "gateway B still accepts the ended login after 5 s"
        time.sleep(0.2)
    status, location = open_page(on_b, PAGES)
    assert status == 302 and location.startswith(PAGES + "login")
    # another login of the same user, made on B, is untouched
    assert other.call("GET", "/me").body["user"] == "admin"
