"""Typed keys for what the aiohttp application carries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.backends.base import ObjectStore
    from gateway.config import Config
    from policy.identity import Identity
    from policy.store.base import MetadataStore

CONFIG = web.AppKey["Config"]("config")
OBJECT_STORE = web.AppKey["ObjectStore"]("object_store")
IDENTITY = web.AppKey["Identity"]("identity")
#: the metadata store (set by gateway.server; /_minimo/health pings it)
METADATA_STORE = web.AppKey["MetadataStore"]("metadata_store")
