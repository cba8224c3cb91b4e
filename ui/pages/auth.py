"""The sign-in pages: the login form and its submit, and Sign out (twin of ui/api/auth.py,
whose sign_in and sign_out they call, so a page login and an API login are one and the same)."""

from __future__ import annotations

from aiohttp import web

from ui.api.auth import LoginFailed, LoginRateLimited, sign_in, sign_out
from ui.pages.common import Page, page_user, render, safe_next


async def login_page(request: web.Request) -> web.StreamResponse:
    return await render(
        request, "login.html", {"error": None, "user": "", "next": request.query.get("next", "")}
    )


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    user = str(form.get("user", ""))
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))

    async def again(message: str, status: int, **headers: str) -> web.Response:
        page = await render(
            request,
            "login.html",
            {"error": message, "user": user, "next": str(form.get("next", ""))},
            status,
        )
        page.headers.update(headers)
        return page

    try:
        await sign_in(request, user, password)
    except LoginRateLimited as exc:
        return await again(
            "Too many failed sign-ins for this user from your address. "
            f"Try again in {exc.seconds} s.",
            429,
            **{"Retry-After": str(exc.seconds)},
        )
    except LoginFailed:
        return await again("Wrong user name or password.", 401)
    raise web.HTTPSeeOther(target)


async def logout(request: web.Request) -> web.StreamResponse:
    await sign_out(request, page_user(request))
    return await _to_login(request)


async def _to_login(request: web.Request) -> web.StreamResponse:
    """Where signing out lands; also what a signed-out user's Sign out gets (another tab, or the
    login was ended elsewhere): nothing to end, so no CSRF check is needed, and no way back."""
    raise web.HTTPSeeOther(str(request.app.router["login"].url_for()))


ROUTES = [
    Page("GET", "/login", login_page, "public", "login"),
    Page("POST", "/login", login_submit, "public", "login"),
    Page("POST", "/logout", logout, "reader", "logout", signed_out=_to_login),
]
