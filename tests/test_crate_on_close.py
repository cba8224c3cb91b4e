"""Closing a session writes its RO-Crate into its prefix (issue 4), against a real ``minimo serve``
on both object stores (``local``, and ``s3`` in front of versitygw): through the JSON API, by the
policy's default and with the CLI's ``--ro-crate`` / ``--no-ro-crate``."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.client import Browser
from tests.contract.helpers import pattern
from tests.helpers import policy_rule, s3_client, store_args
from tests.servers import Gateway, Versitygw, run_gateway

CRATE = "ro-crate-metadata.json"
FORM = {
    "name": "imaging",
    "title": "Imaging run",
    "fields": [
        {"name": "operator", "label": "Operator", "type": "text", "required": True},
        {"name": "temp_c", "label": "Temperature", "type": "integer"},
    ],
}
# Sessions under auto/ get a crate when closed without saying; elsewhere only when asked.
POLICY = "\n".join([
    policy_rule("*", ["imaging"], prefix="auto/", ro_crate_on_close=True),
    policy_rule("*", ["imaging"]),
])  # fmt: skip


@dataclass
class World:
    gw: Gateway
    upstream: Versitygw | None
    bucket: str
    admin: Browser

    @property
    def s3(self) -> Any:
        return s3_client(self.gw)

    def store_args(self) -> list[str]:
        return store_args(self.upstream)

    def open(self, prefix: str, **values: Any) -> tuple[str, Any]:
        """A new session under ``prefix``: its id and a boto3 client with its session key."""
        reply = self.admin.call(
            "POST",
            "/sessions",
            {"form": "imaging", "bucket": self.bucket, "prefix": prefix, "values": values},
        )
        assert reply.status == 201, reply.body
        key = reply.body["session_key"]
        return reply.body["session"]["id"], s3_client(self.gw, key["access_key"], key["secret_key"])

    def close(self, session_id: str, body: dict[str, Any] | None = None) -> Any:
        return self.admin.call("POST", f"/sessions/{session_id}/close", body)

    def state(self, session_id: str) -> str:
        return self.admin.call("GET", f"/sessions/{session_id}").body["state"]

    def crate(self, prefix: str) -> tuple[dict[str, Any], bytes, dict[str, Any]]:
        """The crate in the bucket (as JSON and as bytes) and its GetObject answer."""
        got = self.s3.get_object(Bucket=self.bucket, Key=prefix + CRATE)
        raw = got["Body"].read()
        return json.loads(raw), raw, got


@pytest.fixture(scope="module", params=["local", "s3"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    upstream = request.getfixturevalue("versitygw") if request.param == "s3" else None
    data_dir = tmp_path_factory.mktemp(f"crate-{request.param}")
    form_file = data_dir.parent / f"form-{request.param}.json"
    form_file.write_text(json.dumps(FORM))
    with run_gateway(data_dir, upstream=upstream, policy=None) as gw:
        gw.cli("form", "create", "--file", str(form_file))
        policy_file = data_dir / "crate-policy.toml"
        policy_file.write_text(POLICY)
        gw.cli("policy", "set", str(policy_file))
        admin = Browser(gw.endpoint)
        assert admin.login("admin", gw.admin_password).status == 200
        bucket = f"crate-{secrets.token_hex(4)}"
        s3_client(gw).create_bucket(Bucket=bucket)
        yield World(gw, upstream, bucket, admin)


def _graph(crate: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entity["@id"]: entity for entity in crate["@graph"]}


def _files(crate: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["@id"]: e for e in crate["@graph"] if e["@type"] == "File"}


def test_close_writes_the_crate_as_an_object_of_the_session(world: World) -> None:
    prefix = f"run-{secrets.token_hex(3)}/"
    session_id, as_session = world.open(prefix, operator="ada", temp_c=21)
    data = {
        "a.bin": pattern(300 * 1024, seed=7),
        "sub/b.txt": b"hello crate",
        "empty.dat": b"",
    }
    for name, body in data.items():
        as_session.put_object(Bucket=world.bucket, Key=prefix + name, Body=body)

    reply = world.close(session_id, {"ro_crate": True})
    assert reply.status == 200, reply.body
    crate_url = f"s3://{world.bucket}/{prefix}{CRATE}"
    assert reply.body["state"] == "closed"
    assert reply.body["ro_crate"] == {"url": crate_url, "written": True}

    # -- the crate in the bucket describes exactly the session's objects and values ---------------
    crate, raw, got = world.crate(prefix)
    assert got["ContentType"] == "application/ld+json"
    graph = _graph(crate)
    assert graph[CRATE]["about"] == {"@id": "./"}
    files = _files(crate)
    assert set(files) == set(data)  # every object, and not the crate itself
    for name, body in data.items():
        assert files[name]["contentSize"] == len(body)
        assert files[name]["sha256"] == hashlib.sha256(body).hexdigest()
        assert files[name]["identifier"] == f"s3://{world.bucket}/{prefix}{name}"
    assert {p["@id"] for p in graph["./"]["hasPart"]} == set(data)
    values = {e["propertyID"]: e["value"] for e in crate["@graph"] if e["@type"] == "PropertyValue"}
    assert values == {"operator": "ada", "temp_c": 21}
    assert graph["#value-temp_c"]["name"] == "Temperature"
    assert graph["./"]["identifier"] == session_id

    # -- stamped like any write of the session ----------------------------------------------------
    head = world.s3.head_object(Bucket=world.bucket, Key=prefix + CRATE)
    assert head["Metadata"]["minimo-session"] == session_id
    assert head["Metadata"]["minimo-generated"] == "ro-crate"

    # -- and recorded in the session with the SHA-256 of its bytes, written by the closer --------
    objects = world.admin.call("GET", f"/sessions/{session_id}/objects").body["objects"]
    records = {o["key"]: o for o in objects}
    assert set(records) == {prefix + name for name in [*data, CRATE]}
    assert records[prefix + CRATE]["sha256"] == hashlib.sha256(raw).hexdigest()
    assert records[prefix + CRATE]["size"] == len(raw)
    assert records[prefix + CRATE]["principal"] == "admin"
    assert records[prefix + CRATE]["content_type"] == "application/ld+json"
    audit = world.admin.call("GET", "/audit?action=PutObject&limit=1000").body["events"]
    assert any(e["target"] == crate_url and e["outcome"] == "allowed" for e in audit)

    # -- reconcile finds the crate stamped and recorded like every other object --------------------
    done = world.gw.cli(
        "reconcile", "--bucket", world.bucket, "--json", *world.store_args(), check=False
    )
    summary = json.loads(done.stdout.splitlines()[-1])["summary"]
    assert summary["consistent"], done.stdout

    # -- the session is closed: its key is refused ------------------------------------------------
    with pytest.raises(ClientError) as refused:
        as_session.put_object(Bucket=world.bucket, Key=prefix + "late.bin", Body=b"late")
    assert refused.value.response["Error"]["Code"] in ("AccessDenied", "InvalidAccessKeyId")

    # -- closing again rewrites nothing -----------------------------------------------------------
    again = world.close(session_id, {"ro_crate": True})
    assert again.status == 200, again.body
    assert again.body["ro_crate"] == {"url": crate_url, "written": False}
    assert world.s3.head_object(Bucket=world.bucket, Key=prefix + CRATE)["ETag"] == head["ETag"]


def test_a_users_own_crate_file_is_never_overwritten(world: World) -> None:
    prefix = f"own-{secrets.token_hex(3)}/"
    session_id, as_session = world.open(prefix, operator="grace")
    mine = b'{"mine": "hand-written crate"}'
    # even one claiming to be generated: that mark is minimo's to set, and it is dropped
    put = as_session.put_object(
        Bucket=world.bucket,
        Key=prefix + CRATE,
        Body=mine,
        Metadata={"minimo-generated": "ro-crate"},
    )
    head = world.s3.head_object(Bucket=world.bucket, Key=prefix + CRATE)
    assert head["Metadata"] == {"minimo-session": session_id}

    reply = world.close(session_id, {"ro_crate": True})
    assert reply.status == 409, reply.body
    assert "never overwrites" in reply.error["message"]
    assert f"s3://{world.bucket}/{prefix}{CRATE}" in reply.error["message"]

    # nothing happened: still open, the key still writes, the user's file is untouched
    assert world.state(session_id) == "open"
    as_session.put_object(Bucket=world.bucket, Key=prefix + "more.bin", Body=b"more")
    got = world.s3.get_object(Bucket=world.bucket, Key=prefix + CRATE)
    assert got["Body"].read() == mine
    assert got["ETag"] == put["ETag"]

    # closing without the crate still works
    plain = world.close(session_id, {"ro_crate": False})
    assert plain.status == 200, plain.body
    assert plain.body["state"] == "closed"
    assert plain.body["ro_crate"] is None


def test_bad_close_options_are_refused_clearly(world: World) -> None:
    session_id, _ = world.open(f"bad-{secrets.token_hex(3)}/", operator="ada")
    reply = world.close(session_id, {"ro_crate": "yes"})
    assert reply.status == 400
    assert reply.error["fields"] == {"ro_crate": ["must be true or false"]}
    misspelt = world.close(session_id, {"rocrate": True})
    assert misspelt.status == 400
    assert misspelt.error["fields"] == {"rocrate": ["unknown field"]}
    assert world.state(session_id) == "open"


def test_policy_default_and_cli_flags(world: World) -> None:
    # -- under auto/ the policy rule says ro_crate_on_close = true: no option needed -----------
    auto = f"auto/{secrets.token_hex(3)}/"
    auto_id, as_auto = world.open(auto, operator="ada")
    as_auto.put_object(Bucket=world.bucket, Key=auto + "x.bin", Body=b"x")
    reply = world.close(auto_id)
    assert reply.status == 200, reply.body
    assert reply.body["ro_crate"]["written"] is True
    crate, _raw, _got = world.crate(auto)
    assert set(_files(crate)) == {"x.bin"}

    # -- elsewhere the default is no crate --------------------------------------------------------
    plain = f"plain-{secrets.token_hex(3)}/"
    plain_id, as_plain = world.open(plain, operator="ada")
    as_plain.put_object(Bucket=world.bucket, Key=plain + "y.bin", Body=b"y")
    reply = world.close(plain_id)
    assert reply.status == 200, reply.body
    assert reply.body["ro_crate"] is None
    with pytest.raises(ClientError) as missing:
        world.s3.head_object(Bucket=world.bucket, Key=plain + CRATE)
    assert missing.value.response["Error"]["Code"] in ("404", "NoSuchKey")

    # -- the CLI: --ro-crate where the default is off ---------------------------------------------
    cli_prefix = f"cli-{secrets.token_hex(3)}/"
    cli_id, as_cli = world.open(cli_prefix, operator="linus", temp_c=4)
    as_cli.put_object(Bucket=world.bucket, Key=cli_prefix + "z.bin", Body=b"zz")
    done = world.gw.cli(
        "session", "close", cli_id, "--ro-crate", "--json", *world.store_args(), check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["state"] == "closed"
    assert out["ro_crate"] == {"url": f"s3://{world.bucket}/{cli_prefix}{CRATE}", "written": True}
    crate, raw, _got = world.crate(cli_prefix)
    assert _files(crate)["z.bin"]["sha256"] == hashlib.sha256(b"zz").hexdigest()
    record = world.admin.call("GET", f"/objects/{world.bucket}/{cli_prefix}{CRATE}").body
    assert record["sha256"] == hashlib.sha256(raw).hexdigest()
    assert record["session_id"] == cli_id

    # -- and --no-ro-crate where the default is on ------------------------------------------------
    off = f"auto/{secrets.token_hex(3)}/"
    off_id, _ = world.open(off, operator="ada")
    done = world.gw.cli("session", "close", off_id, "--no-ro-crate", *world.store_args())
    assert f"closed session {off_id}" in done.stdout
    assert "RO-Crate" not in done.stdout
    with pytest.raises(ClientError):
        world.s3.head_object(Bucket=world.bucket, Key=off + CRATE)


def test_cli_names_a_users_file_in_the_way(world: World, tmp_path: Path) -> None:
    prefix = f"cli-own-{secrets.token_hex(3)}/"
    session_id, as_session = world.open(prefix, operator="ada")
    as_session.put_object(Bucket=world.bucket, Key=prefix + CRATE, Body=b"{}")
    done = world.gw.cli(
        "session", "close", session_id, "--ro-crate", *world.store_args(), check=False
    )
    assert done.returncode == 1
    assert "never overwrites" in done.stderr
    assert world.state(session_id) == "open"


def test_an_expired_session_gets_no_crate(world: World) -> None:
    prefix = f"auto/expiring-{secrets.token_hex(3)}/"
    reply = world.admin.call(
        "POST",
        "/sessions",
        {
            "form": "imaging",
            "bucket": world.bucket,
            "prefix": prefix,
            "values": {"operator": "ada"},
            "ttl": "1s",
        },
    )
    assert reply.status == 201, reply.body
    session_id = reply.body["session"]["id"]
    for _ in range(300):  # its 1 s lifetime runs out (expiry is judged on the clock)
        if world.state(session_id) == "expired":
            break
        time.sleep(0.1)
    assert world.state(session_id) == "expired"

    # asked for explicitly: refused, and the session is not closed
    asked = world.close(session_id, {"ro_crate": True})
    assert asked.status == 400
    assert "expired" in asked.error["message"]
    assert world.state(session_id) == "expired"

    # the policy's default (on under auto/) does not apply to expired sessions: it just closes
    reply = world.close(session_id)
    assert reply.status == 200, reply.body
    assert reply.body["state"] == "closed"
    assert reply.body["ro_crate"] is None
    with pytest.raises(ClientError):
        world.s3.head_object(Bucket=world.bucket, Key=prefix + CRATE)
