"""Typed keys for what the aiohttp application carries."""

from __future__ import annotations

from aiohttp import web

from gateway.backends.base import ObjectStore
from gateway.config import Config
from policy.identity import Identity
from policy.store.base import MetadataStore

CONFIG = web.AppKey("config", Config)
OBJECT_STORE = web.AppKey("object_store", ObjectStore)
IDENTITY = web.AppKey("identity", Identity)
METADATA_STORE = web.AppKey("metadata_store", MetadataStore)
