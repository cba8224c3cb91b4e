"""Browser security for everything under ``/_minimo/``: the login cookie, CSRF, login rate limit.

- **Login cookie**: aiohttp-session's :class:`EncryptedCookieStorage` (Fernet: AES-CBC + HMAC).
  Its key is derived (HKDF-SHA256) from the data dir's secret key file, the one that already
  encrypts S3 secrets at rest, so every gateway process sharing a data dir (or the same key file
  behind a load balancer) accepts the same cookies, and no constant key ships in the code.
  Derivation (not reuse) keeps the two purposes apart: a cookie can never be fed to the secret
  box or the other way round. The cookie is HttpOnly, SameSite=Lax, Secure when minimo serves
  TLS, scoped to ``/_minimo/``, and dies ``LOGIN_MAX_AGE_SECONDS`` after login (Fernet's TTL is
  checked server-side, whatever the browser does with Max-Age).
- **Sign-out**: every login gets a random login id (``policy.logins``), kept inside the
  cookie. Signing out records the id as ended in the metadata store (docs/design.md, decision 2:
  nothing only in process memory), and every cookie-authenticated request refuses an ended login
  like an expired one, so a copied cookie stops working too. Bound: other gateway processes
  cache "not ended" for at most 2 s per login, so they refuse it within 2 s; the process that
  signed out refuses it at once. Cookies without a login id (minted before this existed) are
  refused: sign in again. A login also ends when the user's password changes (the cookie
  carries a fingerprint of the password hash, checked on every request) or the user is deleted
  or loses the role.
- **CSRF**: a random token is minted at login and kept inside the encrypted cookie; every
  state-changing request authenticated by the cookie must echo it in ``X-CSRF-Token``. Requests
  signed with SigV4 carry no cookie authority and need no token.
- **Login rate limit**: at most ``LOGIN_FAILURES`` failed logins per (user, client IP) in
  ``LOGIN_WINDOW_SECONDS``. The counter lives in **process memory, per process**: with N gateway
  processes an attacker gets at most N times the budget. That is an accepted trade-off (argon2id
  already makes each guess expensive); it is the one piece of state here that is not shared.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp_session import session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.usecases.appkeys import CONFIG
from policy.crypto import load_or_create_key
from policy.logins import LOGIN_MAX_AGE_SECONDS

COOKIE_NAME = "minimo_login"
COOKIE_PATH = "/_minimo/"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_FAILURES = 5
LOGIN_WINDOW_SECONDS = 60.0
#: the limiter's table is dropped whole past this size (bounded memory under a spray attack)
_LIMITER_MAX_ENTRIES = 100_000
#: HKDF "info": names the purpose, so the derived key is useless for anything else
_COOKIE_KEY_INFO = b"minimo ui login cookie v1"

#: methods that change nothing, so need no CSRF token
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cookie_key(secret_key_file: Path) -> bytes:
    """32 bytes for the cookie's Fernet key, derived from the data dir's secret key file."""
    master = load_or_create_key(secret_key_file)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_COOKIE_KEY_INFO).derive(
        master
    )


def cookie_storage(secret_key_file: Path, *, secure: bool) -> EncryptedCookieStorage:
    """The login cookie storage every ``/_minimo/`` page and API route shares."""
    return EncryptedCookieStorage(
        cookie_key(secret_key_file),
        cookie_name=COOKIE_NAME,
        path=COOKIE_PATH,
        max_age=LOGIN_MAX_AGE_SECONDS,
        httponly=True,
        samesite="Lax",
        secure=secure,
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def login_cookie_middleware(app: web.Application) -> Middleware:
    """aiohttp-session's middleware over :func:`cookie_storage`, for a sub-app of ``app``.

    The storage is built at the first request, from ``app``'s config: building it when the app
    is created would make every app factory (tests included) read or create the key file.
    """
    middleware: Middleware | None = None

    @web.middleware
    async def lazy(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal middleware
        if middleware is None:
            config = app[CONFIG]
            middleware = session_middleware(
                cookie_storage(config.secret_key_path, secure=config.tls)
            )
        return await middleware(request, handler)

    return lazy


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(expected: object, sent: str | None) -> bool:
    """Constant-time comparison of the session's token with the header's."""
    if not isinstance(expected, str) or not expected or not sent:
        return False
    return hmac.compare_digest(expected.encode(), sent.encode())


def password_fingerprint(password_hash: str) -> str:
    """What the cookie remembers of the password: changing the password ends other logins."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


class LoginLimiter:
    """Failed-login counter per (user, IP); see the module docstring (per process)."""

    def __init__(
        self,
        failures: int = LOGIN_FAILURES,
        window: float = LOGIN_WINDOW_SECONDS,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.failures = failures
        self.window = window
        self._clock = clock or time.monotonic
        self._seen: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        now = self._clock()
        times = self._seen.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._seen[key]
        return times

    def retry_after(self, user: str, ip: str) -> float:
        """Seconds until another attempt is allowed (0 when allowed now)."""
        times = self._recent((user, ip))
        if len(times) < self.failures:
            return 0.0
        return max(0.0, times[0] + self.window - self._clock())

    def failed(self, user: str, ip: str) -> None:
        if len(self._seen) >= _LIMITER_MAX_ENTRIES:
            self._seen.clear()
        self._seen.setdefault((user, ip), deque()).append(self._clock())

    def succeeded(self, user: str, ip: str) -> None:
        self._seen.pop((user, ip), None)
