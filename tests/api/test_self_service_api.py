"""Self-service through the JSON API against a real ``minimo serve``: every role changes its own
password (``POST /me/password``) and creates, labels and revokes its own keys; a reader's keys
and a key made with a read-only key are read-only, checked with boto3 writing for real."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.api.client import Browser, Signer
from tests.helpers import s3_client
from tests.servers import Gateway

SCRATCH_POLICY = '[[rule]]\nbucket = "open"\nprefix = ""\nrequire_session = false\n'


@pytest.fixture(scope="module")
def scratch(gw: Gateway, admin: Browser) -> str:
    s3_client(gw).create_bucket(Bucket="open")
    assert admin.call("PUT", "/policy", {"toml": SCRATCH_POLICY}).status == 200
    return "open"


def add_user(admin: Browser, name: str, role: str, password: str) -> None:
    reply = admin.call("POST", "/users", {"name": name, "role": role, "password": password})
    assert reply.status == 201, reply.body


def refused_write(gw: Gateway, access: str, secret: str, bucket: str) -> str:
    with pytest.raises(ClientError) as refused:
        s3_client(gw, access, secret).put_object(Bucket=bucket, Key="x.txt", Body=b"x")
    return refused.value.response["Error"]["Code"]


def test_a_reader_creates_labels_and_revokes_read_only_keys(
    gw: Gateway, admin: Browser, scratch: str
) -> None:
    add_user(admin, "rhea", "reader", "rhea-password-1")
    rhea = Browser(gw.endpoint)
    assert rhea.login("rhea", "rhea-password-1").status == 200
    # asking for a writing key changes nothing: a reader's keys read
    made = rhea.call("POST", "/keys", {"label": "notebook", "read_only": False})
    assert made.status == 201, made.body
    assert made.body["label"] == "notebook" and made.body["read_only"] is True
    listed = {k["access_key"]: k for k in rhea.call("GET", "/keys").body["keys"]}
    assert listed[made.body["access_key"]]["label"] == "notebook"
    assert listed[made.body["access_key"]]["read_only"] is True
    access, secret = made.body["access_key"], made.body["secret_key"]
    assert s3_client(gw, access, secret).list_objects_v2(Bucket=scratch)["KeyCount"] >= 0
    assert refused_write(gw, access, secret, scratch) == "AccessDenied"
    # a label is checked: too long, or not one line
    long = rhea.call("POST", "/keys", {"label": "x" * 65})
    assert long.status == 400 and "label" in long.error["fields"]
    assert rhea.call("POST", "/keys", {"label": "a\nb"}).status == 400
    assert rhea.call("POST", "/keys", {"read_only": "yes"}).status == 400
    # and revokes it
    assert rhea.call("DELETE", f"/keys/{access}").status == 200
    assert refused_write(gw, access, secret, scratch) == "InvalidAccessKeyId"


def test_a_read_only_key_never_mints_a_writing_one(
    gw: Gateway, admin: Browser, scratch: str
) -> None:
    made = admin.call("POST", "/keys", {"label": "dashboard", "read_only": True})
    assert made.status == 201 and made.body["read_only"] is True
    reader_key = Signer(gw.endpoint, made.body["access_key"], made.body["secret_key"])
    assert reader_key.call("GET", "/me").body["role"] == "reader"
    assert reader_key.call("GET", "/users").status == 403  # not an admin through this key
    minted = reader_key.call("POST", "/keys", {"read_only": False})
    assert minted.status == 201 and minted.body["read_only"] is True
    assert refused_write(gw, minted.body["access_key"], minted.body["secret_key"], scratch) == (
        "AccessDenied"
    )
    # the admin's ordinary keys still write there
    writer = admin.call("POST", "/keys", {"label": "writer"})
    assert writer.body["read_only"] is False
    client = s3_client(gw, writer.body["access_key"], writer.body["secret_key"])
    client.put_object(Bucket=scratch, Key="by-admin.txt", Body=b"ok")


def test_changing_my_password_ends_my_other_logins_and_keeps_this_one(
    gw: Gateway, admin: Browser
) -> None:
    add_user(admin, "uwe", "uploader", "uwe-password-1")
    this, other = Browser(gw.endpoint), Browser(gw.endpoint)
    assert this.login("uwe", "uwe-password-1").status == 200
    assert other.login("uwe", "uwe-password-1").status == 200
    key = this.call("POST", "/keys", {"label": "kept"}).body

    wrong = this.call(
        "POST", "/me/password", {"old_password": "nope", "new_password": "uwe-password-2"}
    )
    assert wrong.status == 403 and wrong.error["code"] == "wrong_password"
    assert wrong.error["fields"] == {"old_password": ["the current password is wrong"]}
    short = this.call(
        "POST", "/me/password", {"old_password": "uwe-password-1", "new_password": "short"}
    )
    assert short.status == 400 and list(short.error["fields"]) == ["new_password"]
    assert this.call("POST", "/me/password", {"new_password": "x" * 20}).status == 400
    # the CSRF header is needed like for any cookie POST
    no_csrf = this.call(
        "POST",
        "/me/password",
        {"old_password": "uwe-password-1", "new_password": "uwe-password-2"},
        csrf=False,
    )
    assert no_csrf.status == 403

    changed = this.call(
        "POST", "/me/password", {"old_password": "uwe-password-1", "new_password": "uwe-password-2"}
    )
    assert changed.status == 200 and changed.body["password_changed"] is True
    assert this.call("GET", "/me").status == 200
    assert other.call("GET", "/me").status == 401
    assert Browser(gw.endpoint).login("uwe", "uwe-password-1").status == 401
    assert Browser(gw.endpoint).login("uwe", "uwe-password-2").status == 200
    # personal keys are credentials of their own: they keep working
    assert (
        Signer(gw.endpoint, key["access_key"], key["secret_key"]).call("GET", "/me").status == 200
    )
    events = admin.call("GET", "/audit?action=user.password").body["events"]
    outcomes = [e["outcome"] for e in events if e["target"] == "user:uwe"]
    assert "ok" in outcomes and "refused" in outcomes


def test_wrong_current_passwords_are_limited_without_locking_the_user_out(
    gw: Gateway, admin: Browser
) -> None:
    add_user(admin, "vera", "reader", "vera-password-1")
    stolen = Browser(gw.endpoint)  # say, a cookie someone else got hold of
    assert stolen.login("vera", "vera-password-1").status == 200
    guess = {"old_password": "guess", "new_password": "vera-password-2"}
    answers = [stolen.call("POST", "/me/password", guess).status for _ in range(6)]
    assert answers[:5] == [403] * 5 and answers[5] == 429, answers
    limited = stolen.call("POST", "/me/password", guess)
    assert limited.status == 429 and int(limited.headers["Retry-After"]) > 0
    # the guesses do not count against signing in: vera still gets in
    assert Browser(gw.endpoint).login("vera", "vera-password-1").status == 200
