"""ui.security without a server: the cookie key, CSRF comparison, the login limiter."""

from __future__ import annotations

from pathlib import Path

from ui.security import (
    LoginLimiter,
    cookie_key,
    cookie_storage,
    csrf_ok,
    new_csrf_token,
    password_fingerprint,
)


def test_cookie_key_is_derived_from_the_secret_key_file(tmp_path: Path) -> None:
    first = tmp_path / "a" / "secret.key"
    key = cookie_key(first)
    assert len(key) == 32
    assert first.exists() and first.stat().st_mode & 0o777 == 0o600
    assert cookie_key(first) == key  # every process on this data dir agrees
    assert cookie_key(tmp_path / "b" / "secret.key") != key  # no constant key
    assert key not in first.read_bytes()  # derived, not the S3-secret key itself


def test_cookie_attributes(tmp_path: Path) -> None:
    plain = cookie_storage(tmp_path / "secret.key", secure=False)
    tls = cookie_storage(tmp_path / "secret.key", secure=True)
    assert plain.cookie_params["httponly"] is True
    assert plain.cookie_params["samesite"] == "Lax"
    assert plain.cookie_params["path"] == "/_minimo/"
    assert not plain.cookie_params["secure"] and tls.cookie_params["secure"]


def test_csrf_comparison() -> None:
    token = new_csrf_token()
    assert csrf_ok(token, token)
    assert not csrf_ok(token, token + "x")
    assert not csrf_ok(token, None) and not csrf_ok(None, token) and not csrf_ok("", "")


def test_password_fingerprint_changes_with_the_hash() -> None:
    assert password_fingerprint("h1") == password_fingerprint("h1")
    assert password_fingerprint("h1") != password_fingerprint("h2")


def test_login_limiter_window() -> None:
    now = [1000.0]
    limiter = LoginLimiter(failures=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("ann", "1.2.3.4") == 0
        limiter.failed("ann", "1.2.3.4")
    assert limiter.retry_after("ann", "1.2.3.4") == 60
    assert limiter.retry_after("ann", "5.6.7.8") == 0  # per (user, IP)
    assert limiter.retry_after("bob", "1.2.3.4") == 0
    now[0] += 30
    assert limiter.retry_after("ann", "1.2.3.4") == 30
    now[0] += 30
    assert limiter.retry_after("ann", "1.2.3.4") == 0  # the window slid past
    limiter.failed("ann", "1.2.3.4")
    limiter.succeeded("ann", "1.2.3.4")
    assert limiter.retry_after("ann", "1.2.3.4") == 0
