"""The ``/_minimo/`` side of the gateway: pages, the JSON API, health and metrics.

The wiring (``gateway.server``) hands :func:`setup_ui` to ``gateway.s3api.app.create_app``, which
calls it to mount everything here before its S3 catch-all route.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from aiohttp import web

#: every route this package serves lives under this prefix (docs/design.md, decision 8)
PREFIX = "/_minimo/"
#: the page where a session is opened (ui.pages.views serves it)
NEW_SESSION_PAGE = PREFIX + "sessions/new"


def session_link(base_url: str) -> Callable[[str, str], str]:
    """(bucket, prefix) -> the new-session page under ``base_url`` with both filled in (query
    values URL-encoded): where refusals send people. The wiring passes it to the enforcer
    (``policy.enforce.SessionLink``), so policy names no UI path."""
    base = base_url.rstrip("/")

    def link(bucket: str, prefix: str) -> str:
        return f"{base}{NEW_SESSION_PAGE}?{urlencode({'bucket': bucket, 'prefix': prefix})}"

    return link


def setup_ui(app: web.Application) -> None:
    """Register every ``/_minimo/`` route on ``app`` (before any catch-all S3 route)."""
    from ui.health import setup_health

    setup_health(app)
    from ui.api import setup_api

    setup_api(app)
    from ui.pages import setup_pages

    setup_pages(app)  # last: the pages sub-app takes every other /_minimo/ path
