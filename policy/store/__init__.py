"""Metadata stores: the interface and how to open one from a location."""

from __future__ import annotations

from pathlib import Path

from policy.store.base import (
    AlreadyExists,
    AuditEvent,
    FieldFilter,
    FormRecord,
    InstanceRecord,
    KeyBusy,
    KeyRecord,
    MetadataStore,
    MultipartRecord,
    NotFound,
    ObjectRecord,
    PolicyRecord,
    SessionPage,
    SessionQuery,
    SessionRecord,
    StoreError,
    StoreFull,
    StoreUnavailable,
    UserRecord,
    WriteIntent,
)

__all__ = [
    "AlreadyExists",
    "AuditEvent",
    "FieldFilter",
    "FormRecord",
    "InstanceRecord",
    "KeyBusy",
    "KeyRecord",
    "MetadataStore",
    "MultipartRecord",
    "NotFound",
    "ObjectRecord",
    "PolicyRecord",
    "SessionPage",
    "SessionQuery",
    "SessionRecord",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "UserRecord",
    "WriteIntent",
    "is_mongo_uri",
    "open_metadata_store",
]

MONGO_SCHEMES = ("mongodb://", "mongodb+srv://")


def is_mongo_uri(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(MONGO_SCHEMES)


async def open_metadata_store(
    location: str | Path, *, mongo_uri: str | None = None
) -> MetadataStore:
    """Open (and bring up to date) a metadata store.

    ``mongo_uri`` (or a ``location`` that is itself a ``mongodb://`` / ``mongodb+srv://`` URI)
    selects the ``mongo`` backend, on the database the URI's path names (default ``minimo``);
    otherwise ``location`` is the ``sqlite`` file path.
    """
    store: MetadataStore
    if mongo_uri is None and is_mongo_uri(location):
        mongo_uri = str(location)
    if mongo_uri is not None:
        from policy.store.mongo import MongoMetadataStore, database_from_uri

        store = MongoMetadataStore(mongo_uri, database_from_uri(mongo_uri))
    else:
        from policy.store.sqlite import SqliteStore

        store = SqliteStore(Path(location))
    try:
        await store.open()
    except BaseException:
        await store.close()
        raise
    return store
