"""The JSON API against a real ``minimo serve``: every endpoint, bad input, authorization, CSRF,
the login rate limit, SigV4-signed scripts (botocore and curl) and the OpenAPI document."""

from __future__ import annotations

import csv
import io
import json
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from aiohttp import web

from gateway.config import Config
from gateway.usecases.appkeys import CONFIG
from tests.api.client import API, Browser, Signer
from tests.api.conftest import POLICY, RUN_FORM
from tests.servers import Gateway
from ui.api import all_routes, setup_api
from ui.api.openapi import openapi_path

PASSWORD = "correct horse battery"
OLD_FORM = Path(__file__).resolve().parent.parent / "unit" / "data" / "old_minimo_form.txt"


@dataclass
class World:
    admin: Browser
    uploader: Browser
    reader: Browser


@pytest.fixture(scope="module")
def world(gw: Gateway, admin: Browser) -> World:
    assert admin.call("POST", "/forms", RUN_FORM).status == 201
    assert admin.call("PUT", "/policy", {"toml": POLICY}).status == 200
    for name, role in (("ulla", "uploader"), ("rita", "reader")):
        reply = admin.call("POST", "/users", {"name": name, "role": role, "password": PASSWORD})
        assert reply.status == 201, reply.body
    s3 = boto3.client(
        "s3",
        endpoint_url=gw.endpoint,
        aws_access_key_id=gw.access_key,
        aws_secret_access_key=gw.secret_key,
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="raw")
    uploader, reader = Browser(gw.endpoint), Browser(gw.endpoint)
    assert uploader.login("ulla", PASSWORD).status == 200
    assert reader.login("rita", PASSWORD).status == 200
    return World(admin, uploader, reader)


def open_session(browser: Browser, **overrides: object) -> dict:
    body = {"form": "run", "bucket": "raw", "values": {"sample": "S1", "temp_c": 21.5}}
    body.update(overrides)
    reply = browser.call("POST", "/sessions", body)
    assert reply.status == 201, reply.body
    return reply.body


# -- auth ----------------------------------------------------------------------------------------
def test_login_cookie_me_logout(gw: Gateway) -> None:
    browser = Browser(gw.endpoint)
    assert browser.call("GET", "/me").status == 401
    reply = browser.login("admin", gw.admin_password)
    assert reply.status == 200
    assert reply.body["user"] == "admin" and reply.body["role"] == "admin"
    cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/_minimo/" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback; set under TLS
    assert reply.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    me = browser.call("GET", "/me")
    assert me.status == 200
    assert me.body["auth"] == "cookie" and me.body["csrf_token"] == browser.csrf
    assert browser.call("POST", "/logout", csrf=False).status == 403  # CSRF applies to logout
    assert browser.call("POST", "/logout").status == 200
    assert browser.call("GET", "/me").status == 401


def test_login_bad_input(gw: Gateway) -> None:
    browser = Browser(gw.endpoint)
    reply = browser.call("POST", "/login", {"user": "admin"})
    assert reply.status == 400 and reply.error["fields"] == {"password": ["required"]}
    reply = browser.call(
        "POST", "/login", raw=b"user=admin", headers={"Content-Type": "text/plain"}
    )
    assert reply.status == 415
    reply = browser.call("POST", "/login", raw=b"{not json")
    assert reply.status == 400 and "not valid JSON" in reply.error["message"]
    reply = browser.call("POST", "/login", raw=b"[1]")
    assert reply.status == 400 and reply.error["message"] == "the body must be a JSON object"
    reply = browser.call("POST", "/login", raw=b"[" * 100_000 + b"]" * 100_000)
    assert reply.status == 400 and "nested too deeply" in reply.error["message"]


def test_wrong_password_is_rate_limited(gw: Gateway, world: World) -> None:
    browser = Browser(gw.endpoint)
    for _ in range(5):
        reply = browser.login("rita", "wrong password!")
        assert reply.status == 401 and reply.error["code"] == "bad_credentials"
    # the sixth attempt is refused before the password is looked at, even the right one
    reply = browser.login("rita", PASSWORD)
    assert reply.status == 429 and reply.error["code"] == "rate_limited"
    assert int(reply.headers["Retry-After"]) > 0
    # another user (another key) is not affected
    assert Browser(gw.endpoint).login("ulla", PASSWORD).status == 200


