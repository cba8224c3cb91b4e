"""``GET /_minimo/metrics``: the Prometheus text of :mod:`gateway.usecases.metrics`.

Who may read it: a signed-in admin (the login cookie), or a scraper presenting the metrics
token (``Authorization: Bearer TOKEN``, the token from ``minimo serve --metrics-token-file``),
or anyone when the operator chose ``--metrics-public`` (a scrape network nobody else reaches).
The figures name no user, key or object, but request counts by operation and refusals by
reason still tell an outsider how the lab works, so they are not public by default.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from gateway.usecases import metrics
from gateway.usecases.appkeys import CONFIG, METADATA_STORE
from ui.pages.common import Page

_BEARER = "bearer "


async def _answer(request: web.Request) -> web.Response:
    body = await metrics.exposition(request.config_dict[METADATA_STORE])
    return web.Response(
        body=body,
        headers={"Content-Type": metrics.CONTENT_TYPE, "Cache-Control": "no-store"},
    )


def _token_matches(request: web.Request) -> bool:
    expected = request.config_dict[CONFIG].metrics_token
    header = request.headers.get("Authorization", "")
    if not expected or header[: len(_BEARER)].lower() != _BEARER:
        return False
    sent = header[len(_BEARER) :].strip()
    return hmac.compare_digest(sent.encode(), expected.encode())


async def metrics_for_admin(request: web.Request) -> web.Response:
    """A signed-in admin's view (the guard checked the role)."""
    return await _answer(request)


async def metrics_without_login(request: web.Request) -> web.Response:
    """No login cookie: the metrics token, or --metrics-public, or 401."""
    if request.config_dict[CONFIG].metrics_public or _token_matches(request):
        return await _answer(request)
    return web.Response(
        status=401,
        text="Metrics need a signed-in admin or the metrics token: send "
        "'Authorization: Bearer TOKEN' with the token of minimo serve --metrics-token-file.\n",
        headers={"WWW-Authenticate": 'Bearer realm="minimo metrics"', "Cache-Control": "no-store"},
    )


ROUTES = [
    Page(
        "GET",
        "/metrics",
        metrics_for_admin,
        "admin",
        "metrics",
        refusals="json",
        signed_out=metrics_without_login,
    ),
]
