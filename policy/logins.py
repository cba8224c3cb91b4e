"""Signed-out browser logins, shared by every gateway process through the metadata store.

The login cookie carries a random login id (:func:`new_login_id`). Signing out records that id
as ended in the metadata store (docs/design.md, decision 2: nothing only in process memory), so a
copied cookie stops working on every gateway process, not only in the browser that signed out.

Staleness bound: :meth:`LoginService.is_ended` caches a "not ended" answer for at most
``LOGIN_CACHE_SECONDS`` (2 s) per login id and process, like keys and sessions. A login ended
on one process is refused by every other process within 2 s (plus in-flight lookups); the
process that ends it forgets its cached answer at once. "Ended" answers are final, so they are
cached for as long as the entry lives.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from policy.expiring import FOREVER, ExpiringCache
from policy.store.base import MetadataStore

#: a login lasts a working day; then the user signs in again (the cookie's max age, ui.security)
LOGIN_MAX_AGE_SECONDS = 12 * 3600
#: how long one process trusts "this login was not signed out" (see the module docstring)
LOGIN_CACHE_SECONDS = 2.0
#: kept past the cookie's own expiry before purging, for clocks of gateways that disagree a little
#: (Fernet itself accepts tokens up to 60 s from the future)
_CLOCK_MARGIN = timedelta(minutes=10)


def new_login_id() -> str:
    """A random id for one login (192 bits), kept inside the encrypted cookie."""
    return secrets.token_urlsafe(24)


class LoginService:
    """Ends logins and answers whether a login was ended, with a short per-process cache."""

    def __init__(
        self,
        store: MetadataStore,
        *,
        max_age: timedelta = timedelta(seconds=LOGIN_MAX_AGE_SECONDS),
        cache_seconds: float = LOGIN_CACHE_SECONDS,
    ) -> None:
        self.store = store
        self._max_age = max_age
        #: login id -> ended? ("ended" is final, so it is kept for as long as the entry lives)
        self._cache: ExpiringCache[str, bool] = ExpiringCache(cache_seconds)

    async def end(self, login_id: str, user: str) -> None:
        """Sign out ``login_id`` everywhere; ending it again is harmless."""
        # Every copy of the cookie was minted before now, so none outlives now + max age: past
        # that the record is useless and may be purged.
        expires = datetime.now(UTC) + self._max_age + _CLOCK_MARGIN
        await self.store.end_login(login_id, user, expires)
        self._cache.put(login_id, True, seconds=FOREVER)

    async def is_ended(self, login_id: str) -> bool:
        hit, cached = self._cache.get(login_id)
        if hit:
            return bool(cached)
        ended = await self.store.login_ended(login_id)
        self._cache.put(login_id, ended, seconds=FOREVER if ended else None)
        return ended