def test_csrf_missing_or_wrong_is_refused(world: World) -> None:
    reply = world.admin.call("POST", "/forms", {**RUN_FORM, "name": "nocsrf"}, csrf=False)
    assert reply.status == 403 and reply.error["code"] == "csrf"
    reply = world.admin.call(
        "POST", "/forms", {**RUN_FORM, "name": "nocsrf"}, headers={"X-CSRF-Token": "forged"}
    )
    assert reply.status == 403 and reply.error["code"] == "csrf"
    # reads need no token
    assert world.admin.call("GET", "/forms", csrf=False).status == 200


def test_password_change_ends_other_logins(gw: Gateway, world: World) -> None:
    assert (
        world.admin.call(
            "POST", "/users", {"name": "pat", "role": "reader", "password": PASSWORD}
        ).status
        == 201
    )
    pat = Browser(gw.endpoint)
    assert pat.login("pat", PASSWORD).status == 200
    reply = world.admin.call("PATCH", "/users/pat", {"password": "another long one"})
    assert reply.status == 200
    assert pat.call("GET", "/me").status == 401


# -- forms ---------------------------------------------------------------------------------------
def test_forms_crud_versions_schema(world: World) -> None:
    admin = world.admin
    listed = admin.call("GET", "/forms")
    assert listed.status == 200 and "run" in [f["name"] for f in listed.body["forms"]]
    dup = admin.call("POST", "/forms", RUN_FORM)
    assert dup.status == 409 and dup.error["code"] == "conflict"
    form = {"name": "cells", "title": "Cells", "fields": [{"name": "line", "type": "text"}]}
    created = admin.call("POST", "/forms", form)
    assert created.status == 201 and created.body["version"] == 1
    assert admin.call("GET", "/forms/cells").body["title"] == "Cells"
    v2 = {**form, "fields": [*form["fields"], {"name": "passage", "type": "integer"}]}
    updated = admin.call("PUT", "/forms/cells", v2)
    assert updated.status == 200 and updated.body["version"] == 2
    same = admin.call("PUT", "/forms/cells", v2)
    assert same.body["version"] == 2  # unchanged: no new version
    versions = admin.call("GET", "/forms/cells/versions").body["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["created_by"] == "admin"
    one = admin.call("GET", "/forms/cells/versions/1")
    assert one.status == 200 and len(one.body["fields"]) == 1
    schema = admin.call("GET", "/forms/cells/versions/2/schema")
    assert schema.status == 200 and schema.body["properties"]["passage"]["type"] == "integer"
    # a reader reads forms too
    assert world.reader.call("GET", "/forms/cells/versions/2/schema").status == 200


def test_forms_bad_input(world: World) -> None:
    admin = world.admin
    bad = admin.call("POST", "/forms", {"name": "Bad Name!", "fields": [{"type": "nope"}]})
    assert bad.status == 400 and bad.error["code"] == "invalid_form"
    assert bad.error["fields"]
    assert admin.call("GET", "/forms/nosuch").status == 404
    assert admin.call("GET", "/forms/run/versions/99").status == 404
    reply = admin.call("GET", "/forms/run/versions/x")
    assert reply.status == 400 and "version" in reply.error["fields"]
    other = admin.call("PUT", "/forms/run", {**RUN_FORM, "name": "cells"})
    assert other.status == 400 and "name" in other.error["fields"]
    assert admin.call("PUT", "/forms/nosuch", {**RUN_FORM, "name": "nosuch"}).status == 404


def test_form_import_old_format(world: World) -> None:
    reply = world.admin.call(
        "POST", "/forms/import", {"name": "confocal", "text": OLD_FORM.read_text()}
    )
    assert reply.status == 201, reply.body
    assert reply.body["name"] == "confocal"
    assert any(f["type"] == "choice" for f in reply.body["fields"])
    bad = world.admin.call("POST", "/forms/import", {"name": "x", "text": ""})
    assert bad.status == 400 and bad.error["code"] == "invalid_form"


# -- policy --------------------------------------------------------------------------------------
def test_policy_get_and_put(world: World) -> None:
    got = world.reader.call("GET", "/policy")
    assert got.status == 200 and got.body["source"] == POLICY
    assert got.body["rules"][0]["forms"] == ["run"] and got.body["version"] >= 1
    same = world.admin.call("PUT", "/policy", {"toml": POLICY})
    assert same.status == 200 and same.body["version"] == got.body["version"]
    bad = world.admin.call("PUT", "/policy", {"toml": '[[rule]]\nbucket = "raw"\nforms = ["nope"]'})
    assert bad.status == 400 and bad.error["code"] == "invalid_policy"
    assert any("nope" in m for m in bad.error["fields"]["toml"])
    broken = world.admin.call("PUT", "/policy", {"toml": "[[rule"})
    assert broken.status == 400
    assert world.admin.call("PUT", "/policy", {}).status == 400


# -- authorization -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("who", "method", "path", "body"),
    [
        ("reader", "POST", "/sessions", {"form": "run", "bucket": "raw", "values": {}}),
        ("reader", "GET", "/users", None),
        ("reader", "GET", "/audit", None),
        ("uploader", "POST", "/forms", {"name": "x", "fields": []}),
        ("uploader", "PUT", "/forms/run", RUN_FORM),
        ("uploader", "POST", "/forms/import", {"name": "x", "text": "x"}),
        ("uploader", "PUT", "/policy", {"toml": ""}),
        ("uploader", "POST", "/users", {"name": "x", "role": "admin"}),
        ("uploader", "PATCH", "/users/rita", {"role": "admin"}),
        ("uploader", "DELETE", "/users/rita", None),
        ("uploader", "GET", "/audit", None),
    ],
)
def test_roles_are_enforced(world: World, who: str, method: str, path: str, body: object) -> None:
    reply = getattr(world, who).call(method, path, body)
    assert reply.status == 403, reply.body
    assert reply.error["code"] == "forbidden" and "role" in reply.error["message"]


