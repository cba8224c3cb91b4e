"""The API over MongoDB (FerretDB) and TLS: the same code paths, another metadata backend, and
the login cookie marked Secure."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.api.client import Browser, Signer
from tests.api.conftest import POLICY, RUN_FORM
from tests.servers import Gateway, mongo_uri, run_gateway


@pytest.fixture(scope="module")
def mongo_gw(tmp_path_factory: pytest.TempPathFactory, ferretdb: str) -> Iterator[Gateway]:
    database = f"api_{secrets.token_hex(4)}"
    with run_gateway(
        tmp_path_factory.mktemp("api-mongo"), tls=True, mongo_uri=mongo_uri(ferretdb, database)
    ) as gateway:
        yield gateway


def test_api_smoke_on_mongo_over_tls(mongo_gw: Gateway) -> None:
    admin = Browser(mongo_gw.endpoint)
    login = admin.login("admin", mongo_gw.admin_password)
    assert login.status == 200
    cookie = login.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert admin.call("POST", "/forms", RUN_FORM).status == 201
    assert admin.call("PUT", "/policy", {"toml": POLICY}).status == 200
    for temp in (10, 30):
        opened = admin.call(
            "POST",
            "/sessions",
            {"form": "run", "bucket": "raw", "values": {"sample": "M", "temp_c": temp}},
        )
        assert opened.status == 201, opened.body
    found = admin.call("GET", "/sessions?form=run&where=temp_c>%3D20")
    assert found.status == 200 and found.body["total"] == 1
    session_id = found.body["sessions"][0]["id"]
    assert admin.call("POST", f"/sessions/{session_id}/close").status == 200
    events = admin.call("GET", "/audit?action=session.close").body["events"]
    assert [e["target"] for e in events] == [f"session:{session_id}"]
    # and a signed script over HTTPS
    signer = Signer(mongo_gw.endpoint, mongo_gw.access_key, mongo_gw.secret_key)
    assert signer.call("GET", "/me").body["auth"] == "sigv4"
