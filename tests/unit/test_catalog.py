"""FormService and PolicyService on the real metadata stores (sqlite; mongo on FerretDB)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from policy.audit import Auditor
from policy.catalog import CatalogError, FormService, PolicyService
from policy.form_import import FormImportError
from policy.forms import FormDefinitionError
from policy.rules import Policy, PolicyError
from policy.store import MetadataStore, open_metadata_store
from tests.servers import mongo_uri

DATA = Path(__file__).parent / "data"

IMAGING: dict[str, Any] = {
    "name": "imaging",
    "title": "Imaging run",
    "fields": [
        {"name": "operator", "type": "text", "required": True},
        {"name": "objective", "type": "choice", "choices": ["10x", "63x"]},
        {"name": "temp_c", "type": "number", "min": 0, "max": 50},
    ],
}
POLICY = """
[[rule]]
bucket = "raw"
prefix = "2026/"
forms = ["imaging"]
"""


class Catalog:
    def __init__(self, store: MetadataStore, cache_seconds: float = 2.0) -> None:
        self.store = store
        self.auditor = Auditor(store, strict=True)
        self.forms = FormService(store, self.auditor)
        self.policies = PolicyService(store, self.forms, self.auditor, cache_seconds=cache_seconds)

    async def actions(self) -> list[tuple[str, str, str]]:
        events, _ = await self.auditor.events()
        return [(e.action, e.target, e.outcome) for e in events]


CatalogTest = Callable[[Catalog], Awaitable[None]]


@pytest.fixture(params=["sqlite", "mongo"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[CatalogTest], None]:
    location: str | Path = tmp_path / "minimo.sqlite3"
    if request.param == "mongo":
        location = mongo_uri(request.getfixturevalue("ferretdb"), f"t_{secrets.token_hex(6)}")

    def runner(body: CatalogTest) -> None:
        async def main() -> None:
            store = await open_metadata_store(location)
            try:
                await body(Catalog(store))
            finally:
                await store.close()

        asyncio.run(main())

    return runner


def test_create_get_update_versions(run) -> None:
    async def body(c: Catalog) -> None:
        created = await c.forms.create(IMAGING, "admin")
        assert created.version == 1 and created.field("temp_c").max == 50
        with pytest.raises(CatalogError, match="form imaging exists; use update"):
            await c.forms.create(IMAGING, "admin")
        # Re-applying the same file makes no new version.
        assert (await c.forms.update(IMAGING, "admin")).version == 1
        changed = {**IMAGING, "fields": [*IMAGING["fields"], {"name": "notes", "type": "textarea"}]}
        assert (await c.forms.update(changed, "bob")).version == 2
        assert (await c.forms.get("imaging")).version == 2
        assert len((await c.forms.get("imaging", 1)).fields) == 3
        assert [v.created_by for v in await c.forms.versions("imaging")] == ["admin", "bob"]
        assert [(f.name, f.version) for f in await c.forms.list()] == [("imaging", 2)]
        schema = await c.forms.schema("imaging", 1)
        assert schema["$id"] == "urn:minimo:form:imaging:v1"
        assert schema["properties"]["temp_c"] == {
            "type": "number",
            "minimum": 0,
            "maximum": 50,
            "title": "Temp c",
        }
        assert await c.actions() == [
            ("form.create", "form:imaging", "ok"),
            ("form.update", "form:imaging", "ok"),
        ]

    run(body)


def test_form_errors(run) -> None:
    async def body(c: Catalog) -> None:
        with pytest.raises(CatalogError, match="no form imaging; use create"):
            await c.forms.update(IMAGING, "admin")
        with pytest.raises(FormDefinitionError, match=r"fields\[0\]"):
            await c.forms.create({"name": "x", "fields": [{"name": "a", "type": "colour"}]}, "a")
        with pytest.raises(CatalogError, match="no form nope"):
            await c.forms.get("nope")
        await c.forms.create(IMAGING, "admin")
        with pytest.raises(CatalogError, match="form imaging has no version 7"):
            await c.forms.get("imaging", 7)
        assert await c.actions() == [("form.create", "form:imaging", "ok")]

    run(body)


def test_import_old_minimo_form(run) -> None:
    text = (DATA / "old_minimo_form.txt").read_text()

    async def body(c: Catalog) -> None:
        form = await c.forms.import_text("confocal", text, "admin")
        assert form.version == 1 and form.title == "Confocal imaging session"
        assert form.field("microscope").type == "choice"
        assert form.field("notes").type == "textarea"
        # Importing the same file again changes nothing; a changed file makes version 2.
        assert (await c.forms.import_text("confocal", text, "admin")).version == 1
        more = text + "\nRoom\nWhich room?\ntext\n"
        assert (await c.forms.import_text("confocal", more, "admin")).version == 2
        with pytest.raises(FormImportError, match="line 1"):
            await c.forms.import_text("empty", "", "admin")
        events, _ = await c.auditor.events()
        assert [(e.action, e.details.get("source")) for e in events] == [
            ("form.create", "import"),
            ("form.update", "import"),
        ]

    run(body)


def test_policy_set_current_and_cache(run) -> None:
    async def body(c: Catalog) -> None:
        assert await c.policies.current() == Policy()  # none set: no rules, writes refused
        assert await c.policies.stored() is None
        with pytest.raises(PolicyError) as refused:
            await c.policies.set(POLICY, "admin")
        assert refused.value.problems == [
            "rule 1: forms: no form 'imaging' exists (create it first with minimo form create)"
        ]
        await c.forms.create(IMAGING, "admin")
        stored = await c.policies.set(POLICY, "admin")
        assert stored.version == 1 and stored.source == POLICY
        rule = (await c.policies.current()).match("raw", "2026/run7/a.tif")
        assert rule is not None and rule.forms == ("imaging",)
        # The same file again: no new version.
        assert (await c.policies.set(POLICY, "admin")).version == 1
        with pytest.raises(PolicyError, match="not valid TOML"):
            await c.policies.set("[[rule]\n", "admin")

        # Another process's service sees a change only once its cache expires.
        other = PolicyService(c.store, c.forms, c.auditor, cache_seconds=0.3)
        assert len((await other.current()).rules) == 1
        await c.policies.set(
            POLICY + '\n[[rule]]\nbucket = "scratch"\nrequire_session = false\n', "a"
        )
        assert len((await other.current()).rules) == 1
        await asyncio.sleep(0.35)
        assert len((await other.current()).rules) == 2
        assert (await c.policies.stored(1)).version == 1
        assert [a for a, _, _ in await c.actions()].count("policy.set") == 2

    run(body)
