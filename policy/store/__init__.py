"""Metadata stores: the interface and how to open one from a location."""

from __future__ import annotations

from pathlib import Path

from policy.store.base import (
    AlreadyExists,
    KeyRecord,
    MetadataStore,
    NotFound,
    StoreError,
    UserRecord,
)

__all__ = [
    "AlreadyExists",
    "KeyRecord",
    "MetadataStore",
    "NotFound",
    "StoreError",
    "UserRecord",
    "open_metadata_store",
]


async def open_metadata_store(location: str | Path) -> MetadataStore:
    """Open (and migrate) the store at ``location``: a SQLite file path.

    The ``mongo`` backend (issue 3) will take ``mongodb://`` URLs here.
    """
    from policy.store.sqlite import SqliteStore

    store = SqliteStore(Path(location))
    try:
        await store.open()
    except BaseException:
        await store.close()
        raise
    return store
