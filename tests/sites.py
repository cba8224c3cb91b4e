"""The enforcement sites: gateways on {sqlite, mongo (FerretDB)} x {local, s3 (versitygw)}, each
with its users, one bucket, and the policy services on its own metadata store.

Users, forms, the policy and sessions are set up through the policy services in the test
process, on the gateway's own metadata store (what the CLI and UI do too), so every close or
expiry reaches the gateway the way it would in production: through the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig

from gateway.config import Config
from gateway.server import open_identity
from policy.audit import Auditor
from policy.catalog import FormService, PolicyService
from policy.principal import Principal, Role
from policy.sessions import SessionService
from policy.store.base import ObjectRecord
from tests.servers import Gateway, mongo_uri, run_gateway

FORMS = [
    {
        "name": "imaging",
        "title": "Imaging run",
        "fields": [{"name": "operator", "type": "text", "required": True}],
    },
    {"name": "other", "title": "Other", "fields": [{"name": "note", "type": "text"}]},
]
# One bucket per gateway; the rules differ by prefix. Nothing matches "nowhere/".
POLICY = """\
[[rule]]
bucket = "*"
prefix = "scratch/"
require_session = false
overwrite = "allow"
delete = "admin"

[[rule]]
bucket = "*"
prefix = "mutable/"
forms = ["imaging"]
overwrite = "allow"
delete = "owner"

[[rule]]
bucket = "*"
prefix = "kept/"
forms = ["imaging"]
delete = "deny"

[[rule]]
bucket = "*"
prefix = "raw/"
forms = ["imaging"]
overwrite = "deny"
delete = "admin"
max_session_ttl = "30d"
"""


@dataclass(frozen=True)
class Keys:
    access_key: str
    secret_key: str


class Meta:
    """The policy services on one gateway's metadata store, driven from this (sync) process."""

    def __init__(self, runner: asyncio.Runner, data_dir: Path, mongo: str | None) -> None:
        self.run: Callable[[Any], Any] = runner.run
        config = Config(data_dir=data_dir, mongo_uri=mongo)
        self.identity = self.run(open_identity(config))
        store = self.store = self.identity.store
        auditor = Auditor(store)
        self.forms = FormService(store, auditor)
        self.policies = PolicyService(store, self.forms, auditor)
        self.sessions = SessionService(store, self.identity, self.policies, self.forms, auditor)

    def setup(self) -> None:
        for form in FORMS:
            self.run(self.forms.create(form, "test"))
        self.run(self.policies.set(POLICY, "test"))

    def user(self, name: str, role: str) -> Keys:
        self.run(self.identity.add_user(name, role))
        credential = self.run(self.identity.create_key(name))
        return Keys(credential.access_key, credential.secret_key)

    def open(
        self, owner: str, bucket: str, prefix: str, ttl: timedelta | None = None
    ) -> tuple[str, Keys]:
        principal = Principal(owner, Role.UPLOADER)
        record, credential = self.run(
            self.sessions.open(principal, "imaging", bucket, prefix, {"operator": "ada"}, ttl)
        )
        return record.id, Keys(credential.access_key, credential.secret_key)

    def close(self, session_id: str) -> None:
        self.run(self.sessions.close(Principal("admin", Role.ADMIN), session_id))

    def record(self, bucket: str, key: str) -> ObjectRecord | None:
        return self.run(self.store.get_object_record(bucket, key))

    def close_store(self) -> None:
        self.run(self.store.close())


@dataclass
class Site:
    """One gateway with its users, its bucket and the services on its metadata store."""

    name: str
    gw: Gateway
    meta: Meta
    bucket: str
    admin: Keys
    alice: Keys
    bob: Keys
    reader: Keys

    def client(self, keys: Keys, **config: Any) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.gw.endpoint,
            aws_access_key_id=keys.access_key,
            aws_secret_access_key=keys.secret_key,
            region_name="us-east-1",
            verify=str(self.gw.ca_file) if self.gw.ca_file else None,
            config=BotoConfig(retries={"max_attempts": 1}, **config),
        )

    def session(self, owner: str = "alice", ttl: timedelta | None = None) -> tuple[str, str, Keys]:
        """A fresh session under raw/: (id, its prefix, its key)."""
        prefix = f"raw/{secrets.token_hex(4)}/"
        session_id, keys = self.meta.open(owner, self.bucket, prefix, ttl)
        return session_id, prefix, keys

    def verify(self, key: str, data: bytes, session_id: str | None) -> None:
        """The accepted object's record, SHA-256 and stamp."""
        record = self.meta.record(self.bucket, key)
        assert record is not None, f"no record for {key}"
        assert record.sha256 == hashlib.sha256(data).hexdigest()
        assert (record.size, record.session_id) == (len(data), session_id)
        head = self.client(self.admin).head_object(Bucket=self.bucket, Key=key)
        assert head["Metadata"].get("minimo-session") == session_id
        assert head["ETag"].strip('"') == record.etag


SITES = ["sqlite-local", "sqlite-s3", "mongo-local", "mongo-s3"]
TOOL_SITES = ["sqlite-local", "mongo-s3"]


@contextmanager
def site_matrix(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Site]]:
    """Start each gateway of the matrix on first use; all stop when the block ends (a test
    module's ``sites`` fixture wraps this)."""
    started: dict[str, Site] = {}
    with ExitStack() as stack:
        runner = stack.enter_context(asyncio.Runner())

        def get(name: str) -> Site:
            if name in started:
                return started[name]
            metadata, objects, *transport = name.split("-")
            upstream = request.getfixturevalue("versitygw") if objects == "s3" else None
            mongo = None
            if metadata == "mongo":
                mongo = mongo_uri(
                    request.getfixturevalue("ferretdb"), f"enf_{secrets.token_hex(4)}"
                )
            data_dir = tmp_path_factory.mktemp(f"enforce-{name}")
            # No policy at start: the forms it names are created first, then the policy is set.
            gw = stack.enter_context(
                run_gateway(
                    data_dir,
                    upstream=upstream,
                    mongo_uri=mongo,
                    policy=None,
                    tls=transport == ["tls"],
                )
            )
            meta = Meta(runner, data_dir, mongo)
            stack.callback(meta.close_store)
            meta.setup()
            site = Site(
                name=name,
                gw=gw,
                meta=meta,
                bucket=f"enf-{secrets.token_hex(4)}",
                admin=Keys(gw.access_key, gw.secret_key),
                alice=meta.user("alice", "uploader"),
                bob=meta.user("bob", "uploader"),
                reader=meta.user("rita", "reader"),
            )
            site.client(site.admin).create_bucket(Bucket=site.bucket)
            started[name] = site
            return site

        yield get
