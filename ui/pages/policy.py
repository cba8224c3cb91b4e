"""The admin's policy page (twin of ui/api/policy.py): the rules in force as TOML, edited and
saved as a new version (``policies.set`` audits it, as for the API and the CLI)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from policy.rules import PolicyError
from ui.api.common import services
from ui.pages.common import Page, page_user, render


async def _policy_page(
    request: web.Request, status: int = 200, **context: Any
) -> web.StreamResponse:
    stored = await services(request).policies.stored()
    base = {
        "stored": stored,
        "rules": stored.policy.rules if stored is not None else [],
        "source": stored.source if stored is not None else "",
        "problems": [],
        "saved": None,
    }
    return await render(request, "admin_policy.html", {**base, **context}, status)


async def policy_page(request: web.Request) -> web.StreamResponse:
    return await _policy_page(request)


async def policy_submit(request: web.Request) -> web.StreamResponse:
    who = page_user(request)
    data = await request.post()
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


ROUTES = [
    Page("GET", "/admin/policy", policy_page, "admin", "admin_policy"),
    Page("POST", "/admin/policy", policy_submit, "admin", "admin_policy"),
]
