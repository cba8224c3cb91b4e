"""``--ui-url``: the web UI on a host name of its own (gateway.ui_host, issue 8 item 5).

One real ``minimo serve --ui-url http://ui.test --public-url http://s3.test`` on 127.0.0.1; the
host names are chosen by the Host header each request sends, as a reverse proxy or DNS would.
On ui.test: the UI answers, S3 reads are refused, S3 writes (the browser upload) still work.
On any other name: S3 as usual, health answers, UI paths redirect there (or 421). The split is
above the object store, so the local backend stands for both.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import ClientError

from gateway.protocol.safe_serving import OBJECT_CSP
from gateway.ui_host import check_ui_url, host_name, parse_ui_url
from tests.helpers import s3_client
from tests.servers import REPO, Gateway, run_gateway

UI = "ui.test"
S3_URL = "http://s3.test"


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data_dir = tmp_path_factory.mktemp("ui-host")
    with run_gateway(
        data_dir, extra_args=["--ui-url", f"http://{UI}", "--public-url", S3_URL]
    ) as gw:
        yield gw


def send(gw: Gateway, method: str, path: str, host: str | None = None, **headers: str) -> Reply:
    """``path`` to the gateway with Host ``host`` (default: the address it listens on)."""
    url = urlsplit(gw.endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request(method, path, headers={"Host": host or url.netloc, **headers})
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def test_the_ui_answers_on_its_host_only(split: Gateway) -> None:
    port = urlsplit(split.endpoint).port
    assert send(split, "GET", "/_minimo/login", f"{UI}:{port}").status == 200
    assert send(split, "GET", "/_minimo/login", UI.upper()).status == 200  # names are caseless
    # elsewhere: sent to the UI's URL, path and query kept
    moved = send(split, "GET", "/_minimo/data/b?prefix=x%2F")
    assert moved.status == 308
    where = urlsplit(moved.headers["Location"])
    assert (where.scheme, where.netloc, where.path) == ("http", UI, "/_minimo/data/b")
    assert parse_qs(where.query) == {"prefix": ["x/"]}
    assert send(split, "GET", "/_minimo").headers["Location"] == f"http://{UI}/_minimo"
    api = send(split, "GET", "/_minimo/api/v1/me", "s3.test")
    assert api.status == 308
    # no login cookie can be set on the S3 host name
    login = send(split, "POST", "/_minimo/api/v1/login", "s3.test")
    assert login.status == 421
    assert b"http://ui.test/_minimo/" in login.body
    assert "Set-Cookie" not in login.headers
    # probes reach the gateway by address
    assert send(split, "GET", "/_minimo/health").status == 200
    assert send(split, "GET", "/_minimo/health", UI).status == 200


def test_objects_are_never_read_on_the_ui_host(split: Gateway) -> None:
    s3 = s3_client(split)
    s3.create_bucket(Bucket="split")
    s3.put_object(Bucket="split", Key="page.html", Body=b"<script>1</script>")
    # on the S3 host name: as usual
    assert s3.get_object(Bucket="split", Key="page.html")["Body"].read() == b"<script>1</script>"
    # on the UI's: refused before anything else (no signature needed to learn that)
    for method, path in [
        ("GET", "/split/page.html"),
        ("GET", "/split/page.html?X-Amz-Signature=whatever"),
        ("GET", "/split?list-type=2"),
        ("GET", "/"),
    ]:
        got = send(split, method, path, UI)
        assert got.status == 403, (method, path)
        assert b"<Code>AccessDenied</Code>" in got.body
        assert b"serves minimo's web UI" in got.body
        assert S3_URL.encode() in got.body
        assert got.headers["Content-Security-Policy"] == OBJECT_CSP
        assert b"<script>" not in got.body
    head = send(split, "HEAD", "/split/page.html", UI)
    assert (head.status, head.body) == (403, b"")


def test_writes_still_work_on_the_ui_host(split: Gateway) -> None:
    """The session page's browser upload PUTs to its own origin: the UI's host name."""
    ui = s3_client(split)
    ui.meta.events.register(
        "before-sign.s3.*", lambda request, **_: request.headers.__setitem__("Host", UI)
    )
    ui.create_bucket(Bucket="uploads")
    ui.put_object(Bucket="uploads", Key="from-the-ui", Body=b"uploaded")
    assert s3_client(split).get_object(Bucket="uploads", Key="from-the-ui")["Body"].read() == (
        b"uploaded"
    )
    with pytest.raises(ClientError) as exc:
        ui.get_object(Bucket="uploads", Key="from-the-ui")
    assert exc.value.response["Error"]["Code"] == "AccessDenied"


def test_refusals_link_to_the_ui_url(split: Gateway) -> None:
    s3 = s3_client(split)
    s3.create_bucket(Bucket="linked")
    with pytest.raises(ClientError) as exc:
        s3.put_object(
            Bucket="linked", Key="a/b", Body=b"x", Metadata={"minimo-session": "not-an-id"}
        )
    assert f"http://{UI}/_minimo/sessions/new?" in exc.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--ui-url", "http://ui.test"], "needs --public-url"),
        (["--ui-url", "http://same.test", "--public-url", "https://same.test:9000"], "different"),
        (["--ui-url", "http://ui.test/console", "--public-url", S3_URL], "only scheme and host"),
        (["--ui-url", "ui.test", "--public-url", S3_URL], "not an http(s) URL"),
    ],
)
def test_unusable_ui_urls_stop_serve(tmp_path: Path, args: list[str], complaint: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--data-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert complaint in proc.stderr


def test_host_names() -> None:
    assert host_name("UI.Example.org:443") == "ui.example.org"
    assert host_name("ui.example.org.") == "ui.example.org"
    assert host_name("[::1]:9000") == "[::1]"
    assert host_name("") == ""
    assert parse_ui_url("https://UI.example.org:8443/") == (
        "https://UI.example.org:8443",
        "ui.example.org",
    )
    check_ui_url("https://ui.example.org", "https://s3.example.org")
