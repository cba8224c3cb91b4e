"""The errors a metadata store raises on purpose, and the one place per backend that turns a
driver's exceptions into them (:func:`translate_errors`).

:class:`StoreUnavailable` and :class:`StoreFull` are outages (the gateway answers 503 and 507,
docs/failures.md); nothing above the store interface sees a driver's exception types.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar


class StoreError(Exception):
    """Base of the errors a metadata store raises on purpose."""


class AlreadyExists(StoreError):
    """A record with the same unique name or id exists."""


class NotFound(StoreError):
    """The record to update does not exist."""


class KeyBusy(StoreError):
    """A delete of the key is in progress: a write that starts now is refused (nothing was
    stored), since the delete could remove its object after it was acknowledged. The same
    write may be sent again at once (docs/write-protocol.md, "Writes beside deletes")."""


class StoreUnavailable(StoreError):
    """The metadata store cannot answer now: unreachable, timed out, busy past its timeout or
    failing over. Nothing about the request is wrong; the same call may succeed later (the
    gateway answers ``503 ServiceUnavailable``). The message is for the server log only: it may
    carry driver text and addresses, which clients never see (docs/failures.md)."""


class StoreFull(StoreError):
    """The metadata store has no space left for a write (its disk or quota is full); the
    gateway answers ``507 InsufficientStorage``. The message is for the server log only."""


#: what a backend's translator returns for a driver exception: the store error it means, or
#: None when it means something else (a bug, a constraint) and must pass unchanged
Translator = Callable[[Exception], StoreError | None]
_C = TypeVar("_C", bound=type)


def translate_errors(translate: Translator) -> Callable[[_C], _C]:
    """Class decorator: every public coroutine method of a store (its own and those inherited
    from :class:`MetadataStore`) passes driver exceptions through ``translate``, so the
    "store unavailable / full" decision is made in one place per backend and nothing above
    the interface ever sees a driver's exception types for an outage."""

    def decorate(cls: _C) -> _C:
        for name in dir(cls):
            if name.startswith("_"):
                continue
            method = inspect.getattr_static(cls, name)
            if inspect.iscoroutinefunction(method):
                setattr(cls, name, _translating(method, translate))
        return cls

    return decorate


def _translating(method: Callable[..., Any], translate: Translator) -> Callable[..., Any]:
    @functools.wraps(method)
    async def translated(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:
            mapped = translate(exc)
            if mapped is None:
                raise
            raise mapped from exc

    return translated
