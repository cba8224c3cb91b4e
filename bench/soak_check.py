"""The soak benchmark's setup and its integrity check, both through the gateway itself.

Setup and the checks use the JSON API (``/_minimo/api/v1``, requests signed with SigV4 by the
admin's personal key, as scripts do), so they work against any running gateway, whatever its
stores: the form and the policy rules are put in place, a session is opened, and afterwards
the data browser's listing (``/buckets/{bucket}``: every visible object with ``recorded``),
the object records (``/objects/{bucket}/{key}``) and the audit log (``/audit``) are compared
with what the clients were told. Where the soak started the stores itself, ``minimo reconcile
--json`` adds its own findings (intents, records without objects) on top.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.client import Endpoint
from bench.soak_load import Client, Ledger, Signer

API = "/_minimo/api/v1"
FORM = {
    "name": "soak",
    "title": "Soak benchmark run",
    "fields": [{"name": "run", "type": "text", "required": True}],
}
#: how many keys of each finding the report names
SHOWN = 10
CHECK_CONCURRENCY = 8


class SetupError(RuntimeError):
    """The gateway refused a step of the setup; the message carries its answer."""


def policy_rules(bucket: str, scratch: str) -> str:
    """The soak's two rules: a scratch area (no session, admins delete) and sessions elsewhere.

    Put in front of any policy already in force: the first matching rule wins.
    """
    return (
        "# minimo soak benchmark\n"
        f'[[rule]]\nbucket = "{bucket}"\nprefix = "{scratch}"\n'
        'require_session = false\ndelete = "admin"\n\n'
        f'[[rule]]\nbucket = "{bucket}"\nprefix = ""\nforms = ["{FORM["name"]}"]\n\n'
    )


class Api:
    """The JSON API, signed with the admin's personal key."""

    def __init__(self, http: aiohttp.ClientSession, admin: Signer) -> None:
        self.http = http
        self.admin = admin

    async def call(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]] = (),
        body: Any = None,
    ) -> tuple[int, Any]:
        extra = {"content-type": "application/json"} if body is not None else None
        url, headers = self.admin.url_and_headers(method, API + path, query, extra)
        data = json.dumps(body).encode() if body is not None else None
        async with self.http.request(method, url, data=data, headers=headers) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text) if text else None
            except ValueError:
                return resp.status, text

    async def must(self, method: str, path: str, body: Any = None, ok: Iterable[int] = ()) -> Any:
        status, doc = await self.call(method, path, body=body)
        if not (200 <= status < 300 or status in ok):
            raise SetupError(f"{method} {API}{path}: HTTP {status}: {str(doc)[:500]}")
        return doc


@dataclass(slots=True)
class Setup:
    session: Endpoint
    session_id: str
    #: the policy source in force before the soak changed it
    old_policy: str


