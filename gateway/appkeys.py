"""Typed keys for what the aiohttp application carries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.backends.base import ObjectStore
    from gateway.config import Config
    from policy.identity import Identity

CONFIG = web.AppKey["Config"]("config")
OBJECT_STORE = web.AppKey["ObjectStore"]("object_store")
IDENTITY = web.AppKey["Identity"]("identity")
