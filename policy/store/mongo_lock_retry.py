"""Commands that FerretDB's SQLite handler refused for its database lock, sent again.

FerretDB on SQLite runs each command in a SQLite transaction, and SQLite lets one transaction
write at a time. Under write load a command can lose that race: SQLite refuses it with
SQLITE_BUSY (at once when two deferred transactions both try to write, since waiting could
deadlock; otherwise after FerretDB's 10 s busy timeout), and FerretDB answers InternalError
(code 1) "database is locked (5) (SQLITE_BUSY)". The transaction was rolled back, so nothing of
the command was done and sending it again is safe, as any SQLite client does. Without this,
the request behind it answered 503 while the store was up (seen in soak runs: a few writes per
run under 64 clients). MongoDB and FerretDB on PostgreSQL never answer so.

Only single commands are sent again (each is one transaction there), never a cursor's later
batches; after the last try the error goes on to the store's translation (an outage, 503).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

log = logging.getLogger("minimo.store")

#: pauses before each further try (seconds, each scaled by 0.5-1.5 so that the losers of one
#: race do not meet again). Few: a try that waited out FerretDB's busy timeout took 10 s.
RETRY_DELAYS = (0.05, 0.25, 1.0)

#: collection methods that are one command: a refused one did nothing
_ONE_COMMAND = frozenset(
    {
        "insert_one",
        "update_one",
        "update_many",
        "replace_one",
        "delete_one",
        "delete_many",
        "find_one",
        "find_one_and_update",
        "find_one_and_delete",
        "find_one_and_replace",
        "count_documents",
        "distinct",
    }
)

_LOCK_TEXT = ("SQLITE_BUSY", "database is locked")


def refused_for_lock(exc: BaseException) -> bool:
    """Whether ``exc`` is FerretDB's answer to a command that did not get SQLite's lock."""
    return (
        isinstance(exc, OperationFailure)
        and exc.code == 1
        and any(text in str(exc) for text in _LOCK_TEXT)
    )


async def _with_retries(
    name: str, call: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    for delay in RETRY_DELAYS:
        try:
            return await call(*args, **kwargs)
        except OperationFailure as exc:
            if not refused_for_lock(exc):
                raise
            log.info("%s refused for the database lock; trying again", name)
        await asyncio.sleep(delay * (0.5 + random.random()))
    return await call(*args, **kwargs)


class LockRetryingCollection:
    """An :class:`AsyncCollection` whose one-command methods try again when refused for the
    lock; everything else is the collection's own."""

    __slots__ = ("_collection",)

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._collection = collection

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._collection, name)
        if name not in _ONE_COMMAND:
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await _with_retries(name, attr, args, kwargs)

        return call


class LockRetryingDatabase:
    """An :class:`AsyncDatabase` whose collections are :class:`LockRetryingCollection`."""

    __slots__ = ("_db",)

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._db = db

    def __getitem__(self, name: str) -> LockRetryingCollection:
        return LockRetryingCollection(self._db[name])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)
