"""A fresh start as a person meets it, against a real ``minimo serve``: the first start prints the
web UI's address beside the admin's credentials; the gateway's address in a browser leads to the
UI while S3 clients still get S3 answers there; ``/favicon.ico`` is an icon; and a CLI command
whose reader goes away (``minimo audit | head -1``, a real pipe) ends quietly.
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from policy.store.base import AuditEvent
from policy.store.sqlite import SqliteStore
from tests.helpers import s3_client
from tests.servers import REPO, Gateway, run_gateway

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    with run_gateway(tmp_path_factory.mktemp("first-start") / "minimo-data") as gateway:
        yield gateway


def test_the_first_start_prints_the_web_ui_address_beside_the_admin(gw: Gateway) -> None:
    log = next(gw.data_dir.glob("gateway-*.log")).read_text()
    announcement = log[log.index("No users existed") :]
    assert f"  web UI:     {gw.endpoint}/_minimo/\n" in announcement
    assert f"  password:   {gw.admin_password}\n" in announcement


def test_a_browser_at_the_root_is_sent_to_the_web_ui(gw: Gateway) -> None:
    reply = requests.get(
        gw.endpoint + "/", headers={"Accept": BROWSER_ACCEPT}, allow_redirects=False
    )
    assert reply.status_code in (302, 303)
    assert reply.headers["Location"] == "/_minimo/"
    # followed, as a browser does: the sign-in page
    landed = requests.get(gw.endpoint + "/", headers={"Accept": BROWSER_ACCEPT})
    assert landed.status_code == 200 and "Sign in" in landed.text
    assert landed.url.startswith(gw.endpoint + "/_minimo/login")


def test_s3_clients_at_the_root_still_get_s3_answers(gw: Gateway) -> None:
    s3 = s3_client(gw)
    s3.create_bucket(Bucket="first")
    assert "first" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # anonymous, not asking for HTML (curl, an SDK without credentials): S3's refusal in XML
    anonymous = requests.get(gw.endpoint + "/")
    assert anonymous.status_code == 403
    assert "<Code>AccessDenied</Code>" in anonymous.text
    # a presigned ListBuckets opened in a browser is a signed request: its XML, not the UI
    url = s3.generate_presigned_url("list_buckets", ExpiresIn=300)
    presigned = requests.get(url, headers={"Accept": BROWSER_ACCEPT}, allow_redirects=False)
    assert presigned.status_code == 200 and "<Name>first</Name>" in presigned.text


def test_the_favicon_is_an_icon(gw: Gateway) -> None:
    reply = requests.get(gw.endpoint + "/favicon.ico")
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "image/vnd.microsoft.icon"
    assert reply.content.startswith(b"\x00\x00\x01\x00")  # an ICO header
    # a signed request for a bucket of that name is still S3's
    with pytest.raises(ClientError) as missing:
        s3_client(gw).list_objects_v2(Bucket="favicon.ico")
    assert missing.value.response["Error"]["Code"] == "NoSuchBucket"


def test_a_cli_command_ends_quietly_when_its_reader_goes_away(tmp_path: Path) -> None:
    data = tmp_path / "minimo-data"
    data.mkdir()
    # far more output than a pipe buffers, so minimo is still writing when head has gone
    asyncio.run(_fill_audit_log(data / "minimo.sqlite3", 3000))
    minimo = f"{shlex.quote(sys.executable)} -m gateway.cli"
    for command in ("audit --limit 3000", "audit --json --limit 3000"):
        script = (
            f"{minimo} {command} --data-dir {shlex.quote(str(data))} | head -1\n"
            'echo "minimo exited ${PIPESTATUS[0]}" >&2\n'
        )
        done = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120
        )
        assert done.stdout.count("\n") == 1 and "probe-0" in done.stdout, done.stdout
        status = done.stderr.strip().splitlines()
        assert status[-1] in ("minimo exited 0", "minimo exited 141"), done.stderr
        assert status[:-1] == [], f"{command} printed on stderr: {done.stderr}"


async def _fill_audit_log(path: Path, count: int) -> None:
    store = SqliteStore(path)
    await store.open()
    try:
        for n in range(count):
            await store.append_audit(
                AuditEvent(
                    datetime.now(UTC),
                    "cli:test",
                    "probe",
                    f"probe-{n}:" + "x" * 80,
                    "ok",
                    None,
                    {},
                )
            )
    finally:
        await store.close()
