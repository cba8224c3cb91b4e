"""Link existing data: objects put straight into the object store (no record, no stamp) are
adopted into a new session with ``minimo adopt`` and with the JSON API, against a real
``minimo serve`` on both object stores (``local``, and ``s3`` in front of versitygw)."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from policy.enforce import SESSION_META
from tests.api.client import Browser
from tests.contract.helpers import pattern
from tests.helpers import Setup, cli, policy_rule, s3_client
from tests.servers import Gateway, run_gateway

FORM = {
    "name": "imaging",
    "title": "Imaging run",
    "fields": [{"name": "operator", "type": "text", "required": True}],
}
POLICY = policy_rule("*", ["imaging"])


@pytest.fixture(params=["local", "s3"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Gateway, Setup]]:
    upstream = request.getfixturevalue("versitygw") if request.param == "s3" else None
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    form_file = tmp_path / "form.json"
    form_file.write_text(json.dumps(FORM))
    # The form exists before serve puts the policy (which names it) in force.
    cli(data_dir, "form", "create", "--file", str(form_file))
    with run_gateway(data_dir, upstream=upstream, policy=POLICY) as gw:
        yield gw, Setup(data_dir, upstream)


def test_adopt_cli_and_api(world: tuple[Gateway, Setup]) -> None:
    gw, setup = world
    bucket = f"adopt-{secrets.token_hex(4)}"
    setup.create_bucket(bucket)
    data = {
        "old/a/one.bin": pattern(200 * 1024, seed=1),
        "old/a/two.bin": b"two",
        "old/b/three.bin": pattern(5000, seed=3),
    }
    for key, body in data.items():
        # one carries the mark of a crate minimo generated, which only minimo may set
        forged = {"minimo-generated": "ro-crate"} if key == "old/a/two.bin" else {}
        setup.put(bucket, key, body, {"instrument": "scope-7", **forged})
    store_args = setup.store_args()

    # -- the CLI adopts old/a/ -------------------------------------------------------------------
    done = cli(
        gw.data_dir, "adopt", "--bucket", bucket, "--prefix", "old/a/", "--form", "imaging",
        "--set", "operator=ada", "--json", *store_args,
    )  # fmt: skip
    out = json.loads(done.stdout)
    assert out["counts"]["adopted"] == 2
    assert out["counts"]["bytes"] == len(data["old/a/one.bin"]) + 3
    cli_session = out["session"]

    # -- the API adopts old/b/ (admin, logged in, with the CSRF token) ----------------------------
    browser = Browser(gw.endpoint)
    assert browser.login("admin", gw.admin_password).status == 200
    path = f"/buckets/{bucket}/adopt"
    body = {"prefix": "old/b/", "form": "imaging", "values": {"operator": "grace"}}
    assert browser.call("POST", path, body, csrf=False).status == 403
    refused = browser.call("POST", path, {**body, "values": {}})
    assert refused.status == 400, refused.body
    reply = browser.call("POST", path, body)
    assert reply.status == 200, reply.body
    assert reply.body["adopted"] == 1
    api_session = reply.body["session"]["id"]
    assert reply.body["session"]["owner"] == "admin"
    assert reply.body["session"]["values"] == {"operator": "grace"}
    # nobody ever held its key: the session is closed once the data is linked
    assert reply.body["session"]["state"] == "closed"

    # -- records with the right SHA-256, owned by the admin ---------------------------------------
    for session_id, prefix in ((cli_session, "old/a/"), (api_session, "old/b/")):
        objects = browser.call("GET", f"/sessions/{session_id}/objects").body["objects"]
        expected = {k: v for k, v in data.items() if k.startswith(prefix)}
        assert {o["key"]: o["sha256"] for o in objects} == {
            k: hashlib.sha256(v).hexdigest() for k, v in expected.items()
        }
        assert {o["principal"] for o in objects} == {"admin"}
        assert {o["content_type"] for o in objects} == {"application/x-run"}

    # -- HeadObject shows the stamp, and the object kept its content type and metadata -----------
    s3 = s3_client(gw)
    head = s3.head_object(Bucket=bucket, Key="old/a/one.bin")
    assert head["Metadata"] == {"instrument": "scope-7", SESSION_META: cli_session}
    assert head["ContentType"] == "application/x-run"
    assert head["CacheControl"] == "no-cache"
    forged = s3.head_object(Bucket=bucket, Key="old/a/two.bin")
    assert forged["Metadata"] == {"instrument": "scope-7", SESSION_META: cli_session}
    got = s3.get_object(Bucket=bucket, Key="old/b/three.bin")
    assert got["Body"].read() == data["old/b/three.bin"]
    assert got["Metadata"][SESSION_META] == api_session

    # -- reconcile agrees --------------------------------------------------------------------------
    done = cli(gw.data_dir, "reconcile", "--bucket", bucket, "--json", *store_args, check=False)
    summary = json.loads(done.stdout.splitlines()[-1])["summary"]
    assert summary["consistent"], done.stdout
    assert done.returncode == 0

    # -- adopting again skips everything ----------------------------------------------------------
    done = cli(
        gw.data_dir, "adopt", "--bucket", bucket, "--prefix", "old/", "--form", "imaging",
        "--set", "operator=ada", "--json", *store_args,
    )  # fmt: skip
    again = json.loads(done.stdout)
    assert again["counts"]["adopted"] == 0
    assert again["counts"]["skipped_recorded"] == 3
    assert sorted(key for key, _why in again["skipped"]) == sorted(data)

    # -- an object stamped already (but with no record) is left to reconcile ---------------------
    setup.put(bucket, "old/c/stamped.bin", b"stamped", {SESSION_META: cli_session})
    reply = browser.call("POST", path, {**body, "prefix": "old/c/"})
    assert reply.status == 200, reply.body
    assert reply.body["adopted"] == 0
    assert reply.body["skipped_stamped"] == 1
    assert reply.body["skipped"][0]["key"] == "old/c/stamped.bin"

    # -- the audit trail names the adoption --------------------------------------------------------
    events = browser.call("GET", "/audit?action=object.adopt").body
    targets = {e["target"] for e in events["events"]}
    assert f"s3://{bucket}/old/b/three.bin" in targets
