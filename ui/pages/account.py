"""The account page (twin of ui/api/account.py): who I am, and changing my own password.

Every role may use it. The change is ui.api.account's (same rate limit, audit and cookie
handling); a problem is shown next to the field it is about.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from policy.passwords import MIN_PASSWORD_LENGTH
from ui.api.account import NEW, OLD, PasswordProblem, change_own_password
from ui.api.auth import LoginRateLimited
from ui.pages.common import Page, page_user, render


async def _account_page(
    request: web.Request, status: int = 200, **context: Any
) -> web.StreamResponse:
    base: dict[str, Any] = {
        "errors": {},
        "changed": request.query.get("changed") == "1",
        "min_password_length": MIN_PASSWORD_LENGTH,
    }
    return await render(request, "account.html", {**base, **context}, status)


async def account_page(request: web.Request) -> web.StreamResponse:
    return await _account_page(request)


async def account_submit(request: web.Request) -> web.StreamResponse:
    who = page_user(request)
    form = await request.post()
    old, new = str(form.get(OLD, "")), str(form.get(NEW, ""))
    if new != str(form.get("confirm_password", "")):
        return await _account_page(
            request, 400, errors={"confirm_password": "the two new passwords differ"}
        )
    try:
        await change_own_password(request, who, old, new, via_cookie=True)
    except PasswordProblem as exc:
        return await _account_page(request, 400, errors={exc.field: exc.message})
    except LoginRateLimited as exc:
        message = f"too many wrong passwords; try again in {exc.seconds} s"
        page = await _account_page(request, 429, errors={OLD: message})
        page.headers["Retry-After"] = str(exc.seconds)
        return page
    # a reload must not post again
    target = request.app.router["account"].url_for().with_query(changed="1")
    raise web.HTTPSeeOther(str(target))


ROUTES = [
    Page("GET", "/account", account_page, "reader", "account"),
    Page("POST", "/account", account_submit, "reader", "account"),
]
