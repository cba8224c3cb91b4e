"""``/_minimo/metrics``: Prometheus text an operator's scraper reads, and only they.

A real gateway (embedded default, and MongoDB on FerretDB for the figures read from the
metadata store), real S3 traffic with boto3 (an accepted PUT, a GET, a refused PUT, a session
write), then the scrape parsed with prometheus_client's own parser: every figure the docs list
is there and counts what was done. Access: signed-out and wrong tokens get 401, a signed-in
uploader 403, the token and a signed-in admin 200; ``--metrics-public`` opens it to anyone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from tests.api.client import Browser, Reply, _send
from tests.helpers import s3_client
from tests.servers import REPO, Gateway, mongo_uri, run_gateway

TOKEN = "metrics-token-for-the-test-0123456789"
FORM = {"name": "run", "title": "Run", "fields": [{"name": "operator", "type": "text"}]}
POLICY = """\
[[rule]]
bucket = "scratch"
prefix = ""
require_session = false
overwrite = "allow"
delete = "admin"

[[rule]]
bucket = "kept"
prefix = ""
forms = ["run"]
"""


def _start(tmp: Path, *extra: str, mongo: str | None = None) -> Iterator[Gateway]:
    token_file = tmp / "metrics.token"
    token_file.write_text(TOKEN + "\n")
    with run_gateway(
        tmp / "data",
        policy=None,
        mongo_uri=mongo,
        extra_args=["--metrics-token-file", str(token_file), *extra],
    ) as gw:
        form = tmp / "form.json"
        form.write_text(json.dumps(FORM))
        gw.cli("form", "create", "--file", str(form))
        policy = tmp / "policy.toml"
        policy.write_text(POLICY)
        gw.cli("policy", "set", str(policy))
        s3 = s3_client(gw)
        for bucket in ("scratch", "kept"):
            s3.create_bucket(Bucket=bucket)
        yield gw


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from _start(tmp_path_factory.mktemp("metrics"))


def scrape(gw: Gateway, headers: dict[str, str] | None = None, browser: Browser | None = None):
    opener = browser.opener if browser is not None else urllib.request.build_opener()
    request = urllib.request.Request(f"{gw.endpoint}/_minimo/metrics", headers=headers or {})
    return _send(opener, request)


def figures(reply: Reply) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from the text format."""
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = {}
    for family in text_string_to_metric_families(reply.body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def open_session(gw: Gateway) -> dict[str, str]:
    done = gw.cli(
        "session", "open", "--form", "run", "--bucket", "kept", "--set", "operator=Ada", "--json"
    )
    return json.loads(done.stdout)


def test_requests_bytes_refusals_and_store_figures(gw: Gateway) -> None:
    before = figures(scrape(gw, bearer()))
    s3 = s3_client(gw)
    s3.put_object(Bucket="scratch", Key="a.bin", Body=b"x" * 5000)
    assert s3.get_object(Bucket="scratch", Key="a.bin")["Body"].read() == b"x" * 5000
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket="kept", Key="no-session.bin", Body=b"y")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError):
        s3.head_object(Bucket="scratch", Key="missing.bin")
    session = open_session(gw)
    key = s3_client(gw, session["access_key"], session["secret_key"])
    key.put_object(Bucket="kept", Key=f"{session['prefix']}cells.tif", Body=b"z" * 100)

    after = figures(scrape(gw, bearer()))

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("minimo_requests_total", operation="PutObject", status="200") == 2
    assert grew("minimo_requests_total", operation="PutObject", status="403") == 1
    assert grew("minimo_requests_total", operation="GetObject", status="200") == 1
    assert grew("minimo_requests_total", operation="HeadObject", status="404") == 1
    assert grew("minimo_request_duration_seconds_count", operation="PutObject") == 3
    # (the refused PUT's body is never read)
    assert grew("minimo_received_bytes_total", operation="PutObject") >= 5000 + 100
    assert grew("minimo_sent_bytes_total", operation="GetObject") >= 5000
    assert grew("minimo_refusals_total", reason="no_session") == 1
    # the write protocol's metadata calls, timed, none failed
    assert grew("minimo_store_call_duration_seconds_count", store="metadata", call="finish_write")
    assert grew("minimo_store_call_duration_seconds_count", store="objects", call="put_object")
    assert not any(name == "minimo_store_call_errors_total" and v for (name, _), v in after.items())
    # read from the metadata store, and reused for 30 s (test_store_figures checks them)
    assert ("minimo_sessions_open", ()) in after


def test_who_may_read(gw: Gateway) -> None:
    signed_out = scrape(gw)
    assert signed_out.status == 401
    assert "Bearer" in signed_out.headers["WWW-Authenticate"]
    assert "metrics token" in signed_out.body
    assert scrape(gw, bearer("x" * len(TOKEN))).status == 401
    assert scrape(gw, {"Authorization": f"Basic {TOKEN}"}).status == 401
    assert scrape(gw, bearer(TOKEN[:-1])).status == 401

    gw.cli(
        "user",
        "add",
        "ulla",
        "--role",
        "uploader",
        "--password-stdin",
        input="uploader password 1\n",
    )
    uploader = Browser(gw.endpoint)
    assert uploader.login("ulla", "uploader password 1").status == 200
    assert scrape(gw, browser=uploader).status == 403

    admin = Browser(gw.endpoint)
    user = gw.cli("user", "list", "--json")
    name = next(u["name"] for u in json.loads(user.stdout) if u["role"] == "admin")
    assert admin.login(name, gw.admin_password).status == 200
    assert "minimo_requests_total" in scrape(gw, browser=admin).body


def test_public_when_the_operator_says_so(tmp_path: Path) -> None:
    for gw in _start(tmp_path, "--metrics-public"):
        assert "minimo_sessions_open" in scrape(gw).body


def test_a_weak_token_file_is_refused_at_start(tmp_path: Path) -> None:
    weak = tmp_path / "weak.token"
    weak.write_text("short\n")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "gateway.cli", "serve", "--data-dir", str(tmp_path / "d")),
            *("--metrics-token-file", str(weak)),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 2
    assert "at least 16 characters" in done.stderr


@pytest.mark.parametrize("store", ["sqlite", "mongo"])
def test_store_figures(tmp_path: Path, store: str, request: pytest.FixtureRequest) -> None:
    """Sessions open, intents pending and records by verify result, as the metadata store
    has them (the first scrape of a fresh gateway: nothing cached yet)."""
    mongo = mongo_uri(request.getfixturevalue("ferretdb"), "metrics") if store == "mongo" else None
    for gw in _start(tmp_path, mongo=mongo):
        open_session(gw)
        s3_client(gw).put_object(Bucket="scratch", Key="m.bin", Body=b"m")
        found = figures(scrape(gw, bearer()))
        assert value(found, "minimo_sessions_open") == 1
        assert value(found, "minimo_write_intents_pending") == 0
        assert value(found, "minimo_objects_by_verify_result", result="never") == 1
        assert value(found, "minimo_requests_total", operation="PutObject", status="200") == 1
