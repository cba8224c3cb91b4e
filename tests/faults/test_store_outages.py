"""Stores stopped while clients write (issue 8, item 3; docs/failures.md).

FerretDB (the ``mongo`` metadata store) is stopped with SIGKILL and with SIGTERM under a gateway
on each object backend, versitygw (the ``s3`` object store) under a gateway on SQLite. Through
each outage every answer is a success or a ``503 ServiceUnavailable`` with ``Retry-After`` whose
Message names the store and no address; health answers 503 while the store is down. The store
is then started again on the same port and data, and writes succeed again without restarting
the gateway. Afterwards every acknowledged object is present, byte-identical and recorded, and
nothing is visible without a record.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import secrets
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.faults.helpers import (
    Restartable,
    WriteLoad,
    check_integrity,
    check_outage_answers,
    client,
    ferretdb_process,
    put,
    versitygw_process,
    wait_for_health,
)
from tests.servers import Gateway, Versitygw, mongo_uri, run_gateway

#: how long each store stays down while the load runs
OUTAGE_SECONDS = 4.0


@pytest.fixture
def ferretdb_server(tmp_path: Path) -> Iterator[Restartable]:
    server = ferretdb_process(tmp_path / "ferretdb")
    server.start()
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)


@pytest.fixture
def versitygw_server(tmp_path: Path) -> Iterator[tuple[Restartable, Versitygw]]:
    server, upstream = versitygw_process(tmp_path / "versitygw" / "root")
    server.start()
    try:
        yield server, upstream
    finally:
        server.stop(signal.SIGKILL)


def _bucket(gw: Gateway) -> str:
    name = f"f-{secrets.token_hex(5)}"
    client(gw).create_bucket(Bucket=name)
    return name


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
@pytest.mark.parametrize("backend", ["local", "s3"])
def test_metadata_store_stopped_during_writes(
    tmp_path: Path,
    ferretdb_server: Restartable,
    request: pytest.FixtureRequest,
    backend: str,
    sig: int,
) -> None:
    upstream = None
    if backend == "s3":
        upstream = request.getfixturevalue("versitygw")
    uri = mongo_uri(f"mongodb://127.0.0.1:{ferretdb_server.port}/", f"f_{secrets.token_hex(5)}")
    with run_gateway(tmp_path / "gw", mongo_uri=uri, upstream=upstream) as gw:
        bucket = _bucket(gw)
        s3 = client(gw)
        kept = b"read me during the outage"
        assert put(s3, bucket, "kept", kept).status == 200
        # a key the gateway has never seen: during the outage it must get a 503, not a 403
        fresh = json.loads(gw.cli("key", "create", "admin", "--json").stdout)

        load = WriteLoad(gw, bucket).start()
        try:
            load.wait_for_ok(20)
            s3.head_object(Bucket=bucket, Key="kept")  # confirms the admin key just before
            ferretdb_server.stop(sig)
            down = wait_for_health(gw, 503)
            assert down["metadata_store"].startswith("unavailable")
            assert "127.0.0.1" not in json.dumps(down)

            # reads that need no metadata keep working for a key confirmed just before the
            # outage (the credential grace); writes with it do not, and an unknown key is a 503
            assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == kept
            refused = put(s3, bucket, "during-outage", b"x")
            assert (refused.status, refused.code) == (503, "ServiceUnavailable"), refused
            stranger = client(gw, fresh["access_key"], fresh["secret_key"])
            with pytest.raises(ClientError) as caught:
                stranger.get_object(Bucket=bucket, Key="kept")
            assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503

            time.sleep(OUTAGE_SECONDS)
            failed_before = len(load.answers)
            ferretdb_server.start()
            ok_before = load.ok_count()
            load.wait_for_ok(ok_before + 20)  # writes work again: no gateway restart
            assert gw.proc.poll() is None
            assert wait_for_health(gw, 200)["metadata_store"] == "ok"
        finally:
            answers = load.stop()
        assert any(a.status == 503 for a in answers[:failed_before]), "the outage was not seen"
        check_outage_answers(answers, "metadata", [f":{ferretdb_server.port}", uri])
        check_integrity(gw, bucket, answers, upstream)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_object_store_stopped_during_writes(
    tmp_path: Path, versitygw_server: tuple[Restartable, Versitygw], sig: int
) -> None:
    server, upstream = versitygw_server
    with run_gateway(tmp_path / "gw", upstream=upstream) as gw:
        bucket = _bucket(gw)
        load = WriteLoad(gw, bucket).start()
        try:
            load.wait_for_ok(20)
            server.stop(sig)
            down = wait_for_health(gw, 503)
            assert down["object_store"].startswith("unavailable")
            assert down["metadata_store"] == "ok"
            assert upstream.endpoint not in json.dumps(down)
            time.sleep(OUTAGE_SECONDS)
            failed_before = len(load.answers)
            server.start()
            load.wait_for_ok(load.ok_count() + 20)
            assert gw.proc.poll() is None
            assert wait_for_health(gw, 200)["object_store"] == "ok"
        finally:
            answers = load.stop()
        assert any(a.status == 503 for a in answers[:failed_before]), "the outage was not seen"
        check_outage_answers(answers, "object", [f":{server.port}"])
        check_integrity(gw, bucket, answers, upstream)


def test_outage_answers_in_the_api_and_pages(tmp_path: Path, ferretdb_server: Restartable) -> None:
    """The JSON API answers a 503 JSON error, a page a friendly 503 page: no 500, no traceback,
    no address; both work again once the store is back."""
    uri = mongo_uri(f"mongodb://127.0.0.1:{ferretdb_server.port}/", f"f_{secrets.token_hex(5)}")
    with run_gateway(tmp_path / "gw", mongo_uri=uri) as gw:
        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        with browser.open(f"{gw.endpoint}/_minimo/login", timeout=30) as r:
            token = re.search(r'name="csrf_token" value="([^"]+)"', r.read().decode()).group(1)
        ferretdb_server.stop(signal.SIGKILL)
        wait_for_health(gw, 503)

        def api_login() -> urllib.request.Request:
            body = json.dumps({"user": "admin", "password": gw.admin_password}).encode()
            return urllib.request.Request(
                f"{gw.endpoint}/_minimo/api/v1/login",
                data=body,
                headers={"Content-Type": "application/json"},
            )

        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(api_login(), timeout=30)
        err = caught.value
        text = err.read().decode()
        assert err.code == 503, text
        assert err.headers["Retry-After"].isdigit()
        body = json.loads(text)
        assert body["error"]["code"] == "unavailable"
        assert body["error"]["message"].startswith("The metadata store is unavailable")
        assert "127.0.0.1" not in text and "Traceback" not in text

        form = urllib.parse.urlencode(
            {"csrf_token": token, "user": "admin", "password": gw.admin_password}
        ).encode()
        with pytest.raises(urllib.error.HTTPError) as caught:
            browser.open(f"{gw.endpoint}/_minimo/login", data=form, timeout=30)
        page = caught.value.read().decode()
        assert caught.value.code == 503, page
        assert caught.value.headers["Retry-After"].isdigit()
        assert "Temporarily unavailable" in page
        assert "The metadata store is unavailable" in page
        assert "127.0.0.1" not in page and "Traceback" not in page

        ferretdb_server.start()
        wait_for_health(gw, 200)
        with urllib.request.urlopen(api_login(), timeout=30) as r:
            assert json.loads(r.read())["user"] == "admin"