# -- sessions, objects -----------------------------------------------------------------------------
def test_session_lifecycle_with_objects(gw: Gateway, world: World) -> None:
    opened = open_session(world.uploader, prefix="2026/run7", ttl="1d")
    session, key = opened["session"], opened["session_key"]
    assert session["owner"] == "ulla" and session["prefix"] == "2026/run7/"
    assert session["state"] == "open" and key["access_key"] == session["access_key"]
    s3 = boto3.client(
        "s3",
        endpoint_url=gw.endpoint,
        aws_access_key_id=key["access_key"],
        aws_secret_access_key=key["secret_key"],
        region_name="us-east-1",
    )
    s3.put_object(Bucket="raw", Key="2026/run7/a.txt", Body=b"hello")
    shown = world.reader.call("GET", f"/sessions/{session['id']}")
    assert shown.status == 200 and shown.body["objects"] == 1 and shown.body["bytes"] == 5
    objects = world.reader.call("GET", f"/sessions/{session['id']}/objects").body["objects"]
    assert [o["key"] for o in objects] == ["2026/run7/a.txt"]
    assert objects[0]["sha256"] == (
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    )
    assert objects[0]["size"] == 5 and objects[0]["etag"] and objects[0]["time"]
    record = world.reader.call("GET", "/objects/raw/2026/run7/a.txt")
    assert record.status == 200 and record.body["session"]["values"]["sample"] == "S1"
    missing = world.reader.call("GET", "/objects/raw/2026/run7/none.txt")
    assert missing.status == 404 and "no record" in missing.error["message"]
    crate = world.reader.call("GET", f"/sessions/{session['id']}/ro-crate")
    assert crate.status == 200 and crate.headers["Content-Type"].startswith("application/ld+json")
    graph = {entity["@id"]: entity for entity in crate.body["@graph"]}
    assert graph["ro-crate-metadata.json"]["about"] == {"@id": "./"}
    assert graph["./"]["hasPart"] == [{"@id": "a.txt"}]
    assert graph["a.txt"]["sha256"] == objects[0]["sha256"] and graph["a.txt"]["contentSize"] == 5
    assert graph["#value-sample"]["value"] == "S1"
    # the session key reads its own session, nothing else
    as_key = Signer(gw.endpoint, key["access_key"], key["secret_key"])
    assert as_key.call("GET", f"/sessions/{session['id']}").status == 200
    assert as_key.call("GET", f"/sessions/{session['id']}/objects").status == 200
    assert as_key.call("GET", f"/sessions/{session['id']}/ro-crate").status == 200
    assert as_key.call("GET", "/sessions").status == 403
    assert as_key.call("POST", f"/sessions/{session['id']}/close").status == 403
    # a reader cannot close it; the owner can
    assert world.reader.call("POST", f"/sessions/{session['id']}/close").status == 403
    closed = world.uploader.call("POST", f"/sessions/{session['id']}/close")
    assert closed.status == 200 and closed.body["state"] == "closed"
    assert closed.body["closed_by"] == "ulla"


