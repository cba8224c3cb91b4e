"""Typed keys for the shared services the aiohttp application carries.

The S3 front end sets them (``gateway.s3api.app.create_app``, and ``gateway.server`` for the
metadata store); the web UI mounted on the same application reads them. They live here, in the
use-case layer, because the UI reaches the gateway only through it (docs/design.md, "Layers").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from gateway.backends.base import ObjectStore
from gateway.config import Config
from gateway.usecases.writes import WritePath
from policy.identity import Identity
from policy.principal import Principal
from policy.store.base import MetadataStore


class SignedCaller(Protocol):
    """Who signed a request, as a signature check answers it."""

    #: None = the request carries no signature at all (anonymous)
    @property
    def principal(self) -> Principal | None: ...

    #: the signed ``x-amz-content-sha256``: lower-case hex, ``UNSIGNED-PAYLOAD`` or
    #: ``STREAMING-...``; None when the request sent none
    @property
    def payload_hash(self) -> str | None: ...


#: Verifies a request signed like an S3 request (SigV4 or SigV2, header or presigned) and says
#: who signed it; raises ``S3Error`` when the signature is wrong. The S3 front end offers its
#: own verifier here, so the JSON API authenticates scripts without a second SigV4 verifier and
#: without importing the front end.
SignatureCheck = Callable[[web.Request], Awaitable[SignedCaller]]

CONFIG = web.AppKey("config", Config)
OBJECT_STORE = web.AppKey("object_store", ObjectStore)
IDENTITY = web.AppKey("identity", Identity)
METADATA_STORE = web.AppKey("metadata_store", MetadataStore)
#: enforcement and the write protocol (policy.enforce + the metadata store)
WRITE_PATH = web.AppKey("write_path", WritePath)
#: the S3 front end's signature check (gateway.s3api.auth), for the JSON API
VERIFY_SIGNATURE: web.AppKey[SignatureCheck] = web.AppKey("verify_signature")
