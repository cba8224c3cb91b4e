"""The container's health check: exit 0 when ``/_minimo/health`` answers 200, 1 otherwise.

The gateway answers 200 only when both of its stores (S3 and MongoDB) answer. It listens on
``MINIMO_LISTEN`` (the image sets ``0.0.0.0:9000``) over HTTPS by default, or plain HTTP behind a
TLS-terminating proxy (``MINIMO_TLS=false MINIMO_INSECURE_HTTP=true``): both are tried. The
certificate is not verified: this is a probe of the process on its own loopback, and a
certificate made for the public name need not cover 127.0.0.1. Standard library only, so the
image needs no curl.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request

PATH = "/_minimo/health"


def port() -> str:
    listen = os.environ.get("MINIMO_LISTEN", "").strip()
    return listen.rsplit(":", 1)[1] if ":" in listen else "9000"


def check(timeout: float = 4.0) -> tuple[bool, str]:
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    problems = []
    for scheme in ("https", "http"):
        url = f"{scheme}://127.0.0.1:{port()}{PATH}"
        context = unverified if scheme == "https" else None
        try:
            with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
                return response.status == 200, f"{url}: {response.status}"
        except urllib.error.HTTPError as exc:  # the gateway answered: 503 names the failing store
            detail = exc.read(500).decode("utf-8", "replace").strip()
            return False, f"{url}: {exc.code} {detail}"
        except (urllib.error.URLError, OSError) as exc:
            problems.append(f"{url}: {getattr(exc, 'reason', exc)}")
    return False, "; ".join(problems)


def main() -> int:
    healthy, message = check()
    print(message)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