def test_open_session_bad_input(world: World) -> None:
    up = world.uploader
    reply = up.call(
        "POST", "/sessions", {"form": "run", "bucket": "raw", "values": {"temp_c": 999}}
    )
    assert reply.status == 400 and reply.error["code"] == "invalid_values"
    assert set(reply.error["fields"]) == {"sample", "temp_c"}
    reply = up.call("POST", "/sessions", {"form": "run", "bucket": "raw", "values": []})
    assert reply.status == 400 and "values" in reply.error["fields"]
    reply = up.call("POST", "/sessions", {"form": "run", "values": {}})
    assert reply.status == 400 and reply.error["fields"] == {"bucket": ["required"]}
    reply = up.call("POST", "/sessions", {"form": "cells", "bucket": "raw", "values": {}})
    assert reply.status == 400 and "not allowed" in reply.error["message"]
    reply = up.call(
        "POST",
        "/sessions",
        {"form": "run", "bucket": "raw", "values": {"sample": "S"}, "ttl": "999d"},
    )
    assert reply.status == 400 and "ttl" in reply.error["message"]


def test_validate_draft(world: World) -> None:
    good = world.reader.call(
        "POST", "/sessions/validate", {"form": "run", "values": {"sample": "S9"}}
    )
    assert good.status == 200 and good.body["valid"] is True
    assert good.body["values"]["sample"] == "S9"
    bad = world.reader.call(
        "POST", "/sessions/validate", {"form": "run", "values": {"temp_c": "hot"}}
    )
    assert bad.status == 200 and bad.body["valid"] is False
    assert set(bad.body["errors"]) == {"sample", "temp_c"}
    assert world.reader.call("POST", "/sessions/validate", {"form": "nope"}).status == 404


def test_search_sessions(world: World) -> None:
    for temp in (5, 25, 30):
        open_session(world.uploader, values={"sample": f"T{temp}", "temp_c": temp})
    hot = world.reader.call("GET", "/sessions?form=run&where=temp_c>%3D20&where=sample~t&limit=1")
    assert hot.status == 200 and hot.body["total"] >= 2 and len(hot.body["sessions"]) == 1
    following = world.reader.call(
        "GET", f"/sessions?form=run&where=temp_c>%3D20&limit=1&cursor={hot.body['next_cursor']}"
    )
    assert following.status == 200
    assert following.body["sessions"][0]["id"] != hot.body["sessions"][0]["id"]
    newest = world.reader.call("GET", "/sessions?form=run&state=open&owner=ulla").body
    created = [x["created"] for x in newest["sessions"]]
    assert created == sorted(created, reverse=True)  # default: -created
    asc = world.reader.call("GET", "/sessions?form=run&sort=%2Btemp_c&where=temp_c>%3D0")
    values = [s["values"]["temp_c"] for s in asc.body["sessions"]]
    assert values == sorted(values)
    for query, field in (
        ("where=nonsense", "where"),
        ("form=run&where=temp_c>%3Dhot", "where"),
        ("limit=0", "limit"),
        ("created_from=yesterday", "created_from"),
        ("form=nope", "form"),
    ):
        reply = world.reader.call("GET", f"/sessions?{query}")
        assert reply.status == 400, query
        assert field in reply.error.get("fields", {}), (query, reply.body)
    assert world.reader.call("GET", "/sessions?state=sleeping").status == 400
    assert world.reader.call("GET", "/sessions?cursor=@@").status == 400
    assert world.reader.call("GET", "/sessions/NOPE").status == 404


# -- users, keys, audit ----------------------------------------------------------------------------
def test_users(gw: Gateway, world: World) -> None:
    admin = world.admin
    made = admin.call("POST", "/users", {"name": "gene", "role": "reader"})
    assert made.status == 201 and len(made.body["password"]) >= 8  # generated, shown once
    assert admin.call("POST", "/users", {"name": "gene", "role": "reader"}).status == 409
    bad = admin.call("POST", "/users", {"name": "x y", "role": "reader"})
    assert bad.status == 400 and "name" in bad.error["fields"]
    bad = admin.call("POST", "/users", {"name": "zed", "role": "boss"})
    assert bad.status == 400 and "role" in bad.error["fields"]
    bad = admin.call("POST", "/users", {"name": "zed", "role": "reader", "password": "short"})
    assert bad.status == 400 and "password" in bad.error["fields"]
    promoted = admin.call("PATCH", "/users/gene", {"role": "uploader"})
    assert promoted.status == 200 and promoted.body["user"]["role"] == "uploader"
    assert admin.call("PATCH", "/users/gene", {}).status == 400
    assert admin.call("PATCH", "/users/ghost", {"role": "reader"}).status == 404
    names = [u["name"] for u in admin.call("GET", "/users").body["users"]]
    assert {"admin", "gene", "ulla", "rita"} <= set(names)
    assert admin.call("DELETE", "/users/admin").status == 400  # not yourself
    assert admin.call("PATCH", "/users/admin", {"role": "reader"}).status == 400
    gone = admin.call("DELETE", "/users/gene")
    assert gone.status == 200 and gone.body["user"]["deleted"]
    assert admin.call("DELETE", "/users/gene").status == 404


