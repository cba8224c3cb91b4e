"""Typed keys for what the aiohttp application carries."""

from __future__ import annotations

from aiohttp import web

from gateway.backends.base import ObjectStore
from gateway.config import Config
from gateway.usecases.writes import WritePath
from policy.identity import Identity
from policy.store.base import MetadataStore

CONFIG = web.AppKey("config", Config)
OBJECT_STORE = web.AppKey("object_store", ObjectStore)
IDENTITY = web.AppKey("identity", Identity)
METADATA_STORE = web.AppKey("metadata_store", MetadataStore)
#: enforcement and the write protocol (policy.enforce + the metadata store)
WRITE_PATH = web.AppKey("write_path", WritePath)
