"""The object store as the web UI reads it: the interface, its answers, the error every backend
raises, and the headers stored bytes are served with.

The UI browses buckets, heads and downloads objects through the same
:class:`~gateway.backends.base.ObjectStore` the S3 front end uses (an app key,
``gateway.usecases.appkeys.OBJECT_STORE``). These names are defined below the use-case layer
(``gateway.backends.base``, ``gateway.protocol``); they are named here so that the UI reaches
the gateway only through the use cases (docs/design.md, "Layers") and never depends on which
module of the backends or the protocol defines them.
"""

from __future__ import annotations

from gateway.backends.base import ObjectInfo, ObjectStore
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.protocol.safe_serving import NOSNIFF, OBJECT_CSP

__all__ = ["NOSNIFF", "OBJECT_CSP", "ObjectInfo", "ObjectStore", "S3Error", "S3ErrorCode"]