def test_keys(gw: Gateway, world: World) -> None:
    up = world.uploader
    made = up.call("POST", "/keys")
    assert made.status == 201 and made.body["owner"] == "ulla" and made.body["secret_key"]
    mine = up.call("GET", "/keys").body["keys"]
    assert {k["owner"] for k in mine} == {"ulla"}
    assert made.body["access_key"] in [k["access_key"] for k in mine]
    assert up.call("GET", "/keys?user=admin").status == 403
    assert up.call("POST", "/keys", {"user": "rita"}).status == 403
    # another user's key is "not found" for an uploader
    assert up.call("DELETE", f"/keys/{gw.access_key}").status == 404
    for_rita = world.admin.call("POST", "/keys", {"user": "rita"})
    assert for_rita.status == 201 and for_rita.body["owner"] == "rita"
    assert world.admin.call("POST", "/keys", {"user": "ghost"}).status == 404
    ritas = world.admin.call("GET", "/keys?user=rita").body["keys"]
    assert [k["owner"] for k in ritas] == ["rita"]
    revoked = up.call("DELETE", f"/keys/{made.body['access_key']}")
    assert revoked.status == 200 and revoked.body["active"] is False
    signer = Signer(gw.endpoint, made.body["access_key"], made.body["secret_key"])
    assert signer.call("GET", "/me").status == 403  # revoked keys no longer sign
    assert world.admin.call("DELETE", "/keys/MKNOSUCHKEY").status == 404


def test_audit(world: World) -> None:
    # Enough form.create events of its own for a second page, whatever else ran before.
    for n in range(3):
        name = f"audit{n}_{secrets.token_hex(3)}"
        assert world.admin.call("POST", "/forms", {**RUN_FORM, "name": name}).status == 201
    reply = world.admin.call("GET", "/audit?action=form.create&limit=2")
    assert reply.status == 200
    events = reply.body["events"]
    assert events and all(e["action"] == "form.create" for e in events)
    assert len(events) <= 2 and reply.body["next_cursor"]
    older = world.admin.call("GET", f"/audit?action=form.create&cursor={reply.body['next_cursor']}")
    assert older.status == 200
    logins = world.admin.call("GET", "/audit?action=login&user=rita").body["events"]
    assert {e["outcome"] for e in logins} >= {"ok"}
    users = world.admin.call("GET", "/audit?action=user.add").body["events"]
    assert users and users[0]["principal"] == "admin"
    assert world.admin.call("GET", "/audit?since=never").status == 400
    assert world.admin.call("GET", "/audit?limit=5000").status == 400
    assert world.admin.call("GET", "/audit?since=2020-01-01&until=2020-01-02").body["events"] == []


# -- scripts: SigV4 ------------------------------------------------------------------------------
def test_sigv4_signed_requests(gw: Gateway, world: World) -> None:
    admin = Signer(gw.endpoint, gw.access_key, gw.secret_key)
    me = admin.call("GET", "/me")
    assert me.status == 200 and me.body["auth"] == "sigv4" and me.body["user"] == "admin"
    assert "csrf_token" not in me.body
    # state changes need no CSRF token when signed
    made = admin.call(
        "POST", "/forms", {"name": "signed", "fields": [{"name": "a", "type": "text"}]}
    )
    assert made.status == 201, made.body
    # the body must be the one that was signed
    tampered = admin.call(
        "POST", "/forms", {"name": "signed2", "fields": []}, tamper=b'{"name": "evil"}'
    )
    assert tampered.status == 400 and tampered.error["code"] == "bad_digest"
    wrong = Signer(gw.endpoint, gw.access_key, "not-the-secret")
    reply = wrong.call("GET", "/me")
    assert reply.status == 403 and reply.error["code"] == "invalid_signature"
    other_region = Signer(gw.endpoint, gw.access_key, gw.secret_key, region="eu-west-1")
    assert other_region.call("GET", "/me").status == 403


