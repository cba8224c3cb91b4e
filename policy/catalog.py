"""Forms and the policy as kept in the metadata store: :class:`FormService`, :class:`PolicyService`.

Both are thin on purpose: :mod:`policy.forms` and :mod:`policy.rules` decide what a valid form or
policy is; these services version them in the store, check what crosses the two (a policy may
only name forms that exist) and audit every change.

Staleness bound (docs/design.md, decision 2): :meth:`PolicyService.current` keeps the policy it read
for at most ``POLICY_CACHE_SECONDS`` (2 s) per process, so a ``minimo policy set`` anywhere (CLI,
UI, another gateway process) is in force on every process within 2 s plus one store read. A set
through the same service instance is in force there at once. Forms are not cached: they are read
when a session opens, not on every request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from policy.audit import Auditor
from policy.form_import import import_text as parse_old_form
from policy.forms import Form, parse_form
from policy.principal import Principal
from policy.rules import Policy, PolicyError, parse_policy
from policy.store.base import FormRecord, MetadataStore, PolicyRecord

#: how long one process trusts the policy it read (see the module docstring)
POLICY_CACHE_SECONDS = 2.0
#: the largest integer either metadata store can hold
_MAX_STORED_INT = 2**63 - 1


class CatalogError(Exception):
    """A form or policy request that cannot be done; the message is meant for people."""


Actor = Principal | str


def _by(actor: Actor) -> str:
    return actor if isinstance(actor, str) else actor.user


def _definition(form: Form) -> dict[str, Any]:
    """What the store keeps for a version: the normalised definition without its version number
    (the store assigns that), so an unchanged form compares equal to its stored definition."""
    definition = form.to_dict()
    definition.pop("version", None)
    return definition


def _form(record: FormRecord) -> Form:
    return parse_form({**record.definition, "version": record.version})


@dataclass(frozen=True, slots=True)
class FormVersion:
    """A stored form version with who made it and when."""

    form: Form
    created: datetime
    created_by: str


class FormService:
    def __init__(self, store: MetadataStore, auditor: Auditor) -> None:
        self.store = store
        self.auditor = auditor

    async def create(self, definition: Mapping[str, Any], by: Actor) -> Form:
        """Store a new form as version 1. Raises FormDefinitionError for a bad definition and
        CatalogError when the name is taken."""
        form = parse_form(definition)
        if await self.store.get_form(form.name) is not None:
            raise CatalogError(f"form {form.name} exists; use update")
        return await self._store(form, by, "form.create")

    async def update(self, definition: Mapping[str, Any], by: Actor) -> Form:
        """Store a new version of an existing form. An unchanged definition makes no new version
        (so scripts can re-apply their form files); the latest version is returned as is."""
        form = parse_form(definition)
        latest = await self.store.get_form(form.name)
        if latest is None:
            raise CatalogError(f"no form {form.name}; use create")
        if latest.definition == _definition(form):
            return _form(latest)
        return await self._store(form, by, "form.update")

    async def import_text(self, name: str, text: str, by: Actor) -> Form:
        """Import an old minimo form file as form ``name``: a new form, or a new version of an
        existing one (a lab migrating twice gets the newer file, not an error)."""
        form = parse_old_form(name, text)
        latest = await self.store.get_form(form.name)
        if latest is None:
            return await self._store(form, by, "form.create", source="import")
        if latest.definition == _definition(form):
            return _form(latest)
        return await self._store(form, by, "form.update", source="import")

    async def _store(self, form: Form, by: Actor, action: str, **details: Any) -> Form:
        record = await self.store.create_form_version(form.name, _definition(form), _by(by))
        await self.auditor.ok(by, action, f"form:{form.name}", version=record.version, **details)
        return _form(record)

    async def _record(self, name: str, version: int | None) -> FormRecord | None:
        # Both stores keep 64-bit integers (SQLite, BSON): a larger version cannot exist, and
        # handing it to the driver would fail with an overflow instead of "no such version".
        if version is not None and not 1 <= version <= _MAX_STORED_INT:
            return None
        return await self.store.get_form(name, version)

    async def get(self, name: str, version: int | None = None) -> Form:
        """One version of a form (the latest when ``version`` is None); CatalogError if absent."""
        record = await self._record(name, version)
        if record is None:
            if version is not None and await self.store.get_form(name) is not None:
                raise CatalogError(f"form {name} has no version {version}")
            raise CatalogError(f"no form {name}")
        return _form(record)

    async def find(self, name: str, version: int | None = None) -> Form | None:
        record = await self._record(name, version)
        return _form(record) if record is not None else None

    async def exists(self, name: str) -> bool:
        return await self.store.get_form(name) is not None

    async def list(self) -> list[Form]:
        """The latest version of every form, by name."""
        return [_form(record) for record in await self.store.list_forms()]

    async def versions(self, name: str) -> list[FormVersion]:
        """Every version of a form, oldest first; CatalogError for an unknown form."""
        records = await self.store.list_form_versions(name)
        if not records:
            raise CatalogError(f"no form {name}")
        return [FormVersion(_form(r), r.created, r.created_by) for r in records]

    async def schema(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The JSON Schema of one version (the latest by default)."""
        return (await self.get(name, version)).json_schema()


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """The policy in force with its stored version, source text and author."""

    policy: Policy
    version: int
    source: str
    created: datetime
    created_by: str