async def setup(api: Api, client: Client, run: str, scratch: str) -> Setup:
    """Bucket, form, policy and one open session scoped to ``run``."""
    bucket = client.bucket
    out = await client._send(api.admin, "PUT", f"/{bucket}")
    if not (out.ok or out.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")):
        raise SetupError(f"creating bucket {bucket}: HTTP {out.status} {out.code}")
    await api.must("POST", "/forms", FORM, ok=(409,))
    old = await api.must("GET", "/policy")
    old_source = old.get("source") or ""
    await api.must("PUT", "/policy", {"toml": policy_rules(bucket, scratch) + old_source})
    opened = await api.must(
        "POST",
        "/sessions",
        {"form": FORM["name"], "bucket": bucket, "prefix": run, "values": {"run": run}},
    )
    key = opened["session_key"]
    ep = Endpoint(api.admin.ep.url, key["access_key"], key["secret_key"])
    return Setup(ep, opened["session"]["id"], old_source)


async def restore_policy(api: Api, source: str) -> None:
    await api.must("PUT", "/policy", {"toml": source})


@dataclass
class Integrity:
    acked_objects: int = 0
    verified: int = 0
    #: acknowledged, not deleted, but GET answered 404
    lost: list[str] = field(default_factory=list)
    #: acknowledged, but the bytes read back hash differently
    different: list[str] = field(default_factory=list)
    #: keys the final check could not read (other errors): key -> status/code
    unreadable: dict[str, str] = field(default_factory=dict)
    get_mismatches_during_load: list[str] = field(default_factory=list)
    #: acknowledged DELETE, yet the object is still there
    deleted_but_visible: list[str] = field(default_factory=list)
    #: acknowledged DELETE, yet minimo still has its record
    deleted_but_recorded: list[str] = field(default_factory=list)
    #: failed PUTs whose object is visible anyway (with or without a record)
    failed_put_visible: int = 0
    failed_put_recorded: int = 0
    #: failed DELETEs whose object is still there
    failed_delete_visible: int = 0
    #: objects listed under the run's prefixes
    objects: int = 0
    #: of those, objects minimo has a record of
    recorded: int = 0
    #: visible objects without a record (every kind of key)
    unrecorded: list[str] = field(default_factory=list)
    #: visible objects the clients never wrote (should be none)
    unknown: list[str] = field(default_factory=list)
    #: records whose object is absent (checked for deleted and failed keys)
    records_without_object: list[str] = field(default_factory=list)
    #: audit events of this run: (action, part, outcome) -> count
    audit: Counter = field(default_factory=Counter)
    #: acknowledged operations by kind
    acked_ops: Counter = field(default_factory=Counter)
    #: kind -> (acknowledged, audit "allowed") where they differ
    audit_mismatch: dict[str, tuple[int, int]] = field(default_factory=dict)
    reconcile: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if isinstance(value, Counter) and name == "audit":
                out[name] = {"/".join(map(str, k)): v for k, v in sorted(value.items())}
            elif isinstance(value, Counter):
                out[name] = dict(value)
            elif isinstance(value, list):
                out[name] = {"count": len(value), "first": value[:SHOWN]}
            else:
                out[name] = value
        return out


async def _bounded(items: Iterable[Any], fn: Any) -> None:
    sem = asyncio.Semaphore(CHECK_CONCURRENCY)

    async def one(item: Any) -> None:
        async with sem:
            await fn(item)

    await asyncio.gather(*(one(i) for i in items))


async def list_visible(api: Api, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every object under ``prefix`` (one level) with ``recorded``, page by page."""
    found: list[dict[str, Any]] = []
    start_after = ""
    while True:
        # pages of 200: each object's record is looked up, and FerretDB's SQLite handler scans
        # the whole collection for each lookup, so a page of 1000 can outlast the store's
        # 10 s socket timeout (a 503); a 503 is retried after a pause, as a client would
        query = [("prefix", prefix), ("limit", "200")]
        if start_after:
            query.append(("start_after", start_after))
        for attempt in range(6):
            status, doc = await api.call("GET", f"/buckets/{bucket}", query)
            if status != 503:
                break
            await asyncio.sleep(2 * (attempt + 1))
        if status != 200:
            raise SetupError(f"listing {prefix}: HTTP {status}: {str(doc)[:300]}")
        found += doc["objects"]
        start_after = doc.get("next_start_after") or ""
        if not start_after or not doc["objects"]:
            return found


async def count_audit(api: Api, since: str, targets: dict[str, str]) -> Counter:
    """Audit events since ``since`` whose target starts with one of ``targets`` (name -> URL
    prefix), counted by (action, name, outcome)."""
    counts: Counter = Counter()
    for action in ("PutObject", "DeleteObject"):
        cursor = ""
        while True:
            query = [("since", since), ("action", action), ("order", "asc"), ("limit", "1000")]
            if cursor:
                query.append(("cursor", cursor))
            status, doc = await api.call("GET", "/audit", query)
            if status != 200:
                raise SetupError(f"reading the audit log: HTTP {status}: {str(doc)[:300]}")
            for event in doc["events"]:
                # a delete that answered 503 but did happen is audited once the store is back,
                # marked so: it is not one the client was told about
                outcome = event["outcome"]
                if (event.get("details") or {}).get("acknowledged") is False:
                    outcome += " (not acknowledged)"
                for name, prefix in targets.items():
                    if event["target"].startswith(prefix):
                        counts[(event["action"], name, outcome)] += 1
                        break
            cursor = doc.get("next_cursor") or ""
            if not cursor or not doc["events"]:
                break
    return counts


async def check(
    api: Api,
    client: Client,
    ledger: Ledger,
    *,
    session_prefix: str,
    scratch_prefix: str,
    since: str,
    log: Any,
) -> Integrity:
    """Compare what the clients were told with what the gateway now shows."""
    bucket = client.bucket
    res = Integrity(acked_objects=len(ledger.acked), acked_ops=Counter(ledger.acked_ops))
    res.get_mismatches_during_load = list(ledger.get_mismatches)
    started = time.monotonic()

    # 1. every acknowledged object: there, and the same bytes
    async def verify(key: str) -> None:
        digest, size = ledger.acked[key]
        out, got = await client.get(api.admin, key)
        if out.status == 404:
            res.lost.append(key)
        elif not out.ok:
            res.unreadable[key] = f"{out.status} {out.code}"
        elif got != digest or out.nbytes != size:
            res.different.append(key)
        else:
            res.verified += 1

    await _bounded(list(ledger.acked), verify)
    log(f"verified {res.verified}/{len(ledger.acked)} acknowledged objects "
        f"in {time.monotonic() - started:.0f} s")  # fmt: skip

    # 2. what is visible, and whether minimo has a record of it
    visible: dict[str, bool] = {}
    for prefix in (session_prefix, scratch_prefix):
        for obj in await list_visible(api, bucket, prefix):
            visible[obj["key"]] = bool(obj["recorded"])
    res.objects = len(visible)
    res.recorded = sum(visible.values())
    res.unrecorded = sorted(k for k, rec in visible.items() if not rec)
    known = ledger.acked.keys() | ledger.failed_puts | ledger.deleted | ledger.delete_failed.keys()
    res.unknown = sorted(k for k in visible if k not in known)
    res.deleted_but_visible = sorted(k for k in ledger.deleted if k in visible)
    res.failed_put_visible = sum(1 for k in ledger.failed_puts if k in visible)
    res.failed_put_recorded = sum(1 for k in ledger.failed_puts if visible.get(k))
    res.failed_delete_visible = sum(1 for k in ledger.delete_failed if k in visible)

    # 3. records of keys that should have none (deleted), or whose object is gone
    async def record_of(key: str) -> None:
        status, _ = await api.call("GET", f"/objects/{bucket}/{key}")
        if status == 200:
            if key in ledger.deleted:
                res.deleted_but_recorded.append(key)
            if key not in visible:
                res.records_without_object.append(key)
        elif status != 404:
            res.unreadable[f"record:{key}"] = str(status)

    absent_candidates = ledger.deleted | {k for k in ledger.failed_puts if k not in visible}
    absent_candidates |= {k for k in ledger.delete_failed if k not in visible}
    await _bounded(sorted(absent_candidates), record_of)
    res.deleted_but_recorded.sort()
    res.records_without_object.sort()
    log(f"listed {len(visible)} objects, looked up {len(absent_candidates)} records "
        f"({time.monotonic() - started:.0f} s)")  # fmt: skip

    # 4. the audit log holds one "allowed" event per acknowledged write and delete
    res.audit = await count_audit(
        api,
        since,
        {
            "session": f"s3://{bucket}/{session_prefix}",
            "scratch": f"s3://{bucket}/{scratch_prefix}",
        },
    )
    for kind, (action, part) in {
        "put_session": ("PutObject", "session"),
        "put_scratch": ("PutObject", "scratch"),
        "delete": ("DeleteObject", "scratch"),
    }.items():
        acked, audited = ledger.acked_ops[kind], res.audit[(action, part, "allowed")]
        if acked != audited:
            res.audit_mismatch[kind] = (acked, audited)
    log(f"counted {sum(res.audit.values())} audit events")
    log(f"integrity check done in {time.monotonic() - started:.0f} s")
    return res


def judge(res: Integrity) -> list[str]:
    """The failed checks, in words (empty: all passed)."""
    p = []

    def need(cond: bool, text: str) -> None:
        if not cond:
            p.append(text)

    need(not res.lost, f"{len(res.lost)} acknowledged objects lost")
    need(not res.different, f"{len(res.different)} acknowledged objects differ from what was sent")
    need(not res.unreadable, f"{len(res.unreadable)} objects or records could not be read back")
    need(
        not res.get_mismatches_during_load,
        f"{len(res.get_mismatches_during_load)} GETs during the load returned other bytes",
    )
    need(not res.deleted_but_visible, f"{len(res.deleted_but_visible)} deleted objects visible")
    need(
        not res.deleted_but_recorded,
        f"{len(res.deleted_but_recorded)} deleted objects still recorded",
    )
    need(not res.unrecorded, f"{len(res.unrecorded)} visible objects without a record")
    need(not res.unknown, f"{len(res.unknown)} visible objects nobody wrote")
    need(
        not res.records_without_object,
        f"{len(res.records_without_object)} records without an object",
    )
    for kind, (acked, audited) in res.audit_mismatch.items():
        p.append(f"audit: {audited} allowed events for {acked} acknowledged {kind}")
    if res.reconcile is not None:
        found = {k: v for k, v in res.reconcile.get("found", {}).items() if v}
        need(not found, f"minimo reconcile found {found}")
    return p
