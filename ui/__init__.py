"""The ``/_minimo/`` side of the gateway: pages, the JSON API, health and metrics.

The wiring (``gateway.server``) hands :func:`setup_ui` to ``gateway.s3api.app.create_app``, which
calls it to mount everything here before its S3 catch-all route.
"""

from __future__ import annotations

from aiohttp import web

#: every route this package serves lives under this prefix (DESIGN.md decision 8)
PREFIX = "/_minimo/"


def setup_ui(app: web.Application) -> None:
    """Register every ``/_minimo/`` route on ``app`` (before any catch-all S3 route)."""
    from ui.health import setup_health

    setup_health(app)
    from ui.api import setup_api

    setup_api(app)
    from ui.pages import setup_pages

    setup_pages(app)  # last: the pages sub-app takes every other /_minimo/ path
