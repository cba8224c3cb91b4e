"""Object store backends and the factory that picks one from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gateway.backends.base import ObjectStore


class ObjectStoreSettings(Protocol):
    """What the factory reads of the configuration (``gateway.config.Config`` has it all): the
    backends know these five settings, not the configuration they come from."""

    @property
    def s3_endpoint(self) -> str | None: ...

    @property
    def s3_access_key(self) -> str | None: ...

    @property
    def s3_secret_key(self) -> str | None: ...

    @property
    def s3_region(self) -> str: ...

    @property
    def objects_dir(self) -> Path: ...


def open_object_store(config: ObjectStoreSettings) -> ObjectStore:
    """The ``s3`` backend when an S3 endpoint is configured, else ``local`` under the data dir.

    The store is not started yet: the caller awaits ``start()`` before serving and ``close()``
    at shutdown.
    """
    if config.s3_endpoint:
        from gateway.backends.s3 import S3ObjectStore

        if not config.s3_access_key or not config.s3_secret_key:
            raise ValueError(
                "--s3-endpoint needs --s3-access-key and --s3-secret-key "
                "(or MINIMO_S3_ACCESS_KEY and MINIMO_S3_SECRET_KEY)"
            )
        return S3ObjectStore(
            config.s3_endpoint,
            config.s3_access_key,
            config.s3_secret_key,
            config.s3_region or "us-east-1",
        )
    from gateway.backends.local import LocalObjectStore

    return LocalObjectStore(config.objects_dir)