def _policy_version(record: PolicyRecord) -> PolicyVersion:
    return PolicyVersion(
        Policy.from_dict(record.document),
        record.version,
        record.source,
        record.created,
        record.created_by,
    )


class PolicyService:
    def __init__(
        self,
        store: MetadataStore,
        forms: FormService,
        auditor: Auditor,
        *,
        cache_seconds: float = POLICY_CACHE_SECONDS,
    ) -> None:
        self.store = store
        self.forms = forms
        self.auditor = auditor
        self._cache_seconds = cache_seconds
        self._cached: tuple[float, Policy] | None = None
        self._lock = asyncio.Lock()

    async def set(self, toml_text: str, by: Actor) -> PolicyVersion:
        """Parse, check and store a policy file as the policy in force.

        Raises PolicyError listing every problem (bad TOML, bad rules, forms that do not exist).
        A file identical to the stored source makes no new version: starting with ``--policy``
        every time must not grow the history.
        """
        policy = parse_policy(toml_text)
        problems = []
        for number, rule in enumerate(policy.rules, start=1):
            for name in rule.forms:
                if not await self.forms.exists(name):
                    problems.append(
                        f"rule {number}: forms: no form {name!r} exists (create it first with "
                        "minimo form create)"
                    )
        if problems:
            raise PolicyError(problems)
        latest = await self.store.get_policy()
        if latest is not None and latest.source == toml_text:
            return _policy_version(latest)
        record = await self.store.set_policy(policy.to_dict(), toml_text, _by(by))
        self._cached = (time.monotonic() + self._cache_seconds, policy)
        await self.auditor.ok(
            by, "policy.set", "policy", version=record.version, rules=len(policy.rules)
        )
        return _policy_version(record)

    async def stored(self, version: int | None = None) -> PolicyVersion | None:
        """The stored policy (the one in force by default, read now, not cached); None if unset."""
        record = await self.store.get_policy(version)
        return _policy_version(record) if record is not None else None

    async def current(self) -> Policy:
        """The policy in force, at most ``cache_seconds`` old. No policy = no rules = every
        write refused."""
        cached = self._cached
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        # One store read per expiry, however many requests arrive while it runs.
        async with self._lock:
            cached = self._cached
            if cached is not None and cached[0] > time.monotonic():
                return cached[1]
            record = await self.store.get_policy()
            policy = Policy.from_dict(record.document) if record is not None else Policy()
            self._cached = (time.monotonic() + self._cache_seconds, policy)
            return policy

    def forget(self) -> None:
        """Drop this process's cached policy (the next ``current`` reads the store)."""
        self._cached = None