def test_curl_aws_sigv4(gw: Gateway, world: World) -> None:
    """The documented script recipe works as written."""

    def curl(*args: str) -> tuple[int, dict]:
        out = subprocess.run(
            [
                "curl",
                "-sS",
                "-w",
                "\n%{http_code}",
                "--aws-sigv4",
                "aws:amz:us-east-1:s3",
                "--user",
                f"{gw.access_key}:{gw.secret_key}",
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        body, _, code = out.rpartition("\n")
        return int(code), json.loads(body)

    code, body = curl(f"{gw.endpoint}{API}/sessions?form=run&limit=2")
    assert code == 200 and "total" in body
    code, body = curl(
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data",
        json.dumps({"form": "run", "values": {"sample": "C"}}),
        f"{gw.endpoint}{API}/sessions/validate",
    )
    assert code == 200 and body["valid"] is True


# -- protocol ------------------------------------------------------------------------------------
def test_unknown_routes_and_methods_answer_json(world: World) -> None:
    missing = world.reader.call("GET", "/nothing/here")
    assert missing.status == 404 and missing.error["code"] == "not_found"
    wrong = world.admin.call("DELETE", "/forms")
    assert wrong.status == 405 and wrong.error["code"] == "method_not_allowed"
    assert "GET" in wrong.headers.get("Allow", "")


def test_openapi_describes_exactly_the_routes(gw: Gateway) -> None:
    doc = Browser(gw.endpoint).call("GET", "/openapi.json")
    assert doc.status == 200 and doc.body["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc.body["paths"].items() for m in ops}
    # what the router really serves (aiohttp's own resource list), in OpenAPI path syntax
    app = web.Application()
    app[CONFIG] = Config()
    setup_api(app)
    (subapp,) = [r._app for r in app.router.resources() if hasattr(r, "_app")]
    served = set()
    for route in subapp.router.routes():
        info = route.resource.get_info()
        path = info.get("path") or info["formatter"]
        # add_subapp prefixes the sub-app's resources with API already
        served.add((route.method, path if path.startswith(API) else API + path))
    assert documented == served
    assert {(r.method, openapi_path(r)) for r in all_routes()} == served
    schemes = doc.body["components"]["securitySchemes"]
    assert {"loginCookie", "csrfToken", "sigv4"} <= set(schemes)
    text = json.dumps(doc.body)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        name = ref.rsplit("/", 1)[-1]
        assert name in doc.body["components"]["schemas"], ref


# -- twins of the metadata and data browsers -------------------------------------------------------
def test_export_sessions_csv_and_json(world: World) -> None:
    open_session(world.uploader, values={"sample": "E,1", "temp_c": 77})
    csv_reply = world.reader.call("GET", "/sessions/export?form=run&where=temp_c>%3D77")
    assert csv_reply.status == 200
    assert csv_reply.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_reply.body)))
    assert [r["sample"] for r in rows] == ["E,1"] and rows[0]["temp_c"] == "77"
    assert rows[0]["owner"] == "ulla" and rows[0]["state"] == "open"
    everything = world.reader.call("GET", "/sessions/export?format=json&form=run")
    assert everything.status == 200
    total = world.reader.call("GET", "/sessions?form=run&limit=1").body["total"]
    assert everything.body["total"] == total == len(everything.body["sessions"])
    bad = world.reader.call("GET", "/sessions/export?format=xml")
    assert bad.status == 400 and "format" in bad.error["fields"]


def test_browse_buckets(gw: Gateway, world: World) -> None:
    opened = open_session(world.uploader, prefix="browse/")
    key = opened["session_key"]
    s3 = boto3.client(
        "s3",
        endpoint_url=gw.endpoint,
        aws_access_key_id=key["access_key"],
        aws_secret_access_key=key["secret_key"],
        region_name="us-east-1",
    )
    for name in ("browse/a.txt", "browse/sub/b.txt"):
        s3.put_object(Bucket="raw", Key=name, Body=b"x")
    buckets = world.reader.call("GET", "/buckets").body["buckets"]
    assert "raw" in [b["name"] for b in buckets]
    top = world.reader.call("GET", "/buckets/raw?prefix=browse/").body
    assert top["prefixes"] == ["browse/sub/"]
    assert [(o["key"], o["session_id"]) for o in top["objects"]] == [
        ("browse/a.txt", opened["session"]["id"])
    ]
    paged = world.reader.call("GET", "/buckets/raw?prefix=browse/&limit=1").body
    assert paged["next_start_after"]
    assert world.reader.call("GET", "/buckets/nosuchbucket").status == 404
