"""The admin's policy page (twin of ui/api/policy.py): the rules in force, edited option by
option in a rule editor (ui/pages/policy_table.py) or as TOML, and saved as a new version
(``policies.set`` checks and audits both, as for the API and the CLI)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiMapping

from policy.rules import DELETE_CHOICES, OVERWRITE_CHOICES, PolicyError, rules_toml
from ui.api.common import services
from ui.pages.common import Page, page_user, render
from ui.pages.policy_table import RuleRow, place_problems, rows_from_post


async def _policy_page(
    request: web.Request, status: int = 200, **context: Any
) -> web.StreamResponse:
    svc = services(request)
    stored = await svc.policies.stored()
    rules = stored.policy.rules if stored is not None else ()
    base = {
        "stored": stored,
        "rules": rules,
        "source": stored.source if stored is not None else "",
        "problems": [],
        "saved": None,
        "rows": [RuleRow.of(rule) for rule in rules],
        "table_problems": [],
        "form_names": [f.name for f in await svc.forms.list()],
        "overwrite_choices": OVERWRITE_CHOICES,
        "delete_choices": DELETE_CHOICES,
    }
    context = {**base, **context}
    context["new_row"] = RuleRow()
    return await render(request, "admin_policy.html", context, status)


async def policy_page(request: web.Request) -> web.StreamResponse:
    return await _policy_page(request)


async def policy_submit(request: web.Request) -> web.StreamResponse:
    who = page_user(request)
    data = await request.post()
    if data.get("editor") == "rules":
        return await _save_rules(request, data)
    # Browsers submit textarea lines with CRLF; store what the CLI would (LF), so saving the
    # unchanged text does not look like a new version.
    text = str(data.get("toml", "")).replace("\r\n", "\n")
    try:
        # policies.set audits "policy.set" itself, as for the API and the CLI
        saved = await services(request).policies.set(text, who)
    except PolicyError as exc:
        # the entered text goes back into the textarea, to be fixed rather than retyped
        return await _policy_page(request, 400, problems=exc.problems, source=text)
    return await _policy_page(request, saved=saved)


async def _save_rules(request: web.Request, data: MultiMapping[Any]) -> web.StreamResponse:
    """The rule editor's rules, written as the policy file they mean and saved like one."""
    rows = rows_from_post(data)
    try:
        saved = await services(request).policies.set(
            rules_toml([row.table() for row in rows]), page_user(request)
        )
    except PolicyError as exc:
        general = place_problems(rows, exc.problems)
        return await _policy_page(request, 400, rows=rows, table_problems=general or [
            "Fix the options marked in red below; nothing was saved."
        ])  # fmt: skip
    return await _policy_page(request, saved=saved)


ROUTES = [
    Page("GET", "/admin/policy", policy_page, "admin", "admin_policy"),
    Page("POST", "/admin/policy", policy_submit, "admin", "admin_policy"),
]
