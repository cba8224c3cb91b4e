"""Store outages, from the exceptions the two stores raise (docs/failures.md).

A metadata store that is unavailable (``StoreUnavailable``) or full (``StoreFull``) and an
object store answering 503/507 (an ``S3Error`` the backends raise) are the state of a store,
not a bug and not the caller's fault. :func:`outage_error` names the answer, whichever store
failed; the web UI words it for people and the API as JSON (``ui.outages``). The detail
(addresses, URIs, driver text) goes to the log only.

The protocol's outage vocabulary is named here too, so the UI reaches it through the use-case
layer (docs/design.md, "Layers").
"""

from __future__ import annotations

from gateway.protocol.errors import (
    RETRY_AFTER_SECONDS,
    S3Error,
    is_outage,
    log_outage,
    storage_full,
    store_unavailable,
)
from policy.store.base import StoreFull, StoreUnavailable

__all__ = ["RETRY_AFTER_SECONDS", "S3Error", "is_outage", "log_outage", "outage_error"]


def outage_error(exc: BaseException) -> S3Error | None:
    """The 503/507 answer ``exc`` stands for when it is a store outage (logging a metadata
    store's detail), or None for any other error."""
    if isinstance(exc, StoreUnavailable):
        log_outage("metadata", "unavailable", f"{exc} ({exc.__cause__!r})")
        return store_unavailable("metadata")
    if isinstance(exc, StoreFull):
        log_outage("metadata", "full", f"{exc} ({exc.__cause__!r})")
        return storage_full("metadata")
    if isinstance(exc, S3Error) and is_outage(exc):
        return exc
    return None
